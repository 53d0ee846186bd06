"""The promotion Lambda against moto: happy path, retries, every rejected input, server-side copy only."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest

from mme_shared import s3_layout
from mme_shared.model_pointer import ArtifactChecksum, ModelPointer, full_object_checksums
from tests.lambdas.conftest import (
    BUCKET,
    GENERATION,
    REGION,
    RUN_ID,
    MotoAccount,
    TrainingJobFactory,
    handler_environment,
    promote_artifact,
    set_job_fields,
)

LOCATION = "Chicago_IL"
JOB = "ll-Chicago-IL-run-20250501-a1b2c3"
PROMOTED_AT = datetime(2025, 5, 1, 12, 30, tzinfo=UTC)
VERSION_KEY = f"models/{GENERATION}/{LOCATION}/{LOCATION}-{JOB}.tar.gz"
POINTER_KEY = f"model-pointers/{GENERATION}/{LOCATION}.json"
METRICS = [
    {"MetricName": "validation:absolute_loss", "Value": 15234.5, "Timestamp": PROMOTED_AT},
    {"MetricName": "validation:mse", "Value": 4.1e8, "Timestamp": PROMOTED_AT},
    {"MetricName": "validation:objective_loss", "Value": float("nan"), "Timestamp": PROMOTED_AT},
    {"MetricName": "train:progress", "Value": 100.0, "Timestamp": PROMOTED_AT},
]
EXPECTED_METRICS = {"validation:absolute_loss": 15234.5, "validation:mse": 4.1e8}
WRITE_OPERATIONS = {
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "DeleteObject",
    "DeleteObjects",
    "PutObjectTagging",
}


def promote(aws: MotoAccount, event: object, **options: Any) -> dict[str, Any]:
    """Run the pure function the handler runs, with the recorded moto clients and a fixed clock."""
    request = promote_artifact.parse_promotion_event(event)
    result = promote_artifact.promote_artifact(
        request,
        sagemaker=aws.sagemaker,
        s3=aws.s3,
        settings=promote_artifact.load_settings(aws.environment()),
        now=lambda: PROMOTED_AT,
        **options,
    )
    as_dict: dict[str, Any] = result.to_dict()
    return as_dict


def writes(aws: MotoAccount) -> list[tuple[str, str | None]]:
    return [(call.operation, call.key) for call in aws.recorder.calls if call.operation in WRITE_OPERATIONS]


@pytest.fixture
def chicago_job(training_job: TrainingJobFactory) -> str:
    return training_job(JOB, location=LOCATION, final_metric_data_list=METRICS)


# --------------------------------------------------------------------------------------------------
# Happy path, retries, server-side copy


def test_promotion_copies_to_a_new_versioned_key_and_then_moves_the_pointer(
    aws: MotoAccount, chicago_job: str
) -> None:
    result = promote(aws, {"training_job_name": JOB, "location": LOCATION})

    assert result == {
        "artifact": "model",
        "generation": GENERATION,
        "location": LOCATION,
        "version": JOB,
        "training_job_name": JOB,
        "target_model": f"{LOCATION}/{LOCATION}-{JOB}.tar.gz",
        "key": VERSION_KEY,
        "pointer_key": POINTER_KEY,
        "size": len(aws.read(chicago_job)),
        "copied": True,
        "verification": "size+CRC32",
        "validation_metrics": EXPECTED_METRICS,
    }
    assert json.loads(json.dumps(result)) == result
    assert aws.read(VERSION_KEY) == aws.read(chicago_job)
    written = aws.inspect_s3.head_object(Bucket=BUCKET, Key=VERSION_KEY)
    assert written["ServerSideEncryption"] == "aws:kms"
    assert written["SSEKMSKeyId"] == aws.kms_key_arn
    assert written["Metadata"]["mme-training-job"] == JOB
    assert written["Metadata"]["mme-source-key"] == chicago_job

    pointer = ModelPointer.from_json(aws.read(POINTER_KEY))
    source_crc = aws.inspect_s3.head_object(Bucket=BUCKET, Key=chicago_job, ChecksumMode="ENABLED")
    assert pointer == ModelPointer(
        preprocessor_generation=GENERATION,
        location=LOCATION,
        version=JOB,
        size=result["size"],
        training_job_name=JOB,
        promoted_at=PROMOTED_AT,
        checksum=ArtifactChecksum("CRC32", source_crc["ChecksumCRC32"]),
        validation_metrics=EXPECTED_METRICS,
    )
    assert pointer.key == VERSION_KEY == s3_layout.model_version_key(GENERATION, LOCATION, JOB)
    pointer_head = aws.inspect_s3.head_object(Bucket=BUCKET, Key=POINTER_KEY)
    assert (pointer_head["ServerSideEncryption"], pointer_head["SSEKMSKeyId"]) == ("aws:kms", aws.kms_key_arn)
    assert pointer_head["ContentType"] == "application/json"


def test_the_artifact_body_is_only_ever_touched_by_copy_object(aws: MotoAccount, chicago_job: str) -> None:
    promote(aws, {"training_job_name": JOB, "location": LOCATION})

    artifact_keys = {chicago_job, VERSION_KEY}
    on_artifact = [
        (c.operation, c.key) for c in aws.recorder.calls if c.key in artifact_keys or c.copy_source_key
    ]
    assert {operation for operation, _ in on_artifact} == {"HeadObject", "CopyObject"}
    copies = [c for c in aws.recorder.calls if c.operation == "CopyObject"]
    assert [(c.copy_source_key, c.key) for c in copies] == [(chicago_job, VERSION_KEY)]
    assert copies[0].params["ServerSideEncryption"] == "aws:kms"
    assert copies[0].params["SSEKMSKeyId"] == aws.kms_key_arn
    assert (
        copies[0].params["CopySourceIfMatch"]
        == aws.inspect_s3.head_object(Bucket=BUCKET, Key=chicago_job)["ETag"]
    )
    # The only PutObject is the pointer: no artifact byte went through the function.
    assert writes(aws) == [("CopyObject", VERSION_KEY), ("PutObject", POINTER_KEY)]
    assert all(c.operation != "GetObject" or c.key == POINTER_KEY for c in aws.recorder.calls)
    # The copy was verified before the pointer moved.
    operations = [(c.operation, c.key) for c in aws.recorder.calls]
    assert operations.index(("HeadObject", VERSION_KEY), operations.index(("CopyObject", VERSION_KEY))) < (
        operations.index(("PutObject", POINTER_KEY))
    )


def test_a_retry_copies_nothing_writes_nothing_and_returns_the_same_result(
    aws: MotoAccount, chicago_job: str
) -> None:
    first = promote(aws, {"training_job_name": JOB, "location": LOCATION})
    state = aws.bucket_state()
    aws.recorder.clear()

    second = promote(aws, {"training_job_name": JOB, "location": LOCATION})

    assert second == {**first, "copied": False}
    assert writes(aws) == []
    assert aws.bucket_state() == state


def test_a_retry_after_the_copy_but_before_the_pointer_finishes_the_promotion(
    aws: MotoAccount, chicago_job: str
) -> None:
    promote(aws, {"training_job_name": JOB, "location": LOCATION})
    aws.inspect_s3.delete_object(Bucket=BUCKET, Key=POINTER_KEY)  # as if the first attempt died here
    aws.recorder.clear()

    result = promote(aws, {"training_job_name": JOB, "location": LOCATION})

    assert result["copied"] is False
    assert writes(aws) == [("PutObject", POINTER_KEY)]
    assert ModelPointer.from_json(aws.read(POINTER_KEY)).version == JOB


def test_identical_bytes_already_at_the_destination_count_as_done(aws: MotoAccount, chicago_job: str) -> None:
    aws.put(VERSION_KEY, aws.read(chicago_job))  # same bytes, but not written by a promotion
    aws.recorder.clear()

    result = promote(aws, {"training_job_name": JOB, "location": LOCATION})

    assert (result["copied"], result["verification"]) == (False, "size+CRC32")
    assert writes(aws) == [("PutObject", POINTER_KEY)]


def test_a_newer_version_gets_its_own_key_and_the_old_one_is_untouched(
    aws: MotoAccount, chicago_job: str, training_job: TrainingJobFactory
) -> None:
    promote(aws, {"training_job_name": JOB, "location": LOCATION})
    newer_job = "ll-Chicago-IL-run-20250502-d4e5f6"
    training_job(newer_job, location=LOCATION, artifact=b"a retrained model")
    old_bytes = aws.read(VERSION_KEY)

    result = promote(aws, {"training_job_name": newer_job, "location": LOCATION})

    assert result["key"] == f"models/{GENERATION}/{LOCATION}/{LOCATION}-{newer_job}.tar.gz" != VERSION_KEY
    assert aws.read(result["key"]) == b"a retrained model"
    assert aws.read(VERSION_KEY) == old_bytes
    assert ModelPointer.from_json(aws.read(POINTER_KEY)).version == newer_job
    assert result["validation_metrics"] == {}  # moto's job reports only train:progress


@pytest.mark.parametrize(
    ("job", "final_metrics", "expected"),
    [
        pytest.param(
            "xg-Chicago-IL-run-20250501-a1b2c3",
            [("train:rmse", 1.5), ("validation:rmse", 2.5)],
            {"validation:rmse": 2.5},
            id="xgboost",
        ),
        # k-NN's held-out channel is "test" (fed by the validation split): its metric is test:mse.
        pytest.param(
            "kn-Chicago-IL-run-20250501-a1b2c3", [("test:mse", 4.1e8)], {"test:mse": 4.1e8}, id="knn"
        ),
        pytest.param(
            "rc-Chicago-IL-run-20250501-a1b2c3", [("train:progress", 100.0)], {}, id="randomcutforest"
        ),
    ],
)
def test_each_algorithms_held_out_metrics_reach_the_pointer(
    aws: MotoAccount,
    training_job: TrainingJobFactory,
    job: str,
    final_metrics: list[tuple[str, float]],
    expected: dict[str, float],
) -> None:
    metrics = [
        {"MetricName": name, "Value": value, "Timestamp": PROMOTED_AT} for name, value in final_metrics
    ]
    training_job(job, location=LOCATION, final_metric_data_list=metrics)

    result = promote(aws, {"training_job_name": job, "location": LOCATION})

    assert result["validation_metrics"] == expected
    pointer = ModelPointer.from_json(aws.read(POINTER_KEY))
    assert (pointer.version, pointer.validation_metrics) == (job, expected)


def test_above_the_threshold_the_copy_is_a_managed_multipart_upload_part_copy(
    aws: MotoAccount, training_job: TrainingJobFactory
) -> None:
    artifact = bytes(range(256)) * (6 * 1024 * 4)  # 6 MiB: two parts of at least 5 MiB (S3's minimum)
    source_key = training_job(JOB, location=LOCATION, artifact=artifact)
    threshold = 5 * 1024 * 1024

    result = promote(
        aws,
        {"training_job_name": JOB, "location": LOCATION},
        multipart_threshold=threshold,
        multipart_chunksize=threshold,
    )

    assert aws.read(VERSION_KEY) == artifact
    assert result["size"] == len(artifact)
    # The source carries CRC32, the multipart copy CRC64NVME: no common algorithm, so the copy is
    # verified by size and the source ETag it was pinned to.
    assert result["verification"] == "size+source-etag"
    calls = aws.recorder.calls
    assert {c.operation for c in calls if c.key == VERSION_KEY} == {
        "HeadObject",
        "CreateMultipartUpload",
        "UploadPartCopy",
        "CompleteMultipartUpload",
    }
    part_copies = [c for c in calls if c.operation == "UploadPartCopy"]
    assert len(part_copies) == 2
    assert {c.copy_source_key for c in part_copies} == {source_key}
    assert all(c.params["CopySourceIfMatch"] for c in part_copies)
    create = next(c for c in calls if c.operation == "CreateMultipartUpload")
    assert (create.params["ServerSideEncryption"], create.params["SSEKMSKeyId"]) == (
        "aws:kms",
        aws.kms_key_arn,
    )
    assert create.params["ChecksumAlgorithm"] == "CRC64NVME"
    assert "CopyObject" not in aws.recorder.operations()
    assert writes(aws)[-1] == ("PutObject", POINTER_KEY)
    assert not any(c.operation in {"GetObject", "UploadPart"} and c.key != POINTER_KEY for c in calls)

    aws.recorder.clear()
    retry = promote(
        aws,
        {"training_job_name": JOB, "location": LOCATION},
        multipart_threshold=threshold,
        multipart_chunksize=threshold,
    )
    assert retry == {**result, "copied": False}
    assert writes(aws) == []


# --------------------------------------------------------------------------------------------------
# The shared preprocessor


def test_a_preprocessor_starts_the_generation_named_after_its_job_without_a_pointer(
    aws: MotoAccount, training_job: TrainingJobFactory
) -> None:
    first_job, second_job = "pp-run-1", "pp-run-2"
    training_job(first_job, location=None, artifact=b"preprocessor v1")
    training_job(second_job, location=None, artifact=b"preprocessor v2")

    first = promote(aws, {"training_job_name": first_job, "artifact": "preprocessor"})
    retry = promote(aws, {"training_job_name": first_job, "artifact": "preprocessor"})
    second = promote(aws, {"training_job_name": second_job, "artifact": "preprocessor"})

    assert first == {
        "artifact": "preprocessor",
        "generation": first_job,
        "location": None,
        "version": first_job,
        "training_job_name": first_job,
        "target_model": None,
        "key": "preprocessor/pp-run-1/model.tar.gz",
        "pointer_key": None,
        "size": len(b"preprocessor v1"),
        "copied": True,
        "verification": "size+CRC32",
        "validation_metrics": {},
    }
    assert retry == {**first, "copied": False}
    assert (second["copied"], second["key"]) == (True, "preprocessor/pp-run-2/model.tar.gz")
    # Each generation keeps its own bytes: a new fit never touches what an endpoint may serve.
    assert aws.read("preprocessor/pp-run-1/model.tar.gz") == b"preprocessor v1"
    assert aws.read("preprocessor/pp-run-2/model.tar.gz") == b"preprocessor v2"
    assert not [key for key in aws.object_keys() if key.startswith(s3_layout.MODEL_POINTERS_PREFIX)]
    assert writes(aws) == [
        ("CopyObject", "preprocessor/pp-run-1/model.tar.gz"),
        ("CopyObject", "preprocessor/pp-run-2/model.tar.gz"),
    ]


def test_a_generations_preprocessor_is_never_overwritten(
    aws: MotoAccount, training_job: TrainingJobFactory
) -> None:
    training_job("pp-run-1", location=None, artifact=b"preprocessor v1")
    aws.put("preprocessor/pp-run-1/model.tar.gz", b"what the endpoint serves")

    assert_rejected(
        aws,
        {"training_job_name": "pp-run-1", "artifact": "preprocessor"},
        "ArtifactConflict",
        "a promoted artifact is never overwritten",
    )
    assert aws.read("preprocessor/pp-run-1/model.tar.gz") == b"what the endpoint serves"


def test_a_model_joins_the_generation_its_job_is_tagged_with(
    aws: MotoAccount, training_job: TrainingJobFactory
) -> None:
    training_job(JOB, location=LOCATION, generation="pp-other-run")

    result = promote(aws, {"training_job_name": JOB, "location": LOCATION})

    assert result["generation"] == "pp-other-run"
    assert result["key"] == f"models/pp-other-run/{LOCATION}/{LOCATION}-{JOB}.tar.gz"
    assert (
        ModelPointer.from_json(aws.read(f"model-pointers/pp-other-run/{LOCATION}.json")).key == result["key"]
    )


@pytest.mark.parametrize(
    ("generation_tag", "event_generation", "message"),
    [
        pytest.param(None, None, "has no valid mme:preprocessor-generation tag (got None)", id="untagged"),
        pytest.param(
            "current", None, "has no valid mme:preprocessor-generation tag (got 'current')", id="bad-tag"
        ),
        pytest.param(
            GENERATION,
            "pp-another",
            f"trained on preprocessor generation '{GENERATION}'",
            id="other-generation",
        ),
        pytest.param(
            "pp-never-promoted",
            None,
            "preprocessor/pp-never-promoted/model.tar.gz does not exist",
            id="unknown",
        ),
    ],
)
def test_a_model_of_an_unknown_or_other_generation_is_rejected(
    aws: MotoAccount,
    training_job: TrainingJobFactory,
    generation_tag: str | None,
    event_generation: str | None,
    message: str,
) -> None:
    tags = {} if generation_tag is None else {promote_artifact.GENERATION_TAG_KEY: generation_tag}
    # generation=None: the factory adds no tag and promotes no preprocessor; the test's tag stands.
    training_job(JOB, location=LOCATION, generation=None, extra_tags=tags)
    if generation_tag == GENERATION:
        aws.put(f"preprocessor/{GENERATION}/model.tar.gz", b"the generation's preprocessor")
    event = {"training_job_name": JOB, "location": LOCATION}
    if event_generation is not None:
        event["generation"] = event_generation
    assert_rejected(aws, event, "GenerationMismatch", message)


# --------------------------------------------------------------------------------------------------
# Rejected requests: a clear error, and nothing written


def assert_rejected(
    aws: MotoAccount,
    event: object,
    error: str,
    message: str,
    **options: Any,
) -> None:
    state = aws.bucket_state()
    aws.recorder.clear()
    with pytest.raises(getattr(promote_artifact, error)) as raised:
        promote(aws, event, **options)
    assert type(raised.value).__name__ == error
    assert message in str(raised.value)
    assert writes(aws) == []
    assert aws.bucket_state() == state


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"location": LOCATION}, "The event is missing training_job_name"),
        ({"training_job_name": JOB}, "exactly one of location and artifact, got neither"),
        (
            {"training_job_name": JOB, "location": LOCATION, "artifact": "preprocessor"},
            "exactly one of location and artifact, got both",
        ),
        (
            {"training_job_name": JOB, "location": LOCATION, "run_id": RUN_ID},
            "The event has unexpected field(s) run_id",
        ),
        (
            {"training_job_name": JOB, "location": "../NewYork_NY"},
            "location '../NewYork_NY' is not allowed: use 1 to 32 characters",
        ),
        ({"training_job_name": JOB, "location": 7}, "location must be a string (1 to 32 characters"),
        (
            {"training_job_name": "bad_name!", "location": LOCATION},
            "training_job_name 'bad_name!' is not allowed: use 1 to 63 characters",
        ),
        (
            {"training_job_name": ["x"], "location": LOCATION},
            "training_job_name must be a string (1 to 63 characters from A-Z, a-z, 0-9 and '-', starting and "
            "ending with a letter or digit), got array.",
        ),
        ({"training_job_name": JOB, "artifact": "tokenizer"}, "artifact 'tokenizer' is not supported"),
        (
            {"training_job_name": "pp-run-1", "artifact": "preprocessor", "generation": "pp-run-1"},
            "A preprocessor promotion takes no generation",
        ),
        (
            {"training_job_name": "sklearn-run-1", "artifact": "preprocessor"},
            "'sklearn-run-1' cannot start a generation: preprocessor generation 'sklearn-run-1'",
        ),
        (
            {"training_job_name": JOB, "location": LOCATION, "generation": "latest"},
            "generation 'latest' is not allowed: use 'pp-' followed by a run id",
        ),
        ([JOB, LOCATION], "The event must be a JSON object, got array"),
    ],
)
def test_malformed_events_are_rejected(
    aws: MotoAccount, chicago_job: str, event: object, message: str
) -> None:
    assert_rejected(aws, event, "InvalidPromotionRequest", message)


def test_an_unknown_training_job_is_rejected(aws: MotoAccount) -> None:
    assert_rejected(
        aws,
        {"training_job_name": "ll-Nowhere-run-1", "location": LOCATION},
        "TrainingJobNotFound",
        "Training job 'll-Nowhere-run-1' does not exist in this account and region",
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"training_job_status": "InProgress"}, f"Training job '{JOB}' is InProgress; only a Completed job"),
        (
            {"training_job_status": "Failed", "failure_reason": "AlgorithmError: label column has NaN"},
            f"Training job '{JOB}' is Failed (FailureReason: AlgorithmError: label column has NaN)",
        ),
        ({"training_job_status": "Stopped"}, "is Stopped; only a Completed job's artifact can be promoted"),
    ],
)
def test_a_job_that_is_not_completed_is_rejected(
    aws: MotoAccount, chicago_job: str, fields: dict[str, str], message: str
) -> None:
    set_job_fields(JOB, **fields)
    assert_rejected(aws, {"training_job_name": JOB, "location": LOCATION}, "TrainingJobNotReady", message)


@pytest.mark.parametrize(
    "uri",
    [
        f"s3://another-bucket/training-output/{RUN_ID}/{JOB}/output/model.tar.gz",
        f"s3://{BUCKET}/raw-data/{RUN_ID}/train/{LOCATION}.csv",
        f"s3://{BUCKET}/models/{LOCATION}/{LOCATION}-old.tar.gz",
        f"s3://{BUCKET}/training-output/",
        f"s3://{BUCKET}-other/training-output/{JOB}/output/model.tar.gz",
    ],
)
def test_an_artifact_outside_the_training_output_prefix_is_rejected(
    aws: MotoAccount, chicago_job: str, uri: str
) -> None:
    set_job_fields(JOB, model_artifacts={"S3ModelArtifacts": uri})
    assert_rejected(
        aws,
        {"training_job_name": JOB, "location": LOCATION},
        "ArtifactOutsideTrainingOutput",
        f"wrote its artifact to {uri}, outside s3://{BUCKET}/training-output/",
    )


def test_a_missing_artifact_object_is_rejected(aws: MotoAccount, training_job: TrainingJobFactory) -> None:
    key = training_job(JOB, location=LOCATION, artifact=None)
    assert_rejected(
        aws,
        {"training_job_name": JOB, "location": LOCATION},
        "ArtifactMissing",
        f"reports its artifact at s3://{BUCKET}/{key}, but no object exists there",
    )


def test_a_job_without_a_reported_artifact_is_rejected(aws: MotoAccount, chicago_job: str) -> None:
    set_job_fields(JOB, model_artifacts={})
    assert_rejected(
        aws,
        {"training_job_name": JOB, "location": LOCATION},
        "ArtifactMissing",
        "reports no model artifact (ModelArtifacts.S3ModelArtifacts is empty)",
    )


def test_a_job_trained_for_another_location_is_rejected(
    aws: MotoAccount, training_job: TrainingJobFactory
) -> None:
    training_job(JOB, location="Houston_TX")
    assert_rejected(
        aws,
        {"training_job_name": JOB, "location": LOCATION},
        "LocationMismatch",
        f"Training job '{JOB}' trained location 'Houston_TX' (mme:location tag), not 'Chicago_IL'",
    )


def test_a_job_without_a_location_tag_cannot_be_promoted_as_a_location(
    aws: MotoAccount, training_job: TrainingJobFactory
) -> None:
    training_job(JOB, location=None, extra_tags={"project": "mme"})
    assert_rejected(
        aws,
        {"training_job_name": JOB, "location": LOCATION},
        "LocationMismatch",
        "has no mme:location tag, so it cannot be shown to have trained 'Chicago_IL'",
    )


def test_a_location_model_cannot_be_promoted_as_the_preprocessor(
    aws: MotoAccount, chicago_job: str, training_job: TrainingJobFactory
) -> None:
    # A location's job name can never start a generation ...
    assert_rejected(
        aws,
        {"training_job_name": JOB, "artifact": "preprocessor"},
        "InvalidPromotionRequest",
        f"training_job_name '{JOB}' cannot start a generation",
    )
    # ... and a job named like a preprocessor that trained a location is caught by its tag.
    training_job("pp-run-7", location=LOCATION)
    assert_rejected(
        aws,
        {"training_job_name": "pp-run-7", "artifact": "preprocessor"},
        "LocationMismatch",
        "is tagged mme:location='Chicago_IL', so it trained a location's model",
    )


def test_different_bytes_at_the_versioned_key_are_a_conflict_and_are_not_overwritten(
    aws: MotoAccount, chicago_job: str
) -> None:
    aws.put(VERSION_KEY, b"something else entirely")
    assert_rejected(
        aws,
        {"training_job_name": JOB, "location": LOCATION},
        "ArtifactConflict",
        f"s3://{BUCKET}/{VERSION_KEY} already exists with different content",
    )
    assert aws.read(VERSION_KEY) == b"something else entirely"


def test_a_source_replaced_during_promotion_is_not_copied(aws: MotoAccount, chicago_job: str) -> None:
    """The copy is pinned to the inspected source ETag, so a concurrent overwrite cannot slip in."""

    def overwrite_source_once(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == VERSION_KEY and not replaced:
            replaced.append(True)
            aws.put(chicago_job, b"a different model written meanwhile")

    replaced: list[bool] = []
    aws.s3.meta.events.register("before-parameter-build.s3.HeadObject", overwrite_source_once)
    with pytest.raises(promote_artifact.ArtifactVerificationFailed, match="changed while being promoted"):
        promote(aws, {"training_job_name": JOB, "location": LOCATION})
    assert replaced
    assert [
        key for key in aws.object_keys() if not key.startswith(("training-output/", "preprocessor/"))
    ] == []


def test_a_copy_that_does_not_match_leaves_the_pointer_alone(
    aws: MotoAccount, chicago_job: str, training_job: TrainingJobFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stands in for S3 misbehaving: the 'copy' writes other bytes, so verification must fail."""
    promote(aws, {"training_job_name": JOB, "location": LOCATION})
    newer_job = "ll-Chicago-IL-run-20250502-d4e5f6"
    training_job(newer_job, location=LOCATION, artifact=b"the retrained model")

    def faulty_copy(**kwargs: Any) -> None:
        aws.inspect_s3.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=b"truncated")

    monkeypatch.setattr(aws.s3, "copy", faulty_copy)
    with pytest.raises(promote_artifact.ArtifactVerificationFailed) as raised:
        promote(aws, {"training_job_name": newer_job, "location": LOCATION})

    assert "(9 bytes instead of 19)" in str(raised.value)
    assert "the pointer was not changed" in str(raised.value)
    assert ModelPointer.from_json(aws.read(POINTER_KEY)).version == JOB


