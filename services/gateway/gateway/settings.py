"""Settings of the gateway, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass

from servicekit.settings import secret


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    """Everything the HTTP edge reads from its environment."""

    service_name: str = "gateway"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "info"
    log_format: str = "json"
    shutdown_grace_seconds: float = 20.0
    identity_addr: str
    billing_addr: str
    jobs_addr: str
    inference_addr: str
    drive_sync_addr: str
    backend_timeout_seconds: float = 10.0
    readiness_timeout_seconds: float = 2.0
    # Rate-limit buckets, the revocation channel and nothing else live here; empty means "no Redis", which
    # behaves like a Redis outage: limits fail open and cached credentials live only auth_cache_fallback_ttl.
    redis_url: str = secret("")
    # The browser-facing origin (`https://app.example.com`) used to build the OAuth callback URL; empty means
    # the origin the request arrived on, which is right for local development only.
    public_url: str = ""
    cookie_secure: bool = True
    auth_cache_max_ttl_seconds: float = 30.0
    auth_cache_fallback_ttl_seconds: float = 1.0
    auth_negative_ttl_seconds: float = 2.0
    auth_cache_size: int = 10_000
    # `plan:requests/seconds` per API key (or session); a plan not listed gets the `default` entry.
    rate_limits: str = "default:60/60,free:60/60,pro:600/60"
    rate_limit_ip: str = "1200/60"
    rate_limit_auth_failures: str = "10/60"
    # Request bodies: any body over max_body_bytes is refused with 413 while it is read, before parsing;
    # uploads may be up to upload_max_bytes (plus the multipart framing).
    max_body_bytes: int = 2 * 1024 * 1024
    upload_max_bytes: int = 20 * 1024 * 1024
    upload_max_pixels: int = 50_000_000
    # Inputs given by URL are fetched by the gateway at submission, with these limits; hosts listed here may
    # resolve to loopback or private addresses (for local setups and tests).
    input_url_timeout_seconds: float = 10.0
    input_url_allowed_hosts: tuple[str, ...] = ()
    # Object storage shared with inference: a local directory unless an S3 bucket is configured.
    storage_dir: str = ""
    storage_s3_bucket: str = ""
    storage_s3_endpoint_url: str = ""
    storage_s3_region: str = ""
    storage_s3_access_key_id: str = secret("")
    storage_s3_secret_access_key: str = secret("")
    # HMAC key of the download links of a local storage directory (at least 16 bytes of text); empty means a
    # random key per process, so links work only on the replica that made them.
    files_signing_key: str = secret("")
    download_url_ttl_seconds: int = 900
    # POST /api/v1/generate?wait=true holds the request at most this long (10 minutes at most) before
    # answering 202.
    generate_wait_seconds: float = 60.0
    sse_heartbeat_seconds: float = 15.0
