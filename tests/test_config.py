"""The config model: defaults reproduce the walkthrough; overrides merge; bad input is one clear sentence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from project_config import ConfigError, load_config, load_default_config
from project_config.loader import deep_merge, default_context
from tests.conftest import REPO_ROOT

WALKTHROUGH_LOCATIONS = [
    "NewYork_NY", "LosAngeles_CA", "Chicago_IL", "Houston_TX", "Dallas_TX", "Phoenix_AZ",
    "Philadelphia_PA", "SanAntonio_TX", "SanDiego_CA", "SanFrancisco_CA",
]  # fmt: skip


def test_defaults_reproduce_the_walkthrough() -> None:
    config = load_default_config()
    assert config.data.locations == WALKTHROUGH_LOCATIONS
    assert config.data.houses_per_location == 1000
    assert config.training.parallel_training_jobs == 4
    assert config.training.training_instance_type == "ml.c4.xlarge"
    assert config.training.sklearn_framework_version == "1.9-0"  # newest with images in every region
    assert config.training.algorithm == "linear-learner"
    assert config.training.hyperparameters == {}
    assert config.training.training_hyperparameters == {
        "predictor_type": "regressor",
        "feature_dim": "10",
        "mini_batch_size": "100",
        "epochs": "10",
        "num_models": "32",
        "loss": "absolute_loss",
    }
    assert config.endpoint.instance_type == "ml.m4.xlarge"
    assert config.endpoint.initial_instance_count == 1
    assert config.endpoint.update_baking_period_seconds == 1200
    assert config.endpoint.update_timeout_seconds == 3600
    assert config.storage.removal_policy == "retain"
    assert config.tenants.mode == "roles"
    assert (config.account, config.region) == (None, None)


def test_override_file_merges_over_defaults(write_json: Callable[..., str]) -> None:
    path = write_json(
        {
            "region": "eu-central-1",
            "data": {"locations": ["Berlin_BE", "Munich_BY"]},
            "endpoint": {"autoscaling": {"max_capacity": 8}},
            "tenants": {
                "tenants": {
                    "company_a": {
                        "model_patterns": ["company_a/*"],
                        "trusted_principals": ["arn:aws:iam::111122223333:role/analyst"],
                        "max_session_duration_hours": 1,
                    }
                }
            },
        }
    )
    config = load_default_config(path)
    assert config.region == "eu-central-1"
    assert config.data.locations == ["Berlin_BE", "Munich_BY"]  # lists replace
    assert config.data.houses_per_location == 1000  # untouched siblings keep their defaults
    assert config.endpoint.autoscaling.max_capacity == 8
    assert config.endpoint.autoscaling.min_capacity == 1
    assert config.tenants.tenants["company_a"].external_id is None


def test_deep_merge_merges_objects_and_replaces_everything_else() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "d": None}) == {"a": {"b": 1, "c": [3]}, "d": None}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # inputs are not mutated


def _tenant(**changes: Any) -> dict[str, Any]:
    tenant: dict[str, Any] = {
        "model_patterns": ["company_a/*"],
        "trusted_principals": ["111122223333"],
        "max_session_duration_hours": 1,
    }
    tenant.update(changes)
    return tenant


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    (
        "unknown top-level key",
        {"endpoints": {}},
        "config key 'endpoints' is not a known setting; allowed keys: account, alarms, data, "
        "endpoint, region, stack_prefix, storage, tenants, training",
    ),
    (
        "unknown nested key (camelCase typo)",
        {"endpoint": {"instanceType": "ml.m5.xlarge"}},
        "config key 'endpoint.instanceType' is not a known setting; allowed keys under 'endpoint': "
        "autoscaling, container_log_level, initial_instance_count, instance_type, model_cache_enabled, "
        "network_isolation, update_baking_period_seconds, update_timeout_seconds, vpc",
    ),
    (
        "number given as a string",
        {"data": {"houses_per_location": "1000"}},
        "config key 'data.houses_per_location': input should be a valid integer, got \"1000\"",
    ),
    (
        "fractional number for an integer",
        {"data": {"houses_per_location": 1.5}},
        "config key 'data.houses_per_location': input should be a valid integer, got 1.5",
    ),
    (
        "number out of range",
        {"training": {"parallel_training_jobs": 0}},
        "config key 'training.parallel_training_jobs': input should be greater than or equal to 1, got 0",
    ),
    (
        "integer for a boolean",
        {"endpoint": {"model_cache_enabled": 1}},
        "config key 'endpoint.model_cache_enabled': input should be a valid boolean, got 1",
    ),
    (
        "location containing a slash",
        {"data": {"locations": ["NewYork_NY", "Los/Angeles"]}},
        "config key 'data.locations' entry 1: 'Los/Angeles' is not allowed: use 1 to 32 characters "
        "from A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit",
    ),
    (
        "location with a path traversal",
        {"data": {"locations": ["..", "Chicago_IL"]}},
        "config key 'data.locations' entry 0: '..' is not allowed: use 1 to 32 characters from A-Z, "
        "a-z, 0-9, '_' and '-', starting with a letter or digit",
    ),
    (
        "location with a dot",
        {"data": {"locations": ["St.Louis_MO"]}},
        "config key 'data.locations' entry 0: 'St.Louis_MO' is not allowed",
    ),
    (
        "location too long",
        {"data": {"locations": ["A" * 33]}},
        f"config key 'data.locations' entry 0: '{'A' * 33}' is not allowed: use 1 to 32 characters",
    ),
    (
        "empty location name",
        {"data": {"locations": [""]}},
        "config key 'data.locations' entry 0: '' is not allowed",
    ),
    (
        "duplicate location",
        {"data": {"locations": ["Chicago_IL", "Chicago_IL"]}},
        "config key 'data.locations' entry 1: 'Chicago_IL' duplicates 'Chicago_IL'",
    ),
    (
        "locations equal ignoring case and '_' vs '-'",
        {"data": {"locations": ["NewYork_NY", "newyork-ny"]}},
        "config key 'data.locations' entry 1: 'newyork-ny' duplicates 'NewYork_NY' (location names "
        "must be unique ignoring case and treating '_' and '-' as the same, because SageMaker job "
        "names do)",
    ),
    (
        "no locations",
        {"data": {"locations": []}},
        "config key 'data.locations': list should have at least 1 item after validation, not 0, got []",
    ),
    (
        "locations as a string, not a list",
        {"data": {"locations": "NewYork_NY"}},
        "config key 'data.locations': input should be a valid list, got \"NewYork_NY\"",
    ),
    (
        "feature_dim, which the pipeline sets from the preprocessor",
        {"training": {"hyperparameters": {"feature_dim": 11}}},
        "config key 'training' hyperparameters.feature_dim is set by the pipeline (feature_dim=10); "
        "settable: mini_batch_size, epochs, num_models, loss",
    ),
    (
        "algorithm not in the registry",
        {"training": {"algorithm": "factorization-machines"}},
        "config key 'training.algorithm' must be one of linear-learner, xgboost, knn, randomcutforest, "
        "got 'factorization-machines'",
    ),
    (
        "another algorithm's hyperparameter",
        {"training": {"algorithm": "xgboost", "hyperparameters": {"epochs": 5}}},
        "config key 'training' hyperparameters.epochs is not a hyperparameter of XGBoost this project "
        "sets; settable: num_round, objective, eta, max_depth, min_child_weight, subsample, gamma, "
        "eval_metric, early_stopping_rounds",
    ),
    (
        "XGBoost eta above 1",
        {"training": {"algorithm": "xgboost", "hyperparameters": {"eta": 1.5}}},
        "config key 'training' hyperparameters.eta of XGBoost: input should be less than or equal to 1, "
        "got 1.5",
    ),
    (
        "XGBoost classification objective",
        {"training": {"algorithm": "xgboost", "hyperparameters": {"objective": "binary:logistic"}}},
        "config key 'training' hyperparameters.objective of XGBoost: input should be 'reg:squarederror' "
        "or 'reg:pseudohubererror', got \"binary:logistic\"",
    ),
    (
        "XGBoost num_round as a string",
        {"training": {"algorithm": "xgboost", "hyperparameters": {"num_round": "100"}}},
        "config key 'training' hyperparameters.num_round of XGBoost: input should be a valid integer, "
        'got "100"',
    ),
    (
        "linear learner predictor_type, which the pipeline sets",
        {"training": {"hyperparameters": {"predictor_type": "binary_classifier"}}},
        "config key 'training' hyperparameters.predictor_type is set by the pipeline "
        "(predictor_type=regressor); settable: mini_batch_size, epochs, num_models, loss",
    ),
    (
        "k-NN k of 0",
        {"training": {"algorithm": "knn", "hyperparameters": {"k": 0}}},
        "config key 'training' hyperparameters.k of k-NN: input should be greater than or equal to 1, got 0",
    ),
    (
        "k-NN sample_size above the houses a location trains on",
        {"training": {"algorithm": "knn", "hyperparameters": {"sample_size": 800}}},
        "config key '(top level)' training.hyperparameters of k-NN: sample_size (800) is more than the "
        "700 houses a location trains on (data.houses_per_location minus the validation and test "
        "fractions); lower it or generate more houses",
    ),
    (
        "k-NN k above the sample",
        {"training": {"algorithm": "knn", "hyperparameters": {"sample_size": 50, "k": 64}}},
        "config key '(top level)' training.hyperparameters of k-NN: k (64) is more than the 50 houses "
        "the index keeps (data.houses_per_location minus the validation and test fractions); lower it "
        "or generate more houses",
    ),
    (
        "Random Cut Forest with too few trees",
        {"training": {"algorithm": "randomcutforest", "hyperparameters": {"num_trees": 10}}},
        "config key 'training' hyperparameters.num_trees of Random Cut Forest: input should be greater "
        "than or equal to 50, got 10",
    ),
    (
        "Random Cut Forest told its feature_dim",
        {"training": {"algorithm": "randomcutforest", "hyperparameters": {"feature_dim": 10}}},
        "config key 'training' hyperparameters.feature_dim is set by the pipeline (feature_dim=10); "
        "settable: num_trees, num_samples_per_tree",
    ),
    (
        "an image tag the algorithm does not have",
        {"training": {"algorithm": "xgboost", "algorithm_image_tag": "2.0-1"}},
        "config key 'training' algorithm_image_tag '2.0-1' is not a xgboost image tag with training and "
        "inference images in the SageMaker region tables; available: 0.90-1, 0.90-2, 1, 1.0-1, 1.2-1, "
        "1.2-2, 1.3-1, 1.5-1, 1.7-1, 3.0-5, 3.2-0",
    ),
    (
        "an XGBoost image without a multi-model server",
        {"training": {"algorithm": "xgboost", "algorithm_image_tag": "1"}},
        "config key 'training' algorithm_image_tag '1' cannot serve XGBoost from a multi-model endpoint: "
        "it is the legacy XGBoost 0.72 image, which has no multi-model server",
    ),
    (
        "the old linear-learner tag key",
        {"training": {"linear_learner_image_tag": "1"}},
        "config key 'training.linear_learner_image_tag' is not a known setting; allowed keys under "
        "'training': algorithm, algorithm_image_tag, execution_timeout_minutes, hyperparameters, "
        "log_retention_days, max_job_runtime_minutes, parallel_training_jobs, preprocessor_instance_type, "
        "sklearn_framework_version, training_instance_type, transform_instance_type, "
        "warm_pool_keep_alive_seconds",
    ),
    (
        "unknown removal policy",
        {"storage": {"removal_policy": "delete"}},
        "config key 'storage.removal_policy': input should be 'retain' or 'destroy', got \"delete\"",
    ),
    (
        "splits leaving too little training data",
        {"data": {"validation_fraction": 0.3, "test_fraction": 0.3}},
        "config key 'data' validation_fraction + test_fraction must be at most 0.5",
    ),
    (
        "baking period too short for the latency rollback alarm",
        {"endpoint": {"update_baking_period_seconds": 600}},
        "config key 'endpoint' update_baking_period_seconds (600) must be at least 900: the model-latency "
        "rollback alarm needs 15 minutes of data to fire while the old fleet can still take the traffic back",
    ),
    (
        "baking period beyond what SageMaker allows",
        {"endpoint": {"update_baking_period_seconds": 3601}},
        "config key 'endpoint.update_baking_period_seconds': input should be less than or equal to 3600",
    ),
    (
        "update timeout below SageMaker's minimum",
        {"endpoint": {"update_timeout_seconds": 599}},
        "config key 'endpoint.update_timeout_seconds': input should be greater than or equal to 600",
    ),
    (
        "update timeout leaving no time to start the new fleet",
        {"endpoint": {"update_baking_period_seconds": 1800, "update_timeout_seconds": 2000}},
        "config key 'endpoint' update_timeout_seconds (2000) must be at least update_baking_period_seconds "
        "(1800) + 600, the time SageMaker needs to start the new fleet before baking it",
    ),
    (
        "baking period as a string",
        {"endpoint": {"update_baking_period_seconds": "1200"}},
        "config key 'endpoint.update_baking_period_seconds': input should be a valid integer",
    ),
    (
        "autoscaling bounds reversed",
        {"endpoint": {"autoscaling": {"min_capacity": 3, "max_capacity": 2}}},
        "config key 'endpoint.autoscaling' min_capacity (3) must not exceed max_capacity (2)",
    ),
    (
        "initial instance count outside the autoscaling bounds",
        {"endpoint": {"initial_instance_count": 5}},
        "config key 'endpoint' initial_instance_count (5) must lie between autoscaling.min_capacity "
        "(1) and autoscaling.max_capacity (4)",
    ),
    (
        "burstable instance with autoscaling",
        {"endpoint": {"instance_type": "ml.t2.medium"}},
        "config key 'endpoint' burstable instance type 'ml.t2.medium' cannot autoscale",
    ),
    (
        "instance type without the ml. prefix",
        {"endpoint": {"instance_type": "m4.xlarge"}},
        "config key 'endpoint.instance_type' 'm4.xlarge' is not a SageMaker instance type such as "
        "'ml.m4.xlarge'",
    ),
    (
        "GPU endpoint instance for CPU containers",
        {"endpoint": {"instance_type": "ml.g4dn.xlarge"}},
        "config key 'endpoint.instance_type' 'ml.g4dn.xlarge' cannot host the pipeline's CPU containers "
        "in MultiModel mode; use a type of one of these families: ml.c4, ml.c5, ml.c6i, ml.c7i, ml.m4, "
        "ml.m5, ml.m6i, ml.m7i, ml.r5, ml.r6i, ml.r7i, ml.t2",
    ),
    (
        "training instance type the training API does not offer",
        {"training": {"training_instance_type": "ml.t2.medium"}},
        "config key 'training.training_instance_type' 'ml.t2.medium' is not an instance type SageMaker "
        "training jobs accept; use one such as ml.m5.large, ml.c5.xlarge or ml.m4.xlarge",
    ),
    (
        "well-formed size that the family does not have for training",
        {"training": {"preprocessor_instance_type": "ml.c4.large"}},
        "config key 'training.preprocessor_instance_type' 'ml.c4.large' is not an instance type SageMaker "
        "training jobs accept; use one such as",
    ),
    (
        "transform instance type the transform API does not offer",
        {"training": {"transform_instance_type": "ml.r5.large"}},
        "config key 'training.transform_instance_type' 'ml.r5.large' is not an instance type SageMaker "
        "batch transform jobs accept; use one such as ml.m5.large, ml.c5.xlarge or ml.m4.xlarge",
    ),
    (
        "training on a type with local NVMe storage",
        {"training": {"training_instance_type": "ml.r5d.large"}},
        "config key 'training.training_instance_type' 'ml.r5d.large' has local NVMe instance storage, which "
        "SageMaker encrypts with a hardware key of its own and for which it refuses the project's KMS key "
        "(a training job's ResourceConfig.VolumeKmsKeyId); use an EBS-backed type such as ml.m5.large, "
        "ml.c5.xlarge or ml.m4.xlarge",
    ),
    (
        "preprocessor on a GPU type with local NVMe storage",
        {"training": {"preprocessor_instance_type": "ml.g4dn.xlarge"}},
        "config key 'training.preprocessor_instance_type' 'ml.g4dn.xlarge' has local NVMe instance storage, "
        "which SageMaker encrypts with a hardware key of its own and for which it refuses the project's KMS "
        "key (a training job's ResourceConfig.VolumeKmsKeyId)",
    ),
    (
        "transform on a type with local NVMe storage",
        {"training": {"transform_instance_type": "ml.g5.xlarge"}},
        "config key 'training.transform_instance_type' 'ml.g5.xlarge' has local NVMe instance storage, "
        "which SageMaker encrypts with a hardware key of its own and for which it refuses the project's KMS "
        "key (a transform job's TransformResources.VolumeKmsKeyId); use an EBS-backed type such as",
    ),
    (
        "endpoint on a type with local NVMe storage",
        {"endpoint": {"instance_type": "ml.m5d.large"}},
        "config key 'endpoint.instance_type' 'ml.m5d.large' has local NVMe instance storage, which "
        "SageMaker encrypts with a hardware key of its own and for which it refuses the project's KMS key "
        "(the endpoint config's KmsKeyId); use an EBS-backed type such as ml.m5.large, ml.c5.xlarge or "
        "ml.m4.xlarge",
    ),
    (
        "endpoint type SageMaker does not offer for endpoints",
        {"endpoint": {"instance_type": "ml.c6id.large"}},
        "config key 'endpoint.instance_type' 'ml.c6id.large' is not an instance type SageMaker endpoints "
        "accept; use one such as ml.m5.large, ml.c5.xlarge or ml.m4.xlarge",
    ),
    (
        "burstable type SageMaker offers for training jobs only",
        {"endpoint": {"instance_type": "ml.t3.medium", "autoscaling": {"enabled": False}}},
        "config key 'endpoint.instance_type' 'ml.t3.medium' is not an instance type SageMaker endpoints "
        "accept;",
    ),
    (
        "account ID of the wrong length",
        {"account": "12345"},
        "config key 'account' must be a 12-digit AWS account ID or null, got '12345'",
    ),
    (
        "malformed region",
        {"region": "US-EAST-1"},
        "config key 'region' must be an AWS region such as 'us-east-1' or null, got 'US-EAST-1'",
    ),
    (
        "well-formed region without SageMaker images",
        {"region": "xx-nowhere-1"},
        "config key 'region' 'xx-nowhere-1' has no scikit-learn 1.9-0 and linear-learner 1 images in the "
        "SageMaker region tables; supported regions: af-south-1,",
    ),
    (
        "unsafe tenant name",
        {"tenants": {"tenants": {"Company A": _tenant()}}},
        "config key 'tenants.tenants' tenant name 'Company A' is not allowed",
    ),
    (
        "tenant names that differ only in '_' and '-'",
        {"tenants": {"tenants": {"company_a": _tenant(), "company-a": _tenant()}}},
        "config key 'tenants.tenants' tenant name 'company-a' duplicates 'company_a'",
    ),
    (
        "too many tenants for one role each",
        {"tenants": {"tenants": {f"t{i}": _tenant() for i in range(2001)}}},
        "config key 'tenants' mode 'roles' supports at most 2000 tenants (one IAM role each), got 2001; "
        "use mode 'abac'",
    ),
    (
        "tenant model pattern with '..'",
        {"tenants": {"tenants": {"company_a": _tenant(model_patterns=["company_a/../*"])}}},
        "config key 'tenants.tenants.company_a.model_patterns' model pattern 'company_a/../*' is not allowed",
    ),
    (
        "tenant principal that is neither an account nor an ARN",
        {"tenants": {"tenants": {"company_a": _tenant(trusted_principals=["alice"])}}},
        "config key 'tenants.tenants.company_a.trusted_principals' trusted principal 'alice' must be "
        "a 12-digit account ID or an IAM role/user ARN",
    ),
    (
        "abac mode without trusted principals",
        {"tenants": {"mode": "abac"}},
        "config key 'tenants' mode 'abac' needs at least one entry in abac_trusted_principals",
    ),
    (
        "invalid e-mail subscription",
        {"alarms": {"email_subscriptions": ["ops-at-example.com"]}},
        "config key 'alarms.email_subscriptions' 'ops-at-example.com' is not an e-mail address",
    ),
    (
        "log retention CloudWatch does not offer",
        {"training": {"log_retention_days": 42}},
        "config key 'training.log_retention_days' must be one of CloudWatch's retention periods",
    ),
    (
        "scikit-learn version without images",
        {"training": {"sklearn_framework_version": "1.5-1"}},
        "config key 'training.sklearn_framework_version' '1.5-1' has no scikit-learn training and "
        "serving images in the SageMaker region tables; available: 0.20.0, 0.23-1, 1.0-1, 1.2-1, "
        "1.4-2-py312, 1.9-0",
    ),
    (
        "stack prefix with a hyphen",
        {"stack_prefix": "mme-dev"},
        "config key 'stack_prefix' 'mme-dev' is not allowed: use 1 to 24 letters and digits "
        "starting with an upper-case letter",
    ),
    (
        "null for a required section",
        {"alarms": None},
        "config key 'alarms': input should be a valid dictionary or instance of AlarmsConfig, got null",
    ),
]


@pytest.mark.parametrize(
    ("override", "message"),
    [pytest.param(o, m, id=name) for name, o, m in BAD_CONFIGS],
)
def test_bad_config_fails_with_one_clear_sentence(
    override: dict[str, Any], message: str, write_json: Callable[..., str]
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_default_config(write_json(override))
    text = str(raised.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_bad_config_cases_are_distinct() -> None:
    assert len(BAD_CONFIGS) >= 15
    assert len({json.dumps(o, sort_keys=True) for _, o, _ in BAD_CONFIGS}) == len(BAD_CONFIGS)


@pytest.mark.parametrize(
    "override",
    [
        pytest.param({"training": {"training_instance_type": "ml.p3.2xlarge"}}, id="gpu-training-ebs"),
        pytest.param({"training": {"training_instance_type": "ml.m7i-flex.large"}}, id="flex-training"),
        pytest.param({"training": {"preprocessor_instance_type": "ml.m5.large"}}, id="preprocessor"),
        pytest.param({"training": {"transform_instance_type": "ml.c5.xlarge"}}, id="transform"),
        pytest.param({"endpoint": {"instance_type": "ml.r7i.large"}}, id="endpoint"),
        pytest.param(
            {"endpoint": {"instance_type": "ml.t2.medium", "autoscaling": {"enabled": False}}},
            id="burstable-endpoint-without-autoscaling",
        ),
    ],
)
def test_instance_types_the_apis_accept_without_instance_storage_pass(
    override: dict[str, Any], write_json: Callable[..., str]
) -> None:
    config = load_default_config(write_json(override))
    section, values = next(iter(override.items()))
    key = next(k for k in values if k != "autoscaling")
    assert getattr(getattr(config, section), key) == values[key]


def _botocore_enum(shape: str) -> frozenset[str]:
    import botocore.session  # type: ignore[import-untyped]  # a dev dependency, like the table's generator

    return frozenset(botocore.session.get_session().get_service_model("sagemaker").shape_for(shape).enum)


def test_instance_type_table_equals_botocores_enums() -> None:
    """The committed table is botocore's; after upgrading boto3, regenerate it and review the diff."""
    from project_config import instance_type_table as table

    regenerate = "run `.venv/bin/python -m project_config.instance_type_table` and review the diff"
    assert _botocore_enum("TrainingInstanceType") == table.TRAINING_INSTANCE_TYPES, regenerate
    assert _botocore_enum("TransformInstanceType") == table.TRANSFORM_INSTANCE_TYPES, regenerate
    assert _botocore_enum("ProductionVariantInstanceType") == table.HOSTING_INSTANCE_TYPES, regenerate


