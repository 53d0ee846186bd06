"""The pointer document the promotion Lambda writes and the CLI reads: round trip and strict parsing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mme_shared.model_pointer import ArtifactChecksum, ModelPointer, ModelPointerError, validation_metrics

POINTER = ModelPointer(
    preprocessor_generation="pp-run-1",
    location="SanDiego_CA",
    version="ll-SanDiego-CA-run-7",
    size=2048,
    training_job_name="ll-SanDiego-CA-run-7",
    promoted_at=datetime(2025, 5, 1, 14, 0, 0, 987654, tzinfo=timezone(timedelta(hours=2))),
    checksum=ArtifactChecksum("CRC64NVME", "AAECAwQFBgc="),
    validation_metrics={"validation:absolute_loss": 1234, "validation:mse": 5.5e6},
)


def document(**changes: Any) -> dict[str, Any]:
    written: dict[str, Any] = json.loads(POINTER.to_json())
    written.update(changes)
    return written


def test_the_document_has_the_documented_fields() -> None:
    assert json.loads(POINTER.to_json()) == {
        "format_version": 2,
        "preprocessor_generation": "pp-run-1",
        "location": "SanDiego_CA",
        "version": "ll-SanDiego-CA-run-7",
        "target_model": "SanDiego_CA/SanDiego_CA-ll-SanDiego-CA-run-7.tar.gz",
        "key": "models/pp-run-1/SanDiego_CA/SanDiego_CA-ll-SanDiego-CA-run-7.tar.gz",
        "size": 2048,
        "checksum": {"algorithm": "CRC64NVME", "value": "AAECAwQFBgc="},
        "training_job_name": "ll-SanDiego-CA-run-7",
        "validation_metrics": {"validation:absolute_loss": 1234.0, "validation:mse": 5.5e6},
        "promoted_at": "2025-05-01T12:00:00Z",
    }
    assert POINTER.pointer_key == "model-pointers/pp-run-1/SanDiego_CA.json"


def test_a_pointer_survives_a_round_trip() -> None:
    parsed = ModelPointer.from_json(POINTER.to_json().encode("utf-8"))
    assert parsed == POINTER
    assert parsed.promoted_at == datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parsed.to_json() == POINTER.to_json()
    assert ModelPointer.from_json(json.dumps(document(checksum=None))).checksum is None
    added = ModelPointer.from_json(json.dumps(document(training_job_name=None)))
    assert added.training_job_name is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "model pointer is not valid JSON"),
        ("[]", "a model pointer must be a JSON object, got list"),
        (json.dumps({k: v for k, v in document().items() if k != "size"}), "missing field(s): size"),
        (json.dumps(document(owner="me")), "unknown field(s): owner"),
        (json.dumps(document(format_version=1)), "format_version 1 is not supported"),
        (json.dumps(document(format_version=True)), "format_version True is not supported"),
        (json.dumps(document(location="San Diego")), "location name 'San Diego' is not allowed"),
        (json.dumps(document(version="v_1")), "model version 'v_1' is not allowed"),
        (
            json.dumps(document(preprocessor_generation="current")),
            "preprocessor generation 'current' is not allowed",
        ),
        (
            json.dumps(document(key="models/pp-run-2/SanDiego_CA/SanDiego_CA-ll-SanDiego-CA-run-7.tar.gz")),
            "does not match its location and version",
        ),
        (
            json.dumps(document(key="models/SanDiego_CA/other.tar.gz")),
            "key 'models/SanDiego_CA/other.tar.gz'",
        ),
        (json.dumps(document(target_model="NewYork_NY/x.tar.gz")), "does not match its location and version"),
        (json.dumps(document(size=-1)), "size must be a non-negative integer"),
        (json.dumps(document(size="2048")), "size must be a non-negative integer"),
        (json.dumps(document(promoted_at="2025-05-01T12:00:00")), "has no time zone"),
        (json.dumps(document(promoted_at="yesterday")), "is not an ISO 8601 timestamp"),
        (json.dumps(document(checksum={"algorithm": "MD4", "value": "x"})), "checksum algorithm 'MD4'"),
        (json.dumps(document(checksum="abc")), "checksum must be null or"),
        ('{"validation_metrics": {"validation:mse": NaN}}', "missing field(s)"),
        (
            json.dumps(document()).replace('"validation:mse": 5500000.0', '"validation:mse": NaN'),
            "'validation:mse' must be a finite number",
        ),
        (json.dumps(document(training_job_name="")), "training_job_name must be a non-empty string or null"),
    ],
)
def test_a_wrong_document_is_rejected_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ModelPointerError) as raised:
        ModelPointer.from_json(text)
    assert message in str(raised.value)


def test_a_pointer_cannot_be_built_with_a_naive_timestamp() -> None:
    with pytest.raises(ModelPointerError, match="timezone-aware"):
        ModelPointer(
            preprocessor_generation="pp-run-1",
            location="SanDiego_CA",
            version="v1",
            size=1,
            training_job_name="v1",
            promoted_at=datetime(2025, 5, 1),  # naive on purpose
        )


def _final(*metrics: tuple[str, float]) -> list[dict[str, Any]]:
    """A DescribeTrainingJob FinalMetricDataList."""
    at = datetime(2025, 5, 1, tzinfo=UTC)
    return [{"MetricName": name, "Value": value, "Timestamp": at} for name, value in metrics]


@pytest.mark.parametrize(
    ("final_metrics", "expected"),
    [
        pytest.param(
            _final(("train:progress", 100.0), ("validation:absolute_loss", 15.5), ("validation:mse", 300.0)),
            {"validation:absolute_loss": 15.5, "validation:mse": 300.0},
            id="linear-learner",
        ),
        pytest.param(
            _final(("train:rmse", 1.5), ("validation:rmse", 2.5)), {"validation:rmse": 2.5}, id="xgboost"
        ),
        # k-NN has no validation channel: its held-out channel "test" is fed by the validation split.
        pytest.param(_final(("test:mse", 42.0)), {"test:mse": 42.0}, id="knn"),
        pytest.param(_final(("train:progress", 100.0)), {}, id="randomcutforest"),
        pytest.param(
            _final(("test:mse", float("nan")), ("validation:rmse", float("inf")), ("validation:x", 1)),
            {"validation:x": 1.0},
            id="non-finite-dropped",
        ),
        pytest.param(
            _final(
                ("testing:mse", 1.0), ("validation", 2.0), ("Validation:rmse", 3.0), ("train:test:x", 4.0)
            ),
            {},
            id="only-the-two-prefixes",
        ),
        pytest.param(None, {}, id="no-list"),
        pytest.param(
            [{"MetricName": 7, "Value": 1.0}, {"MetricName": "test:mse", "Value": "1"}], {}, id="odd"
        ),
    ],
)
def test_the_held_out_metrics_are_the_validation_and_test_ones(
    final_metrics: object, expected: object
) -> None:
    metrics = validation_metrics(final_metrics)
    assert metrics == expected
    assert list(metrics) == sorted(metrics)


def test_a_pointer_holds_k_nn_test_metrics() -> None:
    knn = ModelPointer.from_json(json.dumps(document(validation_metrics={"test:mse": 42.0})))
    assert knn.validation_metrics == {"test:mse": 42.0}
    assert ModelPointer.from_json(knn.to_json()) == knn
