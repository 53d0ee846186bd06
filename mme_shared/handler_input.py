"""Input checks, and the rejection record, the Lambda handlers share (pure standard library)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Final

from mme_shared.generation import ALGORITHM_ENV, GenerationRecordError, validate_algorithm_name

BUCKET_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
"""An S3 bucket name (3-63 characters, lower-case letters, digits, dots and hyphens)."""

KMS_KEY_ARN_RE: Final = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+")
"""A KMS key (or alias) ARN in any partition: what the stacks pass as KMS_KEY_ARN."""


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages ("got a number, expected ...")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {str: "string", int: "number", float: "number", list: "array", dict: "object"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)


def environment_bucket(environ: Mapping[str, str]) -> str:
    """BUCKET_NAME, validated; ValueError with one sentence naming the variable otherwise."""
    bucket = environ.get("BUCKET_NAME", "")
    if BUCKET_NAME_RE.fullmatch(bucket) is None:
        raise ValueError(
            f"Environment variable BUCKET_NAME {bucket!r} is not an S3 bucket name; the stack must set it "
            "to the artifact bucket."
        )
    return bucket


def environment_kms_key_arn(environ: Mapping[str, str]) -> str:
    """KMS_KEY_ARN, validated; ValueError with one sentence naming the variable otherwise."""
    kms_key_arn = environ.get("KMS_KEY_ARN", "")
    if KMS_KEY_ARN_RE.fullmatch(kms_key_arn) is None:
        raise ValueError(
            f"Environment variable KMS_KEY_ARN {kms_key_arn!r} is not a KMS key ARN; the stack must set it "
            "to the project key's ARN."
        )
    return kms_key_arn


def environment_algorithm(environ: Mapping[str, str]) -> str:
    """ALGORITHM (``training.algorithm``), validated; ValueError with one sentence otherwise."""
    value = environ.get(ALGORITHM_ENV, "")
    try:
        return validate_algorithm_name(value, f"Environment variable {ALGORITHM_ENV}")
    except GenerationRecordError as error:
        raise ValueError(f"{error}; the stack must set it to training.algorithm.") from None


def log_rejected(logger: logging.Logger, error: Exception, **context: object) -> None:
    """A handler's one "rejected" decision record: what it knew of the request (``context``), the
    error's class and its one-sentence reason. Logged as from the caller's line."""
    logger.warning(
        "rejected", extra={**context, "error": type(error).__name__, "reason": str(error)}, stacklevel=2
    )
