"""Input checks, and the rejection record, the Lambda handlers share (pure standard library).

A handler reads its event and its environment through these readers only. Each returns a typed
value or raises :class:`InputError`, whose message is one sentence: the field or variable by name,
what it got and what is allowed. A handler turns that into its own error class, whose name is what
the state machine's Catch matches::

    with rejected_as(InvalidCheckRequest):
        fields = event_object(event, allowed=("run_id", "location"), required=("run_id", "location"),
                              expected='expected {"run_id": str, "location": str}')
        return CheckRequest(run_id=fields.run_id(), location=fields.location())

Event fields: :func:`event_object` checks a JSON object's field names and returns a
:class:`JsonObject`, whose methods read one field each (a string matching a rule, a run id, a
location, a generation id, a boolean, a whole number in range, an array, a nested object, exactly
one of two fields). A field that is absent or null counts as not given wherever a field may be left
out (:meth:`JsonObject.has`, a boolean's ``default``, :meth:`JsonObject.one_of`). The name rules are
:mod:`mme_shared.naming`'s.

Environment variables: ``environment_*`` read one variable each (the artifact bucket, the KMS key
ARN, the algorithm, the training-job step, a whole number in range, a fraction).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from mme_shared import naming
from mme_shared.generation import ALGORITHM_ENV, GenerationRecordError, validate_algorithm_name

BUCKET_NAME_RE: Final = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
"""An S3 bucket name (3-63 characters, lower-case letters, digits, dots and hyphens)."""

KMS_KEY_ARN_RE: Final = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/[A-Za-z0-9/_-]+")
"""A KMS key (or alias) ARN in any partition: what the stacks pass as KMS_KEY_ARN."""

SHOWN_MAX_CHARS: Final = 100
"""A rejected string is quoted in the message up to this many characters (messages reach logs and
the run summary, so an oversized value must not make an oversized message)."""

_INTEGER_RE: Final = re.compile(r"-?[0-9]+")


class InputError(ValueError):
    """An event field or environment variable breaks its rule; the message is one sentence."""


@contextmanager
def rejected_as(error_class: Callable[[str], Exception]) -> Iterator[None]:
    """Inside the block, raise every :class:`InputError` as ``error_class`` with the same message."""
    try:
        yield
    except InputError as error:
        raise error_class(str(error)) from None


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages ("got a number, expected ...")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    names = {str: "string", int: "number", float: "number", list: "array", dict: "object"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)


def shorten(text: str, limit: int) -> str:
    """``text``, or its first ``limit - 3`` characters and ``...`` when it is longer than ``limit``."""
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _shown(value: str) -> str:
    return shorten(repr(value), SHOWN_MAX_CHARS)


def _sentence(text: str, hint: str) -> str:
    return f"{text}; {hint}." if hint else f"{text}."


def _whole_number_rule(minimum: int, maximum: int | None) -> str:
    if maximum is None:
        return f"a whole number of at least {minimum}"
    return f"a whole number from {minimum} to {maximum}"


# --------------------------------------------------------------------------------------------------
# Event fields


def event_object(
    value: object,
    *,
    allowed: Collection[str] | None,
    required: Collection[str] = (),
    expected: str,
    what: str = "The event",
    prefix: str = "",
) -> JsonObject:
    """``value`` as a JSON object with no field outside ``allowed`` (None: any) and all of ``required``.

    ``what`` names the object in messages, ``expected`` (``expected {...}``) ends them, and
    ``prefix`` goes before its fields' names (``map_result.``).
    """
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a JSON object, got {json_type(value)}; {expected}.")
    unknown = sorted(str(name) for name in value if allowed is not None and name not in allowed)
    if unknown:
        raise InputError(f"{what} has unexpected field(s) {', '.join(unknown)}; {expected}.")
    missing = [name for name in required if name not in value]
    if missing:
        raise InputError(f"{what} is missing {', '.join(missing)}; {expected}.")
    return JsonObject(values=value, what=what, expected=expected, prefix=prefix)


@dataclass(frozen=True)
class JsonObject:
    """A JSON object of the event whose field names were checked; each method reads one field."""

    values: Mapping[str, object]
    what: str
    """The object in messages: ``The event``, ``The execution input``, ``map_result``."""
    expected: str
    prefix: str = ""

    def name(self, key: str) -> str:
        """The field as messages name it (with the nested object's prefix, e.g. ``map_result.Key``)."""
        return f"{self.prefix}{key}"

    def has(self, key: str) -> bool:
        """Whether the field is given: present and not null."""
        return self.values.get(key) is not None

    def string(self, key: str, *, rule: str, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        """A string, matching ``pattern`` whole if one is given; ``rule`` says what is allowed."""
        value = self.values.get(key)
        if not isinstance(value, str):
            raise InputError(
                _sentence(f"{self.name(key)} must be a string ({rule}), got {json_type(value)}", hint)
            )
        if pattern is not None and pattern.fullmatch(value) is None:
            raise InputError(_sentence(f"{self.name(key)} {_shown(value)} is not allowed: use {rule}", hint))
        return value

    def run_id(self, key: str = "run_id", *, hint: str = "") -> str:
        """A run id (:data:`mme_shared.naming.RUN_ID_RE`): the execution name, part of every job name."""
        return self.string(key, rule=naming.RUN_ID_RULE, pattern=naming.RUN_ID_RE, hint=hint)

    def location(self, key: str = "location", *, hint: str = "") -> str:
        """A location name (:data:`mme_shared.naming.LOCATION_NAME_RE`)."""
        return self.string(key, rule=naming.LOCATION_NAME_RULE, pattern=naming.LOCATION_NAME_RE, hint=hint)

    def generation(self, key: str = "generation", *, hint: str = "") -> str:
        """A preprocessor generation id, ``pp-<run id>`` (:data:`mme_shared.naming.GENERATION_RE`)."""
        return self.string(key, rule=naming.GENERATION_RULE, pattern=naming.GENERATION_RE, hint=hint)

    def boolean(self, key: str, *, default: bool | None = None, hint: str = "") -> bool:
        """true or false; ``default`` when the field is not given, if there is a default."""
        value = self.values.get(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, bool):
            raise InputError(
                _sentence(f"{self.name(key)} must be true or false, got {json_type(value)}", hint)
            )
        return value

    def integer(self, key: str, *, minimum: int, maximum: int | None = None, hint: str = "") -> int:
        """A whole number (not a boolean, not 1.0) from ``minimum`` to ``maximum`` (None: no upper bound)."""
        value = self.values.get(key)
        rule = _whole_number_rule(minimum, maximum)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(_sentence(f"{self.name(key)} must be {rule}, got {json_type(value)}", hint))
        if value < minimum or (maximum is not None and value > maximum):
            raise InputError(_sentence(f"{self.name(key)} must be {rule}, got {value}", hint))
        return value

    def array(self, key: str, *, items: str, hint: str = "") -> list[object]:
        """A JSON array (its items unchecked); ``items`` says what it holds (``location names``)."""
        value = self.values.get(key)
        if not isinstance(value, list):
            raise InputError(
                _sentence(f"{self.name(key)} must be a JSON array of {items}, got {json_type(value)}", hint)
            )
        return value

    def nested(
        self,
        key: str,
        *,
        allowed: Collection[str] | None = None,
        required: Collection[str] = (),
        expected: str,
    ) -> JsonObject:
        """A nested JSON object, checked as :func:`event_object` checks the event."""
        return event_object(
            self.values.get(key),
            allowed=allowed,
            required=required,
            expected=expected,
            what=self.name(key),
            prefix=f"{self.name(key)}.",
        )

    def one_of(self, first: str, second: str) -> str:
        """Which of the two fields is given; exactly one must be."""
        given = [key for key in (first, second) if self.has(key)]
        if len(given) != 1:
            raise InputError(
                f"{self.what} must have exactly one of {self.name(first)} and {self.name(second)}, got "
                f"{'both' if given else 'neither'}; {self.expected}."
            )
        return given[0]


# --------------------------------------------------------------------------------------------------
# Environment variables


def environment_bucket(environ: Mapping[str, str]) -> str:
    """BUCKET_NAME, validated; InputError with one sentence naming the variable otherwise."""
    bucket = environ.get("BUCKET_NAME", "")
    if BUCKET_NAME_RE.fullmatch(bucket) is None:
        raise InputError(
            f"Environment variable BUCKET_NAME {bucket!r} is not an S3 bucket name; the stack must set it "
            "to the artifact bucket."
        )
    return bucket


def environment_kms_key_arn(environ: Mapping[str, str]) -> str:
    """KMS_KEY_ARN, validated; InputError with one sentence naming the variable otherwise."""
    kms_key_arn = environ.get("KMS_KEY_ARN", "")
    if KMS_KEY_ARN_RE.fullmatch(kms_key_arn) is None:
        raise InputError(
            f"Environment variable KMS_KEY_ARN {kms_key_arn!r} is not a KMS key ARN; the stack must set it "
            "to the project key's ARN."
        )
    return kms_key_arn


def environment_algorithm(environ: Mapping[str, str]) -> str:
    """ALGORITHM (``training.algorithm``), validated; InputError with one sentence otherwise."""
    value = environ.get(ALGORITHM_ENV, "")
    try:
        return validate_algorithm_name(value, f"Environment variable {ALGORITHM_ENV}")
    except GenerationRecordError as error:
        raise InputError(f"{error}; the stack must set it to training.algorithm.") from None


def environment_training_step(environ: Mapping[str, str]) -> str:
    """TRAINING_JOB_STEP (the algorithm's job-name step, :func:`mme_shared.naming.validate_training_step`)."""
    step = environ.get(naming.TRAINING_STEP_ENV, "")
    try:
        return naming.validate_training_step(step)
    except ValueError as error:
        raise InputError(f"Environment variable {naming.TRAINING_STEP_ENV}: {error}.") from None


def environment_integer(
    environ: Mapping[str, str], name: str, *, minimum: int, maximum: int | None = None
) -> int:
    """A whole number from ``minimum`` to ``maximum`` (None: no upper bound), blanks around it ignored."""
    text = environ.get(name, "").strip()
    value = int(text) if _INTEGER_RE.fullmatch(text) is not None else None
    if value is None or value < minimum or (maximum is not None and value > maximum):
        raise InputError(
            f"Environment variable {name} {text!r} must be {_whole_number_rule(minimum, maximum)}."
        )
    return value


def environment_fraction(environ: Mapping[str, str], name: str) -> float:
    """A number from 0 up to (not including) 1, blanks around it ignored."""
    text = environ.get(name, "").strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0.0 <= value < 1.0:
        raise InputError(
            f"Environment variable {name} {text!r} must be a number from 0 up to (not including) 1."
        )
    return value


# --------------------------------------------------------------------------------------------------
# The rejection record


def log_rejected(logger: logging.Logger, error: Exception, **context: object) -> None:
    """A handler's one "rejected" decision record: what it knew of the request (``context``), the
    error's class and its one-sentence reason. Logged as from the caller's line."""
    logger.warning(
        "rejected", extra={**context, "error": type(error).__name__, "reason": str(error)}, stacklevel=2
    )
