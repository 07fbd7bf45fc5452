"""The runtime's data directories and ComfyUI's file naming rules (annotated names, save counters)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class DataDirs:
    root: Path

    @property
    def input(self) -> str:
        return str(self.root / "input")

    @property
    def output(self) -> str:
        return str(self.root / "output")

    @property
    def temp(self) -> str:
        return str(self.root / "temp")

    def prepare(self) -> None:
        """Create the directories; the temp dir is wiped on start, as ComfyUI does."""
        shutil.rmtree(self.temp, ignore_errors=True)
        for path in (self.input, self.output, self.temp):
            os.makedirs(path, exist_ok=True)

    def by_type(self, kind: str) -> str | None:
        return {"input": self.input, "output": self.output, "temp": self.temp}.get(kind)

    def input_images(self) -> list[str]:
        """Top-level image files of the input dir, sorted (the LoadImage combo options)."""
        names = [n for n in os.listdir(self.input) if os.path.isfile(os.path.join(self.input, n))]
        return sorted(n for n in names if n.lower().endswith(IMAGE_EXTENSIONS))

    def annotated_path(self, name: str) -> str:
        """Resolve `name`, `name [output]` etc. against the input dir; refuses paths that leave it."""
        base, name = self._split_annotation(name)
        path = os.path.abspath(os.path.join(base, name))
        if not is_within(base, path):
            raise ValueError(f"Invalid file path: {name!r}")
        return path

    def annotated_exists(self, name: str) -> bool:
        base, name = self._split_annotation(name)
        path = os.path.abspath(os.path.join(base, name))
        return is_within(base, path) and os.path.exists(path)

    def _split_annotation(self, name: str) -> tuple[str, str]:
        for suffix, base in ((" [output]", self.output), (" [input]", self.input), (" [temp]", self.temp)):
            if name.endswith(suffix.strip()):
                return base, name[: -len(suffix)]
        return self.input, name


def is_within(directory: str, path: str) -> bool:
    try:
        return os.path.commonpath((os.path.abspath(directory), os.path.abspath(path))) == os.path.abspath(
            directory
        )
    except ValueError:
        return False


def save_image_path(prefix: str, output_dir: str, width: int, height: int) -> tuple[str, str, int, str]:
    """Folder, base name, next counter and subfolder for `prefix`, continuing the existing counter."""
    if "%" in prefix:
        prefix = _expand_variables(prefix, width, height)
    subfolder = os.path.dirname(os.path.normpath(prefix))
    filename = os.path.basename(os.path.normpath(prefix))
    folder = os.path.join(output_dir, subfolder)
    if not is_within(output_dir, folder):
        raise Exception(
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {os.path.abspath(folder)}"
            f"\n         output_dir: {output_dir}"
        )
    os.makedirs(folder, exist_ok=True)
    counters = [_counter_of(name, filename) for name in os.listdir(folder)]
    counter = max((c for c in counters if c is not None), default=0) + 1
    return folder, filename, counter, subfolder


def _counter_of(name: str, base: str) -> int | None:
    prefix = name[: len(base) + 1]
    if os.path.normcase(prefix[:-1]) != os.path.normcase(base) or prefix[-1:] != "_":
        return None
    try:
        return int(name[len(base) + 1 :].split(".")[0].split("_")[0])
    except ValueError:
        return 0


def _expand_variables(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    values = {
        "%width%": str(width),
        "%height%": str(height),
        "%year%": str(now.tm_year),
        "%month%": f"{now.tm_mon:02}",
        "%day%": f"{now.tm_mday:02}",
        "%hour%": f"{now.tm_hour:02}",
        "%minute%": f"{now.tm_min:02}",
        "%second%": f"{now.tm_sec:02}",
    }
    for key, value in values.items():
        prefix = prefix.replace(key, value)
    return prefix
