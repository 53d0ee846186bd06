"""The IAM evaluator harness really evaluates: hand-written policies with known answers.

Every decision below is asserted against npm ``@cloud-copilot/iam-simulate`` (one node process for
the whole batch). Each "denied" case has an "allowed" twin differing in one thing, so that a
harness denying everything (or allowing everything) fails here.

Findings pinned here because the tenant ABAC design depends on them:

* ``company_a/*`` matches ``company_a/../company_b/m.tar.gz`` (StringLike ``*`` crosses ``/``);
  only an explicit Deny on ``*..*`` stops it.
* A ``*`` or ``?`` inside a substituted policy-variable value (a tenant tag ``*`` or ``company_*``)
  is a literal character, not a wildcard, in this evaluator. AWS documents no wildcard meaning for
  them, and STS/IAM do not accept ``*``, ``?`` or ``$`` in tag values at all (tag value pattern
  ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*``), so such a session tag cannot exist. ``.`` and ``/`` are
  accepted, so a tag ``company_a/..`` is possible: the ``*..*`` Deny covers it.
* IAM's literal escapes ``${*}``, ``${?}`` (and ``${$}``) are supported in StringLike patterns.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any, Final

import pytest

from tests.cfn_render import ACCOUNT, REGION, TemplateRenderer
from tests.iam.evaluator import (
    SCRIPT,
    Case,
    CaseBatch,
    Decision,
    EvaluatorError,
    RenderError,
    evaluate,
    evaluate_detailed,
    render_policy,
    role_identity_policies,
    role_trust_policy,
    stack_exports,
)

ALLOWED: Final = Decision.ALLOWED
IMPLICIT: Final = Decision.IMPLICITLY_DENIED
EXPLICIT: Final = Decision.EXPLICITLY_DENIED

INVOKE: Final = "sagemaker:InvokeEndpoint"
TARGET_MODEL: Final = "sagemaker:TargetModel"
TENANT_TAG: Final = "aws:PrincipalTag/tenant"
ENDPOINT: Final = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/mme-endpoint"
OTHER_ENDPOINT: Final = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/other-endpoint"
SESSION: Final = f"arn:aws:sts::{ACCOUNT}:assumed-role/TenantRole/session"
CALLER: Final = f"arn:aws:iam::{ACCOUNT}:role/Caller"
ABAC_ROLE: Final = f"arn:aws:iam::{ACCOUNT}:role/AbacRole"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def invoke(sid: str, effect: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {"Sid": sid, "Effect": effect, "Action": INVOKE, "Resource": ENDPOINT}
    if condition is not None:
        statement["Condition"] = condition
    return statement


ALLOW_A: Final = invoke("AllowCompanyA", "Allow", {"StringLike": {TARGET_MODEL: "company_a/*"}})
ALLOW_ANY_MODEL: Final = invoke("AllowAnyModel", "Allow")
ALLOW_TAGGED: Final = invoke(
    "AllowTenantTag", "Allow", {"StringLike": {TARGET_MODEL: "${aws:PrincipalTag/tenant}/*"}}
)
DENY_TRAVERSAL: Final = invoke("DenyTraversal", "Deny", {"StringLike": {TARGET_MODEL: "*..*"}})
DENY_NO_MODEL: Final = invoke("DenyNoModel", "Deny", {"Null": {TARGET_MODEL: "true"}})
DENY_WILDCARD_TAG: Final = invoke(
    "DenyWildcardInTag", "Deny", {"StringLike": {TENANT_TAG: ["*${*}*", "*${?}*"]}}
)
ALLOW_DESCRIBE: Final = {
    "Sid": "AllowDescribe",
    "Effect": "Allow",
    "Action": "sagemaker:Describe*",
    "Resource": ENDPOINT,
}

TRUST: Final = policy(
    {
        "Sid": "TrustCallerWithTenantTag",
        "Effect": "Allow",
        "Principal": {"AWS": CALLER},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
        "Condition": {
            "StringLike": {"aws:RequestTag/tenant": "?*"},
            "ForAllValues:StringEquals": {"aws:TagKeys": ["tenant"]},
        },
    }
)


def model_case(
    case_id: str,
    statements: list[dict[str, Any]],
    context: dict[str, str],
    *,
    action: str = INVOKE,
    resource: str = ENDPOINT,
    ignorable: frozenset[str] = frozenset(),
) -> Case:
    return Case(
        id=case_id,
        identity_policies=[policy(*statements)],
        action=action,
        resource=resource,
        principal=SESSION,
        context=context,
        ignorable_context_keys=ignorable,
    )


def model(name: str, tenant: str | None = None) -> dict[str, str]:
    """The context of an InvokeEndpoint call for model ``name``, by a session tagged ``tenant``."""
    return {TARGET_MODEL: name} if tenant is None else {TARGET_MODEL: name, TENANT_TAG: tenant}


def tag_session(case_id: str, principal: str, tags: dict[str, str]) -> Case:
    context: dict[str, str | list[str]] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    context["aws:TagKeys"] = list(tags)
    return Case(
        id=case_id,
        identity_policies=[],
        action="sts:TagSession",
        resource=ABAC_ROLE,
        principal=principal,
        context=context,
        resource_policy=TRUST,
    )


# --- A tenant stack as CDK synthesizes it (shapes copied from a real synth of the tenant roles) --

ENDPOINT_STACK: Final[dict[str, Any]] = {
    "Resources": {},
    "Outputs": {
        "PublishOutputEndpointArn0A1B2C3D": {
            "Value": {
                "Fn::Join": [
                    "",
                    [
                        "arn:",
                        {"Ref": "AWS::Partition"},
                        ":sagemaker:",
                        {"Ref": "AWS::Region"},
                        ":",
                        {"Ref": "AWS::AccountId"},
                        ":endpoint/mme-endpoint",
                    ],
                ]
            },
            "Export": {"Name": "MmeEndpoint:ExportsOutputEndpointArn0A1B2C3D"},
        }
    },
}
TENANT_RESOURCE: Final = {
    "Fn::GetStackOutput": {
        "StackName": "MmeEndpoint",
        "Region": {"Ref": "AWS::Region"},
        "OutputName": "PublishOutputEndpointArn0A1B2C3D",
    }
}
TENANT_STACK: Final[dict[str, Any]] = {
    "Resources": {
        "TenantRolescompanyaRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Action": "sts:AssumeRole",
                            "Effect": "Allow",
                            "Principal": {
                                "AWS": {
                                    "Fn::Join": [
                                        "",
                                        ["arn:", {"Ref": "AWS::Partition"}, f":iam::{ACCOUNT}:root"],
                                    ]
                                }
                            },
                        }
                    ],
                },
                "Policies": [
                    {
                        "PolicyName": "inline",
                        "PolicyDocument": policy(
                            {
                                "Sid": "DenyTraversal",
                                "Effect": "Deny",
                                "Action": INVOKE,
                                "Resource": {
                                    "Fn::ImportValue": "MmeEndpoint:ExportsOutputEndpointArn0A1B2C3D"
                                },
                                "Condition": {"StringLike": {TARGET_MODEL: ["*..*"]}},
                            }
                        ),
                    }
                ],
            },
        },
        "TenantRolescompanyaInvoke": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "PolicyDocument": policy(
                    {
                        "Sid": "InvokeOnlyTheseModels",
                        "Effect": "Allow",
                        "Action": INVOKE,
                        "Resource": TENANT_RESOURCE,
                        "Condition": {"StringLike": {TARGET_MODEL: ["company_a/*", "common/*"]}},
                    }
                ),
                "Roles": [{"Ref": "TenantRolescompanyaRole"}],
            },
        },
        "SomeoneElsesPolicy": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                "PolicyDocument": policy({"Effect": "Allow", "Action": "*", "Resource": "*"}),
                "Roles": [{"Ref": "AnotherRole"}],
            },
        },
    }
}
ENDPOINT_RENDERER: Final = TemplateRenderer(ENDPOINT_STACK, {})
TENANT_RENDERER: Final = TemplateRenderer(TENANT_STACK, stack_exports(ENDPOINT_RENDERER))
TENANT_POLICIES: Final = role_identity_policies(
    TENANT_RENDERER, "TenantRolescompanyaRole", other_stacks={"MmeEndpoint": ENDPOINT_RENDERER}
)
TENANT_ROLE_SESSION: Final = f"arn:aws:sts::{ACCOUNT}:assumed-role/TenantRolescompanyaRole/s"


def rendered_case(case_id: str, target_model: str) -> Case:
    return Case(
        id=case_id,
        identity_policies=TENANT_POLICIES,
        action=INVOKE,
        resource=ENDPOINT,
        principal=TENANT_ROLE_SESSION,
        context={TARGET_MODEL: target_model},
    )


# --- The batch: case, expected decision, statements expected to decide ------------------------

EXPECTED: Final[list[tuple[Case, Decision, list[str]]]] = [
    # StringLike on TargetModel: own prefix only.
    (model_case("prefix-own", [ALLOW_A], model("company_a/m.tar.gz")), ALLOWED, ["AllowCompanyA"]),
    (model_case("prefix-other-tenant", [ALLOW_A], model("company_b/m.tar.gz")), IMPLICIT, []),
    (model_case("prefix-extension", [ALLOW_A], model("company_ab/m.tar.gz")), IMPLICIT, []),
    # Path traversal: the allow alone lets it through; the explicit deny wins over the allow.
    (
        model_case("traversal-allow-only", [ALLOW_A], model("company_a/../company_b/m.tar.gz")),
        ALLOWED,
        ["AllowCompanyA"],
    ),
    (
        model_case("traversal-denied", [ALLOW_A, DENY_TRAVERSAL], model("company_a/../company_b/m.tar.gz")),
        EXPLICIT,
        ["DenyTraversal"],
    ),
    (
        model_case("traversal-deny-spares-own", [ALLOW_A, DENY_TRAVERSAL], model("company_a/v1.2/m.tar.gz")),
        ALLOWED,
        ["AllowCompanyA"],
    ),
    # Missing TargetModel: an unconditioned allow lets it through, the Null deny stops it.
    (model_case("no-model-allow-only", [ALLOW_ANY_MODEL], {}), ALLOWED, ["AllowAnyModel"]),
    (model_case("no-model-denied", [ALLOW_ANY_MODEL, DENY_NO_MODEL], {}), EXPLICIT, ["DenyNoModel"]),
    (
        model_case("model-present-null-deny-spares", [ALLOW_ANY_MODEL, DENY_NO_MODEL], model("x/m.tar.gz")),
        ALLOWED,
        ["AllowAnyModel"],
    ),
    (model_case("no-model-prefix-allow", [ALLOW_A], {}), IMPLICIT, []),
    # Policy variable from the principal's tenant tag.
    (
        model_case("tag-own", [ALLOW_TAGGED], model("company_a/x", tenant="company_a")),
        ALLOWED,
        ["AllowTenantTag"],
    ),
    (model_case("tag-other-tenant", [ALLOW_TAGGED], model("company_b/x", tenant="company_a")), IMPLICIT, []),
    (model_case("tag-missing", [ALLOW_TAGGED], model("company_a/x")), IMPLICIT, []),
    # A wildcard inside the substituted value is a literal character, not a wildcard.
    (model_case("tag-star", [ALLOW_TAGGED], model("company_b/x", tenant="*")), IMPLICIT, []),
    (model_case("tag-star-literal", [ALLOW_TAGGED], model("*/x", tenant="*")), ALLOWED, ["AllowTenantTag"]),
    (model_case("tag-prefix-star", [ALLOW_TAGGED], model("company_b/x", tenant="company_*")), IMPLICIT, []),
    (model_case("tag-question", [ALLOW_TAGGED], model("company_b/x", tenant="company_?")), IMPLICIT, []),
    # Literal escapes ${*} and ${?}: the deny matches only a real '*' or '?' in the tag.
    (
        model_case(
            "escape-star", [ALLOW_TAGGED, DENY_WILDCARD_TAG], model("company_*/x", tenant="company_*")
        ),
        EXPLICIT,
        ["DenyWildcardInTag"],
    ),
    (
        model_case(
            "escape-question", [ALLOW_TAGGED, DENY_WILDCARD_TAG], model("company_?/x", tenant="company_?")
        ),
        EXPLICIT,
        ["DenyWildcardInTag"],
    ),
    (
        model_case(
            "escape-plain-tag", [ALLOW_TAGGED, DENY_WILDCARD_TAG], model("company_a/x", tenant="company_a")
        ),
        ALLOWED,
        ["AllowTenantTag"],
    ),
    # '.' and '/' are legal in tag values: a tag 'company_a/..' needs the traversal deny.
    (
        model_case(
            "tag-dots-allow-only", [ALLOW_TAGGED], model("company_a/../company_b/x", tenant="company_a/..")
        ),
        ALLOWED,
        ["AllowTenantTag"],
    ),
    (
        model_case(
            "tag-dots-denied",
            [ALLOW_TAGGED, DENY_TRAVERSAL],
            model("company_a/../company_b/x", tenant="company_a/.."),
        ),
        EXPLICIT,
        ["DenyTraversal"],
    ),
    # Another endpoint, other actions.
    (
        model_case("other-endpoint", [ALLOW_A], model("company_a/x"), resource=OTHER_ENDPOINT),
        IMPLICIT,
        [],
    ),
    (
        model_case(
            "describe-endpoint",
            [ALLOW_A],
            model("company_a/x"),
            action="sagemaker:DescribeEndpoint",
            ignorable=frozenset({TARGET_MODEL}),
        ),
        IMPLICIT,
        [],
    ),
    (
        model_case(
            "invoke-async",
            [ALLOW_A],
            model("company_a/x"),
            action="sagemaker:InvokeEndpointAsync",
            ignorable=frozenset({TARGET_MODEL}),
        ),
        IMPLICIT,
        [],
    ),
    (
        model_case("describe-control", [ALLOW_DESCRIBE], {}, action="sagemaker:DescribeEndpoint"),
        ALLOWED,
        ["AllowDescribe"],
    ),
    # A role trust policy as resource policy: sts:TagSession needs exactly the tenant tag.
    (tag_session("trust-tenant-tag", CALLER, {"tenant": "company_a"}), ALLOWED, ["TrustCallerWithTenantTag"]),
    (tag_session("trust-no-tenant-tag", CALLER, {"team": "x"}), IMPLICIT, []),
    (tag_session("trust-extra-tag", CALLER, {"tenant": "company_a", "admin": "yes"}), IMPLICIT, []),
    (tag_session("trust-empty-tag", CALLER, {"tenant": ""}), IMPLICIT, []),
    (
        tag_session("trust-other-caller", f"arn:aws:iam::{ACCOUNT}:role/Other", {"tenant": "company_a"}),
        IMPLICIT,
        [],
    ),
    # Policies rendered from a CDK-shaped template (GetStackOutput, ImportValue, inline + managed).
    (rendered_case("rendered-own", "company_a/m.tar.gz"), ALLOWED, ["InvokeOnlyTheseModels"]),
    (rendered_case("rendered-shared", "common/m.tar.gz"), ALLOWED, ["InvokeOnlyTheseModels"]),
    (rendered_case("rendered-other-tenant", "company_b/m.tar.gz"), IMPLICIT, []),
    (rendered_case("rendered-traversal", "company_a/../company_b/m.tar.gz"), EXPLICIT, ["DenyTraversal"]),
]

BATCH: Final = CaseBatch(case for case, _, _ in EXPECTED)


@pytest.mark.parametrize(
    ("case_id", "expected", "deciding_sids"),
    [(case.id, expected, sids) for case, expected, sids in EXPECTED],
)
def test_decision(case_id: str, expected: Decision, deciding_sids: list[str]) -> None:
    result = BATCH[case_id]
    assert result.decision == expected, result.describe()
    assert [statement.split("#", 1)[1] for statement in result.decided_by] == deciding_sids, result.describe()


def test_the_matrix_covers_every_outcome() -> None:
    decisions = [expected for _, expected, _ in EXPECTED]
    assert {ALLOWED, IMPLICIT, EXPLICIT} <= set(decisions)


def test_the_variable_is_substituted_with_the_tag_value() -> None:
    (allow,) = BATCH["tag-own"].explain["identity"]["allow"]
    (condition,) = allow["conditions"]
    assert condition["values"] == [
        {"value": "${aws:PrincipalTag/tenant}/*", "resolved": "company_a/*", "matches": True}
    ]
    (unmatched,) = BATCH["tag-missing"].explain["identity"]["unmatched"]
    (value,) = unmatched["conditions"][0]["values"]
    assert value["matches"] is False
    assert "not found in request context" in value["errors"][0]


def test_a_wildcard_in_the_tag_value_stays_literal() -> None:
    (unmatched,) = BATCH["tag-prefix-star"].explain["identity"]["unmatched"]
    (value,) = unmatched["conditions"][0]["values"]
    assert value == {"value": "${aws:PrincipalTag/tenant}/*", "resolved": "company_*/*", "matches": False}


def test_other_actions_fail_on_the_action_not_the_condition() -> None:
    for case_id in ("describe-endpoint", "invoke-async"):
        result = BATCH[case_id]
        (statement,) = result.explain["identity"]["unmatched"]
        assert statement["action"] is False, result.describe()
        assert result.ignored_context_keys == [TARGET_MODEL]  # no such key for these actions
    (statement,) = BATCH["other-endpoint"].explain["identity"]["unmatched"]
    assert (statement["action"], statement["resource"]) == (True, False)


def test_rendering_resolves_cross_stack_references() -> None:
    assert [statement["Resource"] for p in TENANT_POLICIES for statement in p["Statement"]] == [
        ENDPOINT,
        ENDPOINT,
    ]
    trust = role_trust_policy(TENANT_RENDERER, "TenantRolescompanyaRole")
    assert trust["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}


def test_what_cannot_be_rendered_is_refused() -> None:
    document = TENANT_STACK["Resources"]["TenantRolescompanyaInvoke"]["Properties"]["PolicyDocument"]
    with pytest.raises(RenderError, match="pass the renderer of stack MmeEndpoint"):
        render_policy(document, TENANT_RENDERER)
    # What TemplateRenderer alone makes of Fn::GetStackOutput: a placeholder, not an ARN.
    placeholder = policy({"Effect": "Allow", "Action": INVOKE, "Resource": "MmeEndpoint.PublishOutputX"})
    with pytest.raises(RenderError, match=r"Resource 'MmeEndpoint.PublishOutputX' is not an ARN"):
        render_policy(placeholder, TENANT_RENDERER)
    unknown = policy({"Effect": "Allow", "Action": INVOKE, "Resource": {"Fn::Base64": ENDPOINT}})
    with pytest.raises(RenderError, match="intrinsics left after rendering"):
        render_policy(unknown, TENANT_RENDERER)


def test_evaluate_returns_decisions() -> None:
    cases = [model_case("one", [ALLOW_A], model("company_a/x")), model_case("two", [ALLOW_A], model("b/x"))]
    assert evaluate(cases) == {"one": ALLOWED, "two": IMPLICIT}


def test_a_misspelt_context_key_is_an_error() -> None:
    case = model_case("typo", [ALLOW_ANY_MODEL, DENY_NO_MODEL], {"sagemaker:TargetModle": "company_a/x"})
    with pytest.raises(EvaluatorError, match=r"'typo': \['sagemaker:TargetModle'\]"):
        evaluate([case])
    assert evaluate_detailed([case], strict_context_keys=False)["typo"].decision == EXPLICIT


def test_a_policy_without_version_is_refused() -> None:
    unversioned = {"Statement": [ALLOW_TAGGED]}
    case = Case("v", [unversioned], INVOKE, ENDPOINT, SESSION, model("company_a/x", tenant="company_a"))
    with pytest.raises(
        EvaluatorError, match=r'case "v" identityPolicies\[0\]: "Version" must be "2012-10-17"'
    ):
        evaluate([case])


def test_a_request_the_library_refuses_is_an_error() -> None:
    case = model_case("bad-action", [ALLOW_A], {}, action="sagemaker:InvokeEndpoints")
    with pytest.raises(
        EvaluatorError, match=r'case "bad-action": iam-simulate refused the request: .*invalid\.action'
    ):
        evaluate([case])


def test_malformed_input_exits_1_with_a_message() -> None:
    completed = subprocess.run(
        ["node", str(SCRIPT)], input="{not json", capture_output=True, text=True, timeout=30, check=False
    )
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.startswith("simulate.mjs: stdin is not one JSON document")
    completed = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps({"cases": [{"id": "x", "identityPolicies": [], "request": {"action": INVOKE}}]}),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode == 1
    assert "request.resource must be one concrete ARN" in completed.stderr
