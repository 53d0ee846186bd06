"""Typed configuration of one deployment.

Every field is required here: the defaults live in ``cdk.json`` (context key ``mme``), in one
place, and a user's JSON file is merged over them before validation (see ``loader.py``). The
model is strict (``"5"`` is not an integer, ``1`` is not a boolean) and forbids unknown keys, so
a typo fails synth instead of being silently ignored.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mme_constructs import algorithms, image_table
from mme_constructs.algorithms import HyperparameterValue
from mme_shared.housing_data import split_sizes
from mme_shared.naming import (
    TENANT_NAME_RE,
    TENANT_NAME_RULE,
    location_collision_key,
    location_name_problem,
)
from project_config import instance_types

PREPROCESSED_FEATURE_COUNT = 10
"""6 standardised numeric columns + FRONT_PORCH and DECK one-hot encoded (2 categories each)."""

CLOUDWATCH_LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip

_INSTANCE_TYPE_RE = re.compile(r"ml\.[a-z][a-z0-9-]*\.[0-9]*x?large|ml\.[a-z][a-z0-9-]*\.(medium|small)")
_ACCOUNT_RE = re.compile(r"[0-9]{12}")
_REGION_RE = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]")
_PRINCIPAL_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/-]{1,512}")
_MODEL_PATTERN_RE = re.compile(r"[A-Za-z0-9_*?-][A-Za-z0-9_*?./-]{0,199}")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_EXTERNAL_ID_RE = re.compile(r"[A-Za-z0-9+=,.@:/-]{2,1224}")
_STACK_PREFIX_RE = re.compile(r"[A-Z][A-Za-z0-9]{0,23}")

PositiveInt = Annotated[int, Field(ge=1)]

MULTI_MODEL_CPU_FAMILIES = (
    "c4", "c5", "c5d", "c6i", "c7i", "m4", "m5", "m5d", "m6i", "m7i", "r5", "r5d", "r6i", "r7i", "t2",
)  # fmt: skip
"""CPU instance families that can host the scikit-learn and the built-in algorithms' CPU images of a
multi-model inference pipeline (GPU, Inferentia and Trainium families need other images), among
those SageMaker endpoints offer. The ``d`` families among them are still refused, for their local
NVMe storage (see ``instance_types``)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _instance_type(value: str) -> str:
    if _INSTANCE_TYPE_RE.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a SageMaker instance type such as 'ml.m4.xlarge'")
    return value


class StorageConfig(_Section):
    """The artifact bucket's data-protection settings."""

    removal_policy: Literal["retain", "destroy"]
    """``retain`` keeps the bucket and key when the stack is deleted; ``destroy`` deletes them
    (and auto-deletes every object) for throwaway environments."""
    noncurrent_version_expiration_days: Annotated[int, Field(ge=1, le=3650)]
    abort_incomplete_multipart_upload_days: Annotated[int, Field(ge=1, le=365)]
    access_log_expiration_days: Annotated[int, Field(ge=1, le=3650)]


class DataConfig(_Section):
    """The synthetic housing data: which locations, how many houses, how they are split."""

    locations: Annotated[list[str], Field(min_length=1, max_length=10_000)]
    houses_per_location: Annotated[int, Field(ge=20, le=1_000_000)]
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)]
    validation_fraction: Annotated[float, Field(gt=0.0, le=0.4)]
    test_fraction: Annotated[float, Field(ge=0.0, le=0.4)]

    @field_validator("locations")
    @classmethod
    def _locations_are_safe_and_unique(cls, locations: list[str]) -> list[str]:
        seen: dict[str, str] = {}
        for index, name in enumerate(locations):
            problem = location_name_problem(name)
            if problem is not None:
                raise ValueError(f"entry {index}: {problem}")
            key = location_collision_key(name)
            if key in seen:
                raise ValueError(
                    f"entry {index}: {name!r} duplicates {seen[key]!r} (location names must be "
                    "unique ignoring case and treating '_' and '-' as the same, because SageMaker "
                    "job names do)"
                )
            seen[key] = name
        return locations

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> DataConfig:
        if self.validation_fraction + self.test_fraction > 0.5:
            raise ValueError(
                "validation_fraction + test_fraction must be at most 0.5 so that at least half of "
                f"the rows train the model, got {self.validation_fraction + self.test_fraction:g}"
            )
        return self