# --------------------------------------------------------------------------------------------------
# The comparison that decides "same artifact", and the handler itself


def facts(size: int = 10, etag: str = '"abc"', **kwargs: Any) -> Any:
    return promote_artifact.ObjectFacts(
        key="k",
        size=size,
        etag=etag,
        checksums=kwargs.get("checksums", {}),
        metadata=kwargs.get("metadata", {}),
        content_type=None,
    )


@pytest.mark.parametrize(
    ("source", "copy", "expected"),
    [
        (facts(checksums={"CRC32": "AAA="}), facts(checksums={"CRC32": "AAA="}), "size+CRC32"),
        (facts(checksums={"CRC32": "AAA="}), facts(checksums={"CRC32": "BBB="}), None),
        (facts(checksums={"CRC32": "AAA="}), facts(size=11, checksums={"CRC32": "AAA="}), None),
        (facts(checksums={"CRC32": "AAA="}), facts(checksums={"CRC64NVME": "CCC="}), None),
        (
            facts(checksums={"CRC32": "AAA="}),
            facts(checksums={"CRC64NVME": "CCC="}, metadata={"mme-source-etag": "abc"}),
            "size+source-etag",
        ),
        (facts(), facts(etag='"abc"'), None),  # equal ETags prove nothing across copies
        (
            facts(checksums={"CRC32": "AAA="}),
            facts(checksums={"CRC32": "BBB="}, metadata={"mme-source-etag": "abc"}),
            None,  # a checksum mismatch is not overruled by metadata
        ),
    ],
)
def test_compare_artifacts(source: Any, copy: Any, expected: str | None) -> None:
    assert promote_artifact.compare_artifacts(source, copy) == expected


