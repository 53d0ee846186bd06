"""Who may invoke which model: the synthesized tenant policies decided by a real IAM evaluator.

Roles mode comes from the session's throwaway app (two tenants, cdk-nag and cfn-lint already run
over it); ABAC mode from a small app with the endpoint stack and the ABAC stack (checked by cdk-nag
here). Policies are taken from the templates and rendered to literal ARNs before evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from app import add_compliance_checks
from project_config.loader import deep_merge, default_context
from project_config.model import ProjectConfig
from stacks.endpoint_stack import EndpointStack
from stacks.storage_stack import StorageExports
from stacks.tenant_access_stack import TenantAbacStack
from tests.cfn_render import ACCOUNT, TemplateRenderer
from tests.conftest import STORAGE_EXPORTS, SynthesizedApp
from tests.iam.evaluator import (
    Case,
    CaseBatch,
    Decision,
    render_policy,
    role_identity_policies,
    role_trust_policy,
)

ALLOWED, IMPLICIT, EXPLICIT = Decision.ALLOWED, Decision.IMPLICITLY_DENIED, Decision.EXPLICITLY_DENIED
INVOKE = "sagemaker:InvokeEndpoint"
TARGET = "sagemaker:TargetModel"
TAG = "aws:PrincipalTag/tenant"
OTHER_ENDPOINT = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/someone-elses-endpoint"
ABAC_CALLER = f"arn:aws:iam::{ACCOUNT}:role/tenant-broker"


@dataclass(frozen=True)
class Deployment:
    """Rendered policies of one synthesized deployment."""

    endpoint_arn: str
    identity: dict[str, list[dict[str, Any]]]  # role name -> identity policies
    trust: dict[str, dict[str, Any]]  # role name -> trust policy
    role_arn: dict[str, str]


def _endpoint_renderer(endpoint_template: dict[str, Any]) -> tuple[TemplateRenderer, str]:
    renderer = TemplateRenderer(endpoint_template, {})
    (endpoint_id,) = [
        k for k, r in endpoint_template["Resources"].items() if r["Type"] == "AWS::SageMaker::Endpoint"
    ]
    return renderer, renderer.render({"Ref": endpoint_id})


def _roles(template: dict[str, Any]) -> dict[str, str]:
    """Role logical id -> the tenant name its description names (or 'abac')."""
    roles = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            description: str = resource["Properties"]["Description"]
            prefix = "Invokes only tenant "
            roles[logical_id] = (
                description.removeprefix(prefix).split("'")[0] if description.startswith(prefix) else "abac"
            )
    return roles


BUCKET_ARN = STORAGE_EXPORTS["MmeStorage-ArtifactBucketArn"]
KEY_ARN = STORAGE_EXPORTS["MmeStorage-KeyArn"]


def storage_exports(prefix: str) -> dict[str, str]:
    """The storage stack's exports for a deployment's stack prefix (realistic literal values)."""
    return {
        name.replace("MmeStorage-", f"{prefix}Storage-"): value for name, value in STORAGE_EXPORTS.items()
    }


def _deployment(
    endpoint_stack_name: str, endpoint: dict[str, Any], tenant_templates: list[dict[str, Any]]
) -> Deployment:
    endpoint_renderer, endpoint_arn = _endpoint_renderer(endpoint)
    identity, trust, arns = {}, {}, {}
    for template in tenant_templates:
        renderer = TemplateRenderer(template, storage_exports(endpoint_stack_name.removesuffix("Endpoint")))
        for logical_id, name in _roles(template).items():
            identity[name] = role_identity_policies(
                renderer, logical_id, other_stacks={endpoint_stack_name: endpoint_renderer}
            )
            trust[name] = role_trust_policy(renderer, logical_id)
            arns[name] = renderer.render({"Fn::GetAtt": [logical_id, "Arn"]})
    return Deployment(endpoint_arn=endpoint_arn, identity=identity, trust=trust, role_arn=arns)


@pytest.fixture(scope="module")
def roles_mode(synthesized_throwaway: SynthesizedApp) -> Deployment:
    app = synthesized_throwaway
    tenants = [t for name, t in app.templates.items() if name.startswith("SandboxTenants")]
    assert len(tenants) >= 1
    return _deployment("SandboxEndpoint", app.template("endpoint"), tenants)


@pytest.fixture(scope="module")
def abac_mode(cdk_context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    config = ProjectConfig.model_validate(
        deep_merge(
            default_context(),
            {
                "tenants": {
                    "mode": "abac",
                    "abac_trusted_principals": [ABAC_CALLER],
                    "shared_model_patterns": ["common/*"],
                }
            },
        )
    )
    app = cdk.App(context=cdk_context, outdir=str(tmp_path_factory.mktemp("abac")))
    storage = StorageExports(stack_name="MmeStorage")
    endpoint = EndpointStack(
        app,
        "MmeEndpoint",
        storage=storage,
        endpoint=config.endpoint,
        training=config.training,
        alarms=config.alarms,
    )
    TenantAbacStack(
        app,
        "MmeTenantAccess",
        endpoint_arn=endpoint.endpoint.endpoint_arn,
        storage=storage,
        tenants=config.tenants,
    )
    add_compliance_checks(app)  # the ABAC stack passes cdk-nag too
    assembly = app.synth()
    templates = {s.stack_name: s.template for s in assembly.stacks}
    return _deployment("MmeEndpoint", templates["MmeEndpoint"], [templates["MmeTenantAccess"]])


def _session(role_arn: str) -> str:
    role_name = role_arn.rsplit("/", 1)[1]
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role_name}/session"


# (case id, role, action, on another endpoint?, context, expected)
ROLE_CASES: list[tuple[str, str, str, bool, dict[str, str], Decision]] = [
    ("own model", "company_a", INVOKE, False, {TARGET: "company_a/company_a-v1.tar.gz"}, ALLOWED),
    ("own nested model", "company_a", INVOKE, False, {TARGET: "company_a/eu/m.tar.gz"}, ALLOWED),
    ("shared model", "company_a", INVOKE, False, {TARGET: "common/base.tar.gz"}, ALLOWED),
    ("other tenant's model", "company_a", INVOKE, False, {TARGET: "company_b/m.tar.gz"}, IMPLICIT),
    ("prefix extension company_ab", "company_a", INVOKE, False, {TARGET: "company_ab/m.tar.gz"}, IMPLICIT),
    (
        "traversal from own folder",
        "company_a",
        INVOKE,
        False,
        {TARGET: "company_a/../company_b/m.tar.gz"},
        EXPLICIT,
    ),
    (
        "traversal from shared folder",
        "company_a",
        INVOKE,
        False,
        {TARGET: "common/../company_b/m.tar.gz"},
        EXPLICIT,
    ),
    ("model at the prefix root", "company_a", INVOKE, False, {TARGET: "m.tar.gz"}, IMPLICIT),
    ("no TargetModel", "company_a", INVOKE, False, {}, EXPLICIT),
    ("own model on another endpoint", "company_a", INVOKE, True, {TARGET: "company_a/m.tar.gz"}, IMPLICIT),
    ("describe the endpoint", "company_a", "sagemaker:DescribeEndpoint", False, {}, IMPLICIT),
    ("update the endpoint", "company_a", "sagemaker:UpdateEndpoint", False, {}, IMPLICIT),
    ("async invoke", "company_a", "sagemaker:InvokeEndpointAsync", False, {}, IMPLICIT),
    ("tenant b own model", "company_b", INVOKE, False, {TARGET: "company_b/m.tar.gz"}, ALLOWED),
    ("tenant b shared model", "company_b", INVOKE, False, {TARGET: "common/m.tar.gz"}, ALLOWED),
    ("tenant b on tenant a", "company_b", INVOKE, False, {TARGET: "company_a/m.tar.gz"}, IMPLICIT),
]

ABAC_CASES: list[tuple[str, str | None, str, bool, str | None, Decision]] = [
    # (case id, tenant tag, action, on another endpoint?, TargetModel, expected)
    ("abac own model", "company_a", INVOKE, False, "company_a/m.tar.gz", ALLOWED),
    ("abac shared model", "company_a", INVOKE, False, "common/m.tar.gz", ALLOWED),
    ("abac other tenant", "company_a", INVOKE, False, "company_b/m.tar.gz", IMPLICIT),
    ("abac prefix extension", "company_a", INVOKE, False, "company_ab/m.tar.gz", IMPLICIT),
    ("abac different tag", "company_b", INVOKE, False, "company_a/m.tar.gz", IMPLICIT),
    ("abac missing tag", None, INVOKE, False, "company_a/m.tar.gz", EXPLICIT),
    (
        "abac traversal hidden in the tag",
        "company_a/..",
        INVOKE,
        False,
        "company_a/../company_b/m.tar.gz",
        EXPLICIT,
    ),
    ("abac no TargetModel", "company_a", INVOKE, False, None, EXPLICIT),
    ("abac other endpoint", "company_a", INVOKE, True, "company_a/m.tar.gz", IMPLICIT),
    ("abac describe", "company_a", "sagemaker:DescribeEndpoint", False, None, IMPLICIT),
]


def _pointer(name: str, generation: str = "pp-run-1") -> str:
    return f"{BUCKET_ARN}/model-pointers/{generation}/{name}"


VIA_S3 = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
# (case id, deployment, role or tenant tag, action, resource, context, expected): learning the current
# TargetModel of one's own models (the location pointers) and nothing else.
POINTER_CASES: list[tuple[str, str, str | None, str, str, dict[str, str], Decision]] = [
    ("pointer: own", "roles", "company_a", "s3:GetObject", _pointer("company_a.json"), {}, ALLOWED),
    (
        "pointer: own, in the next generation",
        "roles",
        "company_a",
        "s3:GetObject",
        _pointer("company_a.json", "pp-refit-2"),
        {},
        ALLOWED,
    ),
    (
        "pointer: a key outside any generation",
        "roles",
        "company_a",
        "s3:GetObject",
        f"{BUCKET_ARN}/model-pointers/company_a.json",
        {},
        IMPLICIT,
    ),
    (
        "served generation",
        "roles",
        "company_a",
        "s3:GetObject",
        f"{BUCKET_ARN}/preprocessor/serving.json",
        {},
        ALLOWED,
    ),
    (
        "newest generation",
        "roles",
        "company_a",
        "s3:GetObject",
        f"{BUCKET_ARN}/preprocessor/newest.json",
        {},
        IMPLICIT,
    ),
    (
        "served preprocessor artifact",
        "roles",
        "company_a",
        "s3:GetObject",
        f"{BUCKET_ARN}/preprocessor/pp-run-1/model.tar.gz",
        {},
        IMPLICIT,
    ),
    ("pointer: shared", "roles", "company_a", "s3:GetObject", _pointer("common.json"), {}, ALLOWED),
    (
        "pointer: other tenant's",
        "roles",
        "company_a",
        "s3:GetObject",
        _pointer("company_b.json"),
        {},
        IMPLICIT,
    ),
    (
        "pointer: prefix extension",
        "roles",
        "company_a",
        "s3:GetObject",
        _pointer("company_ab.json"),
        {},
        IMPLICIT,
    ),
    ("pointer: b reads a's", "roles", "company_b", "s3:GetObject", _pointer("company_a.json"), {}, IMPLICIT),
    (
        "pointer: b reads its own",
        "roles",
        "company_b",
        "s3:GetObject",
        _pointer("company_b.json"),
        {},
        ALLOWED,
    ),
    (
        "pointer: the model artifact itself",
        "roles",
        "company_a",
        "s3:GetObject",
        f"{BUCKET_ARN}/models/pp-run-1/company_a/company_a-v1.tar.gz",
        {},
        IMPLICIT,
    ),
    ("pointer: list the pointers", "roles", "company_a", "s3:ListBucket", BUCKET_ARN, {}, IMPLICIT),
    (
        "pointer: overwrite own",
        "roles",
        "company_a",
        "s3:PutObject",
        _pointer("company_a.json"),
        {},
        IMPLICIT,
    ),
    ("pointer key: decrypt through S3", "roles", "company_a", "kms:Decrypt", KEY_ARN, VIA_S3, ALLOWED),
    ("pointer key: decrypt directly", "roles", "company_a", "kms:Decrypt", KEY_ARN, {}, IMPLICIT),
    ("abac pointer: own", "abac", "company_a", "s3:GetObject", _pointer("company_a.json"), {}, ALLOWED),
    ("abac pointer: shared", "abac", "company_a", "s3:GetObject", _pointer("common.json"), {}, ALLOWED),
    (
        "abac pointer: other tenant's",
        "abac",
        "company_a",
        "s3:GetObject",
        _pointer("company_b.json"),
        {},
        IMPLICIT,
    ),
    ("abac pointer: without a tag", "abac", None, "s3:GetObject", _pointer("company_a.json"), {}, IMPLICIT),
    (
        "abac served generation",
        "abac",
        "company_a",
        "s3:GetObject",
        f"{BUCKET_ARN}/preprocessor/serving.json",
        {},
        ALLOWED,
    ),
    ("abac pointer key: decrypt through S3", "abac", "company_a", "kms:Decrypt", KEY_ARN, VIA_S3, ALLOWED),
]


@pytest.fixture(scope="module")
def key_policy(synthesized_throwaway: SynthesizedApp) -> dict[str, Any]:
    """The project key's policy: the resource policy of every KMS request."""
    storage = synthesized_throwaway.template("storage")
    (key,) = [r for r in storage["Resources"].values() if r["Type"] == "AWS::KMS::Key"]
    return render_policy(key["Properties"]["KeyPolicy"], TemplateRenderer(storage, {}))


