"""The names the CDK app gives and the operator CLI looks up: stacks, their outputs, rollback alarms.

A deployment's stacks are named ``<stack_prefix><role>`` (``MmeStorage``, ``MmeTraining``, ...), and
its tenant roles live in ``<prefix>TenantAccess`` (``abac`` mode) or in shards ``<prefix>Tenants00``
to ``<prefix>Tenants15`` (``roles`` mode). Everything the CLI needs (the bucket, the state machine,
the endpoint, the tenant roles) is a stack output, declared here by its stack and key, so the stacks
write and the CLI reads the same spelling (``tests/test_stack_names.py`` checks the synthesized
templates against this module).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class StackRole(StrEnum):
    """The stacks of one deployment that have one fixed name each; the value is the name's suffix."""

    STORAGE = "Storage"
    TRAINING = "Training"
    ENDPOINT = "Endpoint"
    MONITORING = "Monitoring"
    TENANT_ACCESS = "TenantAccess"
    """The ``abac`` mode's one tenant stack."""


TENANT_SHARD: Final = "Tenants"
"""The ``roles`` mode's tenant stacks are ``<prefix>Tenants<two-digit shard>``."""


def stack_name(prefix: str, role: StackRole) -> str:
    return f"{prefix}{role}"


def tenant_shard_stack_name(prefix: str, shard: int) -> str:
    return f"{prefix}{TENANT_SHARD}{shard:02d}"


def is_tenant_shard(prefix: str, name: str) -> bool:
    rest = name.removeprefix(f"{prefix}{TENANT_SHARD}")
    return rest != name and rest.isdigit()


def is_tenant_stack(prefix: str, name: str) -> bool:
    """A stack of the deployment's tenant roles, in either mode."""
    return name == stack_name(prefix, StackRole.TENANT_ACCESS) or is_tenant_shard(prefix, name)


def is_deployment_stack(prefix: str, name: str) -> bool:
    """Whether ``name`` is one of the stacks the app creates for the deployment named ``prefix``."""
    return name in {stack_name(prefix, role) for role in StackRole} or is_tenant_shard(prefix, name)


@dataclass(frozen=True)
class StackOutput:
    """One stack output: the stack (by role) that declares it, and its key (the CfnOutput's id)."""

    role: StackRole
    key: str


ARTIFACT_BUCKET_NAME: Final = StackOutput(StackRole.STORAGE, "ArtifactBucketName")
ARTIFACT_BUCKET_ARN: Final = StackOutput(StackRole.STORAGE, "ArtifactBucketArn")
MODEL_PREFIX_URI: Final = StackOutput(StackRole.STORAGE, "ModelPrefixUri")
KEY_ARN: Final = StackOutput(StackRole.STORAGE, "KeyArn")
STATE_MACHINE_ARN: Final = StackOutput(StackRole.TRAINING, "StateMachineArn")
PROMOTE_FUNCTION_NAME: Final = StackOutput(StackRole.TRAINING, "PromoteFunctionName")
ENDPOINT_NAME: Final = StackOutput(StackRole.ENDPOINT, "EndpointName")
ENDPOINT_ARN: Final = StackOutput(StackRole.ENDPOINT, "EndpointArn")
VARIANT_NAME: Final = StackOutput(StackRole.ENDPOINT, "VariantName")
ALGORITHM: Final = StackOutput(StackRole.ENDPOINT, "Algorithm")
DASHBOARD_NAME: Final = StackOutput(StackRole.MONITORING, "DashboardName")
ALARM_TOPIC_ARN: Final = StackOutput(StackRole.MONITORING, "AlarmTopicArn")
TENANT_ABAC_ROLE_ARN: Final = StackOutput(StackRole.TENANT_ACCESS, "TenantAbacRoleArn")

OUTPUTS: Final = (
    ARTIFACT_BUCKET_NAME,
    ARTIFACT_BUCKET_ARN,
    MODEL_PREFIX_URI,
    KEY_ARN,
    STATE_MACHINE_ARN,
    PROMOTE_FUNCTION_NAME,
    ENDPOINT_NAME,
    ENDPOINT_ARN,
    VARIANT_NAME,
    ALGORITHM,
    DASHBOARD_NAME,
    ALARM_TOPIC_ARN,
    TENANT_ABAC_ROLE_ARN,
)
"""Every output of the fixed-name stacks (the tenant shards' outputs are per tenant, below)."""

TENANT_ROLE_OUTPUT_PREFIX: Final = "TenantRole"


def tenant_role_output_key(tenant: str) -> str:
    """The tenant shard's output naming a tenant's role: ``company_a`` -> ``TenantRoleCompanyA``.

    The config rejects tenant names that differ only in ``_`` and ``-``, so these keys are unique.
    """
    return TENANT_ROLE_OUTPUT_PREFIX + "".join(
        part.capitalize() for part in re.split(r"[_-]", tenant) if part
    )


def is_tenant_role_output(key: str) -> bool:
    """An output naming a tenant's role: one tenant's (``roles`` mode) or the ABAC role."""
    return key.startswith(TENANT_ROLE_OUTPUT_PREFIX) or key == TENANT_ABAC_ROLE_ARN.key


ROLLBACK_ALARM_INFIX: Final = "-Rollback-"


def rollback_alarm_name(stack: str, condition: str) -> str:
    """The endpoint stack names its rollback alarms ``<stack>-Rollback-<condition>``.

    SageMaker refers to them by name, and the CLI finds them by that name's start.
    """
    return f"{stack}{ROLLBACK_ALARM_INFIX}{condition}"
