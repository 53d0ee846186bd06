"""The data-generation Lambda against moto: the three split files, determinism, rejected inputs."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest

from mme_shared import s3_layout
from mme_shared.housing_data import RAW_COLUMNS, generate_location_dataset, to_csv
from tests.lambdas.conftest import BUCKET, RUN_ID, MotoAccount, generate_data, handler_environment

LOCATION = "NewYork_NY"
DATA_ENVIRONMENT = {
    "HOUSES_PER_LOCATION": "200",
    "SEED": "42",
    "VALIDATION_FRACTION": "0.2",
    "TEST_FRACTION": "0.1",
}


def environment(aws: MotoAccount, **overrides: str) -> dict[str, str]:
    return {**handler_environment(aws), **DATA_ENVIRONMENT, **overrides}


def run(aws: MotoAccount, event: object, **overrides: str) -> dict[str, Any]:
    """Run the pure function the handler runs, with the recorded moto S3 client."""
    result: dict[str, Any] = generate_data.generate_data(
        generate_data.parse_data_event(event),
        s3=aws.s3,
        settings=generate_data.load_data_settings(environment(aws, **overrides)),
    )
    return result


def test_the_three_splits_are_written_where_the_layout_says_with_the_expected_rows(aws: MotoAccount) -> None:
    result = run(aws, {"run_id": RUN_ID, "location": LOCATION})

    keys = {split: s3_layout.raw_data_key(RUN_ID, LOCATION, split) for split in s3_layout.SPLITS}
    assert result == {
        "location": LOCATION,
        "job_name_fragment": "NewYork-NY",
        "keys": keys,
        "rows": {"train": 140, "validation": 40, "test": 20},
    }
    assert keys["train"] == f"raw-data/{RUN_ID}/train/{LOCATION}.csv"
    assert aws.object_keys() == sorted(keys.values())
    expected = generate_location_dataset(
        LOCATION, houses=200, seed=42, validation_fraction=0.2, test_fraction=0.1
    ).splits()
    for split, key in keys.items():
        body = aws.read(key)
        assert body.decode("utf-8") == to_csv(expected[split])
        rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
        assert len(rows) == result["rows"][split]
        assert all(len(row) == len(RAW_COLUMNS) for row in rows)  # no header, label last
        head = aws.inspect_s3.head_object(Bucket=BUCKET, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", aws.kms_key_arn)
        assert head["ContentType"] == "text/csv"
    assert [c.operation for c in aws.recorder.calls] == ["PutObject"] * 3


def test_the_data_is_deterministic_and_depends_on_the_seed(aws: MotoAccount) -> None:
    run(aws, {"run_id": "run-a", "location": LOCATION})
    run(aws, {"run_id": "run-b", "location": LOCATION})
    run(aws, {"run_id": "run-c", "location": LOCATION}, SEED="43")

    for split in s3_layout.SPLITS:
        first = aws.read(s3_layout.raw_data_key("run-a", LOCATION, split))
        assert aws.read(s3_layout.raw_data_key("run-b", LOCATION, split)) == first
        assert aws.read(s3_layout.raw_data_key("run-c", LOCATION, split)) != first


def test_the_handler_reads_its_environment(
    aws: MotoAccount, lambda_environment: Callable[[dict[str, str]], None]
) -> None:
    lambda_environment(environment(aws, HOUSES_PER_LOCATION="1000"))
    result = generate_data.handler({"run_id": RUN_ID, "location": "Houston_TX"}, None)
    assert result["rows"] == {"train": 700, "validation": 200, "test": 100}
    assert result["job_name_fragment"] == "Houston-TX"
    assert aws.object_keys() == sorted(result["keys"].values())


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"location": LOCATION}, "The event is missing run_id"),
        ({"run_id": RUN_ID}, "The event is missing location"),
        ({"run_id": RUN_ID, "location": LOCATION, "houses": 5}, "The event has unexpected field(s) houses"),
        ({"run_id": RUN_ID, "location": "New York"}, "location 'New York' is not allowed"),
        ({"run_id": RUN_ID, "location": None}, "location must be a string"),
        ({"run_id": "run/../1", "location": LOCATION}, "run_id 'run/../1' is not allowed: use 1 to 24"),
        ({"run_id": 17, "location": LOCATION}, "run_id must be a string (1 to 24 characters"),
        ("NewYork_NY", "The event must be a JSON object, got string"),
    ],
)
def test_bad_events_are_rejected_and_nothing_is_written(
    aws: MotoAccount, event: object, message: str
) -> None:
    with pytest.raises(generate_data.InvalidDataRequest) as raised:
        run(aws, event)
    assert message in str(raised.value)
    assert aws.object_keys() == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"BUCKET_NAME": ""}, "Environment variable BUCKET_NAME '' is not an S3 bucket name"),
        ({"KMS_KEY_ARN": "not-an-arn"}, "KMS_KEY_ARN 'not-an-arn' is not a KMS key ARN"),
        ({"HOUSES_PER_LOCATION": "many"}, "HOUSES_PER_LOCATION 'many' must be a whole number of at least 1"),
        ({"HOUSES_PER_LOCATION": "0"}, "HOUSES_PER_LOCATION '0' must be a whole number of at least 1"),
        ({"SEED": "4.2"}, "SEED '4.2' must be a whole number of at least 0"),
        ({"SEED": ""}, "Environment variable SEED '' must be a whole number of at least 0."),
        ({"VALIDATION_FRACTION": "1.5"}, "VALIDATION_FRACTION '1.5' must be a number from 0 up to"),
        ({"TEST_FRACTION": "nan"}, "TEST_FRACTION 'nan' must be a number from 0 up to"),
        (
            {"VALIDATION_FRACTION": "0.6", "TEST_FRACTION": "0.5"},
            "do not make a usable split: validation_fraction + test_fraction must be below 1",
        ),
        (
            {"HOUSES_PER_LOCATION": "4", "VALIDATION_FRACTION": "0.1"},
            "HOUSES_PER_LOCATION=4 with VALIDATION_FRACTION=0.1 leaves no validation row",
        ),
    ],
)
def test_a_bad_environment_is_rejected_and_nothing_is_written(
    aws: MotoAccount,
    lambda_environment: Callable[[dict[str, str]], None],
    overrides: dict[str, str],
    message: str,
) -> None:
    lambda_environment(environment(aws, **overrides))
    with pytest.raises(generate_data.InvalidEnvironment) as raised:
        generate_data.handler({"run_id": RUN_ID, "location": LOCATION}, None)
    assert message in str(raised.value)
    assert aws.object_keys() == []
