"""Session fixtures: the app is synthesized once per test session (per configuration and algorithm)."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk
import botocore.loaders  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]

from app import build_app
from project_config import ProjectConfig, load_config
from project_config.loader import CONTEXT_KEY, deep_merge

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def shared_botocore_loader() -> Iterator[None]:
    """Every botocore session of the test process reads the service models through one loader.

    moto resets boto3's default session for each test, and each CLI invocation builds its own
    session, so without this every new session parses the service models' JSON again (SageMaker's
    alone is megabytes): a session with three clients costs about 170 ms instead of 65 ms. One
    session already shares its loader among all its clients; this only extends that to all sessions
    of the same data path.
    """
    loaders: dict[str | None, Any] = {}
    create_loader = botocore.loaders.create_loader

    def shared(search_path_string: str | None = None) -> Any:
        if search_path_string not in loaders:
            loaders[search_path_string] = create_loader(search_path_string)
        return loaders[search_path_string]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", shared)
        yield


@pytest.fixture(scope="session", autouse=True)
def moto_s3_urls_read_once() -> Iterator[None]:
    """moto's S3 backend re-imports its URL module (``importlib.reload``) on every request, in case
    ``MOTO_S3_CUSTOM_ENDPOINTS`` changed (moto's own "TODO: cache this part"); these tests set no
    custom endpoint, so the module as first imported is the one every request would get."""
    import moto.s3.models
    import moto.s3.urls
    from moto import settings

    assert not settings.get_s3_custom_endpoints()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(moto.s3.models.S3Backend, "_url_module", property(lambda backend: moto.s3.urls))
        yield


def one_statement(like: dict[str, Any], statement: dict[str, Any] | None = None) -> tuple[Any, Any]:
    """Two patterns of a policy document's ``Statement`` list that, both matched, say: exactly one
    statement is like ``like``, and that statement is also like ``statement`` (``Match.object_like``)."""
    one = cdk.assertions.Match.object_like(like)
    full = cdk.assertions.Match.object_like({**like, **(statement or {})})
    return cdk.assertions.Match.array_with([full]), cdk.assertions.Match.not_(
        cdk.assertions.Match.array_with([one, one])
    )


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    """``{logical id: resource}`` of one CloudFormation type in a template."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


@dataclass(frozen=True)
class SynthesizedApp:
    """One synthesized deployment: its config, stacks, templates and cloud-assembly folder."""

    config: ProjectConfig
    stacks: dict[str, cdk.Stack]
    templates: dict[str, dict[str, Any]]
    outdir: Path
    _assertions: dict[str, cdk.assertions.Template] = field(default_factory=dict, compare=False, repr=False)

    def template(self, role: str) -> dict[str, Any]:
        """A private copy, so that no test can change what the next one sees."""
        return copy.deepcopy(self.templates[self.stacks[role].stack_name])

    def assertions(self, role: str) -> cdk.assertions.Template:
        """The role's template for ``Match``/``Capture`` assertions, built once (they only read it)."""
        if role not in self._assertions:
            self._assertions[role] = cdk.assertions.Template.from_json(self.template(role))
        return self._assertions[role]


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    """cdk.json's context: the feature flags and the default settings, exactly as the CLI sees them."""
    context: dict[str, Any] = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]
    return context


def _synthesize(context: dict[str, Any], overrides: dict[str, Any], outdir: Path) -> SynthesizedApp:
    config = load_config(deep_merge(context[CONTEXT_KEY], overrides))
    app = cdk.App(context=context, outdir=str(outdir))
    stacks = build_app(app, config)
    assembly = app.synth()
    templates = {s.stack_name: s.template for s in assembly.stacks}
    return SynthesizedApp(config=config, stacks=stacks, templates=templates, outdir=outdir)


