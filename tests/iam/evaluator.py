"""Decide IAM requests with a real policy evaluator, from tests.

moto does not evaluate conditions, so it cannot tell whether ``sagemaker:TargetModel`` scoping
works. This module runs npm ``@cloud-copilot/iam-simulate`` (AGPL-3.0, a test-time tool: started
as a separate ``node`` process, never bundled or shipped) through ``tests/iam/simulate.mjs``:
one node process decides a whole batch of cases.

Typical use, one node process for a module's whole matrix::

    MATRIX = CaseBatch([Case(...), ...])          # nothing runs yet

    @pytest.mark.parametrize(("case_id", "expected"), [...])
    def test_decision(case_id: str, expected: Decision) -> None:
        result = MATRIX[case_id]                  # the first lookup evaluates every case
        assert result.decision == expected, result.describe()

Policies taken from a synthesized template are rendered to literals first (:func:`render_policy`,
:func:`role_identity_policies`, :func:`role_trust_policy`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from tests.cfn_render import TemplateRenderer

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
SCRIPT: Final = REPO_ROOT / "tests" / "iam" / "simulate.mjs"
DEFAULT_TIMEOUT_SECONDS: Final = 60.0

PolicyDocument = Mapping[str, Any]
ContextValue = str | Sequence[str]


class Decision(StrEnum):
    """The evaluator's verdict (the strings iam-simulate and the IAM policy simulator use)."""

    ALLOWED = "Allowed"
    IMPLICITLY_DENIED = "ImplicitlyDenied"
    EXPLICITLY_DENIED = "ExplicitlyDenied"


@dataclass(frozen=True)
class Case:
    """One request made by ``principal`` with ``identity_policies`` attached to it.

    ``context`` holds the request's context keys (``sagemaker:TargetModel``,
    ``aws:PrincipalTag/tenant``, ...); nothing is derived from ``principal`` automatically.
    ``resource_policy`` is the resource's own policy, if any (for ``sts:AssumeRole`` and
    ``sts:TagSession`` on a role: its trust policy). ``resource_account`` is only needed when
    ``resource`` is an ARN without an account (S3 buckets). ``ignorable_context_keys``: keys of
    ``context`` that the action is known not to define (the evaluator, like AWS, drops them);
    any other dropped key is an error, see :func:`evaluate_detailed`.
    """

    id: str
    identity_policies: Sequence[PolicyDocument]
    action: str
    resource: str
    principal: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    resource_policy: PolicyDocument | None = None
    resource_account: str | None = None
    ignorable_context_keys: frozenset[str] = frozenset()

    def to_json(self) -> dict[str, Any]:
        request: dict[str, Any] = {
            "action": self.action,
            "resource": self.resource,
            "principal": self.principal,
            "contextKeys": {
                key: value if isinstance(value, str) else list(value) for key, value in self.context.items()
            },
        }
        if self.resource_account is not None:
            request["resourceAccount"] = self.resource_account
        document: dict[str, Any] = {
            "id": self.id,
            "identityPolicies": list(self.identity_policies),
            "request": request,
        }
        if self.resource_policy is not None:
            document["resourcePolicy"] = self.resource_policy
        return document


@dataclass(frozen=True)
class Evaluation:
    """The decision for one case and the evaluator's compact explanation of it."""

    id: str
    decision: Decision
    explain: Mapping[str, Any]

    @property
    def decided_by(self) -> list[str]:
        """``identityPolicies[<index>]#<Sid or 1-based statement number>`` of the deciding statements."""
        return list(self.explain["decidedBy"])

    @property
    def ignored_context_keys(self) -> list[str]:
        """Context keys the action does not define, which the evaluator (like AWS) dropped."""
        return list(self.explain["ignoredContextKeys"])

    def describe(self) -> str:
        """For assertion messages: the decision and the full explanation."""
        return f"{self.id}: {self.decision}\n{json.dumps(self.explain, indent=1)}"


class EvaluatorError(RuntimeError):
    """node or iam-simulate could not evaluate the batch (the message includes node's stderr)."""


