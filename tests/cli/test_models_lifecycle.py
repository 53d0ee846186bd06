"""The shared pointer writer and deleter (mme_shared.pointer_store) as the CLI uses them, against moto."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.stub import Stubber  # type: ignore[import-untyped]

from mme_shared import s3_layout
from mme_shared.model_pointer import ModelPointer
from mme_shared.pointer_store import UNCONDITIONAL, PointerChanged, delete_pointer, write_pointer
from tests.cli.conftest import BUCKET, GENERATION, KEY_ARN, REGION

PROMOTED_AT = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def pointer(location: str, version: str) -> ModelPointer:
    return ModelPointer(
        preprocessor_generation=GENERATION,
        location=location,
        version=version,
        size=11,
        training_job_name=version,
        promoted_at=PROMOTED_AT,
    )


# --------------------------------------------------------------------------------------------------
# mme_shared.pointer_store


@pytest.fixture
def bucket(aws: None) -> None:
    s3().create_bucket(Bucket=BUCKET)


def test_write_pointer_encrypts_with_the_given_key(bucket: None) -> None:
    written = pointer("Chicago_IL", "v1")

    write_pointer(s3(), BUCKET, written, kms_key_arn=KEY_ARN, expected_etag=None)

    head = s3().head_object(Bucket=BUCKET, Key=written.pointer_key)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", KEY_ARN)
    assert head["ContentType"] == "application/json"
    body = s3().get_object(Bucket=BUCKET, Key=written.pointer_key)["Body"].read()
    assert body == written.to_json().encode()


def test_write_pointer_conditions(bucket: None) -> None:
    first, second = pointer("Chicago_IL", "v1"), pointer("Chicago_IL", "v2")
    write_pointer(s3(), BUCKET, first, kms_key_arn=KEY_ARN, expected_etag=None)
    etag = s3().head_object(Bucket=BUCKET, Key=first.pointer_key)["ETag"]

    with pytest.raises(
        PointerChanged, match=r"s3://mme-artifacts-test/model-pointers/pp-run1/Chicago_IL.json"
    ):
        write_pointer(s3(), BUCKET, second, kms_key_arn=KEY_ARN, expected_etag=None)
    with pytest.raises(PointerChanged):
        write_pointer(s3(), BUCKET, second, kms_key_arn=KEY_ARN, expected_etag='"0123"')
    write_pointer(s3(), BUCKET, second, kms_key_arn=KEY_ARN, expected_etag=etag)
    write_pointer(s3(), BUCKET, first, kms_key_arn=KEY_ARN, expected_etag=UNCONDITIONAL)

    body = s3().get_object(Bucket=BUCKET, Key=first.pointer_key)["Body"].read()
    assert ModelPointer.from_json(body).version == "v1"


def test_write_pointer_sends_exactly_these_parameters(aws: None) -> None:
    client = boto3.client("s3", region_name=REGION)  # the `aws` fixture's fake credentials
    written = pointer("Chicago_IL", "v1")
    common = {
        "Bucket": BUCKET,
        "Key": "model-pointers/pp-run1/Chicago_IL.json",
        "Body": written.to_json().encode(),
        "ContentType": "application/json",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": KEY_ARN,
    }
    with Stubber(client) as stubber:
        stubber.add_response("put_object", {}, common)
        stubber.add_response("put_object", {}, {**common, "IfNoneMatch": "*"})
        stubber.add_response("put_object", {}, {**common, "IfMatch": '"abc"'})
        stubber.add_client_error("put_object", "ConditionalRequestConflict", http_status_code=409)
        stubber.add_client_error("put_object", "AccessDenied", http_status_code=403)
        write_pointer(client, BUCKET, written, kms_key_arn=KEY_ARN, expected_etag=UNCONDITIONAL)
        write_pointer(client, BUCKET, written, kms_key_arn=KEY_ARN, expected_etag=None)
        write_pointer(client, BUCKET, written, kms_key_arn=KEY_ARN, expected_etag='"abc"')
        with pytest.raises(PointerChanged):
            write_pointer(client, BUCKET, written, kms_key_arn=KEY_ARN, expected_etag='"abc"')
        with pytest.raises(Exception, match="AccessDenied"):
            write_pointer(client, BUCKET, written, kms_key_arn=KEY_ARN, expected_etag='"abc"')
        stubber.assert_no_pending_responses()


def test_delete_pointer_only_if_unchanged(bucket: None) -> None:
    written = pointer("Chicago_IL", "v1")
    write_pointer(s3(), BUCKET, written, kms_key_arn=KEY_ARN, expected_etag=None)
    etag = s3().head_object(Bucket=BUCKET, Key=written.pointer_key)["ETag"]

    with pytest.raises(PointerChanged):
        delete_pointer(s3(), BUCKET, GENERATION, "Chicago_IL", expected_etag='"0123"')
    assert s3().head_object(Bucket=BUCKET, Key=written.pointer_key)["ETag"] == etag
    delete_pointer(s3(), BUCKET, GENERATION, "Chicago_IL", expected_etag=etag)

    assert "Contents" not in s3().list_objects_v2(Bucket=BUCKET, Prefix=s3_layout.MODEL_POINTERS_PREFIX)
