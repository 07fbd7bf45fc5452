"""How the inference service runs: its settings, its composition root."""

from __future__ import annotations

from inference.bootstrap import build
from inference.settings import InferenceSettings
from servicekit.cli import ServiceMain

main = ServiceMain(InferenceSettings, build)
