"""The per-location built-in algorithms, as data: everything that differs between them, in one place.

AWS serves four built-in algorithms from multi-model endpoints: linear learner, XGBoost, k-NN and
Random Cut Forest. One deployment trains and serves one of them (``training.algorithm``): an
inference pipeline holds a single ``MultiModel`` container. Each :class:`Algorithm` says

- which image: its family in the SageMaker region tables and its default tag;
- its hyperparameters: a strict model of what a user may set, with defaults, plus the ones the
  pipeline fixes (``feature_dim`` from the preprocessor, ``predictor_type``);
- its training channels: their SageMaker names, which preprocessed split feeds each, and their
  content type (label first, or no label);
- what the preprocessor's training transforms must emit for it (label first, or features only);
- the job-name step of its training jobs (``<step>-<location>-<run>``, granted in IAM as ``<step>-*``);
- its response format: the Accept header a client sends and how to read the answer;
- the file its ``model.tar.gz`` holds.

Nothing here imports aws_cdk, so the config model, the CLI and the image-table script read the same
descriptions. Adding an algorithm is an entry in :data:`ALGORITHMS` (its family's table is picked up
by ``scripts/refresh_image_uris.py``), its cases in ``tests/test_algorithms.py`` (most tests are
parametrized over :data:`ALGORITHMS`) and its row in the README.

Sources (AWS documentation): "Supported algorithms, frameworks, and instances for multi-model
endpoints"; the hyperparameter, input/output and inference-format pages of each algorithm (linked
from the README's "Algorithms" section).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

Split = Literal["train", "validation"]
PreprocessorOutput = Literal["label-first", "features-only"]
"""What the preprocessor's training transforms emit: the label then the features, or features only."""

HyperparameterValue = int | float | str | bool


class Hyperparameters(BaseModel):
    """What a user may set for one algorithm; unknown names and wrong types fail validation."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def as_strings(self) -> dict[str, str]:
        """SageMaker's form: every value a string; booleans lower case; unset optional ones left out."""
        return {
            name: (str(value).lower() if isinstance(value, bool) else str(value))
            for name, value in self.model_dump().items()
            if value is not None
        }

    def train_rows_problem(self, rows: int) -> str | None:
        """Why these settings cannot train on ``rows`` houses per location, or None when they can."""
        return None


class LinearLearnerHyperparameters(Hyperparameters):
    """Linear learner as a regressor (``predictor_type`` and ``feature_dim`` are fixed)."""

    mini_batch_size: Annotated[int, Field(ge=1, le=100_000)] = 100
    epochs: Annotated[int, Field(ge=1, le=1000)] = 10
    num_models: Annotated[int, Field(ge=1, le=32)] = 32
    loss: Literal["auto", "squared_loss", "absolute_loss", "eps_insensitive_squared_loss",
                  "eps_insensitive_absolute_loss", "quantile_loss",
                  "huber_loss"] = "absolute_loss"  # fmt: skip


class XGBoostHyperparameters(Hyperparameters):
    """XGBoost as a regressor on label-first CSV."""

    num_round: Annotated[int, Field(ge=1, le=10_000)] = 100
    objective: Literal["reg:squarederror", "reg:pseudohubererror"] = "reg:squarederror"
    eta: Annotated[float, Field(ge=0.0, le=1.0)] = 0.2
    max_depth: Annotated[int, Field(ge=0, le=30)] = 5
    min_child_weight: Annotated[float, Field(ge=0.0)] = 1.0
    subsample: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    gamma: Annotated[float, Field(ge=0.0)] = 0.0
    eval_metric: Literal["rmse", "mae"] = "rmse"
    early_stopping_rounds: Annotated[int, Field(ge=1, le=10_000)] | None = None
    """Stop when the validation metric has not improved for this many rounds (unset: never)."""


class KnnHyperparameters(Hyperparameters):
    """k-NN as a regressor: the prediction is the mean label of the k nearest training houses."""

    k: Annotated[int, Field(ge=1, le=1024)] = 10
    sample_size: Annotated[int, Field(ge=1, le=1_000_000)] = 500
    """Training houses kept in the index; at most the houses a location trains on (checked with
    ``data`` in the config)."""
    index_type: Literal["faiss.Flat", "faiss.IVFFlat"] = "faiss.Flat"

    def train_rows_problem(self, rows: int) -> str | None:
        if self.sample_size > rows:
            return f"sample_size ({self.sample_size}) is more than the {rows} houses a location trains on"
        if self.k > min(self.sample_size, rows):
            return f"k ({self.k}) is more than the {min(self.sample_size, rows)} houses the index keeps"
        return None


