"""The transform-check Lambda against moto: every outcome for one location's two outputs.

The outputs are what the run's shared batch transforms write: ``preprocessed-data/<run>/<split>/
<location>.csv.out``, spelled out literally here so that a change of the layout fails a test. Their
marker lines are made by the preprocessor's own :func:`transform_error_line`.
"""

from __future__ import annotations

import importlib
import itertools
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from botocore.stub import Stubber  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from preprocessor import housing_preprocessor as hp
from tests.lambdas.conftest import BUCKET, REGION, RUN_ID, MotoAccount, handler_environment

_HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda" / "check_transform"
if str(_HANDLER_DIR) not in sys.path:
    sys.path.insert(0, str(_HANDLER_DIR))
check_transform = importlib.import_module("check_transform")

LOCATION = "NewYork_NY"
TRAIN_KEY = f"preprocessed-data/{RUN_ID}/train/{LOCATION}.csv.out"
VALIDATION_KEY = f"preprocessed-data/{RUN_ID}/validation/{LOCATION}.csv.out"
EVENT = {"run_id": RUN_ID, "location": LOCATION}
ROW = "439972.62,-0.2070,-0.3657,1.4043,1.3948,-1.2083,-0.4751,0.0,1.0,0.0,1.0"
"""One transformed row as the preprocessor writes it: PRICE first, then the 10 features."""


@pytest.fixture(autouse=True)
def _fresh_client() -> Iterator[None]:
    check_transform._s3_client.cache_clear()
    yield
    check_transform._s3_client.cache_clear()


def rows(count: int) -> bytes:
    """``count`` transformed rows as SageMaker assembles them (AssembleWith Line: newline after each)."""
    return "".join(f"{ROW}\n" for _ in range(count)).encode()


def marker(reason: str) -> bytes:
    return (hp.transform_error_line(reason) + "\n").encode()


def put_outputs(
    aws: MotoAccount, train: bytes | None = rows(140), validation: bytes | None = rows(40)
) -> None:
    if train is not None:
        aws.put(TRAIN_KEY, train)
    if validation is not None:
        aws.put(VALIDATION_KEY, validation)


def run(aws: MotoAccount, event: object = EVENT) -> dict[str, Any]:
    """The pure function the handler runs, with the recorded moto client."""
    result: dict[str, Any] = check_transform.check_transform(
        check_transform.parse_check_event(event),
        s3=aws.s3,
        bucket=check_transform.load_bucket(handler_environment(aws)),
    )
    return result


# --- The contract with the preprocessor and the state machine -------------------------------------


def test_the_marker_is_the_preprocessors() -> None:
    """One definition (mme_shared.transform_output) for the writer and the reader."""
    assert check_transform.TRANSFORM_ERROR_MARKER is hp.TRANSFORM_ERROR_MARKER
    assert hp.transform_error_line("x") == "#mme-transform-error: x"


def test_the_error_names_the_state_machine_can_catch() -> None:
    names = {
        name
        for name, value in vars(check_transform).items()
        if isinstance(value, type) and issubclass(value, check_transform.CheckTransformError)
    }
    assert names == {
        "CheckTransformError",
        "InvalidCheckRequest",
        "InvalidEnvironment",
        "TransformOutputMissing",
        "TransformOutputUnreadable",
        "TransformOutputTooLarge",
        "TransformOutputEmpty",
        "LocationRowsRejected",
    }


def test_the_line_head_holds_the_longest_marker_line() -> None:
    longest = hp.transform_error_line("x" * 10_000).encode()
    assert len(longest) < check_transform.LINE_HEAD_BYTES


# --- Outcomes -------------------------------------------------------------------------------------


def test_both_outputs_with_rows_pass_with_their_counts_and_nothing_is_written(aws: MotoAccount) -> None:
    put_outputs(aws)
    before = aws.bucket_state()

    assert run(aws) == {"location": LOCATION, "rows": {"train": 140, "validation": 40}}
    assert aws.bucket_state() == before
    assert [(call.operation, call.key) for call in aws.recorder.calls] == [
        ("GetObject", TRAIN_KEY),
        ("GetObject", VALIDATION_KEY),
    ]


