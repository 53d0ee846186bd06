"""Every project Lambda logs in Lambda's native JSON format: application records at INFO and above,
platform records at WARN and above, into its own log group (see ``mme_constructs/handler_function.py``)."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Capture, Match

from tests.conftest import SynthesizedApp

EXPECTED_LOGGING = {"LogFormat": "JSON", "ApplicationLogLevel": "INFO", "SystemLogLevel": "WARN"}
HANDLERS = {
    "training": {"plan_run", "generate_data", "check_transform", "promote_artifact", "summarize_run"},
    "endpoint": {"serving_generation"},
}
"""Every Lambda function of each template is a HandlerFunction: ``<name>.handler``, except CDK's
custom resource provider framework in front of ``serving_generation`` (checked below)."""
PROVIDER_FRAMEWORK = "framework.onEvent"


@pytest.mark.parametrize("role", sorted(HANDLERS))
def test_every_handler_function_logs_json_at_info(synthesized: SynthesizedApp, role: str) -> None:
    template = synthesized.assertions(role)
    # As many functions (besides the provider framework) as handlers, and one of each: exactly these.
    ours = template.find_resources(
        "AWS::Lambda::Function", {"Properties": {"Handler": Match.not_(PROVIDER_FRAMEWORK)}}
    )
    assert len(ours) == len(HANDLERS[role])
    log_groups = template.find_resources("AWS::Logs::LogGroup")
    for name in sorted(HANDLERS[role]):
        log_group = Capture()  # {"Ref": ...}: the function's own log group
        logging = {**EXPECTED_LOGGING, "LogGroup": Match.object_equals({"Ref": log_group})}
        template.has_resource_properties(
            "AWS::Lambda::Function", {"Handler": f"{name}.handler", "LoggingConfig": logging}
        )
        assert log_group.as_string() in log_groups, name
