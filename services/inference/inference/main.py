"""How the inference service runs: its settings, its composition root."""

from __future__ import annotations

from servicekit.cli import ServiceMain

from inference.bootstrap import build
from inference.settings import InferenceSettings


main = ServiceMain(InferenceSettings, build)