def _pointer_cases(roles_mode: Deployment, abac_mode: Deployment, key_policy: dict[str, Any]) -> list[Case]:
    cases = []
    for case_id, mode, who, action, resource, context, _ in POINTER_CASES:
        deployment, role = (roles_mode, who) if mode == "roles" else (abac_mode, "abac")
        assert role is not None
        full_context = dict(context)
        if mode == "abac" and who is not None:
            full_context[TAG] = who
        cases.append(
            Case(
                id=case_id,
                identity_policies=deployment.identity[role],
                action=action,
                resource=resource,
                principal=_session(deployment.role_arn[role]),
                context=full_context,
                resource_policy=key_policy if action.startswith("kms:") else None,
                resource_account=ACCOUNT if resource.startswith("arn:aws:s3:") else None,
            )
        )
    return cases


@pytest.fixture(scope="module")
def matrix(roles_mode: Deployment, abac_mode: Deployment, key_policy: dict[str, Any]) -> CaseBatch:
    cases = _pointer_cases(roles_mode, abac_mode, key_policy)
    for case_id, role, action, elsewhere, context, _ in ROLE_CASES:
        cases.append(
            Case(
                id=case_id,
                identity_policies=roles_mode.identity[role],
                action=action,
                resource=OTHER_ENDPOINT if elsewhere else roles_mode.endpoint_arn,
                principal=_session(roles_mode.role_arn[role]),
                context=context,
            )
        )
    for case_id, tag, action, elsewhere, target, _ in ABAC_CASES:
        context = {}
        if target is not None:
            context[TARGET] = target
        if tag is not None:
            context[TAG] = tag
        cases.append(
            Case(
                id=case_id,
                identity_policies=abac_mode.identity["abac"],
                action=action,
                resource=OTHER_ENDPOINT if elsewhere else abac_mode.endpoint_arn,
                principal=_session(abac_mode.role_arn["abac"]),
                context=context,
                ignorable_context_keys=frozenset({TAG}) if action != INVOKE else frozenset(),
            )
        )
    cases += _trust_cases(roles_mode, abac_mode)
    return CaseBatch(cases)