class TrainingConfig(_Section):
    """The Step Functions training pipeline."""

    parallel_training_jobs: Annotated[int, Field(ge=1, le=100)]
    algorithm: str
    """The per-location built-in algorithm: a key of ``mme_constructs.algorithms.ALGORITHMS``."""
    preprocessor_instance_type: str
    transform_instance_type: str
    training_instance_type: str
    sklearn_framework_version: str
    algorithm_image_tag: str | None = None
    """The algorithm image's tag in the SageMaker region tables; null: the algorithm's default (a
    default here as for ``account``: the CDK CLI drops null context values)."""
    max_job_runtime_minutes: Annotated[int, Field(ge=5, le=7 * 24 * 60)]
    warm_pool_keep_alive_seconds: Annotated[int, Field(ge=0, le=3600)]
    """KeepAlivePeriodInSeconds of the per-location training jobs (0: no warm pool; SageMaker allows
    up to 3600): each of the Map's parallel slots reuses its instance for the next location's job.
    A warm pool is retained only within the account's warm pool quota (default 0), else the jobs
    simply start cold; a retained instance is billed until it is reused or the period ends."""
    execution_timeout_minutes: Annotated[int, Field(ge=10, le=7 * 24 * 60)]
    log_retention_days: int
    hyperparameters: dict[str, HyperparameterValue | None]
    """Settings of the selected algorithm over its defaults (``mme_constructs.algorithms``); the
    pipeline sets ``feature_dim`` and ``predictor_type`` itself."""

    @field_validator("preprocessor_instance_type", "transform_instance_type", "training_instance_type")
    @classmethod
    def _instance_types(cls, value: str, info: ValidationInfo) -> str:
        use = (
            instance_types.TRANSFORM_JOB
            if info.field_name == "transform_instance_type"
            else instance_types.TRAINING_JOB  # the preprocessor is fitted by a training job
        )
        problem = instance_types.instance_type_problem(_instance_type(value), use)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("sklearn_framework_version")
    @classmethod
    def _framework_version_available(cls, value: str) -> str:
        available = image_table.available_sklearn_versions()
        if value not in available:
            raise ValueError(
                f"{value!r} has no scikit-learn training and serving images in the SageMaker region "
                f"tables; available: {', '.join(available)}"
            )
        return value

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, value: str) -> str:
        algorithms.algorithm_named(value)
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _log_retention(cls, value: int) -> int:
        if value not in CLOUDWATCH_LOG_RETENTION_DAYS:
            allowed = ", ".join(map(str, CLOUDWATCH_LOG_RETENTION_DAYS))
            raise ValueError(f"must be one of CloudWatch's retention periods ({allowed}), got {value}")
        return value

    @model_validator(mode="after")
    def _image_tag_available(self) -> TrainingConfig:
        family = self.algorithm_spec.image_family
        available = image_table.available_algorithm_tags(family)
        if self.algorithm_image.tag not in available:
            raise ValueError(
                f"algorithm_image_tag {self.algorithm_image.tag!r} is not a {family} image tag with "
                "training and inference images in the SageMaker region tables; available: "
                f"{', '.join(available)}"
            )
        unserved = self.algorithm_spec.unserved_image_tags.get(self.algorithm_image.tag)
        if unserved is not None:
            raise ValueError(
                f"algorithm_image_tag {self.algorithm_image.tag!r} cannot serve {self.algorithm_spec.title} "
                f"from a multi-model endpoint: {unserved}"
            )
        return self

    @model_validator(mode="after")
    def _hyperparameters_valid(self) -> TrainingConfig:
        algorithm = self.algorithm_spec
        try:
            algorithm.hyperparameters.model_validate(self.hyperparameters)
        except ValidationError as error:
            first = error.errors()[0]
            name = ".".join(str(part) for part in first["loc"])
            settable = ", ".join(algorithm.hyperparameters.model_fields)
            if first["type"] == "extra_forbidden":
                fixed = algorithm.fixed_hyperparameters(PREPROCESSED_FEATURE_COUNT)
                why = (
                    f"is set by the pipeline ({name}={fixed[name]})"
                    if name in fixed
                    else f"is not a hyperparameter of {algorithm.title} this project sets"
                )
                raise ValueError(f"hyperparameters.{name} {why}; settable: {settable}") from None
            shown = json.dumps(first.get("input"), default=str)
            raise ValueError(
                f"hyperparameters.{name} of {algorithm.title}: {first['msg'][0].lower()}{first['msg'][1:]}, "
                f"got {shown}"
            ) from None
        return self

    @property
    def algorithm_spec(self) -> algorithms.Algorithm:
        """The selected :class:`~mme_constructs.algorithms.Algorithm`."""
        return algorithms.ALGORITHMS[self.algorithm]

    @property
    def algorithm_image(self) -> image_table.AlgorithmImage:
        algorithm = self.algorithm_spec
        return image_table.AlgorithmImage(
            family=algorithm.image_family, tag=self.algorithm_image_tag or algorithm.default_image_tag
        )

    @property
    def hyperparameter_settings(self) -> algorithms.Hyperparameters:
        """The validated settings, defaults filled in."""
        return self.algorithm_spec.hyperparameters.model_validate(self.hyperparameters)

    @property
    def training_hyperparameters(self) -> dict[str, str]:
        """CreateTrainingJob's HyperParameters of every location's job."""
        return self.algorithm_spec.training_hyperparameters(self.hyperparameters, PREPROCESSED_FEATURE_COUNT)

    @model_validator(mode="after")
    def _timeout_covers_a_job(self) -> TrainingConfig:
        if self.execution_timeout_minutes < self.max_job_runtime_minutes:
            raise ValueError(
                "execution_timeout_minutes must be at least max_job_runtime_minutes "
                f"({self.max_job_runtime_minutes}), got {self.execution_timeout_minutes}"
            )
        return self


