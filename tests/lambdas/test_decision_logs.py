"""Each handler logs one record per decision: a short, stable message and its details as ``extra``.

With Lambda's JSON log format (see ``mme_constructs/handler_function.py``) the runtime writes each
record as one JSON object whose ``extra`` keys are top-level fields, so these are the fields a
CloudWatch Logs Insights query filters on. The handlers run end to end here (``handler(event,
None)`` against moto), one success and one refusal each, reusing each handler's own test helpers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.lambdas import test_check_transform as check_tests
from tests.lambdas import test_plan_run as plan_tests
from tests.lambdas import test_promote_artifact as promote_tests
from tests.lambdas import test_serving_generation as serving_tests
from tests.lambdas import test_summarize_run as summary_tests
from tests.lambdas.conftest import (
    GENERATION,
    RUN_ID,
    MotoAccount,
    TrainingJobFactory,
    generate_data,
    handler_environment,
    promote_artifact,
)
from tests.lambdas.test_generate_data import environment as data_environment

check_transform = check_tests.check_transform
plan_run = plan_tests.plan_run
serving_generation = serving_tests.serving_generation
summarize_run = summary_tests.summarize_run

SetEnvironment = Callable[[dict[str, str]], None]

_STANDARD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    """The handlers create (and cache) their own clients, inside the package's moto mock."""
    getters = (
        plan_run._s3_client,
        check_transform._s3_client,
        summarize_run._s3_client,
        serving_generation._s3_client,
    )
    for getter in getters:
        getter.cache_clear()
    yield
    for getter in getters:
        getter.cache_clear()


def decisions(caplog: pytest.LogCaptureFixture, module: ModuleType) -> list[tuple[str, str, dict[str, Any]]]:
    """``(level, message, extra fields)`` of each record the handler module's logger emitted."""
    return [
        (
            record.levelname,
            record.getMessage(),
            {k: v for k, v in vars(record).items() if k not in _STANDARD_FIELDS},
        )
        for record in caplog.records
        if record.name == module.__name__
    ]


def only_decision(
    caplog: pytest.LogCaptureFixture, module: ModuleType, message: str
) -> tuple[str, dict[str, Any]]:
    """The one record with ``message``; its level and extra fields, which must be JSON-able."""
    (found,) = [(level, extra) for level, text, extra in decisions(caplog, module) if text == message]
    json.dumps(found[1])  # the JSON formatter writes these as fields: nothing may need a fallback
    return found


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


# --- plan_run -------------------------------------------------------------------------------------


def plan_environment(aws: MotoAccount) -> dict[str, str]:
    return handler_environment(aws, MAX_LOCATIONS="100", TRAINING_JOB_STEP=plan_tests.STEP)


def test_plan_run_logs_the_generation_it_chose_why_and_the_location_count(
    aws: MotoAccount, lambda_environment: SetEnvironment, logs: pytest.LogCaptureFixture
) -> None:
    lambda_environment(plan_environment(aws))
    plan_run.handler({"run_id": RUN_ID, "request": {"locations": plan_tests.LOCATIONS}}, None)

    assert only_decision(logs, plan_run, "planned") == (
        "INFO",
        {
            "run_id": RUN_ID,
            "generation": f"pp-{RUN_ID}",
            "refit": True,
            "refit_reason": "first generation",
            "replaces_generation": None,
            "location_count": 3,
            "added_locations": 0,
        },
    )


def test_plan_run_logs_a_rejected_request_with_its_reason(
    aws: MotoAccount, lambda_environment: SetEnvironment, logs: pytest.LogCaptureFixture
) -> None:
    lambda_environment(plan_environment(aws))
    with pytest.raises(plan_run.InvalidRunRequest) as raised:
        plan_run.handler({"run_id": RUN_ID, "request": {"locations": []}}, None)

    assert only_decision(logs, plan_run, "rejected") == (
        "WARNING",
        {"error": "InvalidRunRequest", "reason": str(raised.value)},
    )
    assert not [d for d in decisions(logs, plan_run) if d[1] == "planned"]


# --- generate_data --------------------------------------------------------------------------------


def test_generate_data_logs_the_rows_it_wrote(
    aws: MotoAccount, lambda_environment: SetEnvironment, logs: pytest.LogCaptureFixture
) -> None:
    lambda_environment(data_environment(aws))
    generate_data.handler({"run_id": RUN_ID, "location": "Houston_TX"}, None)

    assert only_decision(logs, generate_data, "generated") == (
        "INFO",
        {"run_id": RUN_ID, "location": "Houston_TX", "rows": {"train": 140, "validation": 40, "test": 20}},
    )


def test_generate_data_logs_a_bad_environment_with_its_reason(
    aws: MotoAccount, lambda_environment: SetEnvironment, logs: pytest.LogCaptureFixture
) -> None:
    lambda_environment(data_environment(aws, HOUSES_PER_LOCATION="many"))
    with pytest.raises(generate_data.InvalidEnvironment) as raised:
        generate_data.handler({"run_id": RUN_ID, "location": "Houston_TX"}, None)

    level, extra = only_decision(logs, generate_data, "rejected")
    assert (level, extra) == ("WARNING", {"error": "InvalidEnvironment", "reason": str(raised.value)})
    assert "HOUSES_PER_LOCATION" in extra["reason"]


# --- check_transform ------------------------------------------------------------------------------


