"""The S3 key layout of the artifact bucket, defined once.

The stacks (IAM grants and prefixes), the Lambda handlers (where to read and write) and the
operator CLI (where to look) all import this module, so a key can never be spelled two ways.

Layout (all under one bucket)::

    raw-data/<run>/<split>/<location>.csv             generated housing data, label last
    preprocessed-data/<run>/<split>/<location>.csv.out
                                                      one run's batch transform per split: one
                                                      output per raw file, label first
    training-output/<run>/                            SageMaker training job outputs
    preprocessor/<generation>/model.tar.gz            one preprocessor generation's artifact (immutable)
    preprocessor/<generation>/complete.json           written once every location of it is trained
    preprocessor/newest.json                          names the newest complete generation
    preprocessor/serving.json                         names the generation the endpoint serves
    models/<generation>/<location>/<location>-<version>.tar.gz
                                                      a generation's multi-model prefix (endpoint)
    model-pointers/<generation>/<location>.json       "current version" pointer per location
    location-manifests/<name>.json                    user-supplied location lists (large runs)
    pipeline-runs/<run>/plan.json                     the run's per-location work items
    pipeline-runs/<run>/generation/                   the data-generation Map's results
    pipeline-runs/<run>/results/                      the training Map's per-location results
    pipeline-runs/<run>/summary.json                  succeeded/failed locations of the run

A *generation* is one fitted preprocessor and every model trained on its output; it is named after
the training job that fitted it (``pp-<run id>``, :func:`naming.validate_generation`). The endpoint
serves exactly one generation: its first container reads that generation's immutable artifact and
its MultiModel container the generation's own prefix ``models/<generation>/``, so a TargetModel
(``<location>/<location>-<version>.tar.gz``, relative to that prefix) can only ever load a model
trained on the preprocessor in front of it. A model of another generation is simply not found.

Raw data is grouped by run and split first, so one prefix (``raw-data/<run>/train/``) is exactly
the training rows of every location in a run: the preprocessor's ``train`` channel can never pick
up validation or test rows (a flaw of the original walkthrough, whose prefix matched two files).

The pointers live outside ``models/`` on purpose: everything under the multi-model prefix is a
loadable model name (a TargetModel), and a JSON pointer is not a model.
"""

from __future__ import annotations

import re
from typing import Final

from mme_shared.naming import validate_generation, validate_location_name, validate_run_id

RAW_DATA_PREFIX: Final = "raw-data/"
PREPROCESSED_DATA_PREFIX: Final = "preprocessed-data/"
TRAINING_OUTPUT_PREFIX: Final = "training-output/"
PREPROCESSOR_PREFIX: Final = "preprocessor/"
NEWEST_GENERATION_KEY: Final = "preprocessor/newest.json"
SERVING_GENERATION_KEY: Final = "preprocessor/serving.json"
MULTI_MODEL_PREFIX: Final = "models/"
MODEL_POINTERS_PREFIX: Final = "model-pointers/"
LOCATION_MANIFESTS_PREFIX: Final = "location-manifests/"
PIPELINE_RUNS_PREFIX: Final = "pipeline-runs/"

ALL_PREFIXES: Final = (
    RAW_DATA_PREFIX,
    PREPROCESSED_DATA_PREFIX,
    TRAINING_OUTPUT_PREFIX,
    PREPROCESSOR_PREFIX,
    MULTI_MODEL_PREFIX,
    MODEL_POINTERS_PREFIX,
    LOCATION_MANIFESTS_PREFIX,
    PIPELINE_RUNS_PREFIX,
)

SPLITS: Final = ("train", "validation", "test")
TRANSFORMED_SPLITS: Final = ("train", "validation")
"""The splits the training pipeline batch-transforms (the test split is kept raw for evaluation)."""
BATCH_TRANSFORM_OUTPUT_SUFFIX: Final = ".out"
"""SageMaker batch transform names each output object after its input object plus this suffix."""

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}")
_ID_RULE = "1 to 63 characters from A-Z, a-z, 0-9 and '-', starting with a letter or digit"


