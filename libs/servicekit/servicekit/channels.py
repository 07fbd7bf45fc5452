"""gRPC client channels to other contexts, carrying the call context on every hop."""

from __future__ import annotations

import json

import grpc

from servicekit.interceptors import client_interceptors

_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
)


def open_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel to `host:port` inside the cluster, with transparent retries on UNAVAILABLE."""
    return grpc.aio.insecure_channel(
        address,
        interceptors=client_interceptors(),
        options=[
            ("grpc.service_config", _SERVICE_CONFIG),
            ("grpc.enable_retries", 1),
            ("grpc.keepalive_time_ms", 30_000),
            # A peer that restarts is reached again within about a second, not after gRPC's default backoff
            # (which grows to two minutes while it is down).
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1_000),
        ],
    )
