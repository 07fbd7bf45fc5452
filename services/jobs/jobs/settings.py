"""Settings of the jobs service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import ServiceSettings, secret


@dataclass(frozen=True, kw_only=True)
class JobsSettings(ServiceSettings):
    """Everything the jobs service reads from its environment."""

    service_name: str = "jobs"
    grpc_port: int = 50053
    metrics_port: int = 9103
    database_url: str = secret()
    redis_url: str = secret()
    presets_dir: str = ""
    billing_addr: str
    inference_addr: str
    # Attempts this replica runs at once; 0 makes an admission-only replica that queues but never dispatches.
    dispatch_concurrency: int = 4
    max_running_per_owner: int = 2
    lease_seconds: float = 30.0
    max_attempts: int = 3
    # An admission still unfinished after this long was left by a crashed replica: its reservation is
    # released and the row removed. Longer than any admission takes (a retry with the key resumes it before).
    admission_abandon_seconds: float = 120.0
    # Seconds a workflow's verdict from inference is reused for the same bound workflow; 0 asks every time.
    validation_cache_seconds: float = 30.0
    webhook_allowed_hosts: tuple[str, ...] = ()
    # Sealing keys of the webhook signing secrets, `v1:<base64 of 32 bytes>,...`; without them no secret can
    # be created, so jobs with a webhook are refused (WEBHOOK_SECRET_NOT_CONFIGURED).
    webhook_secret_keys: tuple[str, ...] = secret(())
    webhook_secret_active_key: str = ""
    # Seconds to wait after each failed attempt; one more attempt than delays (8 over about 24 hours).
    webhook_retry_delays: tuple[str, ...] = ("5", "300", "1800", "7200", "18000", "28800", "28800")
    webhook_timeout_seconds: float = 10.0
    webhook_concurrency: int = 8
    webhook_redeliveries_per_hour: int = 10
