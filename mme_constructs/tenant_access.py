"""Per-tenant access to the models behind one endpoint, with the ``sagemaker:TargetModel`` key.

A principal allowed ``sagemaker:InvokeEndpoint`` on the endpoint can call every model behind it
unless its policy restricts ``sagemaker:TargetModel`` (the model's key relative to the multi-model
prefix). Every tenant policy here therefore has three parts:

* Allow ``InvokeEndpoint`` on this endpoint's ARN only, when TargetModel matches the tenant's
  patterns (``StringLike``);
* Deny a TargetModel containing ``..``: ``company_a/*`` would otherwise also match
  ``company_a/../company_b/model.tar.gz``;
* Deny a request without a TargetModel (an unconditioned call would otherwise reach no model but
  should not be allowed to try).

A tenant also needs to learn the current TargetModel of the models it may invoke: the served
generation (``preprocessor/serving.json``) says which generation's pointers apply, and each
location's pointer in it, ``model-pointers/<generation>/<location>.json``, names the TargetModel.
Every tenant policy therefore also allows ``s3:GetObject`` on ``preprocessor/serving.json`` and on
exactly the pointers of the locations its patterns cover, in any generation (a pattern's first path
segment is the location, so ``company_a/*`` gives ``model-pointers/pp-*/company_a.json``; generation
ids are ``pp-<run id>`` without a ``/``, and a wildcard in the location covers the same locations
the invoke condition does), and ``kms:Decrypt`` on the project key only through S3
(``kms:ViaService``), which decides GetObject first. Nothing else in the bucket is readable, and no
other tenant's pointer.

Two ways to hand these out: ``roles`` (one role per tenant, patterns from config) and ``abac``
(one role for every tenant; the pattern is ``${aws:PrincipalTag/tenant}/*`` from the caller's
session tag, so the template does not grow with the number of tenants).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

from aws_cdk import Aws, CfnOutput, Duration
from aws_cdk import aws_iam as iam
from constructs import Construct

from mme_constructs import access
from mme_shared import s3_layout
from mme_shared.naming import PREPROCESSOR_STEP
from mme_shared.stack_names import TENANT_ABAC_ROLE_ARN, tenant_role_output_key
from mme_shared.tenant_abac import (
    ABAC_TARGET_MODEL_PATTERN,
    PRINCIPAL_TAG_KEY,
    REQUEST_TAG_KEY,
    TARGET_MODEL_KEY,
    TENANT_TAG,
)
from project_config.model import TenantConfig

INVOKE: Final = "sagemaker:InvokeEndpoint"


def invoke_statements(endpoint_arn: str, model_patterns: Sequence[str]) -> list[iam.PolicyStatement]:
    """The allow plus the two guard denies that scope an invoker to ``model_patterns``."""
    return [
        iam.PolicyStatement(
            sid="InvokeOnlyTheseModels",
            actions=[INVOKE],
            resources=[endpoint_arn],
            conditions={"StringLike": {TARGET_MODEL_KEY: list(model_patterns)}},
        ),
        iam.PolicyStatement(
            sid="DenyPathTraversal",
            effect=iam.Effect.DENY,
            actions=[INVOKE],
            resources=[endpoint_arn],
            conditions={"StringLike": {TARGET_MODEL_KEY: ["*..*"]}},
        ),
        iam.PolicyStatement(
            sid="DenyWithoutTargetModel",
            effect=iam.Effect.DENY,
            actions=[INVOKE],
            resources=[endpoint_arn],
            conditions={"Null": {TARGET_MODEL_KEY: "true"}},
        ),
    ]


_FIRST_SEGMENT = re.compile(r"(?:\$\{[^}]*\}|[^/])*")
"""A pattern's first path segment; a policy variable such as ``${aws:PrincipalTag/tenant}`` is one piece."""


def pointer_key_patterns(model_patterns: Sequence[str]) -> list[str]:
    """The pointer keys (in every generation) of the locations ``model_patterns`` may invoke, in order."""
    keys: dict[str, None] = {}
    for pattern in model_patterns:
        match = _FIRST_SEGMENT.match(pattern)
        assert match is not None  # the expression matches the empty string at least
        keys[f"{s3_layout.MODEL_POINTERS_PREFIX}{PREPROCESSOR_STEP}-*/{match.group(0)}.json"] = None
    return list(keys)


