"""What every read command shares (:mod:`mme_cli.output`): consoles that never wrap off a terminal,
``--output``, and the JSON schemas, pinned here so that changing one is a deliberate act.

Each command's own tests check its document's values; this file checks what holds for all of them.
"""

from __future__ import annotations

import io
import json
import re
import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import boto3  # type: ignore[import-untyped]
import pytest
from pydantic import TypeAdapter, ValidationError
from typing_extensions import is_typeddict

from mme_cli import output
from mme_shared import s3_layout
from tests.cli.conftest import BUCKET, GENERATION, REGION, STATE_MACHINE_ARN, CliResult, json_document

RunCli = Callable[..., CliResult]

# --------------------------------------------------------------------------------------------------
# Not a terminal: nothing wraps


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stderr", [False, True], ids=["stdout", "stderr"])
def test_a_console_off_a_terminal_never_wraps_whatever_columns_says(
    monkeypatch: pytest.MonkeyPatch, stderr: bool
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr("sys.stderr" if stderr else "sys.stdout", io.StringIO())

    assert output.console(stderr=stderr).width == output.NOT_A_TERMINAL_WIDTH


@pytest.mark.parametrize("stderr", [False, True], ids=["stdout", "stderr"])
def test_a_console_on_a_terminal_is_as_wide_as_the_terminal(
    monkeypatch: pytest.MonkeyPatch, stderr: bool
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr("sys.stderr" if stderr else "sys.stdout", _Terminal())

    assert output.console(stderr=stderr).width == 100


def test_a_forced_colour_console_off_a_terminal_still_never_wraps(monkeypatch: pytest.MonkeyPatch) -> None:
    """FORCE_COLOR makes rich treat any stream as a terminal; the width follows the stream itself."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr("sys.stdout", io.StringIO())

    assert output.console().width == output.NOT_A_TERMINAL_WIDTH


LONG_LOCATION = "Rancho_Santa_Margarita_CA_Metro1"  # the longest location name allowed (32)
LONG_VERSION = "ll-Rancho-Santa-Margarita-CA-run-20250501-120000-with-a-suffix1"  # and version (63)
LONG_KEY = s3_layout.model_version_key(GENERATION, LONG_LOCATION, LONG_VERSION)


@pytest.fixture
def long_names(served: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version with a 151-character key, and COLUMNS at 80 (what rich uses off a terminal)."""
    monkeypatch.setenv("COLUMNS", "80")
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key=LONG_KEY, Body=b"model")
    s3.put_object(Bucket=BUCKET, Key=s3_layout.model_version_key(GENERATION, "Austin_TX", "v1"), Body=b"m")


def test_models_list_piped_keeps_every_key_and_version_on_one_line(long_names: None, run_cli: RunCli) -> None:
    one = run_cli("models", "list", "--location", LONG_LOCATION)
    every = run_cli("models", "list")

    assert (one.exit_code, every.exit_code) == (0, 0), one.stderr + every.stderr
    assert (len(LONG_VERSION), len(LONG_KEY)) == (63, 151)
    rows = [line for line in one.stdout.splitlines() if "│" in line and "Rancho" in line]
    assert [(row.count(LONG_KEY), row.count(LONG_VERSION)) for row in rows] == [(1, 2)]  # its cell, the key
    rows = [line for line in every.stdout.splitlines() if "│" in line and "Rancho" in line]
    assert [(row.count(LONG_LOCATION), row.count(LONG_VERSION)) for row in rows] == [(1, 1)]
    title = next(line for line in every.stdout.splitlines() if "Models of generation" in line)
    assert f"under s3://{BUCKET}/models/{GENERATION}/" in title


def test_status_piped_keeps_every_arn_and_uri_on_one_line(long_names: None, run_cli: RunCli) -> None:
    result = run_cli("status")

    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    for whole in (
        STATE_MACHINE_ARN,
        f"{GENERATION} (endpoint mme-endpoint-test, since 2025-05-01 12:00:00 UTC)",
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/mme-dashboard",
    ):
        assert sum(whole in line for line in lines) == 1, whole


# --------------------------------------------------------------------------------------------------
# --output


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("models", "list"),
        ("predict", "Chicago_IL", "1993", "2728", "6", "3.0", "0.7", "1", "y", "y"),
        ("access", "check", "--tenant", "company_a"),
        ("experiment", "cache", "-l", "Chicago_IL"),
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_every_read_command_takes_output_table_or_json(
    aws: None, run_cli: RunCli, command: tuple[str, ...]
) -> None:
    result = run_cli(*command, "--output", "yaml")

    assert result.exit_code == 2
    assert "'yaml' is not one of 'table', 'json'" in " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split())
    assert "--output" in run_cli(*command[:2], "--help").stdout


# --------------------------------------------------------------------------------------------------
# The schemas

SCHEMAS = {
    "mme.status/1": [
        "schema: 'mme.status/1'",
        "prefix: str",
        "region: str",
        "bucket: str",
        "serving: object | null",
        "serving.generation: str",
        "serving.endpoint_name: str | null",
        "serving.updated_at: str",
        "serving.next_generation: str | null",
        "newest: object | null",
        "newest.generation: str",
        "newest.updated_at: str",
        "newest.complete_record: bool",
        "newest.location_count: int | null",
        "newest.completed_at: str | null",
        "newest.algorithm: str | null",
        "endpoint: object",
        "endpoint.name: str | null",
        "endpoint.found: bool",
        "endpoint.status: str | null",
        "endpoint.instances: int | null",
        "endpoint.variants: int | null",
        "endpoint.models: list[object]",
        "endpoint.models[].model_name: str",
        "endpoint.models[].generation: str | null",
        "endpoint.models[].preprocessor_url: str | null",
        "endpoint.models[].models_url: str | null",
        "models: object",
        "models.served_prefix_uri: str | null",
        "models.served_pointers: int | null",
        "models.generations: list[object]",
        "models.generations[].generation: str",
        "models.generations[].served: bool",
        "models.generations[].objects: int",
        "models.generations[].locations: int",
        "training: object",
        "training.state_machine_arn: str | null",
        "training.found: bool",
        "training.last_run: object | null",
        "training.last_run.name: str",
        "training.last_run.status: str",
        "training.last_run.started_at: str | null",
        "monitoring: object",
        "monitoring.deployed: bool",
        "monitoring.dashboard_name: str | null",
        "monitoring.dashboard_url: str | null",
        "monitoring.alarm_topic_arn: str | null",
        "alarms: list[object] | null",
        "alarms[].name: str",
        "alarms[].stack: str",
        "alarms[].state: 'OK' | 'ALARM' | 'INSUFFICIENT_DATA'",
        "alarms[].reason: str",
        "alarms[].updated_at: str | null",
        "warnings: list[str]",
    ],
    "mme.models.list/1": [
        "schema: 'mme.models.list/1'",
        "bucket: str",
        "generation: str",
        "chosen_by: 'option' | 'serving' | 'newest'",
        "served: bool",
        "serving_generation: str | null",
        "models_prefix_uri: str",
        "locations: list[object]",
        "locations[].location: str",
        "locations[].current_version: str | null",
        "locations[].pointer_problem: str | null",
        "locations[].current_object_missing: bool",
        "locations[].newest_version: str | null",
        "locations[].version_count: int",
        "locations[].total_size_bytes: int",
        "locations[].versions: list[object]",
        "locations[].versions[].version: str",
        "locations[].versions[].key: str",
        "locations[].versions[].size_bytes: int",
        "locations[].versions[].last_modified: str",
        "locations[].versions[].current: bool",
    ],
    "mme.predict/1": [
        "schema: 'mme.predict/1'",
        "endpoint_name: str",
        "algorithm: str",
        "predicts: 'price' | 'anomaly score'",
        "location: str",
        "generation: str",
        "model_version: str",
        "target_model: str",
        "predictions: list[object]",
        "predictions[].features: dict[str, str]",
        "predictions[].value: float",
        "latency_ms: object",
        "latency_ms.calls: int",
        "latency_ms.first: float",
        "latency_ms.cold: object",
        "latency_ms.cold.count: int",
        "latency_ms.cold.p50: float",
        "latency_ms.cold.p90: float",
        "latency_ms.cold.p99: float",
        "latency_ms.cold.max: float",
        "latency_ms.warm: object | null",
        "latency_ms.warm.count: int",
        "latency_ms.warm.p50: float",
        "latency_ms.warm.p90: float",
        "latency_ms.warm.p99: float",
        "latency_ms.warm.max: float",
    ],
    "mme.access.check/1": [
        "schema: 'mme.access.check/1'",
        "tenant: str",
        "mode: 'roles' | 'abac'",
        "role_arn: str",
        "endpoint_name: str",
        "patterns: list[str]",
        "probes: list[object]",
        "probes[].target_model: str",
        "probes[].source: str",
        "probes[].expected: 'allow' | 'deny'",
        "probes[].observed: 'allowed' | 'denied' | 'error'",
        "probes[].detail: str | null",
        "probes[].matches: bool",
        "mismatches: int",
        "all_match: bool",
    ],
    "mme.experiment.cache/1": [
        "schema: 'mme.experiment.cache/1'",
        "run_id: str",
        "endpoint_name: str",
        "variant_name: str",
        "source_location: str",
        "source_key: str",
        "generation: str",
        "algorithm: str",
        "copies: int",
        "feature_row: str",
        "counts: object",
        "counts.planned_calls: int",
        "counts.calls: int",
        "counts.cold_calls: int",
        "counts.warm_calls: int",
        "counts.distinct_models_invoked: int",
        "stopped_early: str | null",
        "copies_kept: bool",
        "latency_ms: object",
        "latency_ms.cold: object",
        "latency_ms.cold.count: int",
        "latency_ms.cold.min: float | null",
        "latency_ms.cold.mean: float | null",
        "latency_ms.cold.p50: float | null",
        "latency_ms.cold.p90: float | null",
        "latency_ms.cold.p99: float | null",
        "latency_ms.cold.max: float | null",
        "latency_ms.warm: object",
        "latency_ms.warm.count: int",
        "latency_ms.warm.min: float | null",
        "latency_ms.warm.mean: float | null",
        "latency_ms.warm.p50: float | null",
        "latency_ms.warm.p90: float | null",
        "latency_ms.warm.p99: float | null",
        "latency_ms.warm.max: float | null",
        "latency_ms.by_phase: dict[str, object]",
        "latency_ms.by_phase{}.count: int",
        "latency_ms.by_phase{}.min: float | null",
        "latency_ms.by_phase{}.mean: float | null",
        "latency_ms.by_phase{}.p50: float | null",
        "latency_ms.by_phase{}.p90: float | null",
        "latency_ms.by_phase{}.p99: float | null",
        "latency_ms.by_phase{}.max: float | null",
        "peak_models_loaded: float | null",
        "peak_memory_utilization_percent: float | null",
        "cache_hit_over_time: list[object]",
        "cache_hit_over_time[].timestamp: str",
        "cache_hit_over_time[].value: float",
        "metrics: dict[str, object]",
        "metrics{}.label: str",
        "metrics{}.points: list[object]",
        "metrics{}.points[].timestamp: str",
        "metrics{}.points[].value: float",
        "window: object",
        "window.started_at: str",
        "window.finished_at: str",
        "timings_seconds: dict[str, float]",
        "calls: list[object]",
        "calls[].sequence: int",
        "calls[].phase: int",
        "calls[].copy: int",
        "calls[].first_call: bool",
        "calls[].latency_ms: float",
        "calls[].started_at: str",
    ],
}
"""Every field of every document, with its JSON type. A change here is a change of the contract:
a removed, renamed or retyped field needs the next schema version (``mme.status/2``), and the
documentation of ``--output json`` follows either way."""


def _described(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return " | ".join(repr(value) for value in get_args(hint))
    if origin in (Union, types.UnionType):
        return " | ".join(_described(arg) for arg in get_args(hint))
    if origin is list:
        return f"list[{_described(get_args(hint)[0])}]"
    if origin is dict:
        return f"dict[str, {_described(get_args(hint)[1])}]"
    if is_typeddict(hint):
        return "object"
    return "null" if hint is type(None) else str(hint.__name__)


def _fields(typed_dict: Any, path: str = "") -> list[str]:
    found = []
    for key, hint in get_type_hints(typed_dict).items():
        found.append(f"{path}{key}: {_described(hint)}")
        pending = [(hint, f"{path}{key}.")]
        while pending:
            inner, where = pending.pop()
            origin = get_origin(inner)
            if is_typeddict(inner):
                found.extend(_fields(inner, where))
            elif origin in (Union, types.UnionType):
                pending.extend((arg, where) for arg in get_args(inner))
            elif origin is list:
                pending.append((get_args(inner)[0], where[:-1] + "[]."))
            elif origin is dict:
                pending.append((get_args(inner)[1], where[:-1] + "{}."))
    return found


def test_the_schemas_are_pinned() -> None:
    assert {name: _fields(schema) for name, schema in output.SCHEMAS.items()} == SCHEMAS


def test_every_schema_names_its_version_and_is_a_valid_json_schema() -> None:
    for name, schema in output.SCHEMAS.items():
        described = TypeAdapter(schema).json_schema()
        assert described["properties"]["schema"] == {"const": name, "title": "Schema", "type": "string"}
        assert set(described["required"]) == set(get_type_hints(schema))
        assert described["additionalProperties"] is False


VALID_ACCESS_CHECK: dict[str, Any] = {
    "schema": "mme.access.check/1",
    "tenant": "company_a",
    "mode": "roles",
    "role_arn": "arn:aws:iam::123456789012:role/tenant",
    "endpoint_name": "mme-endpoint",
    "patterns": ["company_a/*"],
    "probes": [
        {
            "target_model": "company_a/m.tar.gz",
            "source": "--models",
            "expected": "allow",
            "observed": "allowed",
            "detail": None,
            "matches": True,
        }
    ],
    "mismatches": 0,
    "all_match": True,
}


def _probe(**changes: Any) -> dict[str, Any]:
    return {**VALID_ACCESS_CHECK, "probes": [{**VALID_ACCESS_CHECK["probes"][0], **changes}]}


@pytest.mark.parametrize(
    "document",
    [
        {key: value for key, value in VALID_ACCESS_CHECK.items() if key != "mismatches"},
        {**VALID_ACCESS_CHECK, "extra": 1},
        {**VALID_ACCESS_CHECK, "schema": "mme.access.check/2"},
        {**VALID_ACCESS_CHECK, "mismatches": "0"},
        {**VALID_ACCESS_CHECK, "all_match": 1},
        _probe(observed="maybe"),
        {**VALID_ACCESS_CHECK, "probes": [{"target_model": "company_a/m.tar.gz"}]},
    ],
    ids=[
        "missing-key",
        "extra-key",
        "other-version",
        "string-for-int",
        "int-for-bool",
        "bad-literal",
        "nested-missing",
    ],
)
def test_the_schema_check_fails_on_any_deviation(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    json_document(
        CliResult(0, json.dumps(VALID_ACCESS_CHECK), ""), "mme.access.check/1"
    )  # the valid one passes

    with pytest.raises(ValidationError):
        json_document(CliResult(0, text, ""), "mme.access.check/1")


def test_the_schema_check_wants_exactly_one_document_on_stdout() -> None:
    text = json.dumps(VALID_ACCESS_CHECK)
    for stdout in (f"{text}\n{text}", f"Copying...\n{text}", ""):
        with pytest.raises(ValidationError):
            json_document(CliResult(0, stdout, ""), "mme.access.check/1")