class AutoscalingConfig(_Section):
    """Application Auto Scaling target tracking on SageMakerVariantInvocationsPerInstance."""

    enabled: bool
    min_capacity: Annotated[int, Field(ge=1, le=100)]
    max_capacity: Annotated[int, Field(ge=1, le=100)]
    target_invocations_per_instance: Annotated[int, Field(ge=1, le=100_000)]
    scale_in_cooldown_seconds: Annotated[int, Field(ge=0, le=3600)]
    scale_out_cooldown_seconds: Annotated[int, Field(ge=0, le=3600)]

    @model_validator(mode="after")
    def _bounds_ordered(self) -> AutoscalingConfig:
        if self.min_capacity > self.max_capacity:
            raise ValueError(
                f"min_capacity ({self.min_capacity}) must not exceed max_capacity ({self.max_capacity})"
            )
        return self


class VpcConfig(_Section):
    """Optional VPC placement of the endpoint's instances."""

    subnet_ids: Annotated[list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]],
                          Field(min_length=1, max_length=16)]  # fmt: skip
    security_group_ids: Annotated[list[Annotated[str, Field(pattern=r"^sg-[0-9a-f]{8,17}$")]],
                                  Field(min_length=1, max_length=5)]  # fmt: skip


ROLLBACK_ALARM_WINDOW_SECONDS = 900
"""How long the slower rollback alarm (model latency p99, 3 periods of 5 minutes) needs breaching
data before it can fire; a baking period shorter than this could never roll back a slow model."""
FLEET_START_SECONDS = 600
"""Time allowed for SageMaker to start the new fleet before the baking period begins."""


