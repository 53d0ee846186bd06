"""Stateless stacks: the roles through which tenants invoke only their own models.

``roles`` mode creates one role (and one managed policy and one output) per tenant. Tenants are
spread over at most ``TENANT_SHARDS`` stacks by a stable hash of their name, so adding a tenant
never moves another tenant's role to a different stack (which would replace it and change its
ARN), and each stack stays far inside CloudFormation's limits (500 resources, 200 outputs).
``abac`` mode is one stack with one role, whatever the number of tenants.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Final

from aws_cdk import Environment, Fn, Stack
from constructs import Construct

from mme_constructs.tenant_access import TenantAbacRole, TenantRoles
from mme_shared.stack_names import StackRole, stack_name, tenant_shard_stack_name
from project_config.model import TenantConfig, TenantsConfig
from stacks.storage_stack import StorageExports

TENANT_SHARDS: Final = 16
MAX_TENANTS_PER_STACK: Final = 190
"""Each tenant has one output; CloudFormation allows 200 per stack."""


def shard_of(tenant: str) -> int:
    """Stable across runs and machines (not Python's salted ``hash``)."""
    return zlib.crc32(tenant.encode("utf-8")) % TENANT_SHARDS


def shard_tenants(tenants: Mapping[str, TenantConfig]) -> dict[int, dict[str, TenantConfig]]:
    shards: dict[int, dict[str, TenantConfig]] = {}
    for name, tenant in tenants.items():
        shards.setdefault(shard_of(name), {})[name] = tenant
    for index, members in shards.items():
        if len(members) > MAX_TENANTS_PER_STACK:
            raise ValueError(
                f"tenant stack {index} would hold {len(members)} tenants, more than the "
                f"{MAX_TENANTS_PER_STACK} CloudFormation's output limit allows; use tenants.mode 'abac'"
            )
    return dict(sorted(shards.items()))


class TenantRolesStack(Stack):
    """One shard of per-tenant roles."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_arn: str,
        storage: StorageExports,
        tenants: Mapping[str, TenantConfig],
        shared_model_patterns: Sequence[str],
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description="SageMaker multi-model endpoint project: per-tenant invoke roles",
        )
        self.tenant_roles = TenantRoles(
            self,
            "TenantRoles",
            endpoint_arn=endpoint_arn,
            bucket_arn=Fn.import_value(storage.bucket_arn),
            key_arn=Fn.import_value(storage.key_arn),
            tenants=tenants,
            shared_model_patterns=shared_model_patterns,
        )


class TenantAbacStack(Stack):
    """The single attribute-based role for every tenant."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_arn: str,
        storage: StorageExports,
        tenants: TenantsConfig,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description="SageMaker multi-model endpoint project: one invoke role scoped by a tenant tag",
        )
        self.abac = TenantAbacRole(
            self,
            "TenantAccess",
            endpoint_arn=endpoint_arn,
            bucket_arn=Fn.import_value(storage.bucket_arn),
            key_arn=Fn.import_value(storage.key_arn),
            trusted_principals=tenants.abac_trusted_principals,
            shared_model_patterns=tenants.shared_model_patterns,
        )


def build_tenant_stacks(
    scope: Construct,
    prefix: str,
    *,
    endpoint_arn: str,
    storage: StorageExports,
    tenants: TenantsConfig,
    env: Environment | None,
) -> list[Stack]:
    """The tenant stacks the configuration asks for (none when there are no tenants)."""
    if tenants.mode == "abac":
        return [
            TenantAbacStack(
                scope,
                stack_name(prefix, StackRole.TENANT_ACCESS),
                endpoint_arn=endpoint_arn,
                storage=storage,
                tenants=tenants,
                env=env,
            )
        ]
    return [
        TenantRolesStack(
            scope,
            tenant_shard_stack_name(prefix, index),
            endpoint_arn=endpoint_arn,
            storage=storage,
            tenants=members,
            shared_model_patterns=tenants.shared_model_patterns,
            env=env,
        )
        for index, members in shard_tenants(tenants.tenants).items()
    ]