class RandomCutForestHyperparameters(Hyperparameters):
    """Random Cut Forest: an anomaly score per house, trained without the price."""

    num_trees: Annotated[int, Field(ge=50, le=1000)] = 100
    num_samples_per_tree: Annotated[int, Field(ge=1, le=2048)] = 256


class ResponseUnreadable(ValueError):  # noqa: N818 (says what happened, like the CLI's errors)
    """A response body is not in the algorithm's format; ``str()`` says what was expected."""


@dataclass(frozen=True)
class ResponseFormat:
    """How a client asks an algorithm for its answer and reads one number per row from it."""

    accept: str
    """The Accept header sent with InvokeEndpoint (it reaches the last container of the pipeline)."""
    shape: str
    """The body, for messages and the README."""
    parse: Callable[[bytes], list[float]]

    def values(self, body: bytes) -> list[float]:
        """One number per request row; :class:`ResponseUnreadable` naming :attr:`shape` otherwise."""
        try:
            return self.parse(body)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise ResponseUnreadable(f"expected {self.shape}") from None


def _json_records(list_key: str, value_key: str) -> Callable[[bytes], list[float]]:
    def parse(body: bytes) -> list[float]:
        answer = json.loads(body)
        return [float(record[value_key]) for record in answer[list_key]]

    return parse


def _csv_values(body: bytes) -> list[float]:
    """Numbers separated by commas or line breaks (one per row)."""
    text = body.decode("utf-8").strip()
    if not text:
        raise ValueError("empty body")
    return [float(cell) for line in text.splitlines() for cell in line.split(",")]


@dataclass(frozen=True)
class Channel:
    """One training channel: its SageMaker name and the preprocessed split that feeds it."""

    name: str
    split: Split
    sharded: bool = False
    """S3DataDistributionType ShardedByS3Key instead of FullyReplicated (the same bytes on one
    instance; Random Cut Forest accepts only ShardedByS3Key on its train channel)."""


@dataclass(frozen=True)
class Algorithm:
    """One built-in algorithm trained per location and served in MultiModel mode."""

    name: str
    """The value of ``training.algorithm``."""
    title: str
    """How it is called in messages ("linear learner")."""
    image_family: str
    """Its table in sagemaker-core's ``image_uri_config`` (``<family>.json``) and the image table."""
    default_image_tag: str
    """Used when ``training.algorithm_image_tag`` is null."""
    job_step: str
    """Two letters starting its training job names."""
    hyperparameters: type[Hyperparameters]
    fixed_hyperparameters: Callable[[int], Mapping[str, str]]
    """The pipeline's own settings, from the preprocessor's feature count; users cannot set these."""
    channels: tuple[Channel, ...]
    content_type: str
    """ContentType of every channel: ``text/csv`` with the label first, or ``label_size=0``."""
    preprocessor_output: PreprocessorOutput
    response: ResponseFormat
    prediction: Literal["price", "anomaly score"]
    artifact_member: str
    """The one file the algorithm's ``model.tar.gz`` holds."""
    unserved_image_tags: Mapping[str, str] = field(default_factory=dict)
    """Tags in the region tables that cannot serve from a multi-model endpoint, with the reason."""

    def training_hyperparameters(self, overrides: Mapping[str, object], feature_count: int) -> dict[str, str]:
        """What CreateTrainingJob gets: the validated settings (defaults filled in) plus the fixed ones."""
        return {
            **self.hyperparameters.model_validate(overrides).as_strings(),
            **self.fixed_hyperparameters(feature_count),
        }

    def channel(self, split: Split) -> Channel | None:
        return next((channel for channel in self.channels if channel.split == split), None)


def _features(feature_count: int) -> dict[str, str]:
    return {"feature_dim": str(feature_count)}


def _regressor(feature_count: int) -> dict[str, str]:
    return {**_features(feature_count), "predictor_type": "regressor"}