def _assume(case_id: str, deployment: Deployment, role: str, principal: str, context: dict[str, Any],
            action: str = "sts:AssumeRole") -> Case:  # fmt: skip
    caller_may_assume = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}],
    }
    return Case(
        id=case_id,
        identity_policies=[caller_may_assume],
        action=action,
        resource=deployment.role_arn[role],
        principal=principal,
        context=context,
        resource_policy=deployment.trust[role],
    )


TRUST_EXPECTED = {
    "trusted app assumes tenant a": ALLOWED,
    "another role may not assume tenant a": IMPLICIT,
    "tenant b with its external id": ALLOWED,
    "tenant b without external id": IMPLICIT,
    "tenant b with a wrong external id": IMPLICIT,
    "broker tags a tenant session": ALLOWED,
    "broker without tenant tag": IMPLICIT,
    "broker with an extra tag": IMPLICIT,
    "stranger tags a tenant session": IMPLICIT,
}


def _trust_cases(roles_mode: Deployment, abac_mode: Deployment) -> list[Case]:
    app_a = f"arn:aws:iam::{ACCOUNT}:role/company-a-app"
    b_caller = "arn:aws:iam::444455556666:role/integration"
    stranger = f"arn:aws:iam::{ACCOUNT}:role/stranger"
    tagged = {"aws:RequestTag/tenant": "company_a", "aws:TagKeys": ["tenant"]}
    return [
        _assume("trusted app assumes tenant a", roles_mode, "company_a", app_a, {}),
        _assume("another role may not assume tenant a", roles_mode, "company_a", stranger, {}),
        _assume(
            "tenant b with its external id",
            roles_mode,
            "company_b",
            b_caller,
            {"sts:ExternalId": "company-b-external-id"},
        ),
        _assume("tenant b without external id", roles_mode, "company_b", b_caller, {}),
        _assume(
            "tenant b with a wrong external id",
            roles_mode,
            "company_b",
            b_caller,
            {"sts:ExternalId": "guess"},
        ),
        _assume("broker tags a tenant session", abac_mode, "abac", ABAC_CALLER, tagged, "sts:TagSession"),
        _assume(
            "broker without tenant tag", abac_mode, "abac", ABAC_CALLER, {"aws:TagKeys": []}, "sts:TagSession"
        ),
        _assume(
            "broker with an extra tag",
            abac_mode,
            "abac",
            ABAC_CALLER,
            {**tagged, "aws:RequestTag/team": "x", "aws:TagKeys": ["tenant", "team"]},
            "sts:TagSession",
        ),
        _assume("stranger tags a tenant session", abac_mode, "abac", stranger, tagged, "sts:TagSession"),
    ]


