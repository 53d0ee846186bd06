"""The per-location "current version" pointer document, defined once for writer and readers.

Why a pointer at all: the multi-model endpoint may keep serving a cached copy of an artifact, so a
promoted model is never overwritten; every version gets a new key (``models/<location>/
<location>-<version>.tar.gz``). Clients therefore need one stable place that says which version is
current. The promotion Lambda writes it, only after the copied artifact has been verified, at
``s3_layout.current_pointer_key(generation, location)``
(``model-pointers/<generation>/<location>.json``); the operator CLI and any client read the served
generation (``preprocessor/serving.json``, :mod:`mme_shared.generation`), then that generation's
pointer, and invoke the endpoint with its ``target_model``.

The document (UTF-8 JSON, one object, keys sorted)::

    {
      "format_version": 2,
      "preprocessor_generation": "pp-run-1",
      "location": "Chicago_IL",
      "version": "ll-Chicago-IL-0f3a9c",
      "target_model": "Chicago_IL/Chicago_IL-ll-Chicago-IL-0f3a9c.tar.gz",
      "key": "models/pp-run-1/Chicago_IL/Chicago_IL-ll-Chicago-IL-0f3a9c.tar.gz",
      "size": 1843,
      "checksum": {"algorithm": "CRC32", "value": "jbQcGg=="},
      "training_job_name": "ll-Chicago-IL-0f3a9c",
      "validation_metrics": {"validation:absolute_loss": 15234.5},
      "promoted_at": "2025-05-01T12:00:00Z"
    }

``preprocessor_generation`` is the preprocessor the model was trained on (and expects in front of
it); a pointer lives in that generation's folder and names a key under that generation's prefix.
``training_job_name`` is null for an artifact added with ``mme models add`` (trained elsewhere).
``target_model`` and ``key`` are derivable from the generation, ``location`` and ``version``;
they are written out anyway so that a shell script or another language can use the pointer without
this package, and :func:`ModelPointer.from_json` rejects a document in which they disagree with the
layout (a hand-edited pointer must not send clients to a key the layout would never produce).
``checksum`` is the artifact's full-object S3 checksum as stored on the versioned key (``null``
when S3 holds none), so a reader can confirm it fetched the promoted bytes.
``validation_metrics`` are the training job's final metrics on its held-out channel, measured on
the location's validation split (see :func:`validation_metrics`): ``validation:<name>``, or
``test:<name>`` for k-NN, whose held-out channel is called ``test``; empty when the job reported
none (Random Cut Forest trains without one).

Unknown or missing fields are errors rather than being ignored: a reader that silently skipped a
field written by a newer writer could act on half of the information. A future format bumps
``format_version``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from mme_shared import s3_layout
from mme_shared.naming import validate_generation, validate_location_name

POINTER_FORMAT_VERSION: Final = 2

TRAINING_JOB_METADATA: Final = "mme-training-job"
"""User metadata on every promoted model version: the training job it came from (read by rollback)."""

CHECKSUM_ALGORITHMS: Final = ("CRC64NVME", "CRC32", "CRC32C", "SHA256", "SHA1")
"""The S3 checksum algorithms (the ``Checksum<ALGORITHM>`` response fields), preferred first."""

_FIELDS: Final = frozenset(
    {
        "format_version",
        "preprocessor_generation",
        "location",
        "version",
        "target_model",
        "key",
        "size",
        "checksum",
        "training_job_name",
        "validation_metrics",
        "promoted_at",
    }
)


class ModelPointerError(ValueError):
    """A pointer document (or the values for a new one) does not follow the format above."""


@dataclass(frozen=True)
class ArtifactChecksum:
    """A full-object S3 checksum: the algorithm and its base64 value, exactly as S3 reports it."""

    algorithm: str
    value: str

    def __post_init__(self) -> None:
        if self.algorithm not in CHECKSUM_ALGORITHMS:
            raise ModelPointerError(
                f"checksum algorithm {self.algorithm!r} is not one of {', '.join(CHECKSUM_ALGORITHMS)}"
            )
        if not isinstance(self.value, str) or not self.value:
            raise ModelPointerError(f"checksum value must be a non-empty string, got {self.value!r}")


@dataclass(frozen=True)
class ModelPointer:
    """Which promoted model version of one location clients should invoke, and what it is."""

    preprocessor_generation: str
    location: str
    version: str
    size: int
    training_job_name: str | None
    promoted_at: datetime
    checksum: ArtifactChecksum | None = None
    validation_metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            validate_generation(self.preprocessor_generation)
            validate_location_name(self.location)
            # Validates the version against the layout's rule for keys and TargetModel names.
            s3_layout.target_model_name(self.location, self.version)
        except ValueError as error:
            raise ModelPointerError(str(error)) from None
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ModelPointerError(f"size must be a non-negative integer of bytes, got {self.size!r}")
        if self.training_job_name is not None and (
            not isinstance(self.training_job_name, str) or not self.training_job_name
        ):
            raise ModelPointerError(
                f"training_job_name must be a non-empty string or null, got {self.training_job_name!r}"
            )
        if not isinstance(self.promoted_at, datetime) or self.promoted_at.utcoffset() is None:
            raise ModelPointerError(
                f"promoted_at must be a timezone-aware datetime, got {self.promoted_at!r}"
            )
        if self.checksum is not None and not isinstance(self.checksum, ArtifactChecksum):
            raise ModelPointerError(f"checksum must be an ArtifactChecksum or None, got {self.checksum!r}")
        # Normalise to what the document can hold (UTC, whole seconds, float metrics), so that
        # from_json(to_json(pointer)) == pointer and two writers of the same facts write equal bytes.
        object.__setattr__(self, "promoted_at", self.promoted_at.astimezone(UTC).replace(microsecond=0))
        object.__setattr__(self, "validation_metrics", _parse_metrics(self.validation_metrics))

    @property
    def target_model(self) -> str:
        """The TargetModel to invoke: the artifact's key relative to its generation's prefix."""
        return s3_layout.target_model_name(self.location, self.version)

    @property
    def key(self) -> str:
        """The artifact's full key in the artifact bucket."""
        return s3_layout.model_version_key(self.preprocessor_generation, self.location, self.version)

    @property
    def pointer_key(self) -> str:
        """Where this document lives in the artifact bucket."""
        return s3_layout.current_pointer_key(self.preprocessor_generation, self.location)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the format above (derived fields included)."""
        return {
            "format_version": POINTER_FORMAT_VERSION,
            "preprocessor_generation": self.preprocessor_generation,
            "location": self.location,
            "version": self.version,
            "target_model": self.target_model,
            "key": self.key,
            "size": self.size,
            "checksum": (
                None
                if self.checksum is None
                else {"algorithm": self.checksum.algorithm, "value": self.checksum.value}
            ),
            "training_job_name": self.training_job_name,
            "validation_metrics": dict(sorted(self.validation_metrics.items())),
            "promoted_at": _format_timestamp(self.promoted_at),
        }

    def to_json(self) -> str:
        """The document as written to S3: sorted keys, so equal pointers are equal bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, document: object) -> ModelPointer:
        """Parse and validate a decoded pointer document; raise ModelPointerError if it is wrong."""
        if not isinstance(document, dict):
            raise ModelPointerError(f"a model pointer must be a JSON object, got {type(document).__name__}")
        missing = _FIELDS - document.keys()
        if missing:
            raise ModelPointerError(f"model pointer is missing field(s): {', '.join(sorted(missing))}")
        unknown = document.keys() - _FIELDS
        if unknown:
            raise ModelPointerError(
                f"model pointer has unknown field(s): {', '.join(sorted(map(str, unknown)))}; "
                f"expected exactly: {', '.join(sorted(_FIELDS))}"
            )
        if document["format_version"] != POINTER_FORMAT_VERSION or isinstance(
            document["format_version"], bool
        ):
            raise ModelPointerError(
                f"model pointer format_version {document['format_version']!r} is not supported; "
                f"this reader understands {POINTER_FORMAT_VERSION}"
            )
        training_job_name = document["training_job_name"]
        if training_job_name is not None and not isinstance(training_job_name, str):
            raise ModelPointerError(
                f"model pointer training_job_name must be a string or null, got {training_job_name!r}"
            )
        pointer = cls(
            preprocessor_generation=_require_str(document, "preprocessor_generation"),
            location=_require_str(document, "location"),
            version=_require_str(document, "version"),
            size=document["size"],
            training_job_name=training_job_name,
            promoted_at=_parse_timestamp(document["promoted_at"]),
            checksum=_parse_checksum(document["checksum"]),
            validation_metrics=_parse_metrics(document["validation_metrics"]),
        )
        for derived in ("target_model", "key"):
            if document[derived] != getattr(pointer, derived):
                raise ModelPointerError(
                    f"model pointer {derived} {document[derived]!r} does not match its location and "
                    f"version; the key layout gives {getattr(pointer, derived)!r}"
                )
        return pointer

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelPointer:
        """Parse a pointer document as read from S3; raise ModelPointerError if it is wrong."""
        try:
            document = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise ModelPointerError(f"model pointer is not valid JSON: {error}") from None
        return cls.from_dict(document)


