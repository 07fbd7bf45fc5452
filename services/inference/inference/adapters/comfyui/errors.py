"""ComfyUI's error JSON turned into domain violations and errors; aiohttp exceptions end here."""

from __future__ import annotations

from typing import Any

from inference.domain.catalog import MODEL_INPUTS
from inference.domain.violations import Violation, ViolationReason
from servicekit import errors

R = ViolationReason
_NODE_ERROR_REASONS = {
    "required_input_missing": R.MISSING_REQUIRED_INPUT,
    "invalid_input_type": R.WRONG_TYPE,
    "value_bigger_than_max": R.VALUE_OUT_OF_RANGE,
    "value_smaller_than_min": R.VALUE_OUT_OF_RANGE,
    "value_not_in_list": R.VALUE_NOT_IN_CHOICES,
    "return_type_mismatch": R.TYPE_MISMATCH,
    "dependency_cycle": R.CYCLE,
    "custom_validation_failed": R.WRONG_TYPE,
}
_TOP_LEVEL_REASONS = {
    "missing_node_type": R.UNKNOWN_NODE_TYPE,
    "prompt_no_outputs": R.NO_OUTPUT_NODE,
    "no_prompt": R.INVALID_JSON,
    "invalid_prompt": R.INVALID_JSON,
}


def _node_error_reason(error: dict[str, Any]) -> ViolationReason:
    kind = str(error.get("type") or "")
    extra = error.get("extra_info") or {}
    input_name = str(extra.get("input_name") or "")
    if kind == "exception_during_inner_validation":
        # A link to a missing node shows up as a KeyError, a bad output index as an IndexError (section 4).
        return R.LINK_TO_MISSING_NODE if extra.get("exception_type") == "KeyError" else R.BAD_OUTPUT_INDEX
    if kind == "value_not_in_list" and input_name in MODEL_INPUTS:
        return R.MISSING_MODEL
    if kind == "custom_validation_failed" and input_name == "image":
        return R.INPUT_FILE_MISSING
    return _NODE_ERROR_REASONS.get(kind, R.WRONG_TYPE)


def node_error_violations(node_errors: dict[str, Any]) -> list[Violation]:
    """The violations described by a /prompt answer's `node_errors`."""
    found: list[Violation] = []
    for node_id, entry in (node_errors or {}).items():
        if not isinstance(entry, dict):
            continue
        class_type = str(entry.get("class_type") or "")
        for error in entry.get("errors") or ():
            extra = error.get("extra_info") or {}
            input_name = str(extra.get("input_name") or "")
            text = ": ".join(str(p) for p in (error.get("message"), error.get("details")) if p)
            found.append(Violation(_node_error_reason(error), text, str(node_id), class_type, input_name))
    return found


def rejection_violations(body: Any) -> list[Violation]:
    """The violations of a 400 answer to POST /prompt."""
    if not isinstance(body, dict):
        return [Violation(R.INVALID_JSON, "the backend rejected the workflow")]
    found = node_error_violations(body.get("node_errors") or {})
    error = body.get("error")
    if isinstance(error, dict) and not found:
        extra = error.get("extra_info") or {}
        kind = str(error.get("type") or "")
        reason = _TOP_LEVEL_REASONS.get(kind, R.INVALID_JSON)
        if kind == "missing_node_type" and extra.get("class_type") is None:
            reason = R.MISSING_CLASS_TYPE
        message = str(error.get("message") or kind or "the backend rejected the workflow")
        found.append(
            Violation(reason, message, str(extra.get("node_id") or ""), str(extra.get("class_type") or ""))
        )
    return found or [Violation(R.INVALID_JSON, "the backend rejected the workflow")]


def backend_unavailable(backend: str, action: str, exc: BaseException | str) -> errors.Unavailable:
    """The domain error for a backend that did not answer (aiohttp and OS errors never leave the adapter)."""
    detail = (
        exc if isinstance(exc, str) else (f"{type(exc).__name__}: {exc}".rstrip(": ") or type(exc).__name__)
    )
    return errors.Unavailable(
        f"backend {backend}: {action} failed: {detail}"[:500],
        reason="BACKEND_UNAVAILABLE",
        metadata={"backend": backend},
        retry_after=2.0,
    )