def test_every_family_is_classified_as_instance_storage_or_ebs_only() -> None:
    """A family new in botocore fails here until someone looks up whether it has local NVMe storage."""
    from project_config import instance_types

    used = {
        instance_types.instance_family(t)
        for use in (instance_types.TRAINING_JOB, instance_types.TRANSFORM_JOB, instance_types.ENDPOINT)
        for t in use.api_types
    }
    assert not instance_types.INSTANCE_STORAGE_FAMILIES & instance_types.EBS_ONLY_FAMILIES
    unclassified = used - instance_types.INSTANCE_STORAGE_FAMILIES - instance_types.EBS_ONLY_FAMILIES
    assert unclassified == set()
    # The 'd' families are instance storage by definition; so is every one the brief of defect 4 named.
    assert {
        "c5d",
        "m5d",
        "r5d",
        "c6id",
        "m6id",
        "r6id",
        "g4dn",
        "p3dn",
    } <= instance_types.INSTANCE_STORAGE_FAMILIES


def test_every_api_instance_type_has_the_form_the_config_checks_first() -> None:
    from project_config import instance_types, model

    for use in (instance_types.TRAINING_JOB, instance_types.TRANSFORM_JOB, instance_types.ENDPOINT):
        assert [t for t in use.api_types if model._INSTANCE_TYPE_RE.fullmatch(t) is None] == []


