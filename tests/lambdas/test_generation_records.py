"""The generation documents (complete.json, newest.json, serving.json): round trip, strict parsing, S3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mme_shared import generation, s3_layout
from tests.lambdas.conftest import BUCKET, MotoAccount

COMPLETE = generation.CompleteGeneration(
    generation="pp-refit-1",
    run_id="refit-1",
    location_count=4,
    completed_at=datetime(2026, 12, 1, 13, 0, 0, 250, tzinfo=timezone(timedelta(hours=1))),
)
SERVING = generation.GenerationRef(
    generation="pp-refit-1", updated_at=datetime(2026, 12, 1, 12, 5, tzinfo=UTC), endpoint_name="Endpoint-a1"
)


def test_the_documents_have_the_documented_fields() -> None:
    assert json.loads(COMPLETE.to_json()) == {
        "format_version": 1,
        "generation": "pp-refit-1",
        "run_id": "refit-1",
        "location_count": 4,
        "completed_at": "2026-12-01T12:00:00Z",
        "algorithm": "linear-learner",
    }
    assert COMPLETE.key == "preprocessor/pp-refit-1/complete.json"
    assert json.loads(SERVING.to_json()) == {
        "format_version": 1,
        "generation": "pp-refit-1",
        "endpoint_name": "Endpoint-a1",
        "updated_at": "2026-12-01T12:05:00Z",
    }


def test_the_documents_survive_a_round_trip() -> None:
    assert generation.CompleteGeneration.from_json(COMPLETE.to_json()) == COMPLETE
    assert generation.GenerationRef.from_json(SERVING.to_json()) == SERVING
    newest = generation.GenerationRef(generation="pp-7", updated_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert generation.GenerationRef.from_json(newest.to_json()).endpoint_name is None


def _ref(**changes: Any) -> bytes:
    document = {**json.loads(SERVING.to_json()), **changes}
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "is not valid JSON"),
        (b"[]", "must be a JSON object, got list"),
        (_ref(endpoint_name=...), "missing endpoint_name"),
        (_ref(owner="me"), "unknown owner"),
        (_ref(format_version=2), "format_version 2 is not supported"),
        (_ref(format_version=True), "format_version True is not supported"),
        (_ref(generation="current"), "preprocessor generation 'current' is not allowed"),
        (_ref(generation="pp-a/b"), "preprocessor generation 'pp-a/b' is not allowed"),
        (_ref(endpoint_name=""), "endpoint_name must be a non-empty string or null"),
        (_ref(updated_at="2026-12-01T12:00:00"), "has no time zone"),
        (_ref(updated_at="soon"), "is not an ISO 8601 timestamp"),
    ],
)
def test_a_wrong_reference_is_rejected_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(generation.GenerationRecordError) as raised:
        generation.GenerationRef.from_json(body)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"location_count": 0}, "location_count must be a positive integer"),
        ({"location_count": True}, "location_count must be a positive integer"),
        ({"run_id": "run_1"}, "run id 'run_1' is not allowed"),
        ({"completed_at": "2026-12-01"}, "has no time zone"),
        (
            {"algorithm": "XGBoost"},
            "a generation's complete.json algorithm 'XGBoost' is not an algorithm name",
        ),
        ({"algorithm": None}, "a generation's complete.json algorithm None is not an algorithm name"),
        ({"algorithm": ""}, "algorithm '' is not an algorithm name"),
    ],
)
def test_a_wrong_complete_record_is_rejected_with_a_reason(changes: dict[str, Any], message: str) -> None:
    body = json.dumps({**json.loads(COMPLETE.to_json()), **changes}).encode()
    with pytest.raises(generation.GenerationRecordError, match=message):
        generation.CompleteGeneration.from_json(body)


def test_a_complete_record_without_an_algorithm_holds_linear_learner_models() -> None:
    """Records written before there was a choice of algorithm have no ``algorithm`` field."""
    document = json.loads(COMPLETE.to_json())
    del document["algorithm"]
    assert generation.CompleteGeneration.from_json(json.dumps(document).encode()) == COMPLETE
    knn = generation.CompleteGeneration(
        generation="pp-refit-1", run_id="refit-1", location_count=4, completed_at=COMPLETE.completed_at,
        algorithm="knn",
    )  # fmt: skip
    assert json.loads(knn.to_json())["algorithm"] == "knn"
    assert generation.CompleteGeneration.from_json(knn.to_json()) == knn


def test_records_are_written_encrypted_and_read_back(aws: MotoAccount) -> None:
    assert generation.read_ref(aws.s3, BUCKET, s3_layout.SERVING_GENERATION_KEY) is None
    assert generation.read_complete(aws.s3, BUCKET, "pp-refit-1") is None

    generation.write_complete(aws.s3, BUCKET, COMPLETE, kms_key_arn=aws.kms_key_arn)
    generation.write_ref(
        aws.s3, BUCKET, s3_layout.SERVING_GENERATION_KEY, SERVING, kms_key_arn=aws.kms_key_arn
    )

    assert generation.read_complete(aws.s3, BUCKET, "pp-refit-1") == COMPLETE
    assert generation.read_ref(aws.s3, BUCKET, s3_layout.SERVING_GENERATION_KEY) == SERVING
    for key in (COMPLETE.key, s3_layout.SERVING_GENERATION_KEY):
        head = aws.inspect_s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", aws.kms_key_arn)
        assert head["ContentType"] == "application/json"


def test_a_complete_record_in_the_wrong_folder_is_refused(aws: MotoAccount) -> None:
    aws.put("preprocessor/pp-other/complete.json", COMPLETE.to_json())
    with pytest.raises(
        generation.GenerationRecordError, match="names generation 'pp-refit-1', not 'pp-other'"
    ):
        generation.read_complete(aws.s3, BUCKET, "pp-other")


def test_only_the_two_reference_keys_are_references(aws: MotoAccount) -> None:
    with pytest.raises(ValueError, match="is not a generation reference key"):
        generation.read_ref(aws.s3, BUCKET, "preprocessor/pp-refit-1/complete.json")
    with pytest.raises(ValueError, match="is not a generation reference key"):
        generation.write_ref(aws.s3, BUCKET, "model-pointers/x.json", SERVING, kms_key_arn=aws.kms_key_arn)


SWITCHING = generation.GenerationRef(
    generation="pp-refit-1",
    updated_at=datetime(2026, 12, 1, 12, 5, tzinfo=UTC),
    endpoint_name="Endpoint-a1",
    next_generation="pp-refit-2",
)


def test_next_generation_is_written_only_while_set_and_survives_a_round_trip() -> None:
    assert json.loads(SWITCHING.to_json()) == {
        **json.loads(SERVING.to_json()),
        "next_generation": "pp-refit-2",
    }
    assert "next_generation" not in json.loads(SERVING.to_json())
    assert generation.GenerationRef.from_json(SWITCHING.to_json()) == SWITCHING
    assert generation.GenerationRef.from_json(SERVING.to_json()).next_generation is None


def test_a_null_next_generation_reads_as_absent() -> None:
    assert generation.GenerationRef.from_json(_ref(next_generation=None)) == SERVING


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (_ref(next_generation="pp-refit-1"), "next_generation must differ from generation 'pp-refit-1'"),
        (_ref(next_generation="pp-a/b"), "preprocessor generation 'pp-a/b' is not allowed"),
        (_ref(next_generation=7), "is not allowed"),
        (_ref(next=None), "unknown next"),
    ],
)
def test_a_wrong_next_generation_is_rejected_with_a_reason(body: bytes, message: str) -> None:
    with pytest.raises(generation.GenerationRecordError, match=message):
        generation.GenerationRef.from_json(body)


def test_a_ref_cannot_be_built_switching_to_itself() -> None:
    with pytest.raises(generation.GenerationRecordError, match="next_generation must differ"):
        generation.GenerationRef(
            generation="pp-7", updated_at=datetime(2026, 1, 1, tzinfo=UTC), next_generation="pp-7"
        )