def _validate_id(kind: str, value: str) -> str:
    if not isinstance(value, str) or _ID_RE.fullmatch(value) is None:
        raise ValueError(f"{kind} {value!r} is not allowed: use {_ID_RULE}")
    return value


def _validate_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not allowed: use one of {', '.join(SPLITS)}")
    return split


def raw_data_split_prefix(run_id: str, split: str) -> str:
    """Folder holding one split of every location's generated data for one run."""
    return f"{RAW_DATA_PREFIX}{_validate_id('run id', run_id)}/{_validate_split(split)}/"


def raw_data_key(run_id: str, location: str, split: str) -> str:
    """Key of one location's generated CSV for one split of one run (no header, label last)."""
    return f"{raw_data_split_prefix(run_id, split)}{validate_location_name(location)}.csv"


def _validate_transformed_split(split: str) -> str:
    if split not in TRANSFORMED_SPLITS:
        raise ValueError(f"split {split!r} is not transformed: use {' or '.join(TRANSFORMED_SPLITS)}")
    return split


def preprocessed_split_prefix(run_id: str, split: str) -> str:
    """Output prefix of a run's one batch transform of ``split`` over every location's raw file.

    The job reads ``raw_data_split_prefix(run_id, split)`` and writes one object per input object
    here (:func:`preprocessed_output_key`).
    """
    return f"{PREPROCESSED_DATA_PREFIX}{_validate_id('run id', run_id)}/{_validate_transformed_split(split)}/"


def preprocessed_output_key(run_id: str, location: str, split: str) -> str:
    """One location's transformed rows (label first): ``<location>.csv.out`` for ``<location>.csv``.

    No other location's key starts with this one (a location name holds no '.'), so it can serve as the
    exact S3Prefix of that location's training channel.
    """
    raw_name = raw_data_key(run_id, location, split).rsplit("/", 1)[1]
    return f"{preprocessed_split_prefix(run_id, split)}{raw_name}{BATCH_TRANSFORM_OUTPUT_SUFFIX}"


def training_output_prefix(run_id: str) -> str:
    """Folder under which one run's SageMaker training jobs write their outputs."""
    return f"{TRAINING_OUTPUT_PREFIX}{_validate_id('run id', run_id)}/"


def preprocessor_artifact_key(generation: str) -> str:
    """The immutable preprocessor artifact of one generation (the endpoint's first container)."""
    return f"{PREPROCESSOR_PREFIX}{validate_generation(generation)}/model.tar.gz"


def generation_record_key(generation: str) -> str:
    """Written once, when every location of the generation has a promoted model."""
    return f"{PREPROCESSOR_PREFIX}{validate_generation(generation)}/complete.json"


def generation_models_prefix(generation: str) -> str:
    """A generation's multi-model prefix: the MultiModel container's ModelDataUrl when it is served."""
    return f"{MULTI_MODEL_PREFIX}{validate_generation(generation)}/"


def target_model_name(location: str, version: str) -> str:
    """The TargetModel of one model version: its key relative to its generation's multi-model prefix."""
    location = validate_location_name(location)
    return f"{location}/{location}-{_validate_id('model version', version)}.tar.gz"


def model_version_key(generation: str, location: str, version: str) -> str:
    """Full key of one immutable model version under its generation's multi-model prefix."""
    return generation_models_prefix(generation) + target_model_name(location, version)


def location_models_prefix(generation: str, location: str) -> str:
    """Folder holding every version of one location's model in one generation."""
    return f"{generation_models_prefix(generation)}{validate_location_name(location)}/"


def generation_pointers_prefix(generation: str) -> str:
    """Folder of one generation's per-location pointers."""
    return f"{MODEL_POINTERS_PREFIX}{validate_generation(generation)}/"


