"""Quality gates over the synthesized templates: cdk-nag (two packs) and cfn-lint."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker

from app import add_compliance_checks
from mme_constructs.algorithms import ALGORITHMS
from mme_constructs.cloudformation_limits import TEMPLATE_BYTES, oversize
from tests.conftest import REPO_ROOT, SynthesizedApp

PACKS = ("AwsSolutions", "NIST.800.53.R5")


def _cfn_lint(*templates: str) -> subprocess.CompletedProcess[str]:
    """The cfn-lint installed beside this interpreter, with the repository's one settings file."""
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    return subprocess.run(
        [str(cfn_lint), "--config-file", ".cfnlintrc.yaml", "--", *templates],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _report(app: SynthesizedApp) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((app.outdir / "validation-report.json").read_text())
    return report


def test_no_unacknowledged_nag_findings(both_apps: list[SynthesizedApp]) -> None:
    """Synth would have raised on a finding; the report must agree (zero open violations)."""
    for app in both_apps:
        for plugin in _report(app)["pluginReports"]:
            assert plugin["pluginName"] in PACKS
            assert plugin["violations"] == [], plugin["violations"]
            assert plugin["conclusion"] == "success"


def test_every_acknowledgment_is_granular_beside_its_resource_with_a_reason(
    both_apps: list[SynthesizedApp],
) -> None:
    acknowledged = 0
    for app in both_apps:
        stack_names = set(app.templates)
        for plugin in _report(app)["pluginReports"]:
            for finding in plugin.get("suppressedViolations", []):
                acknowledged += 1
                at = finding["acknowledgedAt"]
                assert at not in stack_names, f"stack-wide acknowledgment at {at}"
                paths = [c["constructPath"] for c in finding["violatingConstructs"]]
                assert all(p == at or p.startswith(at + "/") for p in paths)
                assert len(paths) == 1, "one acknowledgment should cover one resource"
                assert finding["acknowledgedId"].endswith(finding["ruleName"])
                assert len(finding["reason"]) >= 40
    assert acknowledged > 0


def test_nag_gate_rejects_an_insecure_bucket(cdk_context: dict[str, Any], tmp_path: Path) -> None:
    """Proves the gate is live: the same packs fail synth on a default (insecure) bucket."""
    app = cdk.App(context=cdk_context, outdir=str(tmp_path))
    s3.Bucket(cdk.Stack(app, "Insecure"), "Bucket")
    add_compliance_checks(app)
    with pytest.raises(RuntimeError, match=r"^ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    found = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert {"AwsSolutions-S1", "AwsSolutions-S10", "NIST.800.53.R5-S3DefaultEncryptionKMS"} <= found


def test_nist_gate_requires_a_kms_key_on_endpoint_configs(
    cdk_context: dict[str, Any], tmp_path: Path
) -> None:
    """The NIST pack's SageMaker rule is live: an endpoint config without KmsKeyId fails synth."""
    app = cdk.App(context=cdk_context, outdir=str(tmp_path))
    sagemaker.CfnEndpointConfig(
        cdk.Stack(app, "Unencrypted"),
        "Config",
        production_variants=[
            sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name="AllTraffic",
                model_name="m",
                initial_instance_count=1,
                instance_type="ml.m4.xlarge",
            )
        ],
    )
    add_compliance_checks(app)
    with pytest.raises(RuntimeError, match=r"^ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    found = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "NIST.800.53.R5-SageMakerEndpointConfigurationKMSKeyConfigured" in found


OTHER_ALGORITHMS = [name for name in ALGORITHMS if name != "linear-learner"]


def test_cfn_lint_reports_nothing_on_any_app(
    both_apps: list[SynthesizedApp], synthesized_for_algorithm: Callable[[str], SynthesizedApp]
) -> None:
    """Every template of the default, throwaway and each other algorithm's app, in one cfn-lint run;
    a template that is byte for byte another app's (storage, say) is linted once."""
    apps = [*both_apps, *(synthesized_for_algorithm(name) for name in OTHER_ALGORITHMS)]
    unique: dict[bytes, str] = {}
    for app in apps:
        paths = sorted(app.outdir.glob("*.template.json"))
        assert len(paths) == len(app.templates)
        for path in paths:
            unique.setdefault(hashlib.sha256(path.read_bytes()).digest(), str(path))
    assert len(unique) > len(both_apps[0].templates)
    result = _cfn_lint(*unique.values())
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_would_catch_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.template.json"
    broken.write_text(
        json.dumps({"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"Nope": 1}}}})
    )
    result = _cfn_lint(str(broken))
    assert result.returncode != 0
    assert "E3002" in result.stdout


@pytest.mark.parametrize("name", OTHER_ALGORITHMS)
def test_every_algorithm_passes_both_nag_packs(
    name: str, synthesized_for_algorithm: Callable[[str], SynthesizedApp]
) -> None:
    """The default app (linear learner) is checked above; each other algorithm's app the same way
    (and by cfn-lint, with the others)."""
    app = synthesized_for_algorithm(name)
    assert app.config.training.algorithm == name
    plugins = _report(app)["pluginReports"]
    assert sorted(plugin["pluginName"] for plugin in plugins) == sorted(PACKS)
    for plugin in plugins:
        assert plugin["violations"] == [], plugin["violations"]
        assert plugin["conclusion"] == "success"


def test_a_template_of_1_mb_passes_the_size_quota_and_one_byte_more_is_named(tmp_path: Path) -> None:
    """The quota check (mme_constructs/cloudformation_limits.py) at its boundary; the synth that
    fails on it is tests/test_tenant_access.py's tenant stack over 1 MB."""
    template = tmp_path / "Big.template.json"
    template.write_bytes(b"{}".ljust(TEMPLATE_BYTES))
    assert oversize(template) is None
    template.write_bytes(b"{}".ljust(TEMPLATE_BYTES + 1))
    assert oversize(template) == (
        "Big.template.json is 1,000,001 bytes, more than the 1,000,000 bytes CloudFormation accepts "
        "for a template."
    )
