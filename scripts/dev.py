#!/usr/bin/env python3
"""The one command for a fresh clone; needs nothing but python3 >= 3.11.

Usage:
  python3 scripts/dev.py up                  run all six services on loopback until Ctrl-C
  python3 scripts/dev.py test [pytest args]  run the test suite
  python3 scripts/dev.py sync                only prepare .venv (CI does this before its linters)

Both first make sure .venv matches uv.lock: uv is taken from PATH or installed into .state/uv, then
`uv sync --locked` runs. That happens again only when uv.lock or pyproject.toml change.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
SYNC_STAMP = ROOT / ".venv" / ".dev-synced"  # digest of uv.lock + pyproject.toml at the last sync
LOCAL_UV = ROOT / ".state" / "uv" / "bin" / "uv"


def lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("uv.lock", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def find_uv() -> str:
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    if not LOCAL_UV.exists():
        print("dev: uv not found on PATH; installing it into .state/uv", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LOCAL_UV.parent.parent)], check=True)
        subprocess.run([str(LOCAL_UV.parent / "pip"), "install", "--quiet", "uv"], check=True)
    return str(LOCAL_UV)


def ensure_venv() -> None:
    digest = lock_digest()
    if VENV_PYTHON.exists() and SYNC_STAMP.exists() and SYNC_STAMP.read_text() == digest:
        return
    print("dev: syncing .venv with uv.lock", flush=True)
    subprocess.run([find_uv(), "sync", "--locked"], cwd=ROOT, check=True)
    SYNC_STAMP.write_text(digest)


def main(argv: list[str]) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this runs under whatever python3 the machine has
        sys.exit("dev: needs python3 >= 3.11")
    if not argv or argv[0] not in ("up", "test", "sync"):
        sys.exit(__doc__)
    try:
        ensure_venv()
    except (OSError, subprocess.CalledProcessError) as err:
        sys.exit(f"dev: could not prepare .venv: {err}")
    if argv[0] == "sync":
        return
    command = ["-m", "devstack", "up"] if argv[0] == "up" else ["-m", "pytest", *argv[1:]]
    os.chdir(ROOT)
    os.execv(VENV_PYTHON, [str(VENV_PYTHON), *command])


if __name__ == "__main__":
    main(sys.argv[1:])
