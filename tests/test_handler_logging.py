"""Every project Lambda logs in Lambda's native JSON format: application records at INFO and above,
platform records at WARN and above, into its own log group (see ``mme_constructs/handler_function.py``)."""

from __future__ import annotations

import pytest

from tests.conftest import SynthesizedApp, resources_of_type

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
    template = synthesized.template(role)
    functions = resources_of_type(template, "AWS::Lambda::Function")
    handlers = {resource["Properties"]["Handler"]: resource for resource in functions.values()}
    handlers.pop(PROVIDER_FRAMEWORK, None)
    assert set(handlers) == {f"{name}.handler" for name in HANDLERS[role]}
    for handler, resource in handlers.items():
        config = resource["Properties"]["LoggingConfig"]
        assert {key: config.get(key) for key in EXPECTED_LOGGING} == EXPECTED_LOGGING, handler
        (log_group,) = config["LogGroup"].values()  # {"Ref": ...}: the function's own log group
        assert template["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup", handler


def test_the_provider_framework_logs_json_at_info_into_its_own_log_group(synthesized: SynthesizedApp) -> None:
    """What the Provider's API can set (its platform log level it cannot)."""
    template = synthesized.template("endpoint")
    functions = resources_of_type(template, "AWS::Lambda::Function").values()
    (framework,) = [f for f in functions if f["Properties"]["Handler"] == PROVIDER_FRAMEWORK]
    config = framework["Properties"]["LoggingConfig"]
    assert (config["LogFormat"], config["ApplicationLogLevel"]) == ("JSON", "INFO")
    (log_group,) = config["LogGroup"].values()
    assert template["Resources"][log_group]["Type"] == "AWS::Logs::LogGroup"
