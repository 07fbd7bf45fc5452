"""Entry point of the HTTP edge: `python -m gateway serve`."""

from __future__ import annotations

import argparse
import os
import sys

import uvicorn

from gateway.app import create_app
from gateway.ratelimit import LimitSpecError, check_limits
from gateway.settings import GatewaySettings
from servicekit import logging
from servicekit.cli import freeze_startup_heap
from servicekit.settings import SettingsError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway")
    parser.add_subparsers(dest="command").add_parser("serve", help="serve HTTP until SIGTERM (the default)")
    parser.parse_args(argv)
    try:
        settings = load(GatewaySettings, os.environ)
        check_limits(settings)
    except (SettingsError, LimitSpecError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logging.configure(settings.service_name, settings.log_level, settings.log_format)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.http_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
            proxy_headers=True,
            server_header=False,
        )
    )
    freeze_startup_heap()
    server.run()
    return 0