def _no_fixed(_: int) -> dict[str, str]:
    return {}


_TRAIN_AND_VALIDATION: Final = (Channel("train", "train"), Channel("validation", "validation"))

ALGORITHMS: Final[Mapping[str, Algorithm]] = {
    algorithm.name: algorithm
    for algorithm in (
        Algorithm(
            name="linear-learner",
            title="linear learner",
            image_family="linear-learner",
            default_image_tag="1",
            job_step="ll",
            hyperparameters=LinearLearnerHyperparameters,
            fixed_hyperparameters=_regressor,
            channels=_TRAIN_AND_VALIDATION,
            content_type="text/csv;label_size=1",
            preprocessor_output="label-first",
            response=ResponseFormat(
                accept="application/json",
                shape='{"predictions": [{"score": <price>}, ...]}',
                parse=_json_records("predictions", "score"),
            ),
            prediction="price",
            artifact_member="model_algo-1",
        ),
        Algorithm(
            name="xgboost",
            title="XGBoost",
            image_family="xgboost",
            default_image_tag="1.7-1",
            job_step="xg",
            hyperparameters=XGBoostHyperparameters,
            fixed_hyperparameters=_no_fixed,
            channels=_TRAIN_AND_VALIDATION,
            # XGBoost reads the first column as the label; it refuses a label_size other than 1.
            content_type="text/csv",
            preprocessor_output="label-first",
            # In MultiModel mode the container answers Accept text/csv (exactly) with one line of
            # comma-separated numbers, and application/json with a bare array (not the
            # {"predictions": ...} of its single-model mode).
            response=ResponseFormat(
                accept="text/csv",
                shape="one number per row, separated by commas or line breaks",
                parse=_csv_values,
            ),
            prediction="price",
            artifact_member="xgboost-model",
            unserved_image_tags={
                "1": "it is the legacy XGBoost 0.72 image, which has no multi-model server",
                "0.90-1": "multi-model serving arrived in the container with 0.90-2",
            },
        ),
        Algorithm(
            name="knn",
            title="k-NN",
            image_family="knn",
            default_image_tag="1",
            job_step="kn",
            hyperparameters=KnnHyperparameters,
            fixed_hyperparameters=_regressor,
            # k-NN has no validation channel; its held-out channel is "test" (metric test:mse).
            channels=(Channel("train", "train"), Channel("test", "validation")),
            content_type="text/csv;label_size=1",
            preprocessor_output="label-first",
            response=ResponseFormat(
                accept="application/json",
                shape='{"predictions": [{"predicted_label": <price>}, ...]}',
                parse=_json_records("predictions", "predicted_label"),
            ),
            prediction="price",
            artifact_member="model_algo-1",
        ),
        Algorithm(
            name="randomcutforest",
            title="Random Cut Forest",
            image_family="randomcutforest",
            default_image_tag="1",
            job_step="rc",
            hyperparameters=RandomCutForestHyperparameters,
            fixed_hyperparameters=_features,
            # Its optional test channel wants anomaly labels, which house prices are not; its train
            # channel must be ShardedByS3Key.
            channels=(Channel("train", "train", sharded=True),),
            content_type="text/csv;label_size=0",
            preprocessor_output="features-only",
            response=ResponseFormat(
                accept="application/json",
                shape='{"scores": [{"score": <anomaly score>}, ...]}',
                parse=_json_records("scores", "score"),
            ),
            prediction="anomaly score",
            artifact_member="model_algo-1",
        ),
    )
}

JOB_STEPS: Final = tuple(algorithm.job_step for algorithm in ALGORITHMS.values())
"""Every algorithm's training-job step (for names that must not collide with any of them)."""


def title_of(name: str) -> str:
    """How messages call the algorithm ``name`` (a generation's record may name one this version
    of the project does not know: then the name itself)."""
    return ALGORITHMS[name].title if name in ALGORITHMS else name


def algorithm_named(name: str) -> Algorithm:
    """The algorithm ``training.algorithm`` names, or ValueError listing the ones there are."""
    if name not in ALGORITHMS:
        raise ValueError(f"must be one of {', '.join(ALGORITHMS)}, got {name!r}")
    return ALGORITHMS[name]
