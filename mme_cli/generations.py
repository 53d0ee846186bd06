"""Which preprocessor generation a command acts on, and what the endpoint actually serves.

A generation (``pp-<run id>``, see :mod:`mme_shared.s3_layout`) is one fitted preprocessor plus the
models trained on its output. Every command that reads or changes models acts on exactly one:

1. ``--generation GEN`` when the command has that option and it is given;
2. otherwise the generation the endpoint serves (``preprocessor/serving.json``, written by the
   endpoint stack after CloudFormation updated the endpoint to it);
3. otherwise, before anything was ever served, the newest complete generation
   (``preprocessor/newest.json``), so models can be inspected between the first training run and
   the first endpoint deploy.

With neither record there is nothing to act on, and the error says to train (or deploy) first.
A generation becomes served only by deploying the endpoint stack (``make deploy``, or
``make deploy GENERATION=pp-x`` to pin or roll back one); nothing here changes which one is served.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from mme_cli.deployment import CliError
from mme_shared import generation as records
from mme_shared import s3_layout
from mme_shared.generation import CompleteGeneration, GenerationRecordError, GenerationRef
from mme_shared.naming import generation_problem

GENERATION_ENV: Final = "MME_PREPROCESSOR_GENERATION"
"""Environment variable naming the generation on the endpoint model's first (preprocessor) container."""

NOTHING_YET: Final = (
    "No preprocessor generation is served or complete yet (neither preprocessor/serving.json nor "
    "preprocessor/newest.json exists): run `mme train --wait` to train the first one, then "
    "`make deploy` to serve it."
)

GENERATION_OPTION_HELP: Final = (
    "Act on this preprocessor generation (pp-<run id>) instead of the one the endpoint serves "
    "(or, before anything is served, the newest complete one)."
)

Source = Literal["option", "serving", "newest"]


@dataclass(frozen=True)
class Chosen:
    """The generation a command acts on, why, and what is served (for messages)."""

    generation: str
    source: Source
    serving: GenerationRef | None
    newest: GenerationRef | None

    @property
    def is_served(self) -> bool:
        return self.serving is not None and self.serving.generation == self.generation

    @property
    def models_prefix(self) -> str:
        return s3_layout.generation_models_prefix(self.generation)

    def describe(self) -> str:
        """``generation pp-x (served)``, ``(newest complete, not served yet)`` or ``(not served)``."""
        if self.is_served:
            return f"generation {self.generation} (served)"
        if self.serving is None:
            return f"generation {self.generation} (newest complete; nothing is served yet)"
        return f"generation {self.generation} (not served; the endpoint serves {self.serving.generation})"


def _record_error(bucket: str, error: GenerationRecordError) -> CliError:
    return CliError(f"A generation record in s3://{bucket}/preprocessor/ is not valid: {error}.")


def read_ref(s3: Any, bucket: str, key: str) -> GenerationRef | None:
    """``serving.json`` or ``newest.json``; an invalid one is a CliError naming it."""
    try:
        return records.read_ref(s3, bucket, key)
    except GenerationRecordError as error:
        raise _record_error(bucket, error) from None


def read_complete(s3: Any, bucket: str, generation: str) -> CompleteGeneration | None:
    try:
        return records.read_complete(s3, bucket, generation)
    except GenerationRecordError as error:
        raise _record_error(bucket, error) from None


def validate_option(value: str) -> str:
    """``--generation``'s value if it is a generation id, else a one-sentence CliError."""
    problem = generation_problem(value)
    if problem is not None:
        raise CliError(f"Invalid --generation: {problem}.")
    return value


def _common_prefixes(s3: Any, bucket: str, prefix: str) -> list[str]:
    names: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            names.append(str(common["Prefix"])[len(prefix) :].rstrip("/"))
    return names


def known_generations(s3: Any, bucket: str) -> list[str]:
    """Every generation that has a preprocessor folder or a models folder, sorted by name."""
    found = set(_common_prefixes(s3, bucket, s3_layout.PREPROCESSOR_PREFIX))
    found |= set(_common_prefixes(s3, bucket, s3_layout.MULTI_MODEL_PREFIX))
    return sorted(name for name in found if generation_problem(name) is None)


def choose(s3: Any, bucket: str, option: str | None = None) -> Chosen:
    """The generation a command acts on (module docstring); CliError when there is none."""
    serving = read_ref(s3, bucket, s3_layout.SERVING_GENERATION_KEY)
    newest = read_ref(s3, bucket, s3_layout.NEWEST_GENERATION_KEY)
    if option is not None:
        generation = validate_option(option)
        known = known_generations(s3, bucket)
        if generation not in known:
            raise CliError(
                f"Generation {generation} does not exist in s3://{bucket}/ (no preprocessor/{generation}/ "
                f"or models/{generation}/); the generations are: {', '.join(known) or 'none'}."
            )
        return Chosen(generation, "option", serving, newest)
    if serving is not None:
        return Chosen(serving.generation, "serving", serving, newest)
    if newest is not None:
        return Chosen(newest.generation, "newest", serving, newest)
    raise CliError(NOTHING_YET)


