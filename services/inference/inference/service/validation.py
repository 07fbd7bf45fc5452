"""The ValidateWorkflow use case, also run by Execute before anything is queued."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inference.domain.catalog import Catalog, merge_catalogs
from inference.domain.violations import Violation, invalid_workflow, ordered
from inference.domain.workflow import Report, Workflow, parse, validate
from inference.service.pool import Pool
from servicekit import errors


@dataclass(frozen=True)
class ValidationResult:
    """What ValidateWorkflow answers."""

    valid: bool
    violations: list[Violation]
    backends: list[str]
    output_node_ids: list[str]
    checkpoints: list[str]


class Validator:
    """Validates workflows against the live catalogs of the pool."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def catalog(self, backend_id: str) -> tuple[Catalog, list[str]]:
        """The catalog to validate against and the backends it comes from; UNAVAILABLE when none is known."""
        found = self.pool.catalogs(backend_id)
        if not found:
            raise errors.Unavailable(
                "no node catalog of a healthy backend is known yet",
                reason="BACKEND_UNAVAILABLE",
                retry_after=2.0,
            )
        names = [name for name, _ in found]
        catalogs = [c for _, c in found]
        return (catalogs[0] if len(catalogs) == 1 else merge_catalogs(catalogs)), names

    def check(
        self, text: str, backend_id: str, input_filenames: Sequence[str]
    ) -> tuple[Workflow, Catalog, Report]:
        """Parses and validates; a workflow that cannot be parsed is INVALID_ARGUMENT at once."""
        workflow, problems = parse(text)
        if workflow is None or any(v.is_error for v in problems):
            raise invalid_workflow(problems)
        catalog, _ = self.catalog(backend_id)
        report = validate(workflow, catalog, input_filenames)
        return workflow, catalog, report

    def validate(self, text: str, backend_id: str, input_filenames: Sequence[str]) -> ValidationResult:
        """Every violation of the workflow; a bad workflow is a result, never an error (but size is)."""
        workflow, problems = parse(text)
        if workflow is None and any(v.reason.value == "TOO_LARGE" for v in problems):
            raise errors.InvalidArgument(
                problems[0].message,
                reason="WORKFLOW_TOO_LARGE",
                violations=(errors.FieldViolation("workflow_json", problems[0].message),),
            )
        catalog, names = self.catalog(backend_id)
        if workflow is None:
            return ValidationResult(False, ordered(problems), names, [], [])
        report = validate(workflow, catalog, input_filenames)
        violations = ordered([*problems, *report.violations])
        valid = not any(v.is_error for v in violations)
        return ValidationResult(valid, violations, names, report.output_node_ids, report.checkpoints)
