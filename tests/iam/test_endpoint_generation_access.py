"""The endpoint stack's S3 and KMS access around preprocessor generations, decided by the IAM evaluator.

Two identities, each with the policies of the synthesized endpoint template, and the storage stack's
bucket and key policies as the resource policies that really apply:

* the endpoint's execution role reads every generation's preprocessor artifact and models (both
  generations are served while SageMaker switches the fleet over), but not the generation records
  beside the artifacts, nor the pointers;
* the serving-generation Lambda reads the records it checks, lists only the prefixes it asks about,
  and writes and deletes ``preprocessor/serving.json`` and nothing else;
* CDK's custom resource Provider framework in front of it writes to its own log group and invokes
  exactly that Lambda (no version or alias of it, no other function), and reaches no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mme_shared import naming
from project_config import load_default_config
from tests.cfn_render import ACCOUNT, TemplateRenderer
from tests.conftest import STORAGE_EXPORTS, SynthesizedApp, resources_of_type
from tests.iam.evaluator import Case, CaseBatch, Decision, render_policy, role_identity_policies
from tests.iam.test_aws_minimums import BUCKET, KEY_ARN, TLS, _artifact_bucket_id, _BucketRenderer, _one

ALLOWED, IMPLICIT, EXPLICIT = Decision.ALLOWED, Decision.IMPLICITLY_DENIED, Decision.EXPLICITLY_DENIED
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
ENDPOINT_ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/MultiModelEndpointExecutionRole/SageMaker"
FUNCTION_ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/ServingGenerationFunctionRole/function"
FRAMEWORK_ROLE = f"arn:aws:sts::{ACCOUNT}:assumed-role/ServingGenerationProviderRole/framework"
OTHER_FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:MmeTraining-PromoteArtifact"
TRAINING_JOB = naming.training_job_name("X", "run-1", load_default_config().training.algorithm_spec.job_step)
"""A location's training job as the default app (the one synthesized here) names it."""


@dataclass(frozen=True)
class Policies:
    endpoint_role: list[dict[str, Any]]
    function_role: list[dict[str, Any]]
    framework_role: list[dict[str, Any]]
    bucket_policy: dict[str, Any]
    key_policy: dict[str, Any]
    arns: dict[str, str]
    """The rendered ARNs of the two functions and of a log stream in each one's log group
    (``handler``, ``framework``, ``handler-logs``, ``framework-logs``)."""


def _role(template: dict[str, Any], description: str) -> str:
    (logical_id,) = [
        k
        for k, r in resources_of_type(template, "AWS::IAM::Role").items()
        if r["Properties"].get("Description") == description
    ]
    return logical_id


def _function(template: dict[str, Any], handler: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, function),) = [
        (k, r["Properties"])
        for k, r in resources_of_type(template, "AWS::Lambda::Function").items()
        if r["Properties"]["Handler"] == handler
    ]
    return logical_id, function


def _arns(template: dict[str, Any], renderer: TemplateRenderer) -> dict[str, str]:
    arns: dict[str, str] = {}
    for name, handler in (("handler", "serving_generation.handler"), ("framework", "framework.onEvent")):
        logical_id, function = _function(template, handler)
        arns[name] = renderer.render({"Fn::GetAtt": [logical_id, "Arn"]})
        log_group = renderer.render(function["LoggingConfig"]["LogGroup"]).removesuffix(":*")
        arns[f"{name}-logs"] = f"{log_group}:log-stream:2026/12/01/[$LATEST]0123abcd"
    assert len(set(arns.values())) == 4, arns
    return arns


@pytest.fixture(scope="module")
def policies(synthesized: SynthesizedApp) -> Policies:
    storage = synthesized.template("storage")
    (bucket_policy,) = [
        r["Properties"]["PolicyDocument"]
        for r in resources_of_type(storage, "AWS::S3::BucketPolicy").values()
        if r["Properties"]["Bucket"] == {"Ref": _artifact_bucket_id(storage)}
    ]
    _, key = _one(storage, "AWS::KMS::Key")
    endpoint = synthesized.template("endpoint")
    renderer = TemplateRenderer(endpoint, STORAGE_EXPORTS)
    return Policies(
        endpoint_role=role_identity_policies(
            renderer, _role(endpoint, "SageMaker execution role of the multi-model inference pipeline")
        ),
        function_role=role_identity_policies(
            renderer, _role(endpoint, "Runs the serving_generation Lambda handler")
        ),
        framework_role=role_identity_policies(
            renderer,
            _role(
                endpoint,
                "Runs CDK's custom resource provider framework in front of the serving_generation handler",
            ),
        ),
        bucket_policy=render_policy(bucket_policy, _BucketRenderer(storage)),
        key_policy=render_policy(key["Properties"]["KeyPolicy"], TemplateRenderer(storage, {})),
        arns=_arns(endpoint, renderer),
    )


def _object(key: str) -> str:
    return f"{BUCKET_ARN}/{key}"