def full_object_checksums(head: Mapping[str, Any]) -> dict[str, str]:
    """The checksums a HeadObject (``ChecksumMode=ENABLED``) reports over the whole object, by
    algorithm; composite multipart ones (``value-N``) are left out: they cannot be compared."""
    if head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return {}
    checksums = {}
    for algorithm in CHECKSUM_ALGORITHMS:
        value = head.get(f"Checksum{algorithm}")
        if isinstance(value, str) and value and "-" not in value:  # base64 never contains '-'
            checksums[algorithm] = value
    return checksums


def preferred_checksum(checksums: Mapping[str, str]) -> ArtifactChecksum | None:
    """The checksum a pointer records: the first of CHECKSUM_ALGORITHMS the object has."""
    for algorithm in CHECKSUM_ALGORITHMS:
        if algorithm in checksums:
            return ArtifactChecksum(algorithm=algorithm, value=checksums[algorithm])
    return None


HELD_OUT_METRIC_PREFIXES: Final = ("validation:", "test:")
"""A built-in algorithm names its metrics after the channel they were measured on. Our held-out
channel is ``validation`` (linear learner, XGBoost) or ``test`` (k-NN has no validation channel);
both are fed by the location's validation split. ``train:*`` metrics are not held out."""


def validation_metrics(final_metrics: object) -> dict[str, float]:
    """A training job's final held-out metrics (DescribeTrainingJob FinalMetricDataList), the
    ``validation:*`` and ``test:*`` ones, sorted by name; non-finite values are dropped (JSON cannot
    hold them)."""
    metrics = {}
    for metric in final_metrics if isinstance(final_metrics, list) else []:
        name, value = metric.get("MetricName"), metric.get("Value")
        if (
            isinstance(name, str)
            and name.startswith(HELD_OUT_METRIC_PREFIXES)
            and isinstance(value, int | float)
            and math.isfinite(value)
        ):
            metrics[name] = float(value)
    return dict(sorted(metrics.items()))


