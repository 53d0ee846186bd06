"""The endpoint's two serving-generation custom resources, answered through CDK's Provider framework.

One Python Lambda (``lambda/serving_generation``) decides both: ``resolve`` (which preprocessor
generation the Model is built from) and ``record-serving`` (``preprocessor/serving.json`` once the
endpoint serves it). It is a plain on_event handler: it returns ``{"PhysicalResourceId", "Data"}``
or raises with one sentence. The CloudFormation protocol (the pre-signed ResponseURL, SUCCESS or
FAILED, the marker id of a failed Create whose Delete it then ignores) is the job of
``aws_cdk.custom_resources.Provider``, whose framework function (Node.js, written by CDK) is each
resource's ``ServiceToken`` and invokes the handler synchronously.

The framework function gets what the project's own functions get where the Provider's API allows:
its own role with one customer-managed policy (no AWSLambdaBasicExecutionRole) that may write to its
own KMS-encrypted log group with a retention period and invoke exactly the handler, and JSON logs at
INFO (the framework logs each request with its ResponseURL replaced by ``...``).

Stacks deployed before the framework. Their two custom resources have the handler function's ARN as
``ServiceToken``, and CloudFormation refuses to change an existing custom resource's
``ServiceToken`` ("Modifying service token is not allowed"). New construct ids would replace the
resources instead, but the cleanup then sends the old resources' Delete straight to the handler,
which no longer answers CloudFormation (the deploy would wait out the custom resource timeout, an
hour) and whose record-serving Delete would remove the serving.json the new resource has just
written. So the token stays what it was: the framework function takes over the logical id the
handler function had (an in-place update of that ``AWS::Lambda::Function``: same function, same
ARN, now the framework's code, runtime and role), the handler moves to a logical id of its own, and
the custom resources keep their ids, type and properties (see :meth:`_keep_service_token`).
"""

from __future__ import annotations

from typing import Final

from aws_cdk import CfnResource, CustomResource, Duration, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct

from mme_constructs import access
from mme_constructs.access import acknowledge
from mme_constructs.artifact_store import generation_key
from mme_constructs.handler_function import HandlerFunction, function_identity
from mme_shared import s3_layout
from mme_shared.generation import ALGORITHM_ENV
from project_config.model import TrainingConfig

NEWEST_GENERATION: Final = "newest"
"""The requested generation that means "whatever preprocessor/newest.json names" (the Lambda's NEWEST)."""
RESOLVE_ACTION: Final = "resolve"
RECORD_SERVING_ACTION: Final = "record-serving"
FRAMEWORK_FUNCTION_ID: Final = "framework-onEvent"
"""The construct id CDK's Provider gives its framework function (``framework-<entry point>``)."""
HANDLER_INVOKE_ACTIONS: Final = ("lambda:InvokeFunction", "lambda:GetFunction")
"""What the framework does with the handler (the two actions CDK itself would grant): invoke it, and,
only when an invoke fails, wait with ``GetFunction`` until the function is active, then invoke once
more (CDK's framework runtime, ``outbound.ts``). Without ``GetFunction`` that wait would fail with
AccessDenied and hide the invoke's own error from the FAILED reason."""


def serving_generation_function(
    scope: Construct, construct_id: str, *, bucket: s3.IBucket, key: kms.IKey, training: TrainingConfig
) -> HandlerFunction:
    """The handler behind both custom resources, with exactly the S3 access its module documents."""
    function = HandlerFunction(
        scope,
        construct_id,
        handler_name="serving_generation",
        description="Resolves the preprocessor generation the endpoint deploys; records it once served",
        environment={
            "BUCKET_NAME": bucket.bucket_name,
            "KMS_KEY_ARN": key.key_arn,
            ALGORITHM_ENV: training.algorithm,
        },
        key=key,
        log_retention_days=training.log_retention_days,
        timeout=Duration.seconds(60),
        invoked_by="the endpoint stack's custom resource provider framework during a deploy",
        dlq_reason="The provider framework invokes the handler synchronously and turns a failure into "
        "the custom resource's FAILED answer; a dead-letter queue applies only to asynchronous "
        "invocations.",
    )
    permissions = function.permissions
    records = [s3_layout.NEWEST_GENERATION_KEY, s3_layout.SERVING_GENERATION_KEY]
    permissions.allow(access.S3_READ, [bucket.arn_for_objects(record) for record in records])
    permissions.allow_objects(
        bucket,
        access.S3_READ,
        [
            generation_key(s3_layout.generation_record_key, "*"),
            generation_key(s3_layout.preprocessor_artifact_key, "*"),
        ],
        why_wildcard="Any generation may be requested: its complete.json is read and its artifact "
        "checked with HeadObject (metadata only, authorised as GetObject).",
    )
    # ListBucket only for the prefixes the handler lists: the keys it asks about under
    # preprocessor/ (it tests existence by listing the exact key, so it needs no bucket-wide
    # ListBucket to get 404 instead of 403) and the generations' pointers.
    permissions.allow(
        ["s3:ListBucket"],
        [bucket.bucket_arn],
        conditions={
            "StringLike": {
                "s3:prefix": [
                    *records,
                    generation_key(s3_layout.generation_record_key, "*"),
                    generation_key(s3_layout.preprocessor_artifact_key, "*"),
                    f"{s3_layout.MODEL_POINTERS_PREFIX}*",
                ]
            }
        },
    )
    # Writes and deletes exactly one key: serving.json (SSE-KMS, hence GenerateDataKey).
    permissions.allow(
        ["s3:PutObject", "s3:DeleteObject"], [bucket.arn_for_objects(s3_layout.SERVING_GENERATION_KEY)]
    )
    permissions.allow_key(key, access.KMS_WRITE)
    return function