def served_generation(s3: Any, bucket: str) -> Chosen:
    """The generation clients invoke: the served one, else the newest complete (commands without
    ``--generation``: predict, the cache experiment, the access check)."""
    return choose(s3, bucket, None)


# --------------------------------------------------------------------------------------------------
# What the endpoint actually serves (DescribeEndpoint -> EndpointConfig -> DescribeModel)


@dataclass(frozen=True)
class ServedModel:
    """One SageMaker Model behind the endpoint, as its containers say."""

    model_name: str
    generation: str | None
    """``MME_PREPROCESSOR_GENERATION`` of its first container (None when unset)."""
    preprocessor_url: str | None
    """The first container's ModelDataUrl."""
    models_url: str | None
    """The MultiModel container's ModelDataUrl (the prefix TargetModels are relative to)."""

    def problems(self, bucket: str) -> list[str]:
        """How the model contradicts itself (its env var versus its ModelDataUrls)."""
        found: list[str] = []
        if self.generation is None:
            return [f"the endpoint's model {self.model_name} has no {GENERATION_ENV} on its first container"]
        expected_models = s3_layout.s3_uri(bucket, s3_layout.generation_models_prefix(self.generation))
        if self.models_url != expected_models:
            found.append(
                f"the endpoint's model {self.model_name} says generation {self.generation} but its "
                f"MultiModel container reads {self.models_url or 'nothing'}, not {expected_models}"
            )
        expected_preprocessor = s3_layout.s3_uri(bucket, s3_layout.preprocessor_artifact_key(self.generation))
        if self.preprocessor_url != expected_preprocessor:
            found.append(
                f"the endpoint's model {self.model_name} says generation {self.generation} but its "
                f"preprocessor container reads {self.preprocessor_url or 'nothing'}, "
                f"not {expected_preprocessor}"
            )
        return found


@dataclass(frozen=True)
class EndpointView:
    """The endpoint's status and the models of its variants."""

    name: str
    status: str
    instances: int
    variants: int
    models: Sequence[ServedModel] = field(default_factory=list)

    @property
    def generations(self) -> list[str]:
        return sorted({model.generation for model in self.models if model.generation is not None})


def _served_model(sagemaker: Any, model_name: str) -> ServedModel:
    model = sagemaker.describe_model(ModelName=model_name)
    containers: list[Mapping[str, Any]] = list(model.get("Containers") or [])
    if not containers and model.get("PrimaryContainer"):
        containers = [model["PrimaryContainer"]]
    first = containers[0] if containers else {}
    multi = next((c for c in containers if c.get("Mode") == "MultiModel"), None)
    generation = (first.get("Environment") or {}).get(GENERATION_ENV)
    return ServedModel(
        model_name=model_name,
        generation=str(generation) if generation else None,
        preprocessor_url=str(first["ModelDataUrl"]) if first.get("ModelDataUrl") else None,
        models_url=None if multi is None or not multi.get("ModelDataUrl") else str(multi["ModelDataUrl"]),
    )


def endpoint_and_config(sagemaker: Any, endpoint_name: str) -> tuple[Any, Any] | None:
    """DescribeEndpoint and DescribeEndpointConfig of its current config; None when SageMaker has
    no such endpoint (it answers ValidationException "Could not find endpoint ...")."""
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if "Could not find" in str(error):
            return None
        raise
    return endpoint, sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])


def describe_endpoint(sagemaker: Any, endpoint_name: str) -> EndpointView | None:
    """The endpoint and what its models serve; None when SageMaker has no such endpoint."""
    found = endpoint_and_config(sagemaker, endpoint_name)
    if found is None:
        return None
    endpoint, config = found
    variants = endpoint.get("ProductionVariants", [])
    status = str(endpoint["EndpointStatus"])
    if endpoint.get("FailureReason"):
        status += f" ({endpoint['FailureReason']})"
    names = sorted({str(v["ModelName"]) for v in config.get("ProductionVariants", []) if v.get("ModelName")})
    return EndpointView(
        name=endpoint_name,
        status=status,
        instances=sum(int(variant.get("CurrentInstanceCount", 0)) for variant in variants),
        variants=len(variants),
        models=[_served_model(sagemaker, name) for name in names],
    )
