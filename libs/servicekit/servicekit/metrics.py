"""Prometheus metrics of one service: calls by method and code, and a latency histogram.

Each process owns one registry, served on its metrics port (`start_http_server`) or mounted by the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)


@dataclass(frozen=True)
class Metrics:
    """The instruments every service records; `registry` is what the metrics endpoint exposes."""

    registry: CollectorRegistry
    handled: Counter
    latency: Histogram

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Records one finished call."""
        self.handled.labels(method=method, code=code).inc()
        self.latency.labels(method=method).observe(seconds)

    def serve(self, host: str, port: int) -> None:
        """Starts the metrics HTTP endpoint in a background thread."""
        start_http_server(port, addr=host, registry=self.registry)


def create(kind: str = "grpc") -> Metrics:
    """Creates a registry and its instruments; `kind` (grpc or http) prefixes the metric names.

    The service is not a label: Prometheus adds `job` and `instance` from the scrape target.
    """
    registry = CollectorRegistry()
    handled = Counter(
        f"{kind}_server_handled",
        "Calls finished, by method and status code.",
        ["method", "code"],
        registry=registry,
        namespace="comfyapi",
    )
    latency = Histogram(
        f"{kind}_server_handling_seconds",
        "Time from call start to its end, by method.",
        ["method"],
        registry=registry,
        namespace="comfyapi",
        buckets=LATENCY_BUCKETS,
    )
    return Metrics(registry=registry, handled=handled, latency=latency)