class EndpointConfig(_Section):
    """The multi-model inference-pipeline endpoint."""

    instance_type: str
    initial_instance_count: Annotated[int, Field(ge=1, le=100)]
    model_cache_enabled: bool
    network_isolation: bool
    container_log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"]
    vpc: VpcConfig | None = None
    autoscaling: AutoscalingConfig
    update_baking_period_seconds: Annotated[int, Field(ge=0, le=3600)]
    """TerminationWaitInSeconds: how long the old fleet stays up after the traffic shift while the
    rollback alarms watch the new one (SageMaker allows 0-3600). Default 20 minutes: the p99
    latency alarm needs 15 minutes of data, plus 5 for CloudWatch to deliver and evaluate it."""
    update_timeout_seconds: Annotated[int, Field(ge=600, le=28800)]
    """MaximumExecutionTimeoutInSeconds of an endpoint update (SageMaker allows 600-28800).
    Default 1 hour: about 10-15 minutes to start the new fleet, the 20-minute baking period, and
    margin; a deployment that takes longer is rolled back to the old fleet."""

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        use, families = instance_types.ENDPOINT, MULTI_MODEL_CPU_FAMILIES
        if _instance_type(value) not in use.api_types:
            raise ValueError(instance_types.instance_type_problem(value, use, families))
        if instance_types.instance_family(value) not in families:
            allowed = ", ".join(
                f"ml.{f}" for f in families if f not in instance_types.INSTANCE_STORAGE_FAMILIES
            )
            raise ValueError(
                f"{value!r} cannot host the pipeline's CPU containers in MultiModel mode; use a type "
                f"of one of these families: {allowed}"
            )
        problem = instance_types.instance_type_problem(value, use, families)
        if problem is not None:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _scaling_is_consistent(self) -> EndpointConfig:
        scaling = self.autoscaling
        if scaling.enabled and not (
            scaling.min_capacity <= self.initial_instance_count <= scaling.max_capacity
        ):
            raise ValueError(
                f"initial_instance_count ({self.initial_instance_count}) must lie between "
                f"autoscaling.min_capacity ({scaling.min_capacity}) and "
                f"autoscaling.max_capacity ({scaling.max_capacity})"
            )
        if scaling.enabled and self.instance_type.startswith("ml.t"):
            raise ValueError(
                f"burstable instance type {self.instance_type!r} cannot autoscale: choose an "
                "ml.m*/ml.c* type or set autoscaling.enabled to false"
            )
        return self

    @model_validator(mode="after")
    def _update_guardrails_are_consistent(self) -> EndpointConfig:
        baking, timeout = self.update_baking_period_seconds, self.update_timeout_seconds
        if baking < ROLLBACK_ALARM_WINDOW_SECONDS:
            raise ValueError(
                f"update_baking_period_seconds ({baking}) must be at least "
                f"{ROLLBACK_ALARM_WINDOW_SECONDS}: the model-latency rollback alarm needs "
                f"{ROLLBACK_ALARM_WINDOW_SECONDS // 60} minutes of data to fire while the old fleet "
                "can still take the traffic back"
            )
        if timeout < baking + FLEET_START_SECONDS:
            raise ValueError(
                f"update_timeout_seconds ({timeout}) must be at least update_baking_period_seconds "
                f"({baking}) + {FLEET_START_SECONDS}, the time SageMaker needs to start the new fleet "
                "before baking it"
            )
        return self


class TenantConfig(_Section):
    """One customer allowed to invoke only the models matching its patterns."""

    model_patterns: Annotated[list[str], Field(min_length=1, max_length=50)]
    trusted_principals: Annotated[list[str], Field(min_length=1, max_length=50)]
    external_id: str | None = None
    max_session_duration_hours: Annotated[int, Field(ge=1, le=12)]

    @field_validator("model_patterns")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        return [_model_pattern(p) for p in patterns]

    @field_validator("trusted_principals")
    @classmethod
    def _principals(cls, principals: list[str]) -> list[str]:
        return [_principal(p) for p in principals]

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: str | None) -> str | None:
        if value is not None and _EXTERNAL_ID_RE.fullmatch(value) is None:
            raise ValueError("must be 2 to 1224 characters from A-Z, a-z, 0-9 and +=,.@:/-")
        return value


def _model_pattern(pattern: str) -> str:
    if _MODEL_PATTERN_RE.fullmatch(pattern) is None or ".." in pattern:
        raise ValueError(
            f"model pattern {pattern!r} is not allowed: use up to 200 characters from A-Z, a-z, "
            "0-9, '_', '-', '.', '/', '*' and '?', not starting with '/' or '.', without '..'"
        )
    return pattern


def _principal(principal: str) -> str:
    if _ACCOUNT_RE.fullmatch(principal) is None and _PRINCIPAL_ARN_RE.fullmatch(principal) is None:
        raise ValueError(
            f"trusted principal {principal!r} must be a 12-digit account ID or an IAM role/user ARN "
            "such as 'arn:aws:iam::111122223333:role/analyst'"
        )
    return principal


ROLES_MODE_MAX_TENANTS = 2000
"""Spread over a fixed set of stacks (see stacks/tenant_access_stack.py) within CloudFormation's
per-stack limits of 500 resources and 200 outputs."""