ENDPOINT_CASES: list[tuple[str, str, str, Decision]] = [
    ("reads its generation's preprocessor artifact", "s3:GetObject",
     _object("preprocessor/pp-a/model.tar.gz"), ALLOWED),
    ("reads another generation's artifact (the old fleet during a switch)", "s3:GetObject",
     _object("preprocessor/pp-b/model.tar.gz"), ALLOWED),
    ("reads a model of its generation", "s3:GetObject", _object("models/pp-a/X/X-v.tar.gz"), ALLOWED),
    ("reads newest.json", "s3:GetObject", _object("preprocessor/newest.json"), IMPLICIT),
    ("reads serving.json", "s3:GetObject", _object("preprocessor/serving.json"), IMPLICIT),
    ("reads a generation's complete.json", "s3:GetObject", _object("preprocessor/pp-a/complete.json"),
     IMPLICIT),
    ("reads a pointer", "s3:GetObject", _object("model-pointers/pp-a/X.json"), IMPLICIT),
    ("reads training output", "s3:GetObject",
     _object(f"training-output/run-1/{TRAINING_JOB}/output/model.tar.gz"), IMPLICIT),
    ("writes a model", "s3:PutObject", _object("models/pp-a/X/X-v.tar.gz"), IMPLICIT),
    ("writes serving.json", "s3:PutObject", _object("preprocessor/serving.json"), IMPLICIT),
    ("lists the bucket", "s3:ListBucket", BUCKET_ARN, IMPLICIT),
    ("decrypts with the project key", "kms:Decrypt", KEY_ARN, ALLOWED),
    ("encrypts with the project key", "kms:GenerateDataKey", KEY_ARN, IMPLICIT),
]  # fmt: skip

_Row = tuple[str, str, str, Decision, dict[str, str]]
"""label, action, resource, expected decision, extra context keys."""


FUNCTION_CASES: list[_Row] = [
    ("reads newest.json", "s3:GetObject", _object("preprocessor/newest.json"), ALLOWED, {}),
    ("reads serving.json", "s3:GetObject", _object("preprocessor/serving.json"), ALLOWED, {}),
    ("reads a complete.json", "s3:GetObject", _object("preprocessor/pp-a/complete.json"), ALLOWED, {}),
    ("HeadObject of an artifact", "s3:GetObject", _object("preprocessor/pp-a/model.tar.gz"), ALLOWED, {}),
    ("reads a model", "s3:GetObject", _object("models/pp-a/X/X-v.tar.gz"), IMPLICIT, {}),
    ("reads a pointer", "s3:GetObject", _object("model-pointers/pp-a/X.json"), IMPLICIT, {}),
    ("reads another preprocessor object", "s3:GetObject", _object("preprocessor/notes.txt"), IMPLICIT, {}),
    ("writes serving.json", "s3:PutObject", _object("preprocessor/serving.json"), ALLOWED, {}),
    ("deletes serving.json", "s3:DeleteObject", _object("preprocessor/serving.json"), ALLOWED, {}),
    ("writes newest.json", "s3:PutObject", _object("preprocessor/newest.json"), IMPLICIT, {}),
    ("deletes newest.json", "s3:DeleteObject", _object("preprocessor/newest.json"), IMPLICIT, {}),
    ("overwrites an artifact", "s3:PutObject", _object("preprocessor/pp-a/model.tar.gz"), IMPLICIT, {}),
    ("writes a complete.json", "s3:PutObject", _object("preprocessor/pp-a/complete.json"), IMPLICIT, {}),
    ("deletes a pointer", "s3:DeleteObject", _object("model-pointers/pp-a/X.json"), IMPLICIT, {}),
    ("deletes a version of serving.json", "s3:DeleteObjectVersion", _object("preprocessor/serving.json"),
     IMPLICIT, {}),
    ("lists a generation's pointers", "s3:ListBucket", BUCKET_ARN, ALLOWED,
     {"s3:prefix": "model-pointers/pp-a/"}),
    ("asks whether newest.json exists", "s3:ListBucket", BUCKET_ARN, ALLOWED,
     {"s3:prefix": "preprocessor/newest.json"}),
    ("asks whether a complete.json exists", "s3:ListBucket", BUCKET_ARN, ALLOWED,
     {"s3:prefix": "preprocessor/pp-a/complete.json"}),
    ("asks whether an artifact exists", "s3:ListBucket", BUCKET_ARN, ALLOWED,
     {"s3:prefix": "preprocessor/pp-a/model.tar.gz"}),
    ("lists the models", "s3:ListBucket", BUCKET_ARN, IMPLICIT, {"s3:prefix": "models/"}),
    ("lists all of preprocessor/", "s3:ListBucket", BUCKET_ARN, IMPLICIT, {"s3:prefix": "preprocessor/"}),
    ("lists the whole bucket", "s3:ListBucket", BUCKET_ARN, IMPLICIT, {}),
    ("decrypts the records", "kms:Decrypt", KEY_ARN, ALLOWED, {}),
    ("encrypts serving.json", "kms:GenerateDataKey", KEY_ARN, ALLOWED, {}),
]  # fmt: skip


