"""Wire-level facts of the ComfyUI protocol: message shapes, binary frame layouts, error bodies."""

from __future__ import annotations

import json
import re
import struct
import time
from typing import Any

# Binary event types (first 4 bytes, big endian) as observed on the wire.
PREVIEW_IMAGE = 1
TEXT = 3
PREVIEW_IMAGE_WITH_METADATA = 4

# The image format word inside a PREVIEW_IMAGE frame.
IMAGE_FORMAT_CODES = {"JPEG": 1, "PNG": 2}

SERVER_FEATURES: dict[str, Any] = {
    "supports_preview_metadata": True,
    "supports_model_type_tags": True,
    "max_upload_size": 104857600,
    "extension": {"manager": {"supports_v4": True}},
    "node_replacements": True,
    "assets": False,
}

# extra_data keys ComfyUI keeps out of the queue, history and jobs views.
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")

_CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def now_ms() -> int:
    return int(time.time() * 1000)


def is_canonical_uuid(value: object) -> bool:
    return isinstance(value, str) and bool(_CANONICAL_UUID.match(value))


def queue_info(remaining: int) -> dict[str, Any]:
    return {"exec_info": {"queue_remaining": remaining}}


def preview_frame(image_format: str, image_bytes: bytes) -> bytes:
    """Event 1: type, image format, then the encoded image."""
    return struct.pack(">II", PREVIEW_IMAGE, IMAGE_FORMAT_CODES[image_format]) + image_bytes


def preview_with_metadata_frame(metadata: dict[str, Any], image_bytes: bytes) -> bytes:
    """Event 4: type, length of a JSON metadata object, the JSON, then the encoded image."""
    encoded = json.dumps(metadata).encode("utf-8")
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(encoded)) + encoded + image_bytes


def text_frame(node_id: str, text: str) -> bytes:
    """Event 3: type, length of the node id, the node id, then the text shown on that node."""
    node = node_id.encode("utf-8")
    return struct.pack(">II", TEXT, len(node)) + node + text.encode("utf-8")


def error_body(
    kind: str, message: str, details: str = "", extra_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra_info or {}}


NO_PROMPT = error_body("no_prompt", "No prompt provided", "No prompt provided")
INVALID_PROMPT_ID = error_body(
    "invalid_prompt_id",
    "prompt_id must be a valid UUID",
    "prompt_id must be a UUID string in canonical lowercase hyphenated form; "
    "omit it to let the server generate one",
)
