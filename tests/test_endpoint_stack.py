"""The multi-model inference-pipeline endpoint: model, containers, endpoint config, scaling, role."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Capture, Match, Template
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER  # type: ignore[import-untyped]

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
from tests.conftest import STORAGE_EXPORTS, SynthesizedApp, one_statement

BUCKET = {"Fn::ImportValue": "MmeStorage-ArtifactBucketName"}
BUCKET_ARN = {"Fn::ImportValue": "MmeStorage-ArtifactBucketArn"}
KEY_ARN = {"Fn::ImportValue": "MmeStorage-KeyArn"}

ALARM = "AWS::CloudWatch::Alarm"
CUSTOM_RESOURCE = "AWS::CloudFormation::CustomResource"
ENDPOINT = "AWS::SageMaker::Endpoint"
FUNCTION = "AWS::Lambda::Function"
MANAGED_POLICY = "AWS::IAM::ManagedPolicy"
MODEL = "AWS::SageMaker::Model"
SCALABLE_TARGET = "AWS::ApplicationAutoScaling::ScalableTarget"
SCALING_POLICY = "AWS::ApplicationAutoScaling::ScalingPolicy"


def _one(template: Template, resource_type: str) -> str:
    """The logical id of the template's one resource of ``resource_type``."""
    (logical_id,) = template.find_resources(resource_type)
    return logical_id


def _custom_resource(template: Template, action: str) -> str:
    """The logical id of the one custom resource with this ``Action``."""
    (logical_id,) = template.find_resources(CUSTOM_RESOURCE, {"Properties": {"Action": action}})
    return logical_id


def _resource(template: Template, resource_type: str, logical_id: str) -> Template:
    """A template of ``logical_id``'s resource alone: ``Match``/``Capture`` assertions about that one
    resource (a ``Capture`` then sees no other resource of its type), with the matchers' messages."""
    resources = template.find_resources(resource_type)
    assert logical_id in resources, f"no {resource_type} {logical_id}"
    return Template.from_json({"Resources": {logical_id: resources[logical_id]}})


def _depends_on(template: Template, resource_type: str, logical_id: str) -> list[str]:
    depends_on = Capture()
    _resource(template, resource_type, logical_id).has_resource(resource_type, {"DependsOn": depends_on})
    return [str(dependency) for dependency in depends_on.as_array()]


def _captured(capture: Capture) -> list[str]:
    """Every string ``capture`` captured, in order."""
    values = [capture.as_string()]
    while capture.next():
        values.append(capture.as_string())
    return values


def _generation(template: Template) -> dict[str, Any]:
    """``Fn::GetAtt <resolver>.Generation``."""
    return {"Fn::GetAtt": [_custom_resource(template, "resolve"), "Generation"]}


def _image(column: str) -> dict[str, Any]:
    """The region's image from the template's image mapping."""
    return {"Fn::FindInMap": ["SageMakerInferenceImages", {"Ref": "AWS::Region"}, column]}