def current_pointer_key(generation: str, location: str) -> str:
    """Key of the small JSON document naming a location's current model version in a generation."""
    return f"{generation_pointers_prefix(generation)}{validate_location_name(location)}.json"


def s3_uri(bucket: str, key: str) -> str:
    """``s3://bucket/key``; the bucket may be a CDK token string at synth time."""
    return f"s3://{bucket}/{key}"


def run_prefix(run_id: str) -> str:
    """Folder of one training run's bookkeeping (plan, Map results, summary)."""
    return f"{PIPELINE_RUNS_PREFIX}{validate_run_id(run_id)}/"


def run_plan_key(run_id: str) -> str:
    """JSON array of the run's per-location work items, read by the training Map."""
    return f"{run_prefix(run_id)}plan.json"


def run_results_prefix(run_id: str) -> str:
    """Where the training Map's ResultWriter writes its manifest and result files."""
    return f"{run_prefix(run_id)}results/"


def run_generation_results_prefix(run_id: str) -> str:
    """Where the data-generation Map's ResultWriter writes (kept apart from the training results)."""
    return f"{run_prefix(run_id)}generation/"


def run_summary_key(run_id: str) -> str:
    """The run's summary: succeeded locations with their metric, failed ones with the reason."""
    return f"{run_prefix(run_id)}summary.json"


# --------------------------------------------------------------------------------------------------
# Parsing: each function is the inverse of a builder above, so a key is read the way it was written.
# A key the layout would not produce gives None (listing a prefix can meet stray objects).


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``; ValueError (one sentence) for anything else,
    including a prefix (a key ending in ``/``)."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise ValueError(f"{uri!r} is not an S3 object URI: use s3://BUCKET/KEY (one object, not a prefix)")
    return bucket, key


def key_in_bucket(uri: str, bucket: str, prefix: str = "") -> str | None:
    """The key of ``uri`` when it names an object of ``bucket`` under ``prefix``, else None."""
    try:
        uri_bucket, key = parse_s3_uri(uri)
    except ValueError:
        return None
    return key if uri_bucket == bucket and key.startswith(prefix) else None


def parse_model_version_key(generation: str, key: str) -> tuple[str, str] | None:
    """``models/<generation>/<location>/<location>-<version>.tar.gz`` -> ``(location, version)``."""
    relative = key.removeprefix(generation_models_prefix(generation))
    location, _, filename = relative.partition("/")
    stem, suffix = f"{location}-", ".tar.gz"
    if relative == key or not (filename.startswith(stem) and filename.endswith(suffix)):
        return None
    version = filename[len(stem) : -len(suffix)]
    try:
        return (location, version) if model_version_key(generation, location, version) == key else None
    except ValueError:
        return None


def parse_multi_model_key(key: str) -> tuple[str, str | None] | None:
    """A key under ``models/`` -> ``(generation, location)``; the location is None for an object
    directly in the generation's folder. None outside ``models/``. The parts are not validated
    (an inventory counts whatever is there)."""
    if not key.startswith(MULTI_MODEL_PREFIX):
        return None
    generation, _, rest = key.removeprefix(MULTI_MODEL_PREFIX).partition("/")
    location, slash, _ = rest.partition("/")
    return generation, (location if slash else None)


def parse_pointer_key(generation: str, key: str) -> str | None:
    """``model-pointers/<generation>/<location>.json`` -> the location (a valid name), else None."""
    relative = key.removeprefix(generation_pointers_prefix(generation))
    location = relative.removesuffix(".json")
    if relative == key or location == relative:
        return None
    try:
        return location if current_pointer_key(generation, location) == key else None
    except ValueError:
        return None


def parse_run_prefix(prefix: str) -> str | None:
    """``pipeline-runs/<run>/`` (a listing's common prefix) -> the run id (a valid one), else None."""
    run_id = prefix.removeprefix(PIPELINE_RUNS_PREFIX).removesuffix("/")
    try:
        return run_id if run_prefix(run_id) == prefix else None
    except ValueError:
        return None
