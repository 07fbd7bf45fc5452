"""Renders each photo preset's preview.jpg: a sample scene, left half as shot, right half edited.

Usage: .venv/bin/python scripts/render_preset_previews.py

The presets run on the local CPU runtime (started here on a free port), exactly as jobs run them, so a
preview always shows what the preset's current workflow does.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PRESETS = Path(__file__).resolve().parent.parent / "services" / "jobs" / "jobs" / "presets"
WIDTH, HEIGHT = 640, 427


def sample_scene() -> Image.Image:
    """A small synthetic photo: a sky gradient, a sun, hills and a figure."""
    y = np.linspace(0, 1, HEIGHT)[:, None, None]
    sky = (np.array([70, 130, 200]) * (1 - y) + np.array([235, 200, 160]) * y).astype(np.uint8)
    image = Image.fromarray(np.repeat(sky, WIDTH, axis=1))
    draw = ImageDraw.Draw(image)
    draw.ellipse((440, 60, 540, 160), fill=(255, 220, 140))
    draw.polygon([(0, 300), (200, 220), (400, 290), (640, 210), (640, 427), (0, 427)], fill=(60, 110, 70))
    draw.ellipse((250, 180, 330, 260), fill=(224, 172, 140))
    draw.rectangle((255, 255, 325, 400), fill=(150, 40, 50))
    return image.filter(ImageFilter.GaussianBlur(0.6))


def run(client: httpx.Client, workflow: dict[str, dict[str, object]]) -> Image.Image:
    """Runs a workflow on the runtime and returns its first saved image."""
    prompt_id = str(uuid.uuid4())
    client.post("/prompt", json={"prompt": workflow, "prompt_id": prompt_id}).raise_for_status()
    for _ in range(600):
        entry = client.get(f"/history/{prompt_id}").json().get(prompt_id)
        if entry and entry["status"].get("completed") is not None:
            break
        time.sleep(0.1)
    else:
        raise TimeoutError(prompt_id)
    (output,) = entry["outputs"].values()
    saved = output["images"][0]
    data = client.get("/view", params={k: saved[k] for k in ("filename", "subfolder", "type")}).content
    return Image.open(io.BytesIO(data)).convert("RGB")


def main() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as data_dir:
        runtime = subprocess.Popen(
            [sys.executable, "-m", "inference.runtime", "--port", str(port), "--data-dir", data_dir],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert runtime.stdout is not None
            runtime.stdout.readline()  # the runtime.ready line
            client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
            scene = sample_scene()
            buffer = io.BytesIO()
            scene.save(buffer, "PNG")
            client.post("/upload/image", files={"image": ("sample.png", buffer.getvalue(), "image/png")})
            for manifest in sorted(PRESETS.glob("*/manifest.json")):
                if "image" not in json.loads(manifest.read_text()).get("required_inputs", []):
                    continue
                workflow = json.loads((manifest.parent / "workflow.json").read_text())
                workflow["1"]["inputs"]["image"] = "sample.png"
                edited = run(client, workflow)
                preview = scene.copy()
                preview.paste(edited.crop((WIDTH // 2, 0, WIDTH, HEIGHT)), (WIDTH // 2, 0))
                preview.save(manifest.parent / "preview.jpg", quality=85)
                print(f"rendered {manifest.parent.name}/preview.jpg")
        finally:
            runtime.terminate()
            runtime.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
