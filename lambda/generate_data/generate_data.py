"""Generate one location's synthetic housing data for one pipeline run and write its three splits.

The first step of the training state machine runs this once per location (inside the Map), so a
run over 10,000 locations is 10,000 small, independent invocations rather than one long one.
The rows come from :mod:`mme_shared.housing_data` (standard library only, so no dependency has to
be bundled) and are fully determined by the location and the environment's SEED: rerunning a
location, or retrying a failed invocation, writes byte-identical files.

Each split goes to ``s3_layout.raw_data_key(run_id, location, split)``, i.e.
``raw-data/<run>/<split>/<location>.csv`` (CSV without a header, label last), encrypted with the
project key. The whole data set is generated and every input validated before the first write,
so a bad event or environment writes nothing.

The result carries ``job_name_fragment`` (the location as it may appear in a SageMaker job name)
so the state machine can build job names without string functions of its own.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

import boto3  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]

from mme_shared import s3_layout
from mme_shared.handler_input import (
    environment_bucket,
    environment_fraction,
    environment_integer,
    environment_kms_key_arn,
    event_object,
    log_rejected,
    rejected_as,
)
from mme_shared.housing_data import generate_location_dataset, to_csv
from mme_shared.naming import job_name_fragment

S3Client: TypeAlias = Any
"""A boto3 S3 client (boto3 ships no type information; the Lambda runtime provides boto3)."""

LOGGER = logging.getLogger(__name__)
"""Each decision is one record; with Lambda's JSON log format its ``extra`` keys are top-level fields."""

_EVENT_FIELDS: Final = ("run_id", "location")
_EXPECTED_EVENT: Final = 'expected {"run_id": str, "location": str}'


# The class names are the contract with the state machine: Lambda reports an uncaught exception's
# class name as the error name a Catch matches (hence the N818 exemptions).


class DataGenerationError(Exception):
    """Base class; Step Functions matches the concrete class names below."""


class InvalidDataRequest(DataGenerationError):  # noqa: N818
    """The event is not ``{"run_id": str, "location": str}`` with valid values."""


class InvalidEnvironment(DataGenerationError):  # noqa: N818
    """An environment variable is missing or out of range (a deployment error)."""


@dataclass(frozen=True)
class DataRequest:
    """A validated event."""

    run_id: str
    location: str


@dataclass(frozen=True)
class DataSettings:
    """The function's environment, parsed and validated."""

    bucket: str
    kms_key_arn: str
    houses_per_location: int
    seed: int
    validation_fraction: float
    test_fraction: float


def parse_data_event(event: object) -> DataRequest:
    """Validate the event; raise InvalidDataRequest naming the field and what is expected."""
    with rejected_as(InvalidDataRequest):
        fields = event_object(event, allowed=_EVENT_FIELDS, required=_EVENT_FIELDS, expected=_EXPECTED_EVENT)
        return DataRequest(run_id=fields.run_id(), location=fields.location())


def load_data_settings(environ: Mapping[str, str]) -> DataSettings:
    """Read and validate the six variables; raise InvalidEnvironment naming the first bad one."""
    with rejected_as(InvalidEnvironment):
        return DataSettings(
            bucket=environment_bucket(environ),
            kms_key_arn=environment_kms_key_arn(environ),
            houses_per_location=environment_integer(environ, "HOUSES_PER_LOCATION", minimum=1),
            seed=environment_integer(environ, "SEED", minimum=0),
            validation_fraction=environment_fraction(environ, "VALIDATION_FRACTION"),
            test_fraction=environment_fraction(environ, "TEST_FRACTION"),
        )


def generate_data(request: DataRequest, *, s3: S3Client, settings: DataSettings) -> dict[str, Any]:
    """Generate the location's rows, then write train, validation and test; return keys and counts."""
    try:
        dataset = generate_location_dataset(
            request.location,
            houses=settings.houses_per_location,
            seed=settings.seed,
            validation_fraction=settings.validation_fraction,
            test_fraction=settings.test_fraction,
        )
    except ValueError as error:
        # The location was validated already, so this is the split arithmetic of the settings.
        raise InvalidEnvironment(
            f"HOUSES_PER_LOCATION, VALIDATION_FRACTION and TEST_FRACTION do not make a usable split: {error}."
        ) from None
    splits = dataset.splits()
    if not splits["validation"]:
        raise InvalidEnvironment(
            f"HOUSES_PER_LOCATION={settings.houses_per_location} with VALIDATION_FRACTION="
            f"{settings.validation_fraction:g} leaves no validation row; the training job's validation "
            "channel needs at least one."
        )
    bodies = {split: to_csv(houses).encode("utf-8") for split, houses in splits.items()}
    keys = {split: s3_layout.raw_data_key(request.run_id, request.location, split) for split in splits}
    for split, body in bodies.items():
        s3.put_object(
            Bucket=settings.bucket,
            Key=keys[split],
            Body=body,
            ContentType="text/csv",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=settings.kms_key_arn,
        )
    return {
        "location": request.location,
        "job_name_fragment": job_name_fragment(request.location),
        "keys": keys,
        "rows": {split: len(houses) for split, houses in splits.items()},
    }


@functools.cache
def _s3_client() -> S3Client:
    """Created once per execution environment; standard retries absorb throttling."""
    return boto3.client("s3", config=Config(retries={"mode": "standard", "max_attempts": 5}))


def handler(event: object, context: object) -> dict[str, Any]:
    """Lambda entry point: validate the event and environment, generate, write, report."""
    try:
        request = parse_data_event(event)
        settings = load_data_settings(os.environ)
        result = generate_data(request, s3=_s3_client(), settings=settings)
    except DataGenerationError as error:
        log_rejected(LOGGER, error)
        raise
    LOGGER.info(
        "generated", extra={"run_id": request.run_id, "location": request.location, "rows": result["rows"]}
    )
    return result