@pytest.mark.parametrize(
    ("body", "count"),
    [
        pytest.param(ROW.encode(), 1, id="no-trailing-newline"),
        pytest.param(rows(3) + b"\n\n  \n", 3, id="trailing-blank-lines"),
        pytest.param(rows(2).replace(b"\n", b"\r\n"), 2, id="crlf"),
        pytest.param(b"\n" + rows(2), 2, id="leading-blank-line"),
    ],
)
def test_rows_are_counted_as_non_blank_lines(aws: MotoAccount, body: bytes, count: int) -> None:
    put_outputs(aws, train=body)
    assert run(aws)["rows"] == {"train": count, "validation": 40}


@pytest.mark.parametrize(("missing", "key"), [("train", TRAIN_KEY), ("validation", VALIDATION_KEY)])
def test_a_missing_output_says_the_transform_wrote_nothing_for_this_location(
    aws: MotoAccount, missing: str, key: str
) -> None:
    put_outputs(aws, **{missing: None})
    with pytest.raises(check_transform.TransformOutputMissing) as raised:
        run(aws)
    assert str(raised.value) == (
        f"s3://{BUCKET}/{key} does not exist: the {missing} batch transform wrote no output for location "
        f"{LOCATION} (its input raw-data/{RUN_ID}/{missing}/{LOCATION}.csv may be missing, or the job did "
        "not finish)."
    )


def test_another_locations_output_does_not_count(aws: MotoAccount) -> None:
    aws.put(f"preprocessed-data/{RUN_ID}/train/{LOCATION}_2.csv.out", rows(5))
    aws.put(f"preprocessed-data/{RUN_ID}/train/{LOCATION}.csv", rows(5))
    put_outputs(aws, train=None)
    with pytest.raises(check_transform.TransformOutputMissing, match=re.escape(TRAIN_KEY)):
        run(aws)


@pytest.mark.parametrize("body", [b"", b"\n", b" \n\n\t\n"], ids=["zero-bytes", "newline", "blank-lines"])
def test_an_output_without_rows_is_empty(aws: MotoAccount, body: bytes) -> None:
    put_outputs(aws, validation=body)
    with pytest.raises(check_transform.TransformOutputEmpty) as raised:
        run(aws)
    assert str(raised.value) == (
        f"s3://{BUCKET}/{VALIDATION_KEY} holds no transformed row ({len(body)} bytes): the validation batch "
        f"transform produced nothing for location {LOCATION}."
    )


def test_a_file_rejected_whole_fails_with_the_preprocessors_reason(aws: MotoAccount) -> None:
    reason = "Row 7 has 8 fields but 9 are expected here (MME_PREPROCESSOR_MODE=labelled-transform)."
    put_outputs(aws, train=marker(reason))
    with pytest.raises(check_transform.LocationRowsRejected) as raised:
        run(aws)
    assert str(raised.value) == (
        f"The preprocessor rejected rows of {LOCATION}'s train data "
        f"(1 mini-batch, s3://{BUCKET}/{TRAIN_KEY}): {reason}"
    )


def test_one_rejected_mini_batch_among_good_ones_fails_the_location(aws: MotoAccount) -> None:
    reason = "Row 3, column SQUARE_FEET: 'big' is not a finite number."
    put_outputs(aws, validation=rows(20) + marker(reason) + rows(20))
    with pytest.raises(
        check_transform.LocationRowsRejected, match=re.escape("validation data (1 mini-batch, ")
    ):
        run(aws)
    with pytest.raises(check_transform.LocationRowsRejected, match=re.escape(reason)):
        run(aws)


def test_many_rejections_show_the_first_reasons_and_how_many_more(aws: MotoAccount) -> None:
    body = b"".join(marker(f"Row {number}, column DECK is empty.") for number in range(1, 8))
    put_outputs(aws, train=rows(5) + body)
    with pytest.raises(check_transform.LocationRowsRejected) as raised:
        run(aws)
    message = str(raised.value)
    assert "(7 mini-batches, " in message
    assert message.endswith(
        "Row 1, column DECK is empty.; Row 2, column DECK is empty.; Row 3, column DECK is empty. "
        "(and 4 more rejected mini-batches)"
    )


