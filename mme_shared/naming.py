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


RUN_ID_MAX_LENGTH = 24
"""A run id (the Step Functions execution name) is part of every job name of the run; 24 leaves
``<3-char step>-<32-char location>-<run id>`` within SageMaker's 63-character limit."""
RUN_ID_RE = re.compile(rf"[A-Za-z0-9](?:[A-Za-z0-9-]{{0,{RUN_ID_MAX_LENGTH - 2}}}[A-Za-z0-9])?")
"""The run id ends every SageMaker name of its run (``pp-<run>`` is also a model name), and SageMaker
wants those to end in a letter or digit: job names ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``, model
names ``[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?`` (botocore's shapes). Runs of '-' are fine in both.

A location needs no such rule: in a job name it is always followed by ``-<run id>``, so a trailing
'_' or '-' only makes a run of '-' (``ll-Foo_-run`` -> ``ll-Foo--run``), and no model, endpoint or
other SageMaker name is made from a location. tests/test_sagemaker_requests.py checks every request
of a run with the longest and oddest names both rules accept."""
RUN_ID_RULE = (
    f"1 to {RUN_ID_MAX_LENGTH} characters from A-Z, a-z, 0-9 and '-', starting and ending with a "
    "letter or digit"
)
SAGEMAKER_NAME_MAX_LENGTH = 63
PREPROCESSOR_STEP = "pp"
TRANSFORM_STEP_BY_SPLIT = {"train": "tt", "validation": "tv"}
TRANSFORM_STEPS = tuple(TRANSFORM_STEP_BY_SPLIT.values())
"""Job-name prefixes per step; IAM policies grant on ``<step>-*``. A location's training job starts
with its algorithm's step (``ll`` for linear learner, see ``mme_constructs.algorithms``)."""
TRAINING_STEP_RE = re.compile(r"[a-z]{2}")
TRAINING_STEP_ENV = "TRAINING_JOB_STEP"
"""The Lambda environment variable holding the deployment's training-job step."""


def validate_run_id(run_id: object) -> str:
    """Return ``run_id`` if it can be embedded in SageMaker job names, else raise ValueError."""
    if not isinstance(run_id, str) or RUN_ID_RE.fullmatch(run_id) is None:
        raise ValueError(
            f"run id {run_id!r} is not allowed: use {RUN_ID_RULE} (it becomes part of SageMaker job names)"
        )
    return run_id


def _job_name(step: str, run_id: str, location: str | None = None) -> str:
    parts = (
        [step] + ([job_name_fragment(location)] if location is not None else []) + [validate_run_id(run_id)]
    )
    name = "-".join(parts)
    assert len(name) <= SAGEMAKER_NAME_MAX_LENGTH, name  # guaranteed by the length rules above
    return name


def preprocessor_job_name(run_id: str) -> str:
    """Training job (and model) fitting the run's shared preprocessor: ``pp-<run>``."""
    return _job_name(PREPROCESSOR_STEP, run_id)


def validate_training_step(step: object) -> str:
    """Return ``step`` if it is a training-job step (two lower-case letters, not another step's)."""
    if (
        not isinstance(step, str)
        or TRAINING_STEP_RE.fullmatch(step) is None
        or step in (PREPROCESSOR_STEP, *TRANSFORM_STEPS)
    ):
        raise ValueError(
            f"training-job step {step!r} is not allowed: use two lower-case letters other than "
            f"{', '.join((PREPROCESSOR_STEP, *TRANSFORM_STEPS))}"
        )
    return step


def training_job_name(location: str, run_id: str, step: str) -> str:
    """A location's model training job: ``<step>-<location>-<run>``, e.g. ``ll-NewYork-NY-run-7``
    (unique per run and location; the step is the algorithm's)."""
    return _job_name(validate_training_step(step), run_id, location)


def transform_job_name(split: str, run_id: str) -> str:
    """The one batch transform of a split over all of a run's locations: ``tt-<run>`` (train) or
    ``tv-<run>`` (validation)."""
    if split not in TRANSFORM_STEP_BY_SPLIT:
        raise ValueError(f"split {split!r} is not transformed: use train or validation")
    return _job_name(TRANSFORM_STEP_BY_SPLIT[split], run_id)


GENERATION_RE = re.compile(rf"{PREPROCESSOR_STEP}-{RUN_ID_RE.pattern}")
GENERATION_RULE = f"'{PREPROCESSOR_STEP}-' followed by a run id ({RUN_ID_RULE})"
"""A preprocessor generation is named after the training job that fitted it: ``pp-<run id>``."""


def generation_problem(generation: object) -> str | None:
    """Why ``generation`` is not a preprocessor generation id, or None when it is one."""
    if not isinstance(generation, str) or GENERATION_RE.fullmatch(generation) is None:
        return f"preprocessor generation {generation!r} is not allowed: use {GENERATION_RULE}"
    return None


def validate_generation(generation: object) -> str:
    """Return ``generation`` if it names a preprocessor generation (``pp-<run id>``), else raise."""
    problem = generation_problem(generation)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(generation, str)
    return generation