@pytest.fixture(scope="session")
def synthesized(cdk_context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    """The app with the repository's default settings."""
    return _synthesize(cdk_context, {}, tmp_path_factory.mktemp("cdk.out.default"))


THROWAWAY_OVERRIDES: dict[str, Any] = {
    "stack_prefix": "Sandbox",
    "account": "111122223333",
    "region": "eu-west-1",
    "storage": {"removal_policy": "destroy", "noncurrent_version_expiration_days": 3},
    "tenants": {
        "mode": "roles",
        "shared_model_patterns": ["common/*"],
        "tenants": {
            "company_a": {
                "model_patterns": ["company_a/*"],
                "trusted_principals": ["arn:aws:iam::111122223333:role/company-a-app"],
                "max_session_duration_hours": 1,
            },
            "company_b": {
                "model_patterns": ["company_b/*"],
                "trusted_principals": ["444455556666"],
                "external_id": "company-b-external-id",
                "max_session_duration_hours": 2,
            },
        },
    },
}


@pytest.fixture(scope="session")
def synthesized_throwaway(
    cdk_context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> SynthesizedApp:
    """A throwaway environment: explicit account/region, removal policy destroy, two tenant roles."""
    return _synthesize(cdk_context, THROWAWAY_OVERRIDES, tmp_path_factory.mktemp("cdk.out.throwaway"))


@pytest.fixture(scope="session")
def both_apps(synthesized: SynthesizedApp, synthesized_throwaway: SynthesizedApp) -> list[SynthesizedApp]:
    return [synthesized, synthesized_throwaway]


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[object], str]:
    """Write an object (or raw text) to a file and return its path, for config override tests."""

    def write(content: object, name: str = "override.json") -> str:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return str(path)

    return write


STORAGE_EXPORTS = {
    "MmeStorage-ArtifactBucketName": "mme-artifacts-111122223333",
    "MmeStorage-ArtifactBucketArn": "arn:aws:s3:::mme-artifacts-111122223333",
    "MmeStorage-KeyArn": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
}
"""Realistic values for the storage stack's exports, to render the training template."""


def training_definition_of(app: SynthesizedApp) -> dict[str, Any]:
    """An app's training state machine definition as Step Functions would receive it (us-east-1)."""
    from tests.cfn_render import TemplateRenderer

    template = app.template("training")
    (machine,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    rendered = TemplateRenderer(template, STORAGE_EXPORTS).render(machine["Properties"]["DefinitionString"])
    definition: dict[str, Any] = json.loads(rendered)
    return definition


@pytest.fixture(scope="session")
def training_definition(synthesized: SynthesizedApp) -> dict[str, Any]:
    """The default app's training state machine definition (see :func:`training_definition_of`)."""
    return training_definition_of(synthesized)


@pytest.fixture(scope="session")
def synthesized_for_algorithm(
    cdk_context: dict[str, Any], synthesized: SynthesizedApp, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], SynthesizedApp]:
    """``name -> SynthesizedApp``: the default settings with ``training.algorithm`` set to ``name`` (a
    key of ``mme_constructs.algorithms.ALGORITHMS``), synthesized once per session and name; the
    default algorithm's is :func:`synthesized` itself."""
    apps = {synthesized.config.training.algorithm: synthesized}

    def synthesized_with(name: str) -> SynthesizedApp:
        if name not in apps:
            apps[name] = _synthesize(
                cdk_context, {"training": {"algorithm": name}}, tmp_path_factory.mktemp(f"cdk.out.{name}")
            )
        return apps[name]

    return synthesized_with


@pytest.fixture(scope="session")
def training_definition_for_algorithm(
    synthesized_for_algorithm: Callable[[str], SynthesizedApp],
) -> Callable[[str], dict[str, Any]]:
    """``name -> definition``: the training definition of :func:`synthesized_for_algorithm`'s app for
    that algorithm, rendered once per name; each call returns a private copy."""
    definitions: dict[str, dict[str, Any]] = {}

    def definition_for(name: str) -> dict[str, Any]:
        if name not in definitions:
            definitions[name] = training_definition_of(synthesized_for_algorithm(name))
        return copy.deepcopy(definitions[name])

    return definition_for