class TenantsConfig(_Section):
    """Per-tenant access to models via the ``sagemaker:TargetModel`` condition key."""

    mode: Literal["roles", "abac"]
    shared_model_patterns: Annotated[list[str], Field(max_length=50)]
    abac_trusted_principals: Annotated[list[str], Field(max_length=50)]
    tenants: dict[str, TenantConfig]

    @field_validator("shared_model_patterns")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        return [_model_pattern(p) for p in patterns]

    @field_validator("abac_trusted_principals")
    @classmethod
    def _principals(cls, principals: list[str]) -> list[str]:
        return [_principal(p) for p in principals]

    @field_validator("tenants")
    @classmethod
    def _tenant_names(cls, tenants: dict[str, TenantConfig]) -> dict[str, TenantConfig]:
        seen: dict[str, str] = {}
        for name in tenants:
            if TENANT_NAME_RE.fullmatch(name) is None:
                raise ValueError(f"tenant name {name!r} is not allowed: use {TENANT_NAME_RULE}")
            key = name.replace("_", "").replace("-", "")
            if key in seen:
                raise ValueError(
                    f"tenant name {name!r} duplicates {seen[key]!r} (names must differ in more than "
                    "'_' and '-', because they name stack outputs)"
                )
            seen[key] = name
        return tenants

    @model_validator(mode="after")
    def _roles_mode_scales(self) -> TenantsConfig:
        if self.mode == "roles" and len(self.tenants) > ROLES_MODE_MAX_TENANTS:
            raise ValueError(
                f"mode 'roles' supports at most {ROLES_MODE_MAX_TENANTS} tenants (one IAM role each), got "
                f"{len(self.tenants)}; use mode 'abac' (one role, tenant session tags) for more"
            )
        return self

    @model_validator(mode="after")
    def _abac_has_principals(self) -> TenantsConfig:
        if self.mode == "abac" and not self.abac_trusted_principals:
            raise ValueError(
                "mode 'abac' needs at least one entry in abac_trusted_principals (who may assume "
                "the shared role with a tenant session tag)"
            )
        return self


class AlarmsConfig(_Section):
    """Alarm thresholds and who is notified."""

    email_subscriptions: Annotated[list[str], Field(max_length=20)]
    invocation_5xx_errors_per_5_minutes: Annotated[int, Field(ge=1)]
    invocation_4xx_errors_per_5_minutes: Annotated[int, Field(ge=1)]
    model_cache_hit_ratio_min: Annotated[float, Field(ge=0.0, le=1.0)]
    cache_alarm_min_invocations_per_5_minutes: Annotated[int, Field(ge=1)]
    model_unloads_per_5_minutes: Annotated[int, Field(ge=1)]
    memory_utilization_max_percent: Annotated[float, Field(gt=0.0, le=100.0)]
    disk_utilization_max_percent: Annotated[float, Field(gt=0.0, le=100.0)]
    model_latency_p99_max_ms: Annotated[int, Field(ge=1, le=600_000)]

    @field_validator("email_subscriptions")
    @classmethod
    def _emails(cls, emails: list[str]) -> list[str]:
        for email in emails:
            if _EMAIL_RE.fullmatch(email) is None:
                raise ValueError(f"{email!r} is not an e-mail address")
        return emails


class ProjectConfig(_Section):
    """One deployment of the multi-model endpoint project."""

    stack_prefix: str
    """Prefix of every stack name, e.g. ``Mme`` gives ``MmeStorage``."""
    account: str | None = None
    storage: StorageConfig
    data: DataConfig
    training: TrainingConfig
    region: str | None = None
    """Validated after ``training``: the region must have that framework version's images."""
    endpoint: EndpointConfig
    tenants: TenantsConfig
    alarms: AlarmsConfig

    @model_validator(mode="after")
    def _hyperparameters_fit_the_data(self) -> ProjectConfig:
        data = self.data
        train_rows = split_sizes(data.houses_per_location, data.validation_fraction, data.test_fraction)[0]
        problem = self.training.hyperparameter_settings.train_rows_problem(train_rows)
        if problem is not None:
            raise ValueError(
                f"training.hyperparameters of {self.training.algorithm_spec.title}: {problem} "
                "(data.houses_per_location minus the validation and test fractions); lower it or "
                "generate more houses"
            )
        return self

    @field_validator("stack_prefix")
    @classmethod
    def _stack_prefix(cls, value: str) -> str:
        if _STACK_PREFIX_RE.fullmatch(value) is None:
            raise ValueError(
                f"{value!r} is not allowed: use 1 to 24 letters and digits starting with an upper-case letter"
            )
        return value

    @field_validator("account")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        if value is not None and _ACCOUNT_RE.fullmatch(value) is None:
            raise ValueError(f"must be a 12-digit AWS account ID or null, got {value!r}")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if _REGION_RE.fullmatch(value) is None:
            raise ValueError(f"must be an AWS region such as 'us-east-1' or null, got {value!r}")
        training = info.data.get("training")
        if training is None:  # training failed validation; its own error is reported
            return value
        version, algorithm = training.sklearn_framework_version, training.algorithm_image
        supported = image_table.regions_with_all_images(
            sklearn_framework_version=version, algorithm=algorithm
        )
        if value not in supported:
            raise ValueError(
                f"{value!r} has no scikit-learn {version} and {algorithm} images in the SageMaker "
                f"region tables; supported regions: {', '.join(supported)}"
            )
        return value
