"""`python -m inference.runtime --host 127.0.0.1 --port 8188 --data-dir DIR`"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from aiohttp import web

from inference.runtime.files import DataDirs
from inference.runtime.server import build_app
from inference.runtime.state import Runtime


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m inference.runtime", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8188, help="0 picks a free port (printed when ready)")
    parser.add_argument("--data-dir", required=True, type=Path, help="holds input/, output/ and temp/")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, argv: list[str]) -> None:
    runtime = Runtime(DataDirs(args.data_dir.resolve()), argv)
    runner = web.AppRunner(build_app(runtime), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    port = runner.addresses[0][1]
    print(json.dumps({"event": "runtime.ready", "port": port}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        asyncio.run(serve(parse(argv), argv))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