def _require_str(document: dict[str, Any], name: str) -> str:
    value = document[name]
    if not isinstance(value, str):
        raise ModelPointerError(f"model pointer {name} must be a string, got {value!r}")
    return value


def _check_metrics(metrics: object) -> None:
    if not isinstance(metrics, dict):
        raise ModelPointerError(f"validation_metrics must be an object, got {metrics!r}")
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise ModelPointerError(f"validation metric names must be non-empty strings, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ModelPointerError(f"validation metric {name!r} must be a finite number, got {value!r}")


def _parse_metrics(metrics: object) -> dict[str, float]:
    _check_metrics(metrics)
    assert isinstance(metrics, dict)
    return {name: float(value) for name, value in metrics.items()}


def _parse_checksum(checksum: object) -> ArtifactChecksum | None:
    if checksum is None:
        return None
    if not isinstance(checksum, dict) or set(checksum) != {"algorithm", "value"}:
        raise ModelPointerError(
            f'model pointer checksum must be null or {{"algorithm": ..., "value": ...}}, got {checksum!r}'
        )
    return ArtifactChecksum(algorithm=checksum["algorithm"], value=checksum["value"])


def _format_timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, whole seconds (what humans and ``date -d`` read)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timestamp(text: object) -> datetime:
    if not isinstance(text, str):
        raise ModelPointerError(f"model pointer promoted_at must be an ISO 8601 string, got {text!r}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ModelPointerError(
            f"model pointer promoted_at {text!r} is not an ISO 8601 timestamp such as 2025-05-01T12:00:00Z"
        ) from None
    if moment.utcoffset() is None:
        raise ModelPointerError(f"model pointer promoted_at {text!r} has no time zone; use UTC with 'Z'")
    return moment