def _cases(p: Policies) -> list[tuple[Case, Decision]]:
    cases: list[tuple[Case, Decision]] = []
    principals: tuple[tuple[str, str, list[dict[str, Any]], list[_Row]], ...] = (
        ("endpoint", ENDPOINT_ROLE, p.endpoint_role, [(*c, {}) for c in ENDPOINT_CASES]),
        ("function", FUNCTION_ROLE, p.function_role, FUNCTION_CASES),
    )
    for who, principal, identity, rows in principals:
        for label, action, resource, expected, context in rows:
            on_key = resource == KEY_ARN
            cases.append(
                (
                    Case(
                        id=f"{who}: {label}",
                        identity_policies=identity,
                        action=action,
                        resource=resource,
                        principal=principal,
                        context={**({} if on_key else TLS), **context},
                        resource_policy=p.key_policy if on_key else p.bucket_policy,
                        resource_account=None if on_key else ACCOUNT,
                    ),
                    expected,
                )
            )
    plain_text = Case(
        id="function: writes serving.json without TLS",
        identity_policies=p.function_role,
        action="s3:PutObject",
        resource=_object("preprocessor/serving.json"),
        principal=FUNCTION_ROLE,
        context={"aws:SecureTransport": "false"},
        resource_policy=p.bucket_policy,
        resource_account=ACCOUNT,
    )
    cases.append((plain_text, EXPLICIT))
    cases += _framework_cases(p)
    return cases


def _framework_cases(p: Policies) -> list[tuple[Case, Decision]]:
    """The Provider framework's role: its log group and the handler, nothing else."""
    handler, logs = p.arns["handler"], p.arns["framework-logs"]
    rows: list[tuple[str, str, str, Decision]] = [
        ("invokes the handler", "lambda:InvokeFunction", handler, ALLOWED),
        ("waits for the handler to be active", "lambda:GetFunction", handler, ALLOWED),
        ("invokes a version of the handler", "lambda:InvokeFunction", f"{handler}:1", IMPLICIT),
        ("invokes an alias of the handler", "lambda:InvokeFunction", f"{handler}:live", IMPLICIT),
        ("invokes itself", "lambda:InvokeFunction", p.arns["framework"], IMPLICIT),
        ("invokes another function", "lambda:InvokeFunction", OTHER_FUNCTION, IMPLICIT),
        ("changes the handler's code", "lambda:UpdateFunctionCode", handler, IMPLICIT),
        ("changes the handler's configuration", "lambda:UpdateFunctionConfiguration", handler, IMPLICIT),
        ("writes to its log group", "logs:PutLogEvents", logs, ALLOWED),
        ("creates a stream in its log group", "logs:CreateLogStream", logs, ALLOWED),
        ("writes to the handler's log group", "logs:PutLogEvents", p.arns["handler-logs"], IMPLICIT),
    ]
    cases = [
        (Case(id=f"framework: {label}", identity_policies=p.framework_role, action=action, resource=resource,
              principal=FRAMEWORK_ROLE), expected)
        for label, action, resource, expected in rows
    ]  # fmt: skip
    data: list[tuple[str, str, str]] = [
        ("reads serving.json", "s3:GetObject", _object("preprocessor/serving.json")),
        ("writes serving.json", "s3:PutObject", _object("preprocessor/serving.json")),
        ("lists the bucket", "s3:ListBucket", BUCKET_ARN),
    ]
    cases += [
        (Case(id=f"framework: {label}", identity_policies=p.framework_role, action=action, resource=resource,
              principal=FRAMEWORK_ROLE, context=TLS, resource_policy=p.bucket_policy,
              resource_account=ACCOUNT), IMPLICIT)
        for label, action, resource in data
    ]  # fmt: skip
    decrypt = Case(id="framework: decrypts with the project key", identity_policies=p.framework_role,
                   action="kms:Decrypt", resource=KEY_ARN, principal=FRAMEWORK_ROLE,
                   resource_policy=p.key_policy)  # fmt: skip
    cases.append((decrypt, IMPLICIT))
    return cases


@pytest.fixture(scope="module")
def decisions(policies: Policies) -> tuple[CaseBatch, dict[str, Decision]]:
    cases = _cases(policies)
    return CaseBatch(case for case, _ in cases), {case.id: expected for case, expected in cases}


def test_decisions(decisions: tuple[CaseBatch, dict[str, Decision]]) -> None:
    batch, expected = decisions
    mismatches = batch.mismatches(expected)
    assert not mismatches, mismatches


def test_the_allowed_writes_are_decided_by_the_one_serving_json_statement(
    decisions: tuple[CaseBatch, dict[str, Decision]],
) -> None:
    batch, _ = decisions
    decided = {
        batch[f"function: {label}"].decided_by[0] for label in ("writes serving.json", "deletes serving.json")
    }
    assert len(decided) == 1
    assert decided.pop().startswith("identityPolicies[")
