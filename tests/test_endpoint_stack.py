"""The multi-model inference-pipeline endpoint: model, containers, endpoint config, scaling, role."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest

from mme_constructs import image_table
from mme_constructs.algorithms import ALGORITHMS
from mme_constructs.artifact_store import generation_key
from mme_constructs.inference_pipeline import InferencePipelineModel, PipelineContainer, check_pipeline
from mme_constructs.multi_model_endpoint import NEWEST_GENERATION
from mme_shared import s3_layout
from project_config import ConfigError, load_default_config
from project_config.loader import deep_merge, default_context, load_preprocessor_generation
from project_config.model import ProjectConfig
from stacks.endpoint_stack import EndpointStack
from stacks.storage_stack import StorageExports
from tests.cfn_render import TemplateRenderer
from tests.conftest import STORAGE_EXPORTS, SynthesizedApp, resources_of_type

BUCKET = {"Fn::ImportValue": "MmeStorage-ArtifactBucketName"}
BUCKET_ARN = {"Fn::ImportValue": "MmeStorage-ArtifactBucketArn"}
KEY_ARN = {"Fn::ImportValue": "MmeStorage-KeyArn"}


def _one(template: dict[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = resources_of_type(template, resource_type).items()
    return logical_id, resource


def _custom_resource(template: dict[str, Any], action: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = [
        (k, r)
        for k, r in resources_of_type(template, "AWS::CloudFormation::CustomResource").items()
        if r["Properties"]["Action"] == action
    ]
    return logical_id, resource


def _generation(template: dict[str, Any]) -> dict[str, Any]:
    """``Fn::GetAtt <resolver>.Generation``."""
    resolver_id, _ = _custom_resource(template, "resolve")
    return {"Fn::GetAtt": [resolver_id, "Generation"]}


def test_model_is_a_serial_pipeline_of_preprocessor_then_multi_model_linear_learner(
    synthesized: SynthesizedApp,
) -> None:
    _, model = _one(synthesized.template("endpoint"), "AWS::SageMaker::Model")
    props = model["Properties"]
    assert props["InferenceExecutionConfig"] == {"Mode": "Serial"}
    assert props["EnableNetworkIsolation"] is False
    preprocessor, learner = props["Containers"]
    generation = _generation(synthesized.template("endpoint"))
    assert preprocessor["Mode"] == "SingleModel"
    # Both containers read the one generation the resolver answered: its artifact, its models.
    assert preprocessor["ModelDataUrl"] == {
        "Fn::Join": ["", ["s3://", BUCKET, "/preprocessor/", generation, "/model.tar.gz"]]
    }
    assert preprocessor["Image"] == {
        "Fn::FindInMap": ["SageMakerInferenceImages", {"Ref": "AWS::Region"}, "SklearnImage"]
    }
    environment = dict(preprocessor["Environment"])  # a copy: the template is shared by the session
    submit = environment.pop("SAGEMAKER_SUBMIT_DIRECTORY")
    assert environment.pop("MME_PREPROCESSOR_GENERATION") == generation
    assert submit["Fn::Sub"].startswith("s3://cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}/")
    assert environment == {
        "SAGEMAKER_PROGRAM": "housing_preprocessor.py",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
        "SAGEMAKER_REGION": {"Ref": "AWS::Region"},
        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
    }
    assert learner == {
        "Image": {"Fn::FindInMap": ["SageMakerInferenceImages", {"Ref": "AWS::Region"}, "AlgorithmImage"]},
        "Mode": "MultiModel",
        "ModelDataUrl": {"Fn::Join": ["", ["s3://", BUCKET, "/models/", generation, "/"]]},
    }


def test_the_resolver_asks_for_the_newest_generation_unless_one_is_pinned(
    synthesized: SynthesizedApp, cdk_context: dict[str, Any]
) -> None:
    _, resolver = _custom_resource(synthesized.template("endpoint"), "resolve")
    assert {k: v for k, v in resolver["Properties"].items() if k != "ServiceToken"} == {
        "Action": "resolve",
        "Generation": "newest",
    }
    pinned = _endpoint_template(cdk_context, {}, generation="pp-deploy-20261201-120000")
    _, resolver = _custom_resource(pinned, "resolve")
    assert resolver["Properties"]["Generation"] == "pp-deploy-20261201-120000"


FRAMEWORK_FUNCTION_LOGICAL_ID = "MultiModelEndpointServingGenerationFunctionF092A5CE"
"""The logical id of the function both custom resources name as ServiceToken, from before the Provider
framework (then the handler itself) to now (the framework's function): CloudFormation refuses to change
an existing custom resource's ServiceToken, so this id, and with it the function's ARN, must stay."""


def _framework_and_handler(template: dict[str, Any]) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    """The Provider framework's function (every custom resource's ServiceToken) and the handler it
    invokes (its ``USER_ON_EVENT_FUNCTION_ARN``): logical ids and properties."""
    tokens = [
        r["Properties"]["ServiceToken"]
        for r in resources_of_type(template, "AWS::CloudFormation::CustomResource").values()
    ]
    assert len(tokens) == 2
    ((framework_id, attribute),) = {tuple(token["Fn::GetAtt"]) for token in tokens}
    assert attribute == "Arn"
    framework = template["Resources"][framework_id]["Properties"]
    handler_id, _ = framework["Environment"]["Variables"]["USER_ON_EVENT_FUNCTION_ARN"]["Fn::GetAtt"]
    return framework_id, framework, handler_id, template["Resources"][handler_id]["Properties"]


def test_the_provider_framework_answers_both_custom_resources_by_invoking_the_handler(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.template("endpoint")
    framework_id, framework, _, handler = _framework_and_handler(template)
    assert framework["Handler"] == "framework.onEvent"  # CDK's custom resource provider framework
    assert framework["Environment"]["Variables"].keys() == {"USER_ON_EVENT_FUNCTION_ARN"}
    assert framework_id == FRAMEWORK_FUNCTION_LOGICAL_ID
    assert handler["Handler"] == "serving_generation.handler"
    assert handler["Timeout"] == 60
    assert handler["Environment"]["Variables"] == {
        "BUCKET_NAME": BUCKET,
        "KMS_KEY_ARN": KEY_ARN,
        "ALGORITHM": "linear-learner",
    }


def test_the_custom_resources_keep_their_logical_ids_type_and_service_token(
    synthesized: SynthesizedApp,
) -> None:
    """What an endpoint stack deployed before the Provider framework has: the update changes neither
    (a changed id would replace the resource, and the old one's Delete would remove serving.json)."""
    template = synthesized.template("endpoint")
    assert {action: _custom_resource(template, action)[0] for action in ("resolve", "record-serving")} == {
        "resolve": "MultiModelEndpointPreprocessorGeneration60C6DCAF",
        "record-serving": "MultiModelEndpointServingGenerationRecord2E505481",
    }
    for action in ("resolve", "record-serving"):
        _, resource = _custom_resource(template, action)
        assert resource["Properties"]["ServiceToken"] == {
            "Fn::GetAtt": [FRAMEWORK_FUNCTION_LOGICAL_ID, "Arn"]
        }


def test_the_framework_function_logs_to_its_own_encrypted_log_group(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("endpoint")
    _, framework, _, handler = _framework_and_handler(template)
    config = framework["LoggingConfig"]
    assert (config["LogFormat"], config["ApplicationLogLevel"]) == ("JSON", "INFO")
    (log_group_id,) = config["LogGroup"].values()
    assert config["LogGroup"] != handler["LoggingConfig"]["LogGroup"]
    log_group = template["Resources"][log_group_id]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["KmsKeyId"] == KEY_ARN
    assert log_group["Properties"]["RetentionInDays"] == load_default_config().training.log_retention_days


def test_the_framework_role_may_log_and_invoke_exactly_the_handler(synthesized: SynthesizedApp) -> None:
    """Its own role, no AWS managed policy (CDK would attach AWSLambdaBasicExecutionRole to a role it
    creates), and one policy of ours: CDK adds none of its own grants (the role is passed immutable)."""
    template = synthesized.template("endpoint")
    _, framework, handler_id, handler = _framework_and_handler(template)
    (role_id, _) = framework["Role"]["Fn::GetAtt"]
    assert role_id != handler["Role"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert "Policies" not in role
    attached = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}
        and {"Ref": role_id} in r["Properties"].get("Roles", [])
    ]
    (policy,) = attached
    (log_group_id,) = framework["LoggingConfig"]["LogGroup"].values()
    assert policy["PolicyDocument"]["Statement"] == [
        {
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [log_group_id, "Arn"]},
        },
        {
            "Action": ["lambda:GetFunction", "lambda:InvokeFunction"],
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [handler_id, "Arn"]},
        },
    ]