EXPECTED = (
    {c[0]: c[-1] for c in ROLE_CASES}
    | {c[0]: c[-1] for c in ABAC_CASES}
    | TRUST_EXPECTED
    | {c[0]: c[-1] for c in POINTER_CASES}
)


def test_matrix_is_large_and_covers_every_kind_of_denial() -> None:
    assert len(EXPECTED) >= 20
    assert len(EXPECTED) == len(ROLE_CASES) + len(ABAC_CASES) + len(TRUST_EXPECTED) + len(POINTER_CASES)
    assert {ALLOWED, IMPLICIT, EXPLICIT} <= set(EXPECTED.values())


@pytest.mark.parametrize(("case_id", "expected"), sorted(EXPECTED.items()))
def test_decision(matrix: CaseBatch, case_id: str, expected: Decision) -> None:
    result = matrix[case_id]
    assert result.decision == expected, result.describe()


def test_denies_come_from_the_intended_statements(matrix: CaseBatch) -> None:
    assert any("DenyPathTraversal" in s for s in matrix["traversal from own folder"].decided_by)
    assert any("DenyWithoutTargetModel" in s for s in matrix["no TargetModel"].decided_by)
    assert any("DenyWithoutTenantTag" in s for s in matrix["abac missing tag"].decided_by)


def test_policies_came_from_the_templates(
    roles_mode: Deployment, abac_mode: Deployment, tmp_path: Path
) -> None:
    """Guard against testing hand-written policies: the rendered documents name the synthesized endpoint."""
    for deployment in (roles_mode, abac_mode):
        text = json.dumps(deployment.identity)
        assert deployment.endpoint_arn in text
        assert deployment.endpoint_arn.startswith("arn:aws:sagemaker:")
    assert set(roles_mode.identity) == {"company_a", "company_b"}