def test_model_is_a_serial_pipeline_of_preprocessor_then_multi_model_linear_learner(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.assertions("endpoint")
    template.resource_count_is(MODEL, 1)
    generation = _generation(template)
    # Both containers read the one generation the resolver answered: its artifact, its models.
    preprocessor = Match.object_like(
        {
            "Mode": "SingleModel",
            "ModelDataUrl": Match.exact(
                {"Fn::Join": ["", ["s3://", BUCKET, "/preprocessor/", generation, "/model.tar.gz"]]}
            ),
            "Image": Match.exact(_image("SklearnImage")),
            "Environment": Match.object_equals(
                {
                    "SAGEMAKER_SUBMIT_DIRECTORY": Match.object_equals(
                        {
                            "Fn::Sub": Match.string_like_regexp(
                                r"^s3://cdk-hnb659fds-assets-\$\{AWS::AccountId\}-\$\{AWS::Region\}/"
                            )
                        }
                    ),
                    "MME_PREPROCESSOR_GENERATION": generation,
                    "SAGEMAKER_PROGRAM": "housing_preprocessor.py",
                    "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
                    "SAGEMAKER_REGION": {"Ref": "AWS::Region"},
                    "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                }
            ),
        }
    )
    learner = Match.object_equals(
        {
            "Image": _image("AlgorithmImage"),
            "Mode": "MultiModel",
            "ModelDataUrl": {"Fn::Join": ["", ["s3://", BUCKET, "/models/", generation, "/"]]},
        }
    )
    template.has_resource_properties(
        MODEL,
        {
            "InferenceExecutionConfig": Match.object_equals({"Mode": "Serial"}),
            "EnableNetworkIsolation": False,
            "Containers": Match.array_equals([preprocessor, learner]),
        },
    )


def test_the_resolver_asks_for_the_newest_generation_unless_one_is_pinned(
    synthesized: SynthesizedApp, cdk_context: dict[str, Any]
) -> None:
    template = synthesized.assertions("endpoint")
    _custom_resource(template, "resolve")
    template.has_resource_properties(
        CUSTOM_RESOURCE,
        Match.object_equals({"Action": "resolve", "Generation": "newest", "ServiceToken": Match.any_value()}),
    )
    pinned = _endpoint_template(cdk_context, {}, generation="pp-deploy-20261201-120000")
    _custom_resource(pinned, "resolve")
    pinned.has_resource_properties(
        CUSTOM_RESOURCE, {"Action": "resolve", "Generation": "pp-deploy-20261201-120000"}
    )


FRAMEWORK_FUNCTION_LOGICAL_ID = "MultiModelEndpointServingGenerationFunctionF092A5CE"
"""The logical id of the function both custom resources name as ServiceToken, from before the Provider
framework (then the handler itself) to now (the framework's function): CloudFormation refuses to change
an existing custom resource's ServiceToken, so this id, and with it the function's ARN, must stay."""


def _framework_and_handler(template: Template) -> tuple[str, str]:
    """The logical ids of the Provider framework's function (every custom resource's ServiceToken) and
    of the handler it invokes (its ``USER_ON_EVENT_FUNCTION_ARN``)."""
    template.resource_count_is(CUSTOM_RESOURCE, 2)
    token = Capture()
    template.all_resources_properties(
        CUSTOM_RESOURCE, {"ServiceToken": Match.object_equals({"Fn::GetAtt": [token, "Arn"]})}
    )
    (framework_id,) = set(_captured(token))
    handler = Capture()
    _resource(template, FUNCTION, framework_id).has_resource_properties(
        FUNCTION,
        {
            "Environment": {
                "Variables": {"USER_ON_EVENT_FUNCTION_ARN": {"Fn::GetAtt": [handler, Match.any_value()]}}
            }
        },
    )
    return framework_id, handler.as_string()


def _role_and_log_group(template: Template, function_id: str) -> tuple[str, str]:
    """The logical ids of a function's role (``Role: Fn::GetAtt``) and log group (``LogGroup: Ref``)."""
    role, log_group = Capture(), Capture()
    _resource(template, FUNCTION, function_id).has_resource_properties(
        FUNCTION,
        {
            "Role": {"Fn::GetAtt": [role, Match.any_value()]},
            "LoggingConfig": {"LogGroup": Match.object_equals({"Ref": log_group})},
        },
    )
    return role.as_string(), log_group.as_string()


def test_the_provider_framework_answers_both_custom_resources_by_invoking_the_handler(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.assertions("endpoint")
    framework_id, handler_id = _framework_and_handler(template)
    assert framework_id == FRAMEWORK_FUNCTION_LOGICAL_ID
    _resource(template, FUNCTION, framework_id).has_resource_properties(
        FUNCTION,
        {
            "Handler": "framework.onEvent",  # CDK's custom resource provider framework
            "Environment": {
                "Variables": Match.object_equals({"USER_ON_EVENT_FUNCTION_ARN": Match.any_value()})
            },
        },
    )
    _resource(template, FUNCTION, handler_id).has_resource_properties(
        FUNCTION,
        {
            "Handler": "serving_generation.handler",
            "Timeout": 60,
            "Environment": {
                "Variables": Match.object_equals(
                    {"BUCKET_NAME": BUCKET, "KMS_KEY_ARN": KEY_ARN, "ALGORITHM": "linear-learner"}
                )
            },
        },
    )


def test_the_custom_resources_keep_their_logical_ids_type_and_service_token(
    synthesized: SynthesizedApp,
) -> None:
    """What an endpoint stack deployed before the Provider framework has: the update changes neither
    (a changed id would replace the resource, and the old one's Delete would remove serving.json)."""
    template = synthesized.assertions("endpoint")
    assert {action: _custom_resource(template, action) for action in ("resolve", "record-serving")} == {
        "resolve": "MultiModelEndpointPreprocessorGeneration60C6DCAF",
        "record-serving": "MultiModelEndpointServingGenerationRecord2E505481",
    }
    template.all_resources_properties(
        CUSTOM_RESOURCE,
        {"ServiceToken": Match.object_equals({"Fn::GetAtt": [FRAMEWORK_FUNCTION_LOGICAL_ID, "Arn"]})},
    )


def test_taking_over_the_service_token_function_is_an_update_in_place(synthesized: SynthesizedApp) -> None:
    """Against CloudFormation's own resource schemas (cfn-lint's bundle): a custom resource's
    ServiceToken is create-only, so it must keep naming the same function, and a Lambda function is
    replaced (a new ARN) only when one of its create-only properties changes. The framework function
    that took over the handler's logical id sets none of them (neither did the handler), so the deploy
    updates that function in place: new code, runtime, handler and role, the same ARN."""
    custom_resource = PROVIDER_SCHEMA_MANAGER.get_resource_schema(
        "us-east-1", "AWS::CloudFormation::CustomResource"
    )
    assert custom_resource.schema["createOnlyProperties"] == ["/properties/ServiceToken"]
    function = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", FUNCTION).schema
    create_only = [path.removeprefix("/properties/") for path in function["createOnlyProperties"]]
    changed = {"Code", "Runtime", "Handler", "Role", "Architectures", "Environment", "LoggingConfig"}
    assert create_only
    assert not changed & set(create_only), create_only
    template = synthesized.assertions("endpoint")
    _resource(template, FUNCTION, FRAMEWORK_FUNCTION_LOGICAL_ID).has_resource_properties(
        FUNCTION, {name: Match.absent() for name in create_only}
    )


def test_the_framework_function_logs_to_its_own_encrypted_log_group(synthesized: SynthesizedApp) -> None:
    """JSON at INFO, what the Provider's API can set (its platform log level it cannot)."""
    template = synthesized.assertions("endpoint")
    template.resource_properties_count_is(FUNCTION, {"Handler": "framework.onEvent"}, 1)
    framework_id, handler_id = _framework_and_handler(template)
    _resource(template, FUNCTION, framework_id).has_resource_properties(
        FUNCTION, {"LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "INFO"}}
    )
    _, log_group_id = _role_and_log_group(template, framework_id)
    assert log_group_id != _role_and_log_group(template, handler_id)[1]
    _resource(template, "AWS::Logs::LogGroup", log_group_id).has_resource_properties(
        "AWS::Logs::LogGroup",
        {
            "KmsKeyId": Match.exact(KEY_ARN),
            "RetentionInDays": load_default_config().training.log_retention_days,
        },
    )


def test_the_framework_role_may_log_and_invoke_exactly_the_handler(synthesized: SynthesizedApp) -> None:
    """Its own role, no AWS managed policy (CDK would attach AWSLambdaBasicExecutionRole to a role it
    creates), and one policy of ours: CDK adds none of its own grants (the role is passed immutable)."""
    template = synthesized.assertions("endpoint")
    framework_id, handler_id = _framework_and_handler(template)
    role_id, log_group_id = _role_and_log_group(template, framework_id)
    assert role_id != _role_and_log_group(template, handler_id)[0]
    _resource(template, "AWS::IAM::Role", role_id).has_resource_properties(
        "AWS::IAM::Role", {"ManagedPolicyArns": Match.absent(), "Policies": Match.absent()}
    )
    attached = {"Roles": Match.array_with([{"Ref": role_id}])}
    template.resource_properties_count_is("AWS::IAM::Policy", attached, 0)
    template.resource_properties_count_is(MANAGED_POLICY, attached, 1)
    statements = [
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
    template.has_resource_properties(
        MANAGED_POLICY, {**attached, "PolicyDocument": {"Statement": Match.exact(statements)}}
    )


def test_the_custom_resources_wait_for_both_policies(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("endpoint")
    roles = {
        _role_and_log_group(template, function_id)[0] for function_id in _framework_and_handler(template)
    }
    policies = {
        policy_id
        for role_id in roles
        for policy_id in template.find_resources(
            MANAGED_POLICY, {"Properties": {"Roles": Match.array_with([{"Ref": role_id}])}}
        )
    }
    assert len(policies) == 2
    for action in ("resolve", "record-serving"):
        depends_on = _depends_on(template, CUSTOM_RESOURCE, _custom_resource(template, action))
        assert policies <= set(depends_on), action


def test_serving_json_is_recorded_only_after_the_endpoint_and_its_autoscaling(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.assertions("endpoint")
    endpoint_id = _one(template, ENDPOINT)
    record_id = _custom_resource(template, "record-serving")
    # GetAtt of the endpoint's name: CloudFormation reaches the record only once the endpoint is
    # created or updated, i.e. serves the generation.
    _resource(template, CUSTOM_RESOURCE, record_id).has_resource_properties(
        CUSTOM_RESOURCE,
        {
            "Generation": Match.exact(_generation(template)),
            "EndpointName": Match.exact({"Fn::GetAtt": [endpoint_id, "EndpointName"]}),
        },
    )
    scaling = {_one(template, SCALABLE_TARGET), _one(template, SCALING_POLICY)}
    assert scaling <= set(_depends_on(template, CUSTOM_RESOURCE, record_id))


def test_model_waits_for_the_resolver_and_the_role_policy(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("endpoint")
    model_id = _one(template, MODEL)
    (policy_id,) = [k for k in _depends_on(template, MODEL, model_id) if "ExecutionPermissions" in k]
    assert policy_id in template.find_resources(MANAGED_POLICY)
    # It reads the resolver's Generation (GetAtt): CloudFormation creates it after the resolver.
    template.has_resource_properties(
        MODEL,
        {
            "Containers": Match.array_with(
                [
                    Match.object_like(
                        {"Environment": {"MME_PREPROCESSOR_GENERATION": Match.exact(_generation(template))}}
                    )
                ]
            )
        },
    )


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
    template = synthesized.assertions("endpoint")
    model_id = _one(template, MODEL)
    template.resource_count_is("AWS::SageMaker::EndpointConfig", 1)
    variant = {
        "InitialInstanceCount": 1,
        "InitialVariantWeight": 1,
        "InstanceType": "ml.m4.xlarge",
        "ModelName": {"Fn::GetAtt": [model_id, "ModelName"]},
        "VariantName": "AllTraffic",
    }
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {"KmsKeyId": Match.exact(KEY_ARN), "ProductionVariants": Match.exact([variant])},
    )


def test_autoscaling_tracks_invocations_per_instance(synthesized: SynthesizedApp) -> None:
    scaling = load_default_config().endpoint.autoscaling
    template = synthesized.assertions("endpoint")
    endpoint_id = _one(template, ENDPOINT)
    target_id = _one(template, SCALABLE_TARGET)
    role_parts = Capture()
    template.has_resource_properties(
        SCALABLE_TARGET,
        {
            "ServiceNamespace": "sagemaker",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "MinCapacity": scaling.min_capacity,
            "MaxCapacity": scaling.max_capacity,
            "ResourceId": Match.exact(
                {
                    "Fn::Join": [
                        "",
                        ["endpoint/", {"Fn::GetAtt": [endpoint_id, "EndpointName"]}, "/variant/AllTraffic"],
                    ]
                }
            ),
            "RoleARN": {"Fn::Join": [Match.any_value(), role_parts]},
        },
    )
    assert role_parts.as_array()[-1].endswith(
        ":role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )
    template.resource_count_is(SCALING_POLICY, 1)
    template.has_resource_properties(
        SCALING_POLICY,
        {
            "ScalingTargetId": Match.exact({"Ref": target_id}),
            "TargetTrackingScalingPolicyConfiguration": Match.object_equals(
                {
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                    "ScaleInCooldown": scaling.scale_in_cooldown_seconds,
                    "ScaleOutCooldown": scaling.scale_out_cooldown_seconds,
                    "TargetValue": scaling.target_invocations_per_instance,
                }
            ),
        },
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _policy(template: Template, name: str) -> Template:
    """The one managed policy whose logical id contains ``name``, as a template of it alone."""
    (policy_id,) = [k for k in template.find_resources(MANAGED_POLICY) if name in k]
    return _resource(template, MANAGED_POLICY, policy_id)


def _has_one_statement(policy: Template, like: dict[str, Any], statement: dict[str, Any]) -> None:
    """``policy`` (a template of one managed policy) has exactly one statement like ``like``, and that
    statement is also like ``statement`` (both ``Match.object_like`` patterns)."""
    for statements in one_statement(like, statement):
        policy.has_resource_properties(MANAGED_POLICY, {"PolicyDocument": {"Statement": statements}})


def _statements(policy: Template) -> list[dict[str, Any]]:
    """Every statement of a :func:`_policy`, for the checks that are about all of them."""
    statements = Capture()
    policy.has_resource_properties(MANAGED_POLICY, {"PolicyDocument": {"Statement": statements}})
    return [dict(statement) for statement in statements.as_array()]


def _objects(*keys: str) -> list[dict[str, Any]]:
    return [{"Fn::Join": ["", [BUCKET_ARN, f"/{key}"]]} for key in keys]


def test_the_function_reads_the_records_and_writes_only_serving_json(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("endpoint")
    policy = _policy(template, "ServingGenerationFunction")
    read = _objects(
        "preprocessor/*/complete.json",
        "preprocessor/*/model.tar.gz",
        "preprocessor/newest.json",
        "preprocessor/serving.json",
    )
    listed = [
        "preprocessor/newest.json",
        "preprocessor/serving.json",
        "preprocessor/*/complete.json",
        "preprocessor/*/model.tar.gz",
        "model-pointers/*",
    ]
    for action, statement in (
        ("s3:GetObject", {"Resource": Match.exact(read)}),
        (
            "s3:ListBucket",
            {
                "Resource": Match.exact(BUCKET_ARN),
                "Condition": Match.exact({"StringLike": {"s3:prefix": listed}}),
            },
        ),
        (
            ["s3:DeleteObject", "s3:PutObject"],
            {"Resource": Match.exact(_objects("preprocessor/serving.json")[0])},
        ),
        (["kms:Decrypt", "kms:GenerateDataKey"], {"Resource": Match.exact(KEY_ARN)}),
    ):
        _has_one_statement(policy, {"Action": action}, statement)
    # Over every statement: these four S3 actions, once each, and no other.
    statements = _statements(policy)
    s3_actions = sorted(a for s in statements for a in _as_list(s["Action"]) if a.startswith("s3:"))
    assert s3_actions == ["s3:DeleteObject", "s3:GetObject", "s3:ListBucket", "s3:PutObject"]


def test_execution_role_reads_only_models_the_preprocessor_and_its_source(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.assertions("endpoint")
    policy = _policy(template, "ExecutionPermissions")
    s3_reads = Capture()
    _has_one_statement(policy, {"Action": "s3:GetObject"}, {"Resource": s3_reads})
    rendered = json.dumps(s3_reads.as_array())
    assert len(s3_reads.as_array()) == 3
    assert '"/models/*"' in rendered
    assert '"/preprocessor/*/model.tar.gz"' in rendered  # the artifacts, not the generation records
    assert '"/preprocessor/*"' not in rendered
    assert "cdk-hnb659fds-assets-" in rendered
    assert '.gz"' in rendered
    # Over every statement: no other S3 action, no other KMS action, no EC2 (no VPC configured), and one
    # statement pulls images, whatever the order of its actions.
    statements = _statements(policy)
    actions = sorted(a for s in statements for a in _as_list(s["Action"]))
    assert not [a for a in actions if a.startswith("s3:") and a != "s3:GetObject"]
    assert [a for a in actions if a.startswith("kms:")] == ["kms:Decrypt"]
    assert not [a for a in actions if a.startswith("ec2:")]
    pull = {"ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"}
    (ecr,) = [s for s in statements if set(_as_list(s["Action"])) == pull]
    assert len(ecr["Resource"]) == 2  # the two images' repositories, not every repository


def test_explicit_region_gets_literal_image_uris(synthesized_throwaway: SynthesizedApp) -> None:
    template = synthesized_throwaway.assertions("endpoint")
    assert template.find_mappings("*") == {}
    template.resource_count_is(MODEL, 1)
    expected = image_table.literal_uris(
        "eu-west-1", "1.9-0", image_table.AlgorithmImage("linear-learner", "1"), "inference"
    )
    assert expected.algorithm == "438346466558.dkr.ecr.eu-west-1.amazonaws.com/linear-learner:1"
    template.has_resource_properties(
        MODEL,
        {
            "Containers": [
                Match.object_like({"Image": expected.sklearn}),
                Match.object_like({"Image": expected.algorithm}),
            ]
        },
    )


def _endpoint_template(
    cdk_context: dict[str, Any], overrides: dict[str, Any], generation: str = NEWEST_GENERATION
) -> Template:
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
    return Template.from_stack(stack)


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
    resolver_id = _custom_resource(template, "resolve")
    _resource(template, CUSTOM_RESOURCE, resolver_id).has_resource_properties(
        CUSTOM_RESOURCE, {"Generation": "pp-deploy-20261125-013000"}
    )
    # Without autoscaling, the record waits for the endpoint alone (GetAtt of its name).
    record_id = _custom_resource(template, "record-serving")
    _resource(template, CUSTOM_RESOURCE, record_id).has_resource(
        CUSTOM_RESOURCE, {"DependsOn": Match.not_(Match.array_with([Match.string_like_regexp("Scal")]))}
    )
    template.resource_count_is(MODEL, 1)
    template.has_resource_properties(
        MODEL,
        {
            "EnableNetworkIsolation": True,
            "VpcConfig": Match.object_equals(
                {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}
            ),
            "Containers": [
                # Isolated containers cannot reach S3: the code travels inside the preprocessor artifact.
                Match.object_like(
                    {
                        "Environment": {
                            "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                            "SAGEMAKER_CONTAINER_LOG_LEVEL": "10",
                        }
                    }
                ),
                Match.object_like(
                    {"MultiModelConfig": Match.object_equals({"ModelCacheSetting": "Disabled"})}
                ),
            ],
        },
    )
    policy = _policy(template, "ExecutionPermissions")
    policy.has_resource_properties(
        MANAGED_POLICY,
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Action": Match.array_with(["ec2:CreateNetworkInterface"])})]
                )
            }
        },
    )
    assert "cdk-hnb659fds-assets-" not in json.dumps(_statements(policy))
    template.resource_count_is(SCALABLE_TARGET, 0)


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
    template = synthesized.assertions("endpoint")
    endpoint_id = _one(template, ENDPOINT)
    template.has_output("EndpointName", {"Value": Match.exact({"Fn::GetAtt": [endpoint_id, "EndpointName"]})})
    template.has_output("VariantName", {"Value": "AllTraffic"})
    synthesized.assertions("training").has_output("StateMachineArn", {})
    synthesized.assertions("storage").has_output("ModelPrefixUri", {})


# -- deployment guardrails ------------------------------------------------------------------------

ROLLBACK_ALARM_NAMES = ["MmeEndpoint-Rollback-Invocation5XXErrors", "MmeEndpoint-Rollback-ModelLatencyP99"]


def test_updates_are_blue_green_all_at_once_with_baking_and_automatic_rollback(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.assertions("endpoint")
    template.resource_count_is(ENDPOINT, 1)
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": 1200,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ROLLBACK_ALARM_NAMES]},
    }
    template.has_resource_properties(
        ENDPOINT,
        {
            "DeploymentConfig": Match.object_equals(deployment),
            # Autoscaling owns the instance count: an update keeps it (nothing is excluded from retention).
            "RetainAllVariantProperties": True,
            "ExcludeRetainedVariantProperties": Match.absent(),
        },
    )


def test_the_rollback_alarms_exist_by_name_and_watch_this_endpoint(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("endpoint")
    endpoint_id = _one(template, ENDPOINT)
    template.resource_count_is(ALARM, len(ROLLBACK_ALARM_NAMES))
    for name in ROLLBACK_ALARM_NAMES:
        template.resource_properties_count_is(ALARM, {"AlarmName": name}, 1)
    config = load_default_config().alarms
    # The endpoint is named after its stack, so the alarms it names exist before it: CloudFormation
    # creates them first (the Endpoint depends on them; they do not depend on it).
    _resource(template, ENDPOINT, endpoint_id).has_resource_properties(
        ENDPOINT, {"EndpointName": "MmeEndpoint"}
    )
    alarms = template.find_resources(ALARM)
    assert set(alarms) <= set(_depends_on(template, ENDPOINT, endpoint_id))
    assert endpoint_id not in json.dumps(alarms)
    dimensions = [
        {"Name": "EndpointName", "Value": "MmeEndpoint"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ]
    errors, latency = ROLLBACK_ALARM_NAMES
    watched = [  # name, metric, statistic, evaluation periods, threshold
        (errors, "Invocation5XXErrors", "Sum", 1, config.invocation_5xx_errors_per_5_minutes),
        (latency, "ModelLatency", "p99", 3, config.model_latency_p99_max_ms * 1000),
    ]
    for name, metric_name, stat, evaluation_periods, threshold in watched:
        metric = {
            "Namespace": "AWS/SageMaker",
            "MetricName": metric_name,
            "Dimensions": Match.exact(dimensions),
        }
        template.has_resource_properties(
            ALARM,
            {
                "AlarmName": name,
                "Metrics": [
                    Match.object_like({"MetricStat": {"Metric": metric, "Stat": stat, "Period": 300}})
                ],
                "EvaluationPeriods": evaluation_periods,
                "Threshold": threshold,
                "TreatMissingData": "notBreaching",
                "ComparisonOperator": "GreaterThanOrEqualToThreshold",
                "AlarmActions": Match.absent(),  # the monitoring stack's alarms on the same conditions notify
            },
        )


def test_the_execution_role_may_describe_exactly_the_rollback_alarms(synthesized: SynthesizedApp) -> None:
    """Exactly one statement of all the managed policies describes alarms: the execution role's."""
    template = synthesized.assertions("endpoint")
    describe = {"Action": "cloudwatch:DescribeAlarms"}
    (policy_id,) = template.find_resources(
        MANAGED_POLICY,
        {"Properties": {"PolicyDocument": {"Statement": Match.array_with([Match.object_like(describe)])}}},
    )
    alarms = [
        {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":cloudwatch:", {"Ref": "AWS::Region"}, ":",
                           {"Ref": "AWS::AccountId"}, f":alarm:{name}"]]}
        for name in ROLLBACK_ALARM_NAMES
    ]  # fmt: skip
    _has_one_statement(
        _resource(template, MANAGED_POLICY, policy_id), describe, {"Resource": Match.exact(alarms)}
    )


def test_serving_json_is_recorded_only_after_the_rollback_alarms_exist(synthesized: SynthesizedApp) -> None:
    template = synthesized.assertions("endpoint")
    record_id = _custom_resource(template, "record-serving")
    assert set(template.find_resources(ALARM)) <= set(_depends_on(template, CUSTOM_RESOURCE, record_id))


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
    template.resource_count_is(ENDPOINT, 1)
    template.has_resource_properties(
        ENDPOINT,
        {
            "RetainAllVariantProperties": True,
            "ExcludeRetainedVariantProperties": Match.exact(
                [{"VariantPropertyType": "DesiredInstanceCount"}]
            ),
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TerminationWaitInSeconds": 900,
                    "MaximumExecutionTimeoutInSeconds": 7200,
                }
            },
        },
    )


def test_alarm_names_follow_the_stack_name(cdk_context: dict[str, Any]) -> None:
    config = ProjectConfig.model_validate(default_context())
    app = cdk.App(context=cdk_context)
    stack = EndpointStack(
        app, "OtherEndpoint", storage=StorageExports(stack_name="OtherStorage"),
        endpoint=config.endpoint, training=config.training, alarms=config.alarms,
    )  # fmt: skip
    template = Template.from_stack(stack)
    template.resource_count_is(ENDPOINT, 1)
    names = ["OtherEndpoint-Rollback-Invocation5XXErrors", "OtherEndpoint-Rollback-ModelLatencyP99"]
    alarms = [{"AlarmName": name} for name in names]
    template.has_resource_properties(
        ENDPOINT, {"DeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": alarms}}}
    )


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_the_multi_model_container_is_the_configured_algorithms_image(
    name: str, cdk_context: dict[str, Any]
) -> None:
    """Its image (every region's row), the ECR grant for exactly the two images, and the output the
    CLI reads to know the response format."""
    template = _endpoint_template(cdk_context, {"training": {"algorithm": name}})
    algorithm = ALGORITHMS[name]
    selection = image_table.AlgorithmImage(algorithm.image_family, algorithm.default_image_tag)

    def uris(region: str) -> image_table.ImageUris:
        return image_table.literal_uris(region, "1.9-0", selection, "inference")

    # Every row of the template's mapping has the algorithm's image; eu-west-1's is exactly both.
    (regions,) = template.find_mappings("SageMakerInferenceImages").values()
    rows: dict[str, Any] = {region: {"AlgorithmImage": uris(region).algorithm} for region in regions}
    expected = uris("eu-west-1")
    rows["eu-west-1"] = Match.object_equals(
        {"SklearnImage": expected.sklearn, "AlgorithmImage": expected.algorithm}
    )
    template.has_mapping("SageMakerInferenceImages", rows)
    template.resource_count_is(MODEL, 1)
    template.has_resource_properties(
        MODEL,
        {
            "Containers": [
                Match.any_value(),
                Match.object_like({"Image": Match.exact(_image("AlgorithmImage")), "Mode": "MultiModel"}),
            ]
        },
    )
    template.has_output("Algorithm", {"Value": name})
    # The pull grant, rendered in us-east-1: exactly the two images' repositories (the renderer reads
    # the whole template).
    in_us_east_1 = uris("us-east-1")
    renderer = TemplateRenderer(dict(template.to_json()), STORAGE_EXPORTS)
    pulled = {
        renderer.render(resource)
        for statement in _statements(_policy(template, "ExecutionPermissions"))
        if "ecr:BatchGetImage" in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    }
    assert pulled == {
        f"arn:aws:ecr:us-east-1:{uri.split('.')[0]}:repository/{uri.split('/', 1)[1].split(':')[0]}"
        for uri in (in_us_east_1.sklearn, in_us_east_1.algorithm)
    }