def evaluate_detailed(
    cases: Sequence[Case],
    *,
    strict_context_keys: bool = True,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> dict[str, Evaluation]:
    """Evaluate every case in one node process; the result is keyed by case id.

    With ``strict_context_keys`` (the default) a context key that the action does not define
    is an error unless the case lists it in ``ignorable_context_keys``: a misspelt
    ``sagemaker:TargetModle`` would otherwise silently turn an intended check into a "missing
    TargetModel" check.
    """
    ids = [case.id for case in cases]
    duplicates = sorted({case_id for case_id in ids if ids.count(case_id) > 1})
    if duplicates:
        raise ValueError(f"duplicate case ids: {duplicates}")
    if not cases:
        return {}
    node = shutil.which("node")
    if node is None:
        raise EvaluatorError("node is not on PATH; the IAM evaluator needs it (npm ci installs the tool)")
    payload = json.dumps({"cases": [case.to_json() for case in cases]})
    try:
        completed = subprocess.run(
            [node, str(SCRIPT)],
            input=payload,
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise EvaluatorError(f"{SCRIPT.name} did not finish within {timeout} s") from error
    if completed.returncode != 0:
        raise EvaluatorError(f"{SCRIPT.name} exited with {completed.returncode}:\n{completed.stderr.strip()}")
    try:
        raw_results = json.loads(completed.stdout)["results"]
        results = {
            item["id"]: Evaluation(
                id=item["id"], decision=Decision(item["decision"]), explain=item["explain"]
            )
            for item in raw_results
        }
    except (ValueError, KeyError, TypeError) as error:
        raise EvaluatorError(f"{SCRIPT.name} wrote unexpected output: {completed.stdout[:2000]!r}") from error
    if set(results) != set(ids):
        raise EvaluatorError(f"{SCRIPT.name} answered {sorted(results)}, asked {sorted(ids)}")
    if strict_context_keys:
        by_id = {case.id: case for case in cases}
        unexpected = {
            case_id: sorted(set(r.ignored_context_keys) - by_id[case_id].ignorable_context_keys)
            for case_id, r in results.items()
        }
        unexpected = {case_id: keys for case_id, keys in unexpected.items() if keys}
        if unexpected:
            raise EvaluatorError(
                "context keys the action does not define, dropped by the evaluator (misspelt, or "
                f"never sent by AWS for this action; list them in ignorable_context_keys): {unexpected}"
            )
    return results


def evaluate(cases: Sequence[Case], *, strict_context_keys: bool = True) -> dict[str, Decision]:
    """Evaluate every case in one node process: case id -> decision."""
    return {
        case_id: result.decision
        for case_id, result in evaluate_detailed(cases, strict_context_keys=strict_context_keys).items()
    }


class CaseBatch(Mapping[str, Evaluation]):
    """Cases declared up front (e.g. at module level) and evaluated together on first lookup.

    Lets parametrized tests share one node process: ``batch[case_id]`` runs the evaluator for
    every case the first time, then answers from the cached results.
    """

    def __init__(self, cases: Iterable[Case], *, strict_context_keys: bool = True) -> None:
        self.cases: dict[str, Case] = {}
        for case in cases:
            if case.id in self.cases:
                raise ValueError(f"duplicate case id {case.id!r}")
            self.cases[case.id] = case
        self._strict_context_keys = strict_context_keys
        self._results: dict[str, Evaluation] | None = None

    def results(self) -> dict[str, Evaluation]:
        if self._results is None:
            self._results = evaluate_detailed(
                list(self.cases.values()), strict_context_keys=self._strict_context_keys
            )
        return self._results

    def __getitem__(self, case_id: str) -> Evaluation:
        if case_id not in self.cases:
            raise KeyError(f"no case {case_id!r} in this batch")
        return self.results()[case_id]

    def __contains__(self, case_id: object) -> bool:
        return case_id in self.cases

    def __iter__(self) -> Iterator[str]:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def mismatches(self, expected: Mapping[str, Decision]) -> str:
        """Every case whose decision is not ``expected``'s, with the evaluator's account of it
        (empty when all match): the message of a test that asserts a whole table of decisions."""
        wrong = {
            case_id: f"expected {want}, got {self[case_id].decision}"
            for case_id, want in expected.items()
            if self[case_id].decision != want
        }
        if not wrong:
            return ""
        return (
            "\n".join(f"{k}: {v}" for k, v in wrong.items())
            + "\n\n"
            + "\n".join(self[k].describe() for k in wrong)
        )


# --- Policies from synthesized templates -------------------------------------------------------


class RenderError(ValueError):
    """A policy still holds something that is not a literal an IAM evaluator can use."""


def render_policy(
    policy_document: Any,
    renderer: TemplateRenderer,
    *,
    other_stacks: Mapping[str, TemplateRenderer] | None = None,
) -> dict[str, Any]:
    """A policy document from a synthesized template, with every intrinsic replaced by a literal.

    ``renderer`` renders the template the policy comes from. CDK's cross-stack references come in
    two shapes: ``Fn::ImportValue`` (resolved from ``renderer.exports``; :func:`stack_exports`
    builds those from the producing stack) and ``Fn::GetStackOutput`` (resolved here by rendering
    the named output of ``other_stacks[StackName]``). The result is checked: no intrinsic left,
    every ``Resource`` an ARN or ``*``, every AWS principal an ARN, account ID or ``*``.
    """
    resolved = _resolve_stack_outputs(policy_document, other_stacks or {})
    rendered = renderer.render(resolved)
    if not isinstance(rendered, dict):
        raise RenderError(f"a policy document renders to a JSON object, not {rendered!r}")
    _check_rendered(rendered)
    return rendered


def stack_exports(renderer: TemplateRenderer) -> dict[str, str]:
    """The producing stack's exports (name -> rendered value), for a consumer's renderer."""
    exports: dict[str, str] = {}
    for output_id, output in renderer.template.get("Outputs", {}).items():
        if "Export" in output:
            name = renderer.render(output["Export"]["Name"])
            value = renderer.render(output["Value"])
            if not isinstance(name, str) or not isinstance(value, str):
                raise RenderError(f"output {output_id} does not render to a string export")
            exports[name] = value
    return exports


def role_identity_policies(
    renderer: TemplateRenderer,
    role_logical_id: str,
    *,
    other_stacks: Mapping[str, TemplateRenderer] | None = None,
) -> list[dict[str, Any]]:
    """Every identity policy of one role in the template: inline, and attached from the template.

    Covers the role's ``Policies``, and ``AWS::IAM::Policy`` / ``AWS::IAM::ManagedPolicy``
    resources whose ``Roles`` refer to it. ``ManagedPolicyArns`` (AWS managed or external
    policies) cannot be evaluated from the template and are refused.
    """
    resources: Mapping[str, Any] = renderer.template["Resources"]
    role = resources[role_logical_id]
    if role["Type"] != "AWS::IAM::Role":
        raise ValueError(f"{role_logical_id} is a {role['Type']}, not an AWS::IAM::Role")
    properties = role.get("Properties", {})
    if properties.get("ManagedPolicyArns"):
        raise RenderError(
            f"{role_logical_id} has ManagedPolicyArns {properties['ManagedPolicyArns']}: "
            "their documents are not in the template"
        )
    documents = [inline["PolicyDocument"] for inline in properties.get("Policies", [])]
    reference = {"Ref": role_logical_id}
    documents += [
        resource["Properties"]["PolicyDocument"]
        for resource in resources.values()
        if resource["Type"] in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}
        and reference in resource["Properties"].get("Roles", [])
    ]
    return [render_policy(document, renderer, other_stacks=other_stacks) for document in documents]


def role_trust_policy(renderer: TemplateRenderer, role_logical_id: str) -> dict[str, Any]:
    """The role's trust policy, rendered: the resource policy of ``sts:AssumeRole`` on the role."""
    role = renderer.template["Resources"][role_logical_id]
    return render_policy(role["Properties"]["AssumeRolePolicyDocument"], renderer)


def _resolve_stack_outputs(node: Any, other_stacks: Mapping[str, TemplateRenderer]) -> Any:
    if isinstance(node, list):
        return [_resolve_stack_outputs(item, other_stacks) for item in node]
    if not isinstance(node, Mapping):
        return node
    if set(node) == {"Fn::GetStackOutput"}:
        reference = node["Fn::GetStackOutput"]
        stack_name, output_name = reference["StackName"], reference["OutputName"]
        if stack_name not in other_stacks:
            raise RenderError(
                f"Fn::GetStackOutput {stack_name}.{output_name}: pass the renderer of stack "
                f"{stack_name} in other_stacks (known: {sorted(other_stacks)})"
            )
        producer = other_stacks[stack_name]
        outputs = producer.template.get("Outputs", {})
        if output_name not in outputs:
            raise RenderError(f"stack {stack_name} has no output {output_name}")
        return producer.render(outputs[output_name]["Value"])
    return {key: _resolve_stack_outputs(value, other_stacks) for key, value in node.items()}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _check_rendered(document: Mapping[str, Any]) -> None:
    leftovers = list(_intrinsics(document))
    if leftovers:
        raise RenderError(f"intrinsics left after rendering: {leftovers}")
    for index, statement in enumerate(_as_list(document.get("Statement", []))):
        where = f"Statement[{index}] ({statement.get('Sid', 'no Sid')})"
        for key in ("Resource", "NotResource"):
            for value in _as_list(statement.get(key, [])):
                if not isinstance(value, str) or not (value == "*" or value.startswith("arn:")):
                    raise RenderError(
                        f"{where} {key} {value!r} is not an ARN: an unresolved reference "
                        "(Fn::GetStackOutput without other_stacks renders to 'Stack.Output')?"
                    )
        for key in ("Principal", "NotPrincipal"):
            principal = statement.get(key)
            if isinstance(principal, Mapping):
                for value in _as_list(principal.get("AWS", [])):
                    ok = isinstance(value, str) and (
                        value == "*" or value.startswith("arn:") or (value.isdigit() and len(value) == 12)
                    )
                    if not ok:
                        raise RenderError(f"{where} {key} AWS {value!r} is not an ARN or account ID")


def _intrinsics(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _intrinsics(item)
    elif isinstance(node, Mapping):
        for key, value in node.items():
            if key == "Ref" or key.startswith("Fn::"):
                yield f"{key}: {value!r}"
            else:
                yield from _intrinsics(value)
