"""The multi-model inference-pipeline endpoint: model, containers, endpoint config, scaling, role."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest

from mme_constructs import image_table
from mme_constructs.multi_model_endpoint import (
    InferencePipelineModel,
    PipelineContainer,
    check_pipeline,
)
from project_config import load_default_config
from project_config.loader import deep_merge, default_context
from project_config.model import ProjectConfig
from stacks.endpoint_stack import EndpointStack
from stacks.storage_stack import StorageExports
from tests.conftest import SynthesizedApp, resources_of_type

BUCKET = {"Fn::ImportValue": "MmeStorage-ArtifactBucketName"}


def _one(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = resources_of_type(template, resource_type).items()
    return logical_id, resource


def test_model_is_a_serial_pipeline_of_preprocessor_then_multi_model_linear_learner(
    synthesized: SynthesizedApp,
) -> None:
    _, model = _one(synthesized.template("endpoint"), "AWS::SageMaker::Model")
    props = model["Properties"]
    assert props["InferenceExecutionConfig"] == {"Mode": "Serial"}
    assert props["EnableNetworkIsolation"] is False
    preprocessor, learner = props["Containers"]
    assert preprocessor["Mode"] == "SingleModel"
    assert preprocessor["ModelDataUrl"] == {
        "Fn::Join": ["", ["s3://", BUCKET, "/preprocessor/current/model.tar.gz"]]
    }
    assert preprocessor["Image"] == {
        "Fn::FindInMap": ["SageMakerInferenceImages", {"Ref": "AWS::Region"}, "SklearnImage"]
    }
    environment = dict(preprocessor["Environment"])  # a copy: the template is shared by the session
    submit = environment.pop("SAGEMAKER_SUBMIT_DIRECTORY")
    check_id, _ = _one(synthesized.template("endpoint"), "AWS::CloudFormation::CustomResource")
    # A newly promoted preprocessor (new S3 version) replaces the model instead of going unnoticed.
    assert environment.pop("MME_PREPROCESSOR_VERSION") == {"Fn::GetAtt": [check_id, "VersionId"]}
    assert submit["Fn::Sub"].startswith("s3://cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}/")
    assert environment == {
        "SAGEMAKER_PROGRAM": "housing_preprocessor.py",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
        "SAGEMAKER_REGION": {"Ref": "AWS::Region"},
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    }
    assert learner == {
        "Image": {"Fn::FindInMap": ["SageMakerInferenceImages", {"Ref": "AWS::Region"}, "LinearLearner"]},
        "Mode": "MultiModel",
        "ModelDataUrl": {"Fn::Join": ["", ["s3://", BUCKET, "/models/"]]},
    }


def test_model_waits_for_the_preprocessor_check(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("endpoint")
    _, model = _one(template, "AWS::SageMaker::Model")
    check_id, check = _one(template, "AWS::CloudFormation::CustomResource")
    assert check_id in model["DependsOn"]
    assert check["Properties"]["ArtifactKey"] == "preprocessor/current/model.tar.gz"
    assert "Nonce" not in check["Properties"]  # deterministic unless make deploy just trained
    function_id = check["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    function = template["Resources"][function_id]["Properties"]
    assert function["Handler"] == "check_preprocessor.handler"
    assert function["Timeout"] == 60


def test_endpoint_config_encrypts_the_storage_volume_with_the_project_key(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.template("endpoint")
    model_id, _ = _one(template, "AWS::SageMaker::Model")
    _, config = _one(template, "AWS::SageMaker::EndpointConfig")
    assert config["Properties"]["KmsKeyId"] == {"Fn::ImportValue": "MmeStorage-KeyArn"}
    assert config["Properties"]["ProductionVariants"] == [
        {
            "InitialInstanceCount": 1,
            "InitialVariantWeight": 1,
            "InstanceType": "ml.m4.xlarge",
            "ModelName": {"Fn::GetAtt": [model_id, "ModelName"]},
            "VariantName": "AllTraffic",
        }
    ]


def test_autoscaling_tracks_invocations_per_instance(synthesized: SynthesizedApp) -> None:
    scaling = load_default_config().endpoint.autoscaling
    template = synthesized.template("endpoint")
    endpoint_id, _ = _one(template, "AWS::SageMaker::Endpoint")
    target_id, target = _one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    props = target["Properties"]
    assert props["ServiceNamespace"] == "sagemaker"
    assert props["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (props["MinCapacity"], props["MaxCapacity"]) == (scaling.min_capacity, scaling.max_capacity)
    assert props["ResourceId"] == {
        "Fn::Join": ["", ["endpoint/", {"Fn::GetAtt": [endpoint_id, "EndpointName"]}, "/variant/AllTraffic"]]
    }
    assert props["RoleARN"]["Fn::Join"][1][-1].endswith(
        ":role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    _, policy = _one(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    assert policy["Properties"]["ScalingTargetId"] == {"Ref": target_id}
    assert policy["Properties"]["TargetTrackingScalingPolicyConfiguration"] == {
        "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        "ScaleInCooldown": scaling.scale_in_cooldown_seconds,
        "ScaleOutCooldown": scaling.scale_out_cooldown_seconds,
        "TargetValue": scaling.target_invocations_per_instance,
    }


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _execution_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    (policy,) = [
        p
        for k, p in resources_of_type(template, "AWS::IAM::ManagedPolicy").items()
        if "ExecutionPermissions" in k
    ]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_execution_role_reads_only_models_the_preprocessor_and_its_source(
    synthesized: SynthesizedApp,
) -> None:
    statements = _execution_statements(synthesized.template("endpoint"))
    s3_reads = [r for s in statements if s["Action"] == "s3:GetObject" for r in _as_list(s["Resource"])]
    rendered = json.dumps(s3_reads)
    assert len(s3_reads) == 3
    assert '"/models/*"' in rendered
    assert '"/preprocessor/current/model.tar.gz"' in rendered
    assert "cdk-hnb659fds-assets-" in rendered
    assert '.gz"' in rendered
    actions = sorted(
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    )
    assert not [a for a in actions if a.startswith("s3:") and a != "s3:GetObject"]
    assert [a for a in actions if a.startswith("kms:")] == ["kms:Decrypt"]
    pull = {"ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"}
    (ecr,) = [s for s in statements if set(_as_list(s["Action"])) == pull]
    assert len(ecr["Resource"]) == 2  # the two images' repositories, not every repository
    assert not [a for a in actions if a.startswith("ec2:")]  # no VPC configured


def test_explicit_region_gets_literal_image_uris(synthesized_throwaway: SynthesizedApp) -> None:
    template = synthesized_throwaway.template("endpoint")
    assert "Mappings" not in template
    _, model = _one(template, "AWS::SageMaker::Model")
    preprocessor, learner = model["Properties"]["Containers"]
    expected = image_table.literal_uris("eu-west-1", "1.9-0", "1", "inference")
    assert preprocessor["Image"] == expected.sklearn
    assert learner["Image"] == expected.linear_learner
    assert learner["Image"] == "438346466558.dkr.ecr.eu-west-1.amazonaws.com/linear-learner:1"


def _endpoint_template(
    cdk_context: dict[str, Any], overrides: dict[str, Any], nonce: str | None = None
) -> dict[str, Any]:
    config = ProjectConfig.model_validate(deep_merge(default_context(), overrides))
    app = cdk.App(context=cdk_context)
    stack = EndpointStack(
        app,
        "MmeEndpoint",
        storage=StorageExports(stack_name="MmeStorage"),
        endpoint=config.endpoint,
        training=config.training,
        preprocessor_nonce=nonce,
    )
    template = cdk.assertions.Template.from_stack(stack).to_json()
    return dict(template)


def test_vpc_isolation_and_cache_settings_from_config(cdk_context: dict[str, Any]) -> None:
    template = _endpoint_template(
        cdk_context,
        {
            "endpoint": {
                "network_isolation": True,
                "model_cache_enabled": False,
                "container_log_level": "DEBUG",
                "vpc": {
                    "subnet_ids": ["subnet-0123456789abcdef0"],
                    "security_group_ids": ["sg-0123456789abcdef0"],
                },
                "autoscaling": {"enabled": False},
            }
        },
        nonce="deploy-20261125-013000",
    )
    _, check = _one(template, "AWS::CloudFormation::CustomResource")
    assert check["Properties"]["Nonce"] == "deploy-20261125-013000"
    _, model = _one(template, "AWS::SageMaker::Model")
    props = model["Properties"]
    assert props["EnableNetworkIsolation"] is True
    assert props["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0123456789abcdef0"],
        "Subnets": ["subnet-0123456789abcdef0"],
    }
    preprocessor, learner = props["Containers"]
    # Isolated containers cannot reach S3: the code travels inside the preprocessor artifact.
    assert preprocessor["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert preprocessor["Environment"]["SAGEMAKER_CONTAINER_LOG_LEVEL"] == "10"
    assert learner["MultiModelConfig"] == {"ModelCacheSetting": "Disabled"}
    statements = _execution_statements(template)
    assert "cdk-hnb659fds-assets-" not in json.dumps(statements)
    assert any("ec2:CreateNetworkInterface" in s["Action"] for s in statements)
    assert resources_of_type(template, "AWS::ApplicationAutoScaling::ScalableTarget") == {}


def test_a_pipeline_takes_at_most_one_multi_model_container(cdk_context: dict[str, Any]) -> None:
    multi = PipelineContainer(image="image", model_data_url="s3://bucket/models/", mode="MultiModel")
    single = PipelineContainer(image="image", model_data_url="s3://bucket/model.tar.gz")
    check_pipeline([single, multi])
    with pytest.raises(
        ValueError, match=r"at most one container in MultiModel mode, got 2 \(containers 0, 2\)"
    ):
        check_pipeline([multi, single, multi])
    stack = cdk.Stack(cdk.App(context=cdk_context), "Probe")
    role = cdk.aws_iam.Role(stack, "Role", assumed_by=cdk.aws_iam.ServicePrincipal("sagemaker.amazonaws.com"))
    with pytest.raises(ValueError, match="at most one container in MultiModel mode"):
        InferencePipelineModel(
            stack, "Pipeline", containers=[multi, multi], role=role, network_isolation=False
        )


@pytest.mark.parametrize(
    ("containers", "message"),
    [
        ([], "an inference pipeline has 1 to 15 containers, got 0"),
        (
            [PipelineContainer(image="i", model_data_url="s3://b/m.tar.gz")] * 16,
            "has 1 to 15 containers, got 16",
        ),
        (
            [PipelineContainer(image="i", model_data_url="s3://b/models", mode="MultiModel")],
            "the MultiModel container's ModelDataUrl must be an S3 prefix ending in '/', got 's3://b/models'",
        ),
    ],
)
def test_other_pipeline_rules(containers: list[PipelineContainer], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_pipeline(containers)


def test_outputs_for_the_cli(synthesized: SynthesizedApp) -> None:
    outputs = synthesized.template("endpoint")["Outputs"]
    endpoint_id, _ = _one(synthesized.template("endpoint"), "AWS::SageMaker::Endpoint")
    assert outputs["EndpointName"]["Value"] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    assert outputs["VariantName"]["Value"] == "AllTraffic"
    assert "StateMachineArn" in synthesized.template("training")["Outputs"]
    assert "ModelPrefixUri" in synthesized.template("storage")["Outputs"]
