"""Settings of the inference service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import ServiceSettings, secret


@dataclass(frozen=True, kw_only=True)
class InferenceSettings(ServiceSettings):
    """Everything the inference service reads from its environment."""

    service_name: str = "inference"
    grpc_port: int = 50054
    metrics_port: int = 9104
    # ComfyUI backends, comma-separated: "http://gpu0:8188" or "gpu-0=http://gpu0:8188"; empty starts the
    # local CPU runtime as a child process and uses it as the only backend.
    comfyui_urls: tuple[str, ...] = ()
    # Where the embedded local runtime keeps its input/output/temp folders; empty: .state/inference/runtime.
    runtime_data_dir: str = ""
    runtime_start_timeout_seconds: float = 60.0
    # Prompts of ours per backend: one running plus one queued keeps the GPU busy while work stays movable.
    max_in_flight_per_backend: int = 2
    probe_interval_seconds: float = 2.0
    # How long a backend may stay unreachable before its executions fail with BACKEND_LOST (retryable).
    backend_lost_grace_seconds: float = 15.0
    # A watched prompt silent this long is looked up in /queue and /history (a missed or silenced socket).
    comfyui_silence_seconds: float = 3.0
    # Object storage: a local directory unless an S3 bucket is configured.
    storage_dir: str = ""
    storage_s3_bucket: str = ""
    storage_s3_endpoint_url: str = ""
    storage_s3_region: str = ""
    storage_s3_access_key_id: str = secret("")
    storage_s3_secret_access_key: str = secret("")
    # Redis for the drain flags shared by every replica; empty keeps them in this process.
    redis_url: str = ""
