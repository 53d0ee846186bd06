"""Check one location's batch-transform output before its training job starts.

A training run makes one batch transform per split over every location of the run: it reads
``raw-data/<run>/<split>/`` (one ``<location>.csv`` per location) and SageMaker writes one output
object per input object, ``s3_layout.preprocessed_output_key(run, location, split)``, i.e.
``preprocessed-data/<run>/<split>/<location>.csv.out``. So that one location's bad rows cannot fail
the job for every location, the preprocessor answers rows it cannot transform (labelled-transform
mode) with 200 and one marker line, ``#mme-transform-error: <reason>`` (see
``preprocessor/housing_preprocessor.py``), which lands in that location's ``.out`` file. The state
machine runs this function once per location, after both transforms and before training, so such a
location fails alone, with the preprocessor's reason, and the others train.

Event::

    {"run_id": str, "location": str}

Result (both splits passed)::

    {"location": str, "rows": {"train": int, "validation": int}}

where each count is the number of transformed rows (non-blank lines) in that split's output.

Errors, one split after the other (train, then validation); the first problem found is raised,
and its class name is the error name the state machine's Catch sees:

- ``TransformOutputMissing``: no object at the output key; the batch transform wrote no output for
  this location (its raw file is missing, or the job did not reach it).
- ``TransformOutputUnreadable``: S3 refused to read it (403): this function lacks ``s3:GetObject``
  or ``kms:Decrypt``, or ``s3:ListBucket``, without which S3 reports a missing object as 403.
- ``TransformOutputTooLarge``: the object is larger than :data:`MAX_OUTPUT_BYTES`, far more than the
  largest configurable location produces; it is refused without being read.
- ``LocationRowsRejected``: the output holds marker lines; the message is the preprocessor's reason
  for the first :data:`MAX_REASONS_SHOWN` of them, at most :data:`MAX_MESSAGE_CHARS` characters in
  all. It wins over an empty output (a file rejected whole has no data row but has a reason).
- ``TransformOutputEmpty``: the output has no transformed row.
- ``InvalidCheckRequest`` (a bad event) and ``InvalidEnvironment`` (BUCKET_NAME).

Anything else S3 answers (throttling after the client's retries, 5xx) is raised as botocore's
``ClientError``. The function writes nothing.

The object is read as a stream of chunks, never whole: of each line only its first
:data:`LINE_HEAD_BYTES` are kept (enough to recognise the marker and hold its reason), so memory
stays constant whatever the file holds; the bytes read per file are bounded by
:data:`MAX_OUTPUT_BYTES`, checked against the object's size before reading and again while reading.

Permissions it needs: ``s3:GetObject`` on ``preprocessed-data/*``; ``s3:ListBucket`` on the bucket
(so a missing output is a 404, ``TransformOutputMissing``, not a 403); ``kms:Decrypt`` on the
project key (the transform encrypts its output with it).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mme_shared import s3_layout
from mme_shared.handler_input import environment_bucket, event_object, log_rejected, rejected_as
from mme_shared.transform_output import TRANSFORM_ERROR_MARKER

S3Client: TypeAlias = Any
"""A boto3 S3 client (boto3 ships no type information; the Lambda runtime provides boto3)."""

LOGGER = logging.getLogger(__name__)
"""Each decision is one record; with Lambda's JSON log format its ``extra`` keys are top-level fields."""

CHECKED_SPLITS: Final = s3_layout.TRANSFORMED_SPLITS
MAX_OUTPUT_BYTES: Final = 512 * 1024 * 1024
"""Per output file. A location has at most 1,000,000 houses (``data.houses_per_location``) and a
transformed row is about 170 and at most about 300 bytes (PRICE and 10 features as Python float
reprs), so no output of a valid configuration comes near it."""
LINE_HEAD_BYTES: Final = 1024
"""Kept of each line: a marker line is at most about 520 bytes (the preprocessor cuts its reason at
500 characters), a transformed row about 300."""
MAX_REASONS_SHOWN: Final = 3
MAX_MESSAGE_CHARS: Final = 2000
"""The LocationRowsRejected message's length at most (it ends up in the run summary)."""
CHUNK_BYTES: Final = 1024 * 1024