def _function_resource(function: IConstruct) -> CfnResource:
    """The ``AWS::Lambda::Function`` of a function construct."""
    resource = function.node.default_child
    if not isinstance(resource, CfnResource):
        raise TypeError(f"{function.node.path} has no CloudFormation resource of its own")
    return resource


class ServingGenerationProvider(Construct):
    """CDK's Provider framework in front of ``handler``, and the custom resources it answers."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: HandlerFunction,
        key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.handler = handler
        """The serving_generation Lambda (its role holds the S3 access)."""
        self.log_group, self.role, self.permissions = function_identity(
            self,
            key=key,
            log_retention_days=log_retention_days,
            role_description="Runs CDK's custom resource provider framework in front of the "
            "serving_generation handler",
            policy_description="What the serving-generation provider framework may do: log, invoke the "
            "handler",
        )
        # The unqualified ARN only (the framework invokes no version or alias): CDK's own grant would
        # also cover every qualifier ("<arn>:*"), in a policy CDK writes itself; the role is handed
        # over without policy updates so that this policy is the only one.
        self.permissions.allow(HANDLER_INVOKE_ACTIONS, [handler.function.function_arn])
        self.provider = cr.Provider(
            self,
            "Provider",
            on_event_handler=handler.function,
            framework_on_event_role=self.role.without_policy_updates(),
            log_group=self.log_group,
            framework_lambda_logging_level=lambda_.ApplicationLogLevel.INFO,
        )
        framework = self.provider.node.find_child(FRAMEWORK_FUNCTION_ID)
        self._keep_service_token(framework)
        self._acknowledge_framework_function(framework)

    def _keep_service_token(self, framework: IConstruct) -> None:
        """The framework function takes the logical id the handler function has by its path; the
        handler gets ``ServingGenerationHandler`` plus that id's hash suffix (unique like the path).
        See the module docstring: an existing custom resource's ServiceToken, that function's ARN,
        must not change."""
        handler_resource, framework_resource = (
            _function_resource(self.handler.function),
            _function_resource(framework),
        )
        service_token_id = Stack.of(self).get_logical_id(handler_resource)
        framework_resource.override_logical_id(service_token_id)
        handler_resource.override_logical_id(f"ServingGenerationHandler{service_token_id[-8:]}")

    @staticmethod
    def _acknowledge_framework_function(framework: IConstruct) -> None:
        """What cdk-nag finds on the framework function, whose definition CDK owns."""
        for rule, reason in (
            (
                "NIST.800.53.R5::NIST.800.53.R5-LambdaConcurrency",
                "Invoked only by CloudFormation for this stack's two custom resources during a deploy; "
                "reserving concurrency would fail deploys in accounts with a small Lambda quota.",
            ),
            (
                "NIST.800.53.R5::NIST.800.53.R5-LambdaDLQ",
                "CloudFormation waits for the framework's answer and fails the deploy without one; a "
                "dead-letter queue would hold nothing anyone acts on.",
            ),
            (
                "NIST.800.53.R5::NIST.800.53.R5-LambdaInsideVPC",
                "The framework only invokes the handler through the Lambda API and answers "
                "CloudFormation's pre-signed HTTPS URL; no VPC resource needs to be reached.",
            ),
        ):
            acknowledge(framework, rule, reason)

    def request(self, scope: Construct, construct_id: str, action: str, **properties: str) -> CustomResource:
        """One custom resource answered by the handler (``Action`` plus ``properties``)."""
        # The type stays AWS::CloudFormation::CustomResource: CloudFormation changes no resource's
        # type in place, and the resources of stacks deployed before the framework have that type.
        resource = CustomResource(
            scope,
            construct_id,
            service_token=self.provider.service_token,
            properties={"Action": action, **properties},
        )
        # Both policies before the first request: the framework's (invoke) and the handler's (S3).
        resource.node.add_dependency(self.permissions, self.handler.permissions)
        return resource
