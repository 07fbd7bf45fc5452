"""Conversion of Execute requests from the contract to the domain."""

from __future__ import annotations

from comfyapi.inference.v1 import execution_pb2
from comfyapi.inference.v1 import inference_service_pb2 as pb
from inference.api.convert import execution_request


def execute_request(new_execution: bool = False) -> pb.ExecuteRequest:
    return pb.ExecuteRequest(
        execution_id="jobs/j1/attempts/1",
        workflow_json="{}",
        output_prefix="outputs/u1/j1/1",
        inputs=[execution_pb2.InputFile(filename="photo.png", storage_key="uploads/u1/photo.png")],
        new_execution=new_execution,
    )


def test_new_execution_is_carried_and_is_not_part_of_what_makes_an_execution_the_same() -> None:
    new = execution_request(execute_request(new_execution=True))
    resumed = execution_request(execute_request())

    assert new.new_execution
    assert not resumed.new_execution
    assert new.fingerprint() == resumed.fingerprint()
