"""Input checks the Lambda handlers share (pure standard library)."""

from __future__ import annotations

import re
from typing import Final

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