def test_the_rejection_message_is_bounded(aws: MotoAccount) -> None:
    """The preprocessor's reasons (500 characters at most) fit whole; longer marker lines are cut."""
    put_outputs(aws, train=marker("x" * 10_000) * 50)
    with pytest.raises(check_transform.LocationRowsRejected) as raised:
        run(aws)
    assert len(str(raised.value)) <= check_transform.MAX_MESSAGE_CHARS
    assert str(raised.value).endswith("... (and 47 more rejected mini-batches)")

    put_outputs(aws, train=(b"#mme-transform-error: " + b"y" * 100_000 + b"\n") * 50)
    with pytest.raises(check_transform.LocationRowsRejected) as raised:
        run(aws)
    assert len(str(raised.value)) == check_transform.MAX_MESSAGE_CHARS
    assert str(raised.value).endswith("y...")
    assert "\n" not in str(raised.value)


def test_a_reason_that_is_not_utf_8_is_still_reported(aws: MotoAccount) -> None:
    put_outputs(aws, train=b"#mme-transform-error: Row 1, column DECK: '\xff' is odd.\n" + rows(1))
    with pytest.raises(
        check_transform.LocationRowsRejected, match=re.escape("Row 1, column DECK: '\ufffd' is odd.")
    ):
        run(aws)


def test_train_is_checked_before_validation(aws: MotoAccount) -> None:
    put_outputs(aws, train=marker("Row 1 is empty."), validation=None)
    with pytest.raises(check_transform.LocationRowsRejected, match="train data"):
        run(aws)


def test_an_output_larger_than_the_limit_is_refused_unread(
    aws: MotoAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check_transform, "MAX_OUTPUT_BYTES", 1000)
    put_outputs(aws, train=rows(100))
    with pytest.raises(check_transform.TransformOutputTooLarge) as raised:
        run(aws)
    assert str(raised.value) == (
        f"s3://{BUCKET}/{TRAIN_KEY} is {len(rows(100)):,} bytes, more than the 1,000 bytes any location's "
        "train output can need; it was not read."
    )


def test_the_documented_limit_covers_the_largest_configurable_location() -> None:
    largest_row = ",".join([repr(-1.2345678901234567e-300)] * 11)  # 11 full-precision floats
    assert 1_000_000 * (len(largest_row) + 1) < check_transform.MAX_OUTPUT_BYTES


# --- Reading the stream ---------------------------------------------------------------------------


def test_reading_stops_at_the_limit_whatever_the_object_claimed() -> None:
    chunks_read: list[int] = []

    def chunks() -> Iterator[bytes]:
        for index in range(100):
            chunks_read.append(index)
            yield rows(10)

    with pytest.raises(check_transform.TransformOutputTooLarge):
        check_transform.scan_output(chunks(), limit=len(rows(10)) * 3)
    assert chunks_read == [0, 1, 2, 3]


def test_a_very_long_line_counts_as_one_row_without_being_kept() -> None:
    scanner = check_transform._LineScanner()
    for _ in range(20):
        scanner.feed(b"1.0," * 250_000)  # 20 MB without a newline
        assert len(scanner._head) <= check_transform.LINE_HEAD_BYTES
    scan = scanner.finish()
    assert (scan.rows, scan.rejections) == (1, 0)


MIXED_OUTPUT = rows(3) + marker("Row 2, column PRICE: 'n/a' is not a finite number.") + rows(2) + b"\n"


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(MIXED_OUTPUT)), max_size=12))
def test_the_result_does_not_depend_on_where_the_chunks_end(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(MIXED_OUTPUT)]
    chunks = [MIXED_OUTPUT[start:end] for start, end in itertools.pairwise(bounds)]
    scan = check_transform.scan_output(chunks)
    assert (scan.rows, scan.rejections, scan.bytes_read) == (5, 1, len(MIXED_OUTPUT))
    assert scan.reasons == ["Row 2, column PRICE: 'n/a' is not a finite number."]