def test_endpoint_families_are_offered_for_endpoints() -> None:
    from project_config import instance_types, model

    offered = {instance_types.instance_family(t) for t in instance_types.ENDPOINT.api_types}
    assert [f for f in model.MULTI_MODEL_CPU_FAMILIES if f not in offered] == []
    assert instance_types.allowed_types(instance_types.ENDPOINT, model.MULTI_MODEL_CPU_FAMILIES)


def test_several_problems_are_counted_but_only_the_first_is_described(
    write_json: Callable[..., str],
) -> None:
    with pytest.raises(ConfigError, match=r"\(2 more problems after this one\)$"):
        load_default_config(write_json({"account": "x", "region": "y", "stack_prefix": "z"}))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            "{ not json",
            "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 3",
            id="malformed-json",
        ),
        pytest.param('["a"]', "must contain a JSON object of settings, got a list", id="top-level-list"),
        pytest.param(b"\xff\xfe{}", "is not UTF-8 text", id="not-utf8"),
    ],
)
def test_unusable_file_content(content: str | bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigError) as raised:
        load_default_config(str(path))
    assert str(raised.value) == f"config file {str(path)!r} {message}"


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as raised:
        load_default_config(str(missing))
    assert str(raised.value) == f"config file {str(missing)!r} does not exist"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        load_default_config(str(tmp_path))
    assert str(raised.value) == f"config file {str(tmp_path)!r} is a directory, expected a JSON file"


def test_empty_config_argument() -> None:
    with pytest.raises(ConfigError, match=r"^-c config=\.\.\. must name a JSON file"):
        load_config(default_context(), "  ")


def test_missing_defaults_context() -> None:
    with pytest.raises(ConfigError, match=r"cdk\.json context key 'mme' must hold the default settings"):
        load_config(None)


def test_app_exits_with_one_line_and_no_stack_trace(write_json: Callable[..., str], tmp_path: Path) -> None:
    """What `make synth CONFIG=bad.json` runs: the CDK CLI passes context to app.py via CDK_CONTEXT_JSON."""
    context = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    context["config"] = write_json({"endpoint": {"initial_instance_count": 0}})
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_OUTDIR": str(tmp_path / "out"),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Invalid configuration: config key 'endpoint.initial_instance_count': input should be "
        "greater than or equal to 1, got 0."
    ]
    assert not list((tmp_path / "out").glob("*.template.json"))  # nothing was synthesized