def test_composite_multipart_checksums_are_not_compared() -> None:
    head = {"ChecksumCRC32": "AAA=-3", "ChecksumType": "COMPOSITE", "ContentLength": 1}
    assert full_object_checksums(head) == {}
    assert full_object_checksums({"ChecksumSHA256": "x/y+z="}) == {"SHA256": "x/y+z="}


def test_the_handler_reads_its_environment_and_returns_json(
    aws: MotoAccount,
    chicago_job: str,
    lambda_environment: Callable[[dict[str, str]], None],
) -> None:
    lambda_environment(handler_environment(aws))
    result = promote_artifact.handler({"training_job_name": JOB, "location": LOCATION}, None)
    assert json.loads(json.dumps(result)) == result
    assert (result["key"], result["copied"]) == (VERSION_KEY, True)
    assert boto3.client("s3", region_name=REGION).head_object(Bucket=BUCKET, Key=POINTER_KEY)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"BUCKET_NAME": ""}, "Environment variable BUCKET_NAME '' is not an S3 bucket name"),
        ({"BUCKET_NAME": "Not_A_Bucket"}, "BUCKET_NAME 'Not_A_Bucket' is not an S3 bucket name"),
        ({"KMS_KEY_ARN": "alias/aws/s3"}, "KMS_KEY_ARN 'alias/aws/s3' is not a KMS key ARN"),
    ],
)
def test_the_handler_rejects_a_broken_environment_before_any_call(
    aws: MotoAccount,
    chicago_job: str,
    lambda_environment: Callable[[dict[str, str]], None],
    overrides: dict[str, str],
    message: str,
) -> None:
    lambda_environment(handler_environment(aws, **overrides))
    state = aws.bucket_state()
    with pytest.raises(promote_artifact.InvalidEnvironment, match=message):
        promote_artifact.handler({"training_job_name": JOB, "location": LOCATION}, None)
    assert aws.bucket_state() == state