_EVENT_FIELDS: Final = ("run_id", "location")
_EXPECTED_EVENT: Final = 'expected {"run_id": str, "location": str}'
_NOT_FOUND_CODES: Final = frozenset({"404", "NoSuchKey", "NotFound"})
_FORBIDDEN_CODES: Final = frozenset({"403", "AccessDenied"})
_MARKER_BYTES: Final = TRANSFORM_ERROR_MARKER.encode("ascii")


# The class names are the contract with the state machine: Lambda reports an uncaught exception's
# class name as the error name a Catch matches (hence the N818 exemptions).


class CheckTransformError(Exception):
    """Base class; Step Functions matches the concrete class names below."""


class InvalidCheckRequest(CheckTransformError):  # noqa: N818
    """The event is not ``{"run_id": str, "location": str}`` with valid values."""


class InvalidEnvironment(CheckTransformError):  # noqa: N818
    """BUCKET_NAME is missing or not a bucket name (a deployment error)."""


class TransformOutputMissing(CheckTransformError):  # noqa: N818
    """The batch transform wrote no output object for this location and split."""


class TransformOutputUnreadable(CheckTransformError):  # noqa: N818
    """S3 answered 403 for the output object (permissions or key)."""


class TransformOutputTooLarge(CheckTransformError):  # noqa: N818
    """The output object is larger than MAX_OUTPUT_BYTES; it is not read."""


class TransformOutputEmpty(CheckTransformError):  # noqa: N818
    """The output object holds no transformed row."""


class LocationRowsRejected(CheckTransformError):  # noqa: N818
    """The preprocessor refused rows of this location; the message holds its reason(s)."""


@dataclass(frozen=True)
class CheckRequest:
    """A validated event."""

    run_id: str
    location: str


@dataclass
class OutputScan:
    """What one pass over an output object found."""

    rows: int = 0
    """Transformed rows: non-blank lines that are not marker lines."""
    rejections: int = 0
    """Marker lines (one per mini-batch the preprocessor refused)."""
    reasons: list[str] = field(default_factory=list)
    """The reasons of the first MAX_REASONS_SHOWN marker lines."""
    bytes_read: int = 0


def parse_check_event(event: object) -> CheckRequest:
    """Validate the event; raise InvalidCheckRequest naming the field and what is expected."""
    with rejected_as(InvalidCheckRequest):
        fields = event_object(event, allowed=_EVENT_FIELDS, required=_EVENT_FIELDS, expected=_EXPECTED_EVENT)
        return CheckRequest(run_id=fields.run_id(), location=fields.location())


def load_bucket(environ: Mapping[str, str]) -> str:
    """BUCKET_NAME, validated; InvalidEnvironment otherwise."""
    with rejected_as(InvalidEnvironment):
        return environment_bucket(environ)


class _LineScanner:
    """Feeds chunks, splits them into lines, keeps only each line's head (bounded memory)."""

    def __init__(self) -> None:
        self.scan = OutputScan()
        self._head = bytearray()
        self._blank = True

    def feed(self, chunk: bytes) -> None:
        start = 0
        while start <= len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            room = LINE_HEAD_BYTES - len(self._head)
            if room > 0:
                self._head += piece[:room]
            if self._blank and piece.strip():
                self._blank = False
            if end < 0:
                return
            self._end_line()
            start = end + 1

    def finish(self) -> OutputScan:
        if self._head or not self._blank:
            self._end_line()
        return self.scan

    def _end_line(self) -> None:
        head = bytes(self._head).lstrip()
        if head.startswith(_MARKER_BYTES):
            self.scan.rejections += 1
            if len(self.scan.reasons) < MAX_REASONS_SHOWN:
                reason = head[len(_MARKER_BYTES) :].decode("utf-8", errors="replace").strip()
                self.scan.reasons.append(reason or "no reason given")
        elif not self._blank:
            self.scan.rows += 1
        self._head = bytearray()
        self._blank = True