# --- S3 errors ------------------------------------------------------------------------------------


def stubbed_error(code: str, status: int) -> tuple[Any, Stubber]:
    client = boto3.client("s3", region_name=REGION)
    stubber = Stubber(client)
    stubber.add_client_error("get_object", service_error_code=code, http_status_code=status)
    return client, stubber


def test_a_403_says_which_permission_is_missing() -> None:
    client, stubber = stubbed_error("AccessDenied", 403)
    with stubber, pytest.raises(check_transform.TransformOutputUnreadable) as raised:
        check_transform.check_transform(check_transform.parse_check_event(EVENT), s3=client, bucket=BUCKET)
    assert str(raised.value) == (
        f"s3://{BUCKET}/{TRAIN_KEY} cannot be read (AccessDenied): the function lacks s3:GetObject on it or "
        "kms:Decrypt on the project key, or the object is missing and the function lacks s3:ListBucket "
        "(S3 then answers 403, not 404)."
    )


def test_other_s3_errors_are_raised_as_they_are() -> None:
    client, stubber = stubbed_error("InternalError", 500)
    with stubber, pytest.raises(ClientError, match="InternalError"):
        check_transform.check_transform(check_transform.parse_check_event(EVENT), s3=client, bucket=BUCKET)


# --- Bad events and environment -------------------------------------------------------------------

EXPECTED = 'expected {"run_id": str, "location": str}'


@pytest.mark.parametrize(
    ("event", "message"),
    [
        pytest.param(["run"], f"The event must be a JSON object, got array; {EXPECTED}.", id="not-an-object"),
        pytest.param(None, f"The event must be a JSON object, got null; {EXPECTED}.", id="null"),
        pytest.param(
            {**EVENT, "split": "train"},
            f"The event has unexpected field(s) split; {EXPECTED}.",
            id="unexpected-field",
        ),
        pytest.param({"run_id": RUN_ID}, f"The event is missing location; {EXPECTED}.", id="no-location"),
        pytest.param({}, f"The event is missing run_id, location; {EXPECTED}.", id="empty"),
        pytest.param(
            {"run_id": RUN_ID, "location": "New York"},
            "location 'New York' is not allowed: use 1 to",
            id="bad-location",
        ),
        pytest.param(
            {"run_id": RUN_ID, "location": 7}, "location must be a string (", id="location-not-a-string"
        ),
        pytest.param(
            {"run_id": "run/7", "location": LOCATION},
            "run_id 'run/7' is not allowed: use 1 to 24 characters",
            id="bad-run-id",
        ),
        pytest.param(
            {"run_id": None, "location": LOCATION},
            "run_id must be a string (1 to 24 characters from A-Z, a-z, 0-9 and '-', starting and ending "
            "with a letter or digit), got null.",
            id="run-id-null",
        ),
    ],
)
def test_bad_events_are_refused_before_any_read(aws: MotoAccount, event: object, message: str) -> None:
    with pytest.raises(check_transform.InvalidCheckRequest, match=f"^{re.escape(message)}"):
        check_transform.parse_check_event(event)
    assert aws.recorder.calls == []


@pytest.mark.parametrize("bucket", ["", "Not_A_Bucket", "x"])
def test_a_bad_bucket_name_is_an_environment_error(bucket: str) -> None:
    environ = {} if not bucket else {"BUCKET_NAME": bucket}
    with pytest.raises(check_transform.InvalidEnvironment, match=r"^Environment variable BUCKET_NAME "):
        check_transform.load_bucket(environ)


def test_the_handler_reads_its_environment(
    aws: MotoAccount, lambda_environment: Callable[[dict[str, str]], None]
) -> None:
    put_outputs(aws)
    lambda_environment(handler_environment(aws))
    assert check_transform.handler(EVENT, None) == {
        "location": LOCATION,
        "rows": {"train": 140, "validation": 40},
    }
    lambda_environment({})
    with pytest.raises(check_transform.InvalidEnvironment):
        check_transform.handler(EVENT, None)
    with pytest.raises(check_transform.InvalidCheckRequest):
        check_transform.handler({"run_id": RUN_ID}, None)
