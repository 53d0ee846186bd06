"""Tenant roles: structure, scale, and (tests/iam) decisions under a real IAM evaluator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Capture, Match, Template

from app import add_compliance_checks
from mme_constructs.cloudformation_limits import PLUGIN_NAME, TEMPLATE_BYTES, TEMPLATE_SIZE_RULE
from mme_constructs.tenant_access import pointer_key_patterns
from mme_shared.stack_names import tenant_role_output_key
from mme_shared.tenant_abac import ABAC_TARGET_MODEL_PATTERN
from project_config.model import TenantsConfig
from stacks.storage_stack import StorageExports
from stacks.tenant_access_stack import (
    MAX_TENANTS_PER_STACK,
    TENANT_SHARDS,
    build_tenant_stacks,
    shard_of,
    shard_tenants,
)
from tests.conftest import _synthesize, one_statement

ENDPOINT_ARN = "arn:aws:sagemaker:us-east-1:111122223333:endpoint/mme-endpoint"
CFN_MAX_RESOURCES = 500
CFN_MAX_OUTPUTS = 200


def _tenant_settings(name: str) -> dict[str, Any]:
    return {
        "model_patterns": [f"{name}/*"],
        "trusted_principals": ["111122223333"],
        "max_session_duration_hours": 1,
    }


def _tenants(count: int, *, mode: str = "roles") -> TenantsConfig:
    return TenantsConfig.model_validate(
        {
            "mode": mode,
            "shared_model_patterns": ["common/*"],
            "abac_trusted_principals": ["111122223333"] if mode == "abac" else [],
            "tenants": {f"tenant_{i:04d}": _tenant_settings(f"tenant_{i:04d}") for i in range(count)},
        }
    )


def _templates(cdk_context: dict[str, Any], tenants: TenantsConfig) -> dict[str, dict[str, Any]]:
    app = cdk.App(context=cdk_context)
    stacks = build_tenant_stacks(
        app, "Mme", endpoint_arn=ENDPOINT_ARN, storage=StorageExports("MmeStorage"), tenants=tenants, env=None
    )
    assembly = app.synth()
    assert {s.stack_name for s in stacks} == {s.stack_name for s in assembly.stacks}
    return {s.stack_name: s.template for s in assembly.stacks}


def _policy_has_one_statement(template: Template, sid: str, statement: dict[str, Any]) -> None:
    """The template's only managed policy has exactly one statement with this Sid, and it is like
    ``statement``."""
    template.resource_count_is("AWS::IAM::ManagedPolicy", 1)
    for statements in one_statement({"Sid": sid}, statement):
        template.has_resource_properties(
            "AWS::IAM::ManagedPolicy", {"PolicyDocument": {"Statement": statements}}
        )


def _crowded_names(count: int, length: int) -> list[str]:
    """``count`` tenant names of ``length`` characters that all land in tenant stack 3."""
    candidates = (f"t{index:05d}".ljust(length, "x") for index in range(1_000_000))
    crowded = (name for name in candidates if shard_of(name) == 3)
    return [next(crowded) for _ in range(count)]


def _roles_mode(tenants: dict[str, Any]) -> dict[str, Any]:
    """Overrides of the default settings: these tenants, one role each."""
    return {"tenants": {"mode": "roles", "tenants": tenants}}


def test_the_fullest_tenant_stack_fits_in_cloudformation_limits(
    cdk_context: dict[str, Any], tmp_path: Path
) -> None:
    """One stack of MAX_TENANTS_PER_STACK tenants (one more is refused, below) with the longest names
    allowed, each with one model pattern and one trusted principal: within the resource and output
    quotas whatever the tenants hold, and within 1 MB with this much per tenant (a tenant stack over
    1 MB fails synth, as the next test shows). The file measured is the one ``cdk deploy`` uploads."""
    names = _crowded_names(MAX_TENANTS_PER_STACK, 32)
    tenants = {name: _tenant_settings(name) for name in names}
    app = _synthesize(cdk_context, _roles_mode(tenants), tmp_path)  # the whole app, as cdk synth builds it
    (name,) = [name for name in app.templates if name.startswith("MmeTenants")]
    template = app.templates[name]
    assert len(template["Resources"]) < CFN_MAX_RESOURCES
    assert len(template["Outputs"]) < CFN_MAX_OUTPUTS
    assert (tmp_path / f"{name}.template.json").stat().st_size < TEMPLATE_BYTES
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == MAX_TENANTS_PER_STACK


def test_a_tenant_stack_over_1_mb_fails_synth_naming_it(cdk_context: dict[str, Any], tmp_path: Path) -> None:
    """Tenants with many long model patterns: CDK alone would only warn, and the deploy would fail."""
    names = _crowded_names(50, 32)
    patterns = [f"{'p' * 160}{index:02d}/*" for index in range(50)]  # with the name: 199 characters
    tenants = {
        name: {**_tenant_settings(name), "model_patterns": [f"{name}/{p}" for p in patterns]}
        for name in names
    }
    with pytest.raises(RuntimeError, match=r"^ValidationFailed"):
        _synthesize(cdk_context, _roles_mode(tenants), tmp_path)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    (plugin,) = [p for p in report["pluginReports"] if p["pluginName"] == PLUGIN_NAME]
    (violation,) = plugin["violations"]
    assert violation["ruleName"] == TEMPLATE_SIZE_RULE
    assert re.fullmatch(
        r"MmeTenants03\.template\.json is [\d,]+ bytes, more than the 1,000,000 bytes CloudFormation "
        r"accepts for a template\.",
        violation["description"],
    )


def test_a_thousand_tenants_spread_over_several_stacks_none_of_them_full() -> None:
    shards = shard_tenants(_tenants(1000).tenants)
    assert 1 < len(shards) <= TENANT_SHARDS
    assert sum(len(members) for members in shards.values()) == 1000
    assert max(len(members) for members in shards.values()) < MAX_TENANTS_PER_STACK


def test_abac_template_does_not_grow_with_tenants(cdk_context: dict[str, Any]) -> None:
    few = _templates(cdk_context, _tenants(2, mode="abac"))
    many = _templates(cdk_context, _tenants(1500, mode="abac"))
    assert json.dumps(few, sort_keys=True) == json.dumps(many, sort_keys=True)
    (template,) = [Template.from_json(t) for t in few.values()]
    models = Match.exact([ABAC_TARGET_MODEL_PATTERN, "common/*"])
    _policy_has_one_statement(
        template, "InvokeOnlyTheseModels", {"Condition": {"StringLike": {"sagemaker:TargetModel": models}}}
    )
    template.resource_count_is("AWS::IAM::Role", 1)
    actions = Capture()
    trust = {
        "Action": actions,
        "Condition": Match.object_equals(
            {
                "StringLike": {"aws:RequestTag/tenant": "?*"},
                "ForAllValues:StringEquals": {"aws:TagKeys": ["tenant"]},
            }
        ),
    }
    template.has_resource_properties(
        "AWS::IAM::Role", {"AssumeRolePolicyDocument": {"Statement": [Match.object_like(trust)]}}
    )
    assert sorted(actions.as_array()) == ["sts:AssumeRole", "sts:TagSession"]
    assert template.find_outputs("*").keys() == {"TenantAbacRoleArn"}


def test_sharding_is_stable_when_tenants_are_added() -> None:
    before = _tenants(300).tenants
    after = _tenants(900).tenants
    placed_before = {name: index for index, members in shard_tenants(before).items() for name in members}
    placed_after = {name: index for index, members in shard_tenants(after).items() for name in members}
    assert all(placed_after[name] == index for name, index in placed_before.items())
    # Pinned to literals (CRC-32 of the name, modulo 16): a deployed tenant's stack must never move,
    # whatever machine or Python version synthesizes the app.
    assert (shard_of("company_a"), shard_of("company_b"), shard_of("t0")) == (11, 1, 1)


def test_an_overfull_shard_is_refused_with_advice() -> None:
    crowded = {f"t{i}": None for i in range(100_000) if shard_of(f"t{i}") == 3}
    members = dict(list(crowded.items())[: MAX_TENANTS_PER_STACK + 1])
    with pytest.raises(
        ValueError, match=r"tenant stack 3 would hold 191 tenants, .* use tenants.mode 'abac'"
    ):
        shard_tenants(members)  # type: ignore[arg-type]


def test_no_tenants_no_stacks(cdk_context: dict[str, Any]) -> None:
    assert _templates(cdk_context, _tenants(0)) == {}


def test_output_ids_name_the_tenant() -> None:
    assert tenant_role_output_key("company_a") == "TenantRoleCompanyA"
    assert tenant_role_output_key("acme-eu_2") == "TenantRoleAcmeEu2"


def test_wildcard_patterns_give_pointer_patterns_and_pass_cdk_nag(cdk_context: dict[str, Any]) -> None:
    """A tenant pattern with a wildcard covers the same locations' pointers, acknowledged beside it."""
    assert pointer_key_patterns(["company_a/*", "company_*/eu/*", "common/*", "company_a/x/*"]) == [
        "model-pointers/pp-*/company_a.json",
        "model-pointers/pp-*/company_*.json",
        "model-pointers/pp-*/common.json",
    ]
    assert pointer_key_patterns([ABAC_TARGET_MODEL_PATTERN]) == [
        "model-pointers/pp-*/${aws:PrincipalTag/tenant}.json"
    ]
    tenants = TenantsConfig.model_validate(
        {
            "mode": "roles",
            "shared_model_patterns": [],
            "abac_trusted_principals": [],
            "tenants": {
                "group": {
                    "model_patterns": ["company_*/*"],
                    "trusted_principals": ["111122223333"],
                    "max_session_duration_hours": 1,
                }
            },
        }
    )
    app = cdk.App(context=cdk_context)
    build_tenant_stacks(
        app, "Mme", endpoint_arn=ENDPOINT_ARN, storage=StorageExports("MmeStorage"), tenants=tenants, env=None
    )
    add_compliance_checks(app)
    (stack,) = app.synth().stacks  # raises if cdk-nag has an unacknowledged finding
    pointers = {
        "Fn::Join": [
            "",
            [{"Fn::ImportValue": "MmeStorage-ArtifactBucketArn"}, "/model-pointers/pp-*/company_*.json"],
        ]
    }
    _policy_has_one_statement(
        Template.from_json(stack.template), "ReadOwnModelPointers", {"Resource": Match.exact(pointers)}
    )
