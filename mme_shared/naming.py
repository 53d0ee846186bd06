"""Rules for names that end up in S3 keys, SageMaker job names and IAM condition values.

A location name is used verbatim as an S3 folder (``models/<location>/``), inside SageMaker job
names, and as the start of a ``sagemaker:TargetModel`` condition value. The character set is
therefore the intersection of what all three accept without escaping: ASCII letters, digits,
underscore and hyphen. Slashes and dots are excluded outright, so a name can never add a path
segment or a ``..`` traversal.
"""

from __future__ import annotations

import re

LOCATION_NAME_MAX_LENGTH = 32
"""Leaves room in a 63-character SageMaker job name for a step prefix and an execution suffix."""

LOCATION_NAME_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{LOCATION_NAME_MAX_LENGTH - 1}}}")
LOCATION_NAME_RULE = (
    f"1 to {LOCATION_NAME_MAX_LENGTH} characters from A-Z, a-z, 0-9, '_' and '-', "
    "starting with a letter or digit"
)

TENANT_NAME_MAX_LENGTH = 32
TENANT_NAME_RE = re.compile(rf"[a-z0-9][a-z0-9_-]{{0,{TENANT_NAME_MAX_LENGTH - 1}}}")
TENANT_NAME_RULE = (
    f"1 to {TENANT_NAME_MAX_LENGTH} characters from a-z, 0-9, '_' and '-', starting with a letter or digit"
)


def location_name_problem(name: object) -> str | None:
    """Return why ``name`` is not a valid location name, or None when it is valid."""
    if not isinstance(name, str):
        return f"must be a string ({LOCATION_NAME_RULE}), got {type(name).__name__}"
    if LOCATION_NAME_RE.fullmatch(name) is None:
        return f"{name!r} is not allowed: use {LOCATION_NAME_RULE}"
    return None


def validate_location_name(name: object) -> str:
    """Return ``name`` unchanged if it is a valid location name, else raise ValueError."""
    problem = location_name_problem(name)
    if problem is not None:
        raise ValueError(f"location name {problem}")
    assert isinstance(name, str)
    return name


def location_collision_key(name: str) -> str:
    """The form two locations must not share.

    SageMaker job names are compared case-insensitively and cannot contain ``_`` (we map it to
    ``-``), so ``NewYork_NY`` and ``newyork-ny`` would produce the same job names.
    """
    return name.lower().replace("_", "-")


def job_name_fragment(name: str) -> str:
    """The location as it appears inside a SageMaker job name (letters, digits and hyphens)."""
    return validate_location_name(name).replace("_", "-")