def test_the_custom_resources_wait_for_both_policies(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("endpoint")
    _, framework, _, handler = _framework_and_handler(template)
    roles = {framework["Role"]["Fn::GetAtt"][0], handler["Role"]["Fn::GetAtt"][0]}
    policies = {
        k
        for k, r in resources_of_type(template, "AWS::IAM::ManagedPolicy").items()
        if {role["Ref"] for role in r["Properties"]["Roles"]} & roles
    }
    assert len(policies) == 2
    for action in ("resolve", "record-serving"):
        _, resource = _custom_resource(template, action)
        assert policies <= set(resource["DependsOn"]), action


def test_serving_json_is_recorded_only_after_the_endpoint_and_its_autoscaling(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.template("endpoint")
    endpoint_id, _ = _one(template, "AWS::SageMaker::Endpoint")
    target_id, _ = _one(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    scaling_id, _ = _one(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    _, record = _custom_resource(template, "record-serving")
    assert record["Properties"]["Generation"] == _generation(template)
    # GetAtt of the endpoint's name: CloudFormation reaches the record only once the endpoint is
    # created or updated, i.e. serves the generation.
    assert record["Properties"]["EndpointName"] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
    assert {target_id, scaling_id} <= set(record["DependsOn"])


def test_model_waits_for_the_resolver_and_the_role_policy(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("endpoint")
    _, model = _one(template, "AWS::SageMaker::Model")
    (policy_id,) = [k for k in model["DependsOn"] if "ExecutionPermissions" in k]
    assert template["Resources"][policy_id]["Type"] == "AWS::IAM::ManagedPolicy"
    assert json.dumps(_generation(template)) in json.dumps(model)  # GetAtt: after the resolver


def test_a_context_generation_is_validated_with_one_sentence() -> None:
    assert load_preprocessor_generation(None, NEWEST_GENERATION) == "newest"
    assert load_preprocessor_generation("pp-run-1", NEWEST_GENERATION) == "pp-run-1"
    with pytest.raises(ConfigError) as raised:
        load_preprocessor_generation("current", NEWEST_GENERATION)
    assert str(raised.value) == (
        "context key 'preprocessor_generation': preprocessor generation 'current' is not allowed: use 'pp-' "
        "followed by a run id (1 to 24 characters from A-Z, a-z, 0-9 and '-', starting and ending with a "
        "letter or digit), or leave the key out to serve the newest complete generation"
    )


def test_the_construct_refuses_a_bad_generation(cdk_context: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="preprocessor generation 'pp-' is not allowed"):
        _endpoint_template(cdk_context, {}, generation="pp-")


def test_the_construct_and_the_lambda_agree_on_the_protocol() -> None:
    """The property values are spelled in both (the Lambda cannot import CDK code)."""
    import importlib
    import sys

    from mme_constructs import multi_model_endpoint
    from tests.conftest import REPO_ROOT

    sys.path.insert(0, str(REPO_ROOT / "lambda" / "serving_generation"))
    handler = importlib.import_module("serving_generation")
    assert handler.NEWEST == multi_model_endpoint.NEWEST_GENERATION
    assert (handler.RESOLVE, handler.RECORD_SERVING) == (
        multi_model_endpoint.RESOLVE_ACTION,
        multi_model_endpoint.RECORD_SERVING_ACTION,
    )


def test_generation_keys_come_from_the_layout() -> None:
    assert generation_key(s3_layout.preprocessor_artifact_key, "*") == "preprocessor/*/model.tar.gz"
    assert generation_key(s3_layout.generation_models_prefix, "${Token[X]}") == "models/${Token[X]}/"
    with pytest.raises(ValueError, match="must name the generation exactly once"):
        generation_key(lambda generation: f"{generation}/{generation}", "*")


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


def _statements(template: dict[str, Any], name: str) -> list[dict[str, Any]]:
    (policy,) = [p for k, p in resources_of_type(template, "AWS::IAM::ManagedPolicy").items() if name in k]
    statements: list[dict[str, Any]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _execution_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    return _statements(template, "ExecutionPermissions")


def _objects(*keys: str) -> list[dict[str, Any]]:
    return [{"Fn::Join": ["", [BUCKET_ARN, f"/{key}"]]} for key in keys]


def test_the_function_reads_the_records_and_writes_only_serving_json(synthesized: SynthesizedApp) -> None:
    statements = _statements(synthesized.template("endpoint"), "ServingGenerationFunction")
    by_action = {json.dumps(s["Action"]): s for s in statements}
    assert by_action['"s3:GetObject"']["Resource"] == _objects(
        "preprocessor/*/complete.json",
        "preprocessor/*/model.tar.gz",
        "preprocessor/newest.json",
        "preprocessor/serving.json",
    )
    listing = by_action['"s3:ListBucket"']
    assert listing["Resource"] == BUCKET_ARN
    assert listing["Condition"] == {
        "StringLike": {
            "s3:prefix": [
                "preprocessor/newest.json",
                "preprocessor/serving.json",
                "preprocessor/*/complete.json",
                "preprocessor/*/model.tar.gz",
                "model-pointers/*",
            ]
        }
    }
    write = by_action['["s3:DeleteObject", "s3:PutObject"]']
    assert write["Resource"] == _objects("preprocessor/serving.json")[0]
    assert by_action['["kms:Decrypt", "kms:GenerateDataKey"]']["Resource"] == KEY_ARN
    s3_actions = sorted(a for s in statements for a in _as_list(s["Action"]) if a.startswith("s3:"))
    assert s3_actions == ["s3:DeleteObject", "s3:GetObject", "s3:ListBucket", "s3:PutObject"]


def test_execution_role_reads_only_models_the_preprocessor_and_its_source(
    synthesized: SynthesizedApp,
) -> None:
    statements = _execution_statements(synthesized.template("endpoint"))
    s3_reads = [r for s in statements if s["Action"] == "s3:GetObject" for r in _as_list(s["Resource"])]
    rendered = json.dumps(s3_reads)
    assert len(s3_reads) == 3
    assert '"/models/*"' in rendered
    assert '"/preprocessor/*/model.tar.gz"' in rendered  # the artifacts, not the generation records
    assert '"/preprocessor/*"' not in rendered
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
    expected = image_table.literal_uris(
        "eu-west-1", "1.9-0", image_table.AlgorithmImage("linear-learner", "1"), "inference"
    )
    assert preprocessor["Image"] == expected.sklearn
    assert learner["Image"] == expected.algorithm
    assert learner["Image"] == "438346466558.dkr.ecr.eu-west-1.amazonaws.com/linear-learner:1"


def _endpoint_template(
    cdk_context: dict[str, Any], overrides: dict[str, Any], generation: str = NEWEST_GENERATION
) -> dict[str, Any]:
    config = ProjectConfig.model_validate(deep_merge(default_context(), overrides))
    app = cdk.App(context=cdk_context)
    stack = EndpointStack(
        app,
        "MmeEndpoint",
        storage=StorageExports(stack_name="MmeStorage"),
        endpoint=config.endpoint,
        training=config.training,
        alarms=config.alarms,
        preprocessor_generation=generation,
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
        generation="pp-deploy-20261125-013000",
    )
    _, resolver = _custom_resource(template, "resolve")
    assert resolver["Properties"]["Generation"] == "pp-deploy-20261125-013000"
    # Without autoscaling, the record waits for the endpoint alone (GetAtt of its name).
    _, record = _custom_resource(template, "record-serving")
    assert not [k for k in record["DependsOn"] if "Scal" in k]
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


# -- deployment guardrails ------------------------------------------------------------------------

ROLLBACK_ALARM_NAMES = ["MmeEndpoint-Rollback-Invocation5XXErrors", "MmeEndpoint-Rollback-ModelLatencyP99"]


def test_updates_are_blue_green_all_at_once_with_baking_and_automatic_rollback(
    synthesized: SynthesizedApp,
) -> None:
    _, endpoint = _one(synthesized.template("endpoint"), "AWS::SageMaker::Endpoint")
    props = endpoint["Properties"]
    assert props["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": 1200,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ROLLBACK_ALARM_NAMES]},
    }
    # Autoscaling owns the instance count: an update keeps it (nothing is excluded from retention).
    assert props["RetainAllVariantProperties"] is True
    assert "ExcludeRetainedVariantProperties" not in props


def test_the_rollback_alarms_exist_by_name_and_watch_this_endpoint(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("endpoint")
    endpoint_id, _ = _one(template, "AWS::SageMaker::Endpoint")
    alarms = {
        a["Properties"]["AlarmName"]: a
        for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    }
    assert sorted(alarms) == ROLLBACK_ALARM_NAMES
    config = load_default_config().alarms
    # The endpoint is named after its stack, so the alarms it names exist before it: CloudFormation
    # creates them first (the Endpoint depends on them; they do not depend on it).
    endpoint = template["Resources"][endpoint_id]
    assert endpoint["Properties"]["EndpointName"] == "MmeEndpoint"
    alarm_ids = set(resources_of_type(template, "AWS::CloudWatch::Alarm"))
    assert alarm_ids <= set(endpoint["DependsOn"])
    for alarm in alarms.values():
        assert endpoint_id not in json.dumps(alarm)
    dimensions = [
        {"Name": "EndpointName", "Value": "MmeEndpoint"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]
    errors, latency = (alarms[name]["Properties"] for name in ROLLBACK_ALARM_NAMES)

    def watched(alarm: dict[str, Any]) -> tuple[Any, ...]:
        (query,) = alarm["Metrics"]
        stat = query["MetricStat"]
        metric = stat["Metric"]
        return (metric["Namespace"], metric["MetricName"], metric["Dimensions"], stat["Stat"], stat["Period"],
                alarm["EvaluationPeriods"], alarm["Threshold"])  # fmt: skip

    assert watched(errors) == (
        "AWS/SageMaker", "Invocation5XXErrors", dimensions, "Sum", 300, 1,
        config.invocation_5xx_errors_per_5_minutes,
    )  # fmt: skip
    assert watched(latency) == (
        "AWS/SageMaker", "ModelLatency", dimensions, "p99", 300, 3, config.model_latency_p99_max_ms * 1000
    )  # fmt: skip
    for alarm in (errors, latency):
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert "AlarmActions" not in alarm  # the monitoring stack's alarms on the same conditions notify


def test_the_execution_role_may_describe_exactly_the_rollback_alarms(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("endpoint")
    statements = [
        statement
        for policy in resources_of_type(template, "AWS::IAM::ManagedPolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "cloudwatch:DescribeAlarms"
    ]
    (statement,) = statements
    assert statement["Resource"] == [
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:", {"Ref": "AWS::Region"}, ":",
                           {"Ref": "AWS::AccountId"}, f":alarm:{name}"]]}
        for name in ROLLBACK_ALARM_NAMES
    ]  # fmt: skip


def test_serving_json_is_recorded_only_after_the_rollback_alarms_exist(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("endpoint")
    _, record = _custom_resource(template, "record-serving")
    alarm_ids = set(resources_of_type(template, "AWS::CloudWatch::Alarm"))
    assert alarm_ids <= set(record["DependsOn"])


def test_without_autoscaling_the_configured_instance_count_applies_on_update(
    cdk_context: dict[str, Any],
) -> None:
    template = _endpoint_template(
        cdk_context,
        {
            "endpoint": {
                "autoscaling": {"enabled": False},
                "update_baking_period_seconds": 900,
                "update_timeout_seconds": 7200,
            }
        },
    )
    _, endpoint = _one(template, "AWS::SageMaker::Endpoint")
    props = endpoint["Properties"]
    assert props["RetainAllVariantProperties"] is True
    assert props["ExcludeRetainedVariantProperties"] == [{"VariantPropertyType": "DesiredInstanceCount"}]
    policy = props["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert (policy["TerminationWaitInSeconds"], policy["MaximumExecutionTimeoutInSeconds"]) == (900, 7200)


def test_alarm_names_follow_the_stack_name(cdk_context: dict[str, Any]) -> None:
    config = ProjectConfig.model_validate(default_context())
    app = cdk.App(context=cdk_context)
    stack = EndpointStack(
        app, "OtherEndpoint", storage=StorageExports(stack_name="OtherStorage"),
        endpoint=config.endpoint, training=config.training, alarms=config.alarms,
    )  # fmt: skip
    template = dict(cdk.assertions.Template.from_stack(stack).to_json())
    _, endpoint = _one(template, "AWS::SageMaker::Endpoint")
    names = [
        a["AlarmName"]
        for a in endpoint["Properties"]["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    ]
    assert names == ["OtherEndpoint-Rollback-Invocation5XXErrors", "OtherEndpoint-Rollback-ModelLatencyP99"]


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_the_multi_model_container_is_the_configured_algorithms_image(
    name: str, cdk_context: dict[str, Any]
) -> None:
    """Its image (every region's row), the ECR grant for exactly the two images, and the output the
    CLI reads to know the response format."""
    template = _endpoint_template(cdk_context, {"training": {"algorithm": name}})
    algorithm = ALGORITHMS[name]
    _, model = _one(template, "AWS::SageMaker::Model")
    _, container = model["Properties"]["Containers"]
    selection = image_table.AlgorithmImage(algorithm.image_family, algorithm.default_image_tag)
    expected = image_table.literal_uris("eu-west-1", "1.9-0", selection, "inference")
    rows = template["Mappings"]["SageMakerInferenceImages"]
    assert rows["eu-west-1"] == {"SklearnImage": expected.sklearn, "AlgorithmImage": expected.algorithm}
    assert all(
        row["AlgorithmImage"] == image_table.literal_uris(region, "1.9-0", selection, "inference").algorithm
        for region, row in rows.items()
    )
    assert container["Image"] == {
        "Fn::FindInMap": ["SageMakerInferenceImages", {"Ref": "AWS::Region"}, "AlgorithmImage"]
    }
    assert container["Mode"] == "MultiModel"
    assert template["Outputs"]["Algorithm"]["Value"] == name
    # The pull grant, rendered in us-east-1: exactly the two images' repositories.
    in_us_east_1 = image_table.literal_uris("us-east-1", "1.9-0", selection, "inference")
    renderer = TemplateRenderer(template, STORAGE_EXPORTS)
    pulled = {
        renderer.render(resource)
        for statement in _execution_statements(template)
        if "ecr:BatchGetImage" in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    }
    assert pulled == {
        f"arn:aws:ecr:us-east-1:{uri.split('.')[0]}:repository/{uri.split('/', 1)[1].split(':')[0]}"
        for uri in (in_us_east_1.sklearn, in_us_east_1.algorithm)
    }
