"""Retriers of the SageMaker tasks match only errors the integration emits, and only ones a retry can fix.

How Step Functions names the errors of its optimized SageMaker integration (Step Functions developer
guide, "Manage SageMaker with Step Functions" and "Error handling in Step Functions"): ``SageMaker.``
followed by the SDK's exception class. Errors that the SageMaker API models get their own class, the
API's error shape with ``Exception`` appended (``ResourceLimitExceeded`` ->
``SageMaker.ResourceLimitExceededException``, the name AWS's own retry example uses); everything
else, throttling and validation included, arrives as ``SageMaker.AmazonSageMakerException``. The
modelled errors of each operation are read from botocore's SageMaker service model here, not written
down by hand.

A retry runs the whole task again, so a create with the same job name: after the first call went
through it can only fail as a duplicate (``ResourceInUse``). Retriers may therefore match only
errors that mean the request was refused before anything was created: throttling and service errors
(``AmazonSageMakerException``) and quotas (``ResourceLimitExceeded``), never the duplicate, a missing
resource, a failed or timed-out job, or ``States.ALL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import botocore.session  # type: ignore[import-untyped]
import pytest

from tests.test_sagemaker_requests import operation_name, sagemaker_task_states

GENERIC_ERROR: Final = "SageMaker.AmazonSageMakerException"
REFUSED_BEFORE_CREATING: Final = frozenset({"ResourceLimitExceeded"})
"""Modelled errors after which nothing exists yet, so the same request can succeed later."""


def sagemaker_tasks(definition: dict[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Place -> (SageMaker API operation, state) for every optimized SageMaker task."""
    return {
        place: (operation_name(action), state) for place, action, state in sagemaker_task_states(definition)
    }


def emitted_errors(operation: str) -> frozenset[str]:
    """The error names the integration can report for one SageMaker operation."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    modelled = {shape.name for shape in model.operation_model(operation).error_shapes}
    return frozenset(
        {GENERIC_ERROR} | {f"SageMaker.{name.removesuffix('Exception')}Exception" for name in modelled}
    )


def retryable_errors(operation: str) -> frozenset[str]:
    """The subset of :func:`emitted_errors` after which a retry of the same request can succeed."""
    return frozenset(
        {GENERIC_ERROR}
        | {f"SageMaker.{name}Exception" for name in REFUSED_BEFORE_CREATING} & emitted_errors(operation)
    )


def test_the_integration_names_are_read_from_botocore() -> None:
    assert emitted_errors("CreateTrainingJob") == {
        GENERIC_ERROR,
        "SageMaker.ResourceLimitExceededException",
        "SageMaker.ResourceInUseException",
        "SageMaker.ResourceNotFoundException",
    }
    assert retryable_errors("CreateModel") == {GENERIC_ERROR, "SageMaker.ResourceLimitExceededException"}


def test_every_sagemaker_task_is_found(training_definition: dict[str, Any]) -> None:
    operations = sorted(op for op, _ in sagemaker_tasks(training_definition).values())
    assert operations == [
        "CreateModel",
        "CreateTrainingJob",
        "CreateTrainingJob",
        "CreateTransformJob",
        "CreateTransformJob",
    ]


def test_retriers_match_only_errors_that_a_retry_can_fix(training_definition: dict[str, Any]) -> None:
    problems = []
    for name, (operation, state) in sagemaker_tasks(training_definition).items():
        emitted, retryable = emitted_errors(operation), retryable_errors(operation)
        for retrier in state.get("Retry", []):
            for error in retrier["ErrorEquals"]:
                if error not in emitted:
                    problems.append(f"{name}: {error!r} is never emitted for {operation} ({sorted(emitted)})")
                elif error not in retryable:
                    problems.append(f"{name}: {error!r} means the request went through or cannot succeed")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("error", [GENERIC_ERROR, "SageMaker.ResourceLimitExceededException"])
def test_throttling_and_quotas_are_retried(training_definition: dict[str, Any], error: str) -> None:
    for name, (_, state) in sagemaker_tasks(training_definition).items():
        matched = [r for r in state.get("Retry", []) if error in r["ErrorEquals"]]
        assert len(matched) == 1, f"{name} has {len(matched)} retriers for {error}"
        assert 2 <= matched[0]["MaxAttempts"] <= 6, name


def test_quota_waits_outlast_throttling_waits(training_definition: dict[str, Any]) -> None:
    for name, (_, state) in sagemaker_tasks(training_definition).items():
        by_error = {error: r for r in state["Retry"] for error in r["ErrorEquals"]}
        quota, throttling = by_error["SageMaker.ResourceLimitExceededException"], by_error[GENERIC_ERROR]
        assert quota["IntervalSeconds"] > throttling["IntervalSeconds"], name