def scan_output(chunks: Iterable[bytes], *, limit: int = MAX_OUTPUT_BYTES) -> OutputScan:
    """Count rows and marker lines in a stream of chunks; raise TransformOutputTooLarge past ``limit``.

    The caller adds the object's name to that error's message.
    """
    scanner = _LineScanner()
    read = 0
    for chunk in chunks:
        read += len(chunk)
        if read > limit:
            raise TransformOutputTooLarge(f"more than {limit:,} bytes")
        scanner.feed(chunk)
    scan = scanner.finish()
    scan.bytes_read = read
    return scan


def _rejected_message(request: CheckRequest, split: str, uri: str, scan: OutputScan) -> str:
    shown = "; ".join(scan.reasons)
    more = scan.rejections - len(scan.reasons)
    tail = f" (and {more} more rejected mini-batch{'es' if more > 1 else ''})" if more > 0 else ""
    head = (
        f"The preprocessor rejected rows of {request.location}'s {split} data "
        f"({scan.rejections} mini-batch{'es' if scan.rejections > 1 else ''}, {uri}): "
    )
    message = f"{head}{shown}{tail}"
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 3].rstrip() + "..."
    return message


def check_split(request: CheckRequest, split: str, *, s3: S3Client, bucket: str) -> int:
    """Check one split's output object; return its row count or raise the error that applies."""
    key = s3_layout.preprocessed_output_key(request.run_id, request.location, split)
    uri = s3_layout.s3_uri(bucket, key)
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND_CODES:
            raw_key = s3_layout.raw_data_key(request.run_id, request.location, split)
            raise TransformOutputMissing(
                f"{uri} does not exist: the {split} batch transform wrote no output for location "
                f"{request.location} (its input {raw_key} may be missing, or the job did not finish)."
            ) from None
        if code in _FORBIDDEN_CODES:
            raise TransformOutputUnreadable(
                f"{uri} cannot be read (AccessDenied): the function lacks s3:GetObject on it or "
                "kms:Decrypt on the project key, or the object is missing and the function lacks "
                "s3:ListBucket (S3 then answers 403, not 404)."
            ) from None
        raise
    body = response["Body"]
    try:
        size = int(response.get("ContentLength", 0))
        if size > MAX_OUTPUT_BYTES:
            raise TransformOutputTooLarge(
                f"{uri} is {size:,} bytes, more than the {MAX_OUTPUT_BYTES:,} bytes any location's {split} "
                "output can need; it was not read."
            )
        try:
            scan = scan_output(body.iter_chunks(chunk_size=CHUNK_BYTES), limit=MAX_OUTPUT_BYTES)
        except TransformOutputTooLarge:
            raise TransformOutputTooLarge(
                f"{uri} holds more than the {MAX_OUTPUT_BYTES:,} bytes any location's {split} output can "
                "need; reading stopped there."
            ) from None
    finally:
        body.close()
    if scan.rejections:
        raise LocationRowsRejected(_rejected_message(request, split, uri, scan))
    if scan.rows == 0:
        raise TransformOutputEmpty(
            f"{uri} holds no transformed row ({scan.bytes_read} bytes): the {split} batch transform "
            f"produced nothing for location {request.location}."
        )
    return scan.rows


def check_transform(request: CheckRequest, *, s3: S3Client, bucket: str) -> dict[str, Any]:
    """Check the train and validation outputs of one location; return its row counts."""
    rows = {split: check_split(request, split, s3=s3, bucket=bucket) for split in CHECKED_SPLITS}
    return {"location": request.location, "rows": rows}


@functools.cache
def _s3_client() -> S3Client:
    """Created once per execution environment; standard retries absorb throttling."""
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def handler(event: object, context: object) -> dict[str, Any]:
    """Lambda entry point: validate the event and environment, check both splits, report the counts."""
    request: CheckRequest | None = None
    try:
        request = parse_check_event(event)
        bucket = load_bucket(os.environ)
        result = check_transform(request, s3=_s3_client(), bucket=bucket)
    except CheckTransformError as error:
        where = {"run_id": request.run_id, "location": request.location} if request else {}
        log_rejected(LOGGER, error, **where)
        raise
    LOGGER.info(
        "passed", extra={"run_id": request.run_id, "location": request.location, "rows": result["rows"]}
    )
    return result