def test_check_transform_logs_a_passed_location_with_its_row_counts(
    aws: MotoAccount, lambda_environment: SetEnvironment, logs: pytest.LogCaptureFixture
) -> None:
    check_tests.put_outputs(aws)
    lambda_environment(handler_environment(aws))
    check_transform.handler(check_tests.EVENT, None)

    assert only_decision(logs, check_transform, "passed") == (
        "INFO",
        {"run_id": RUN_ID, "location": check_tests.LOCATION, "rows": {"train": 140, "validation": 40}},
    )


def test_check_transform_logs_the_locations_rejection_reason(
    aws: MotoAccount, lambda_environment: SetEnvironment, logs: pytest.LogCaptureFixture
) -> None:
    check_tests.put_outputs(aws, train=check_tests.marker("could not convert string to float: 'n/a'"))
    lambda_environment(handler_environment(aws))
    with pytest.raises(check_transform.LocationRowsRejected) as raised:
        check_transform.handler(check_tests.EVENT, None)

    level, extra = only_decision(logs, check_transform, "rejected")
    assert (level, extra) == (
        "WARNING",
        {
            "run_id": RUN_ID,
            "location": check_tests.LOCATION,
            "error": "LocationRowsRejected",
            "reason": str(raised.value),
        },
    )
    assert "could not convert string to float: 'n/a'" in extra["reason"]


# --- promote_artifact -----------------------------------------------------------------------------


def test_promote_artifact_logs_what_it_promoted(
    aws: MotoAccount,
    training_job: TrainingJobFactory,
    lambda_environment: SetEnvironment,
    logs: pytest.LogCaptureFixture,
) -> None:
    training_job(
        promote_tests.JOB, location=promote_tests.LOCATION, final_metric_data_list=promote_tests.METRICS
    )
    lambda_environment(aws.environment())
    result = promote_artifact.handler(
        {"training_job_name": promote_tests.JOB, "location": promote_tests.LOCATION}, None
    )

    assert only_decision(logs, promote_artifact, "promoted") == (
        "INFO",
        {
            "artifact": "model",
            "location": promote_tests.LOCATION,
            "generation": GENERATION,
            "version": promote_tests.JOB,
            "target_model": result["target_model"],
            "copied": True,
        },
    )
    assert result["target_model"]


def test_promote_artifact_logs_a_refusal_with_its_one_sentence(
    aws: MotoAccount, lambda_environment: SetEnvironment, logs: pytest.LogCaptureFixture
) -> None:
    lambda_environment(aws.environment())
    with pytest.raises(promote_artifact.TrainingJobNotFound) as raised:
        promote_artifact.handler(
            {"training_job_name": promote_tests.JOB, "location": promote_tests.LOCATION}, None
        )

    assert only_decision(logs, promote_artifact, "rejected") == (
        "WARNING",
        {
            "location": promote_tests.LOCATION,
            "generation": None,
            "training_job_name": promote_tests.JOB,
            "error": "TrainingJobNotFound",
            "reason": str(raised.value),
        },
    )
    assert not [d for d in decisions(logs, promote_artifact) if d[1] == "promoted"]


# --- summarize_run --------------------------------------------------------------------------------


def test_summarize_run_logs_the_counts_and_whether_the_generation_completed(
    aws: MotoAccount, lambda_environment: SetEnvironment, logs: pytest.LogCaptureFixture
) -> None:
    lambda_environment(aws.environment())
    summarize_run.handler(summary_tests.event(summary_tests.realistic_export(aws)), None)

    assert only_decision(logs, summarize_run, "summarized") == (
        "INFO",
        {
            "run_id": RUN_ID,
            "generation": summary_tests.GENERATION,
            "refit": False,
            "succeeded_count": 3,
            "failed_count": 3,
            "generation_complete": False,
        },
    )


def test_summarize_run_logs_a_rejected_map_result_with_its_reason(
    aws: MotoAccount, lambda_environment: SetEnvironment, logs: pytest.LogCaptureFixture
) -> None:
    lambda_environment(aws.environment())
    with pytest.raises(summarize_run.MapResultsUnreadable) as raised:
        summarize_run.handler(
            summary_tests.event(summary_tests.write_export(aws, {}, manifest={"MapRunArn": "x"})), None
        )

    assert only_decision(logs, summarize_run, "rejected") == (
        "WARNING",
        {"error": "MapResultsUnreadable", "reason": str(raised.value)},
    )


# --- serving_generation ---------------------------------------------------------------------------


def test_serving_generation_logs_the_generation_it_resolved(
    aws: MotoAccount, logs: pytest.LogCaptureFixture
) -> None:
    serving_tests.seed(aws, serving_tests.GEN_A, locations=["Chicago_IL"])
    event = serving_tests.resolve_request("Create", serving_tests.GEN_A)
    summary = serving_tests.decide(event, aws.s3).summary
    serving_tests.run(event, aws.s3)

    assert only_decision(logs, serving_generation, "resolved") == (
        "INFO",
        {
            "request_type": "Create",
            "action": "resolve",
            "generation": serving_tests.GEN_A,
            "status": "SUCCESS",
            "reason": summary,
        },
    )


def test_serving_generation_logs_a_refusal_and_why(aws: MotoAccount, logs: pytest.LogCaptureFixture) -> None:
    reason = serving_tests.refusal(serving_tests.resolve_request("Create", "newest"), aws.s3)

    level, extra = only_decision(logs, serving_generation, "refused")
    assert (level, extra) == (
        "WARNING",
        {
            "request_type": "Create",
            "action": "resolve",
            "generation": None,
            "status": "FAILED",
            "reason": reason,
        },
    )
    assert "No complete preprocessor generation exists yet" in extra["reason"]
    assert serving_tests.RESPONSE_URL not in json.dumps(extra)  # the pre-signed URL is never logged