def pointer_statements(
    policy: iam.ManagedPolicy, *, bucket_arn: str, key_arn: str, model_patterns: Sequence[str]
) -> None:
    """Let the policy's role read the served generation and its own locations' pointers, nothing else."""
    resources = [f"{bucket_arn}/{key}" for key in pointer_key_patterns(model_patterns)]
    policy.add_statements(
        iam.PolicyStatement(
            sid="ReadServedGeneration",
            actions=["s3:GetObject"],
            resources=[f"{bucket_arn}/{s3_layout.SERVING_GENERATION_KEY}"],
        ),
        iam.PolicyStatement(sid="ReadOwnModelPointers", actions=["s3:GetObject"], resources=resources),
        iam.PolicyStatement(
            sid="DecryptPointersThroughS3",
            actions=["kms:Decrypt"],
            resources=[key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
        ),
    )
    access.acknowledge_wildcard_resources(
        policy,
        resources,
        "Pointers live per preprocessor generation (model-pointers/pp-<run id>/, named at run time); the "
        "locations they cover are those the tenant's InvokeEndpoint condition already covers.",
    )


def _principal(trusted: str) -> iam.IPrincipal:
    return iam.AccountPrincipal(trusted) if trusted.isdigit() else iam.ArnPrincipal(trusted)


def _trusted(principals: Sequence[str]) -> iam.PrincipalBase:
    built = [_principal(p) for p in principals]
    return built[0] if len(built) == 1 else iam.CompositePrincipal(*built)  # type: ignore[return-value]


class TenantRoles(Construct):
    """One role per tenant (``roles`` mode): invoke only the tenant's and the shared patterns."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_arn: str,
        bucket_arn: str,
        key_arn: str,
        tenants: Mapping[str, TenantConfig],
        shared_model_patterns: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.roles: dict[str, iam.Role] = {}
        for name, tenant in sorted(tenants.items()):
            trusted = _trusted(tenant.trusted_principals)
            if tenant.external_id is not None:
                trusted = trusted.with_conditions({"StringEquals": {"sts:ExternalId": tenant.external_id}})
            role = iam.Role(
                self,
                name,
                assumed_by=trusted,
                description=f"Invokes only tenant {name}'s models on the multi-model endpoint",
                max_session_duration=Duration.hours(tenant.max_session_duration_hours),
            )
            patterns = [*tenant.model_patterns, *shared_model_patterns]
            policy = iam.ManagedPolicy(
                self,
                f"{name}-invoke",
                roles=[role],
                description=f"Tenant {name}: InvokeEndpoint limited by TargetModel, and its pointers",
                statements=invoke_statements(endpoint_arn, patterns),
            )
            pointer_statements(policy, bucket_arn=bucket_arn, key_arn=key_arn, model_patterns=patterns)
            CfnOutput(
                scope,
                tenant_role_output_key(name),
                value=role.role_arn,
                description=f"Role for tenant {name} (TargetModel {', '.join(tenant.model_patterns)})",
            )
            self.roles[name] = role


class TenantAbacRole(Construct):
    """One role for every tenant (``abac`` mode), scoped by the caller's ``tenant`` session tag.

    Callers assume it with the tag, e.g.
    ``aws sts assume-role --role-arn <arn> --role-session-name s --tags Key=tenant,Value=company_a``;
    the trust policy refuses an AssumeRole without exactly that one tag.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_arn: str,
        bucket_arn: str,
        key_arn: str,
        trusted_principals: Sequence[str],
        shared_model_patterns: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        trusted = iam.SessionTagsPrincipal(
            _trusted(trusted_principals).with_conditions(
                {
                    "StringLike": {REQUEST_TAG_KEY: "?*"},
                    "ForAllValues:StringEquals": {"aws:TagKeys": [TENANT_TAG]},
                }
            )
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=trusted,
            description="Invokes the models of the tenant named by the session tag 'tenant'",
            max_session_duration=Duration.hours(1),
        )
        statements = invoke_statements(endpoint_arn, [ABAC_TARGET_MODEL_PATTERN, *shared_model_patterns])
        statements.append(
            iam.PolicyStatement(
                sid="DenyWithoutTenantTag",
                effect=iam.Effect.DENY,
                actions=[INVOKE],
                resources=[endpoint_arn],
                conditions={"Null": {PRINCIPAL_TAG_KEY: "true"}},
            )
        )
        policy = iam.ManagedPolicy(
            self,
            "Invoke",
            roles=[self.role],
            description="Any tenant: InvokeEndpoint limited to <tenant tag>/* and shared models",
            statements=statements,
        )
        pointer_statements(
            policy,
            bucket_arn=bucket_arn,
            key_arn=key_arn,
            model_patterns=[ABAC_TARGET_MODEL_PATTERN, *shared_model_patterns],
        )
        CfnOutput(
            scope,
            TENANT_ABAC_ROLE_ARN.key,
            value=self.role.role_arn,
            description="Assume with tag tenant=<name>",
        )
