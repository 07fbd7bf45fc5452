"""Regenerates the Python code and typed stubs of every contract under gen/python.

Usage: python scripts/gen_protos.py [--check]

With --check nothing is written: the code is generated into a temporary folder and compared with
the committed copy, and the exit status is 1 when they differ (CI runs it that way).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
OUT = ROOT / "gen" / "python"


def generate(into: Path) -> None:
    """Runs protoc from grpcio-tools over every .proto file, then adds the package markers."""
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    bin_dir = Path(sys.executable).parent
    env_path = f"{bin_dir}:{Path('/usr/bin')}"
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"--python_out={into}",
        f"--grpc_python_out={into}",
        f"--mypy_out={into}",
        f"--mypy_grpc_out={into}",
        *sources,
    ]
    subprocess.run(cmd, check=True, cwd=PROTOS, env={"PATH": env_path})
    for folder in [into / "comfyapi", *(into / "comfyapi").rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").touch()
            (folder / "py.typed").touch()


def differences(left: Path, right: Path) -> list[str]:
    """Lists the files that differ between two generated trees, relative to their roots."""
    found: list[str] = []

    def walk(cmp: filecmp.dircmp[str], prefix: str) -> None:
        found.extend(f"{prefix}{name}" for name in cmp.left_only + cmp.right_only + cmp.diff_files)
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(left, right, ignore=["__pycache__"]), "")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the committed code is stale")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        if args.check:
            stale = (
                differences(fresh / "comfyapi", OUT / "comfyapi") if (OUT / "comfyapi").exists() else ["*"]
            )
            if stale:
                print("gen/python is stale; run python scripts/gen_protos.py. Differs:", *stale, sep="\n  ")
                return 1
            print("gen/python matches protos/")
            return 0
        shutil.rmtree(OUT / "comfyapi", ignore_errors=True)
        shutil.copytree(fresh / "comfyapi", OUT / "comfyapi")
    print(f"generated {OUT / 'comfyapi'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
