"""``mme experiment cache`` and ``mme access check``: pure logic, then the commands against moto."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.loaders  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]
from botocore.response import StreamingBody  # type: ignore[import-untyped]
from botocore.stub import ANY, Stubber  # type: ignore[import-untyped]
from pydantic import TypeAdapter

from mme_cli import cache_experiment as ce
from mme_cli import context as cli_context
from mme_cli import output
from mme_cli.commands import experiment_access as ea
from mme_cli.deployment import CliError, Deployment
from mme_shared.model_pointer import ModelPointer
from tests.cli.conftest import (
    ALGORITHM_NAMES,
    BUCKET,
    ENDPOINT,
    GENERATION,
    REGION,
    UNREADABLE_ANSWERS,
    CliResult,
    answer_body,
    create_stack,
    json_document,
    record_complete,
    record_serving,
)

Run = Callable[..., CliResult]

ACCEPT = {
    "linear-learner": "application/json",
    "xgboost": "text/csv",
    "knn": "application/json",
    "randomcutforest": "application/json",
}
"""The Accept header each algorithm's answer format needs; the stubbed runtime refuses another."""


def outputs(algorithm: str) -> dict[str, dict[str, str]]:
    return {
        "MmeStorage": {"ArtifactBucketName": BUCKET},
        "MmeEndpoint": {"EndpointName": ENDPOINT, "VariantName": "AllTraffic", "Algorithm": algorithm},
    }


_LOADER = botocore.loaders.create_loader()


@pytest.fixture(autouse=True)
def _shared_service_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every CLI run builds a new boto3 Session, which re-parses each service's JSON model (~50 ms
    a service). Sharing one loader keeps this file fast; nothing else about the sessions changes."""
    real = boto3.Session

    def session(*args: Any, **kwargs: Any) -> Any:
        core = botocore.session.get_session()
        core.register_component("data_loader", _LOADER)
        return real(*args, botocore_session=core, **kwargs)

    monkeypatch.setattr(boto3, "Session", session)  # the module attribute mme_cli.context calls


@pytest.fixture
def fast_deployed(aws: None, monkeypatch: pytest.MonkeyPatch, deployed_algorithm: str) -> dict[str, str]:
    """Like ``deployed`` without moto CloudFormation (slow): the outputs are handed over directly.

    Returns the tenant-role outputs, which a test may fill before running the CLI. The real
    discovery path is covered by the tests that use ``deployed``.
    """
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    roles: dict[str, str] = {}

    def discover(cloudformation: Any, *, prefix: str, region: str) -> Deployment:
        return Deployment(
            prefix=prefix, region=region, outputs=outputs(deployed_algorithm), tenant_roles=roles
        )

    monkeypatch.setattr(cli_context, "discover", discover)
    return roles


# --- pure logic: the plan ---------------------------------------------------------------------


def test_plan_for_six_copies_is_half_twice_then_all() -> None:
    plan = ce.invocation_plan(6)
    assert [c.copy for c in plan] == [0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 5]
    assert [c.phase for c in plan] == [1] * 3 + [2] * 3 + [3] * 6
    assert [c.first_call for c in plan] == [True] * 3 + [False] * 6 + [True] * 3
    assert [c.sequence for c in plan] == list(range(12))


@pytest.mark.parametrize("copies", [2, 3, 7, 200, 1000])
def test_plan_sizes_and_each_copy_cold_once(copies: int) -> None:
    plan = ce.invocation_plan(copies)
    half = copies // 2
    assert len(plan) == 2 * half + copies
    assert sorted(c.copy for c in plan if c.first_call) == list(range(copies))


@pytest.mark.parametrize("copies", [0, 1, 1001])
def test_plan_is_bounded(copies: int) -> None:
    with pytest.raises(ValueError, match="between 2 and 1000"):
        ce.invocation_plan(copies)


def test_copy_names_live_in_a_dedicated_folder() -> None:
    assert (
        ce.copy_target_model("20250501T120000-abc123", 7)
        == "_experiment-20250501T120000-abc123/copy-7.tar.gz"
    )
    assert ce.copy_key("pp-run1", "r1", 0) == "models/pp-run1/_experiment-r1/copy-0.tar.gz"
    with pytest.raises(ValueError, match="run id"):
        ce.copy_key("pp-run1", "../x", 0)
    with pytest.raises(ValueError, match="preprocessor generation"):
        ce.copy_key("../x", "r1", 0)
    assert ce.make_run_id(datetime(2025, 5, 1, 12, 0, tzinfo=UTC), "ab12cd") == "20250501T120000-ab12cd"


# --- pure logic: statistics and report ----------------------------------------------------------


def test_percentile_interpolates_like_numpy() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert ce.percentile(values, 0) == 10.0
    assert ce.percentile(values, 50) == 25.0
    assert ce.percentile(values, 90) == pytest.approx(37.0)
    assert ce.percentile(values, 100) == 40.0
    assert ce.percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError, match="no values"):
        ce.percentile([], 50)


def test_latency_stats_of_nothing_is_none() -> None:
    assert ce.latency_stats([])["p50"] is None
    assert ce.latency_stats([1.0, 3.0])["mean"] == 2.0


def _series(values: dict[str, list[float]], start: datetime) -> dict[str, ce.MetricSeries]:
    return {
        key: ce.MetricSeries(
            label=key, points=tuple((start + timedelta(minutes=i), v) for i, v in enumerate(vals))
        )
        for key, vals in values.items()
    }


def test_report_separates_cold_and_warm_and_reports_peaks() -> None:
    start = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
    plan = ce.invocation_plan(4)  # 0 1 | 0 1 | 0 1 2 3
    latencies = [1000.0, 1200.0, 40.0, 50.0, 45.0, 55.0, 1100.0, 1300.0]
    results = [
        ce.CallResult(call=c, latency_ms=ms, started_at=start + timedelta(seconds=c.sequence))
        for c, ms in zip(plan, latencies, strict=True)
    ]
    series = _series(
        {"loaded_avg": [1, 2, 3], "loaded_max": [2, 4, 3], "memory": [10, 20, 30], "cache_hit": [0, 1, 0.5]},
        start,
    )
    report = ce.build_report(
        run_id="r1",
        endpoint_name="ep",
        variant_name="AllTraffic",
        source_location="Chicago_IL",
        source_key="models/pp-run1/Chicago_IL/x.tar.gz",
        copies=4,
        planned_calls=len(plan),
        results=results,
        series=series,
        started_at=start,
        finished_at=start + timedelta(minutes=2),
        timings={"copy": 1.23456, "invoke": 2.0},
        stopped_early=None,
        kept_copies=False,
        generation="pp-run1",
        algorithm="xgboost",
    )
    json.dumps(report)  # serialisable
    assert report["algorithm"] == "xgboost"
    assert report["counts"] == {
        "planned_calls": 8,
        "calls": 8,
        "cold_calls": 4,
        "warm_calls": 4,
        "distinct_models_invoked": 4,
    }
    assert report["latency_ms"]["cold"]["p50"] == 1150.0
    assert report["latency_ms"]["warm"]["max"] == 55.0
    assert report["latency_ms"]["by_phase"]["2"]["count"] == 2
    assert report["peak_models_loaded"] == 4
    assert report["peak_memory_utilization_percent"] == 30
    assert report["cache_hit_over_time"] == [
        {"timestamp": "2025-05-01T12:00:00Z", "value": 0},
        {"timestamp": "2025-05-01T12:01:00Z", "value": 1},
        {"timestamp": "2025-05-01T12:02:00Z", "value": 0.5},
    ]
    assert report["timings_seconds"]["copy"] == 1.235
    assert report["calls"][0] == {
        "sequence": 0,
        "phase": 1,
        "copy": 0,
        "first_call": True,
        "latency_ms": 1000.0,
        "started_at": "2025-05-01T12:00:00.000+00:00",
    }


def test_metric_window_covers_whole_periods() -> None:
    start, end = ce.metric_window(
        datetime(2025, 5, 1, 12, 0, 30, tzinfo=UTC), datetime(2025, 5, 1, 12, 3, 10, tzinfo=UTC)
    )
    assert (start, end) == (datetime(2025, 5, 1, 11, 59, tzinfo=UTC), datetime(2025, 5, 1, 12, 5, tzinfo=UTC))


class FakeS3:
    def __init__(self, fail: frozenset[str] = frozenset()) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    def delete_objects(self, *, Bucket: str, Delete: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        keys = [o["Key"] for o in Delete["Objects"]]
        self.batches.append(keys)
        return {
            "Deleted": [{"Key": k} for k in keys if k not in self.fail],
            "Errors": [{"Key": k, "Code": "AccessDenied"} for k in keys if k in self.fail],
        }


def test_delete_keys_batches_by_1000_and_reports_failures() -> None:
    keys = [ce.copy_key("pp-run1", "r1", i) for i in range(2500)]
    s3 = FakeS3()
    assert ea.delete_keys(s3, BUCKET, keys) == 2500
    assert [len(b) for b in s3.batches] == [1000, 1000, 500]
    with pytest.raises(
        CliError, match=r"aws s3 rm --recursive s3://mme-artifacts-test/models/pp-run1/_experiment-r1/"
    ):
        ea.delete_keys(FakeS3(fail=frozenset({keys[3]})), BUCKET, keys[:10])


# --- pure logic: expected access decisions ------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patterns", "expected"),
    [
        ("company_a/m.tar.gz", ["company_a/*"], "allow"),
        ("company_ab/m.tar.gz", ["company_a/*"], "deny"),  # the slash matters
        ("company_a/deep/er/m.tar.gz", ["company_a/*"], "allow"),  # '*' crosses '/' as in IAM
        ("company_a/../company_b/m.tar.gz", ["company_a/*"], "deny"),  # DenyPathTraversal
        ("company_a/m..tar.gz", ["company_a/*"], "deny"),
        ("", ["*"], "deny"),  # DenyWithoutTargetModel
        (None, ["*"], "deny"),
        ("Company_A/m.tar.gz", ["company_a/*"], "deny"),  # case-sensitive
        ("common/x.tar.gz", ["company_a/*", "common/*"], "allow"),
        ("v1/m.tar.gz", ["v?/*"], "allow"),
        ("v10/m.tar.gz", ["v?/*"], "deny"),
        ("a+b/m", ["a+b/*"], "allow"),  # regex characters are literal
        ("axb/m", ["a.b/*"], "deny"),
    ],
)
def test_expected_decision(target: str | None, patterns: list[str], expected: str) -> None:
    assert ea.expected_decision(target, patterns) == expected


def test_probe_matches_its_pattern() -> None:
    for pattern in ("company_a/*", "common/*.tar.gz", "v?/*"):
        assert ea.iam_like(ea.probe_for(pattern), pattern)


def test_observed_matches_expected() -> None:
    assert ea.matches("allow", "allowed")
    assert ea.matches("allow", "error")  # IAM let it through; the model was missing
    assert ea.matches("deny", "denied")
    assert not ea.matches("deny", "allowed")
    assert not ea.matches("allow", "denied")


# --- chart from seeded CloudWatch data (moto) ----------------------------------------------------


def _seed_metrics(now: datetime) -> None:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    dimensions = [{"Name": "EndpointName", "Value": ENDPOINT}, {"Name": "VariantName", "Value": "AllTraffic"}]
    for minute, (loaded, memory, hit) in enumerate([(10, 20.0, 0.0), (60, 50.0, 1.0), (121, 79.0, 0.4)]):
        at = now - timedelta(minutes=2 - minute)
        cloudwatch.put_metric_data(
            Namespace=ce.ENDPOINTS_NAMESPACE,
            MetricData=[
                {
                    "MetricName": "LoadedModelCount",
                    "Dimensions": dimensions,
                    "Timestamp": at,
                    "Value": loaded,
                },
                {
                    "MetricName": "MemoryUtilization",
                    "Dimensions": dimensions,
                    "Timestamp": at,
                    "Value": memory,
                },
            ],
        )
        cloudwatch.put_metric_data(
            Namespace=ce.SAGEMAKER_NAMESPACE,
            MetricData=[
                {"MetricName": "ModelCacheHit", "Dimensions": dimensions, "Timestamp": at, "Value": hit}
            ],
        )


def test_chart_from_seeded_metrics_has_three_series(aws: None, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(second=30, microsecond=0)
    _seed_metrics(now)
    start, end = ce.metric_window(now - timedelta(minutes=3), now)
    series = ea.fetch_metrics(
        boto3.client("cloudwatch", region_name=REGION),
        endpoint_name=ENDPOINT,
        variant_name="AllTraffic",
        start=start,
        end=end,
    )
    assert [v for _, v in series["loaded_avg"].points] == [10, 60, 121]
    assert series["loaded_max"].peak == 121
    assert [v for _, v in series["cache_hit"].points] == [0.0, 1.0, 0.4]
    figure = ce.build_chart(series, title="test")
    left, right = figure.axes
    assert [line.get_label() for line in left.get_lines()] == ["LoadedModelCount", "MemoryUtilization (%)"]
    assert [line.get_label() for line in right.get_lines()] == ["ModelCacheHit"]
    assert list(right.get_lines()[0].get_ydata()) == [0.0, 1.0, 0.4]  # type: ignore[arg-type]
    assert right.get_ylim()[0] == 0
    assert right.get_ylim()[1] <= 1.05
    path = ce.save_chart(figure, tmp_path / "chart.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the experiment command -----------------------------------------------------------------------


class FakeClock:
    """Each reading advances 50 ms (a call therefore 'takes' 50 ms); optionally breaks at a reading."""

    def __init__(self, step: float = 0.05, interrupt_at: int | None = None) -> None:
        self.now = 1000.0
        self.step = step
        self.readings = 0
        self.interrupt_at = interrupt_at

    def __call__(self) -> float:
        self.readings += 1
        if self.interrupt_at is not None and self.readings == self.interrupt_at:
            raise KeyboardInterrupt
        self.now += self.step
        return self.now


def _put_pointer(location: str = "Chicago_IL") -> ModelPointer:
    """The location's current model in the served generation (which this also records)."""
    record_complete(GENERATION)
    record_serving(GENERATION, ENDPOINT)
    pointer = ModelPointer(
        preprocessor_generation=GENERATION,
        location=location,
        version="v1",
        size=4,
        training_job_name="ll-job",
        promoted_at=datetime(2025, 5, 1, tzinfo=UTC),
    )
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=BUCKET, Key=pointer.key, Body=b"tgz!")
    s3.put_object(Bucket=BUCKET, Key=pointer.pointer_key, Body=pointer.to_json().encode())
    return pointer


def _experiment_keys() -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(
        Bucket=BUCKET, Prefix=f"models/{GENERATION}/_experiment-"
    )
    return [o["Key"] for o in listing.get("Contents", [])]


class Runtime:
    """A real sagemaker-runtime client under botocore's Stubber, standing in for the endpoint: each
    queued call must carry the deployed algorithm's Accept header and is answered in its format."""

    def __init__(self, algorithm: str) -> None:
        self.algorithm = algorithm
        self.client = boto3.client("sagemaker-runtime", region_name=REGION)
        self.stubber = Stubber(self.client)
        self.stubber.activate()

    def answer(self, calls: int, body: bytes | None = None) -> None:
        payload, content_type = answer_body(self.algorithm, [1.25])
        for _ in range(calls):
            data = payload if body is None else body
            self.stubber.add_response(
                "invoke_endpoint",
                {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentType": content_type},
                {
                    "EndpointName": ENDPOINT,
                    "TargetModel": ANY,
                    "ContentType": "text/csv",
                    "Accept": ACCEPT[self.algorithm],
                    "Body": ce.FEATURE_ROW.encode(),
                },
            )


@pytest.fixture
def runtime(aws: None, monkeypatch: pytest.MonkeyPatch, deployed_algorithm: str) -> Runtime:
    """The CLI's sagemaker-runtime client; queue answers with ``runtime.answer(calls)``."""
    stubbed = Runtime(deployed_algorithm)
    original = cli_context.CliContext.client

    def client(self: Any, service: str) -> Any:
        return stubbed.client if service == "sagemaker-runtime" else original(self, service)

    monkeypatch.setattr(cli_context.CliContext, "client", client)
    return stubbed


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ea, "monotonic", fake)
    monkeypatch.setattr(ea, "sleep", lambda seconds: pytest.fail("no real sleeping"))
    return fake


@pytest.mark.parametrize("deployed_algorithm", ALGORITHM_NAMES)
def test_experiment_writes_chart_and_report_and_deletes_copies(
    deployed: None,
    run_cli: Run,
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    runtime: Runtime,
    deployed_algorithm: str,
) -> None:
    """Real discovery: the algorithm is the endpoint stack's Algorithm output (the config's is the
    default linear learner); every call asks with its Accept header and reads its answer."""
    pointer = _put_pointer()
    # The experiment's wall clock is fixed mid-minute, so the seeded points (at -1, 0 and +1 minute)
    # fall in its metric window whenever the test runs, even across a minute boundary.
    started = datetime.now(UTC).replace(second=30, microsecond=0)
    monkeypatch.setattr(ea, "wall_clock", lambda: started)
    _seed_metrics(started + timedelta(minutes=1))
    invoked: list[str] = []
    runtime.answer(12)
    real_invoke = runtime.client.invoke_endpoint

    def spy(**kwargs: Any) -> Any:
        invoked.append(kwargs["TargetModel"])
        return real_invoke(**kwargs)

    runtime.client.invoke_endpoint = spy
    copied: list[str] = []
    real_client = cli_context.CliContext.client

    def client(self: Any, service: str) -> Any:
        made = real_client(self, service)
        if service == "s3":
            original = made.copy_object

            def copy_object(**kwargs: Any) -> Any:
                copied.append(kwargs["Key"])
                assert kwargs["CopySource"] == {"Bucket": BUCKET, "Key": pointer.key}
                return original(**kwargs)

            made.copy_object = copy_object
        return made

    monkeypatch.setattr(cli_context.CliContext, "client", client)
    result = run_cli(
        "experiment", "cache", "--source-location", "Chicago_IL", "--copies", "6",
        "--out", str(tmp_path), "--metrics-delay", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert len(copied) == 6
    assert len(set(copied)) == 6
    run_folder = copied[0].rsplit("/", 1)[0] + "/"
    assert run_folder.startswith(f"models/{GENERATION}/_experiment-")  # the served generation's prefix
    assert [t.rsplit("/", 1)[1] for t in invoked] == [
        f"copy-{i}.tar.gz" for i in [0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 4, 5]
    ]
    assert _experiment_keys() == []  # cleaned up
    text = (tmp_path / "cache-experiment.json").read_text()
    report = TypeAdapter(output.CacheExperimentDocument).validate_json(text)  # strictly its schema
    assert report["schema"] == "mme.experiment.cache/1"
    assert report["counts"]["calls"] == 12
    assert report["counts"]["cold_calls"] == 6
    assert report["latency_ms"]["cold"]["p50"] == pytest.approx(50.0)
    assert report["peak_models_loaded"] == 121
    assert [p["value"] for p in report["cache_hit_over_time"]] == [0.0, 1.0, 0.4]
    assert report["stopped_early"] is None
    assert report["source_key"] == pointer.key
    assert report["generation"] == GENERATION
    assert report["algorithm"] == deployed_algorithm
    runtime.stubber.assert_no_pending_responses()
    assert all(t.startswith("_experiment-") for t in invoked)  # relative to models/<generation>/
    assert (tmp_path / "cache-experiment.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Peak models loaded: 121" in result.stdout


def test_experiment_keep_and_max_minutes(
    fast_deployed: dict[str, str],
    run_cli: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runtime: Runtime,
) -> None:
    _put_pointer()
    runtime.answer(20)
    monkeypatch.setattr(ea, "monotonic", FakeClock(step=2.0))  # 6 s limit: a few calls only
    result = run_cli(
        "experiment", "cache", "-l", "Chicago_IL", "--copies", "10", "--out", str(tmp_path),
        "--max-minutes", "0.1", "--metrics-delay", "0", "--keep",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "cache-experiment.json").read_text())
    assert report["stopped_early"].startswith("--max-minutes 0.1 exceeded")
    assert 0 < report["counts"]["calls"] < report["counts"]["planned_calls"]
    assert report["peak_models_loaded"] is None  # no metrics in this account
    assert "Stopped early" in result.stdout
    assert "--keep" in result.stdout
    keys = _experiment_keys()
    assert len(keys) == 10
    assert all(k.endswith(".tar.gz") for k in keys)


@pytest.mark.parametrize("interrupt_at", [2, 8], ids=["after-copying", "while-invoking"])
def test_experiment_cleans_up_on_ctrl_c(
    fast_deployed: dict[str, str],
    run_cli: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    interrupt_at: int,
    runtime: Runtime,
) -> None:
    _put_pointer()
    runtime.answer(8)
    monkeypatch.setattr(ea, "monotonic", FakeClock(interrupt_at=interrupt_at))
    result = run_cli("experiment", "cache", "-l", "Chicago_IL", "--copies", "4", "--out", str(tmp_path))
    assert result.exit_code == 130  # typer: interrupted
    assert "Deleting the 4 experiment copies" in result.stdout
    assert _experiment_keys() == []
    assert not (tmp_path / "cache-experiment.json").exists()


def test_experiment_cleans_up_on_aws_error(
    fast_deployed: dict[str, str],
    run_cli: Run,
    tmp_path: Path,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    runtime: Runtime,
) -> None:
    _put_pointer()
    runtime.answer(8)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetMetricData")

    monkeypatch.setattr(ea, "fetch_metrics", refuse)
    result = run_cli(
        "experiment",
        "cache",
        "-l",
        "Chicago_IL",
        "--copies",
        "4",
        "--out",
        str(tmp_path),
        "--metrics-delay",
        "0",
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Your credentials are not allowed to call GetMetricData")
    assert _experiment_keys() == []


@pytest.mark.parametrize("deployed_algorithm", ALGORITHM_NAMES)
def test_experiment_stops_at_an_unreadable_answer_and_cleans_up(
    fast_deployed: dict[str, str],
    run_cli: Run,
    tmp_path: Path,
    clock: FakeClock,
    runtime: Runtime,
    deployed_algorithm: str,
) -> None:
    _put_pointer()
    body, shape = UNREADABLE_ANSWERS[deployed_algorithm]
    runtime.answer(1, body=body)

    result = run_cli("experiment", "cache", "-l", "Chicago_IL", "--copies", "4", "--out", str(tmp_path))

    assert result.exit_code == 1
    sentence = re.escape(f" answered in an unexpected format (expected {shape}).")
    assert re.fullmatch(f"Error: Model _experiment-[^/]+/copy-0\\.tar\\.gz{sentence}\n", result.stderr)
    assert "Deleting the 4 experiment copies" in result.stdout
    assert _experiment_keys() == []
    assert not (tmp_path / "cache-experiment.json").exists()


def test_experiment_failures_are_clear(
    fast_deployed: dict[str, str], run_cli: Run, tmp_path: Path, clock: FakeClock
) -> None:
    unknown = run_cli("experiment", "cache", "-l", "Atlantis_XX", "--out", str(tmp_path))
    assert unknown.exit_code == 1
    assert "Unknown location 'Atlantis_XX'" in unknown.stderr
    nothing = run_cli("experiment", "cache", "-l", "Chicago_IL", "--out", str(tmp_path))
    assert nothing.exit_code == 1
    assert nothing.stderr.startswith("Error: No preprocessor generation is served or complete yet")
    record_complete(GENERATION)
    record_serving(GENERATION, ENDPOINT)
    missing = run_cli("experiment", "cache", "-l", "Chicago_IL", "--out", str(tmp_path))
    assert missing.exit_code == 1
    assert " ".join(missing.stderr.split()) == (
        f"Error: Chicago_IL has no current model in the served generation {GENERATION} (no "
        f"model-pointers/{GENERATION}/Chicago_IL.json): run `mme train` first."
    )
    bounded = run_cli("experiment", "cache", "-l", "Chicago_IL", "--copies", "1001")
    assert bounded.exit_code == 2
    assert _experiment_keys() == []


def test_experiment_json_is_the_report_alone_on_stdout(
    fast_deployed: dict[str, str],
    run_cli: Run,
    tmp_path: Path,
    clock: FakeClock,
    runtime: Runtime,
) -> None:
    _put_pointer()
    runtime.answer(8)

    result = run_cli(
        "experiment", "cache", "-l", "Chicago_IL", "--copies", "4", "--out", str(tmp_path),
        "--metrics-delay", "0", "--output", "json",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    document = json_document(result, "mme.experiment.cache/1")
    assert document == json.loads((tmp_path / "cache-experiment.json").read_text())
    assert (document["copies"], document["counts"]["calls"], document["generation"]) == (4, 8, GENERATION)
    assert [call["copy"] for call in document["calls"]] == [0, 1, 0, 1, 0, 1, 2, 3]
    assert document["latency_ms"]["cold"]["count"] == 4
    assert set(document["latency_ms"]["by_phase"]) == {"1", "2", "3"}
    assert set(document["metrics"]) == {"loaded_avg", "loaded_max", "memory", "cache_hit"}
    for text in ("Run ", "Deleting the 4 experiment copies", f"Chart: {tmp_path / 'cache-experiment.png'}"):
        assert text in result.stderr  # progress and messages: stderr only
    assert _experiment_keys() == []


# --- the access check ---------------------------------------------------------------------------

TENANTS = {
    "mode": "roles",
    "shared_model_patterns": ["common/*"],
    "abac_trusted_principals": ["123456789012"],
    "tenants": {
        "company_a": {
            "model_patterns": ["company_a/*", "Chicago_IL/*"],
            "trusted_principals": ["123456789012"],
            "max_session_duration_hours": 1,
        },
        "company_ab": {
            "model_patterns": ["company_ab/*"],
            "trusted_principals": ["123456789012"],
            "max_session_duration_hours": 1,
        },
    },
}


def _config(tmp_path: Path, mode: str = "roles") -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"tenants": {**TENANTS, "mode": mode}}))
    return str(path)


def _body() -> StreamingBody:
    payload = b'{"predictions": [{"score": 1.0}]}'
    return StreamingBody(io.BytesIO(payload), len(payload))


def _stubbed_runtime(
    monkeypatch: pytest.MonkeyPatch, outcomes: list[tuple[str, str]], seen: list[dict[str, Any]]
) -> Stubber:
    """A runtime client answering in order: 'ok', 'denied' or another error code."""
    client = boto3.client("sagemaker-runtime", region_name=REGION)
    stubber = Stubber(client)
    for target, outcome in outcomes:
        expected = {
            "EndpointName": ENDPOINT,
            "TargetModel": target,
            "ContentType": "text/csv",
            "Body": ce.FEATURE_ROW.encode(),
        }
        if outcome == "ok":
            stubber.add_response("invoke_endpoint", {"Body": _body()}, expected)
        else:
            code = "AccessDeniedException" if outcome == "denied" else outcome
            stubber.add_client_error("invoke_endpoint", code, "refused", expected_params=expected)
    stubber.activate()

    def build(ctx: Any, credentials: dict[str, Any]) -> Any:
        seen.append(credentials)
        return client

    monkeypatch.setattr(ea, "runtime_client", build)
    return stubber


def _tenant_stack(outputs: dict[str, str]) -> None:
    create_stack("MmeTenantAccess", outputs)


ROLE_A = "arn:aws:iam::123456789012:role/tenant-company-a"
ABAC_ROLE = "arn:aws:iam::123456789012:role/tenant-abac"


def test_access_check_matches_patterns(
    deployed: None, run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tenant_stack({"TenantRoleCompanyA": ROLE_A, "TenantRoleCompanyAb": "arn:aws:iam::123456789012:role/b"})
    _put_pointer("NewYork_NY")
    chicago = _put_pointer("Chicago_IL")
    seen: list[dict[str, Any]] = []
    stubber = _stubbed_runtime(
        monkeypatch,
        [
            ("NewYork_NY/NewYork_NY-v1.tar.gz", "denied"),
            (chicago.target_model, "ok"),
            ("company_a/access-check-probe", "ValidationError"),  # allowed by IAM, no such model
            ("Chicago_IL/access-check-probe", "ValidationError"),
            ("company_a/../access-check-probe.tar.gz", "denied"),
            ("common/access-check-probe", "ValidationError"),
        ],
        seen,
    )
    result = run_cli("--config", _config(tmp_path), "access", "check", "--tenant", "company_a")
    assert result.exit_code == 0, result.stdout + result.stderr
    stubber.assert_no_pending_responses()
    assert seen
    assert seen[0]["AccessKeyId"] != "testing"
    assert "All 6 decisions match" in result.stdout
    assert "MISMATCH" not in result.stdout


def test_access_check_exits_1_on_a_mismatch(
    fast_deployed: dict[str, str], run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_deployed["TenantRoleCompanyA"] = ROLE_A
    seen: list[dict[str, Any]] = []
    _stubbed_runtime(
        monkeypatch,
        [("company_a/m.tar.gz", "ok"), ("company_ab/m.tar.gz", "ok"), ("common/x", "denied")],
        seen,
    )
    result = run_cli(
        "--config", _config(tmp_path), "access", "check", "-t", "company_a",
        "--models", "company_a/m.tar.gz,company_ab/m.tar.gz,common/x",
    )  # fmt: skip
    assert result.exit_code == 1
    out = " ".join(result.stdout.split())
    assert out.count("MISMATCH") == 2
    assert "2 of 3 decisions differ" in out


def test_access_check_abac_assumes_with_the_session_tag(
    fast_deployed: dict[str, str], run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_deployed["TenantAbacRoleArn"] = ABAC_ROLE
    requests: list[dict[str, Any]] = []
    real_assume = ea.assume_tenant_role

    def spy(ctx: Any, tenant: str, role_arn: str) -> dict[str, Any]:
        sts = ctx.client("sts")
        original = sts.assume_role

        def assume_role(**kwargs: Any) -> Any:
            requests.append(kwargs)
            return original(**kwargs)

        sts.assume_role = assume_role
        monkeypatch.setattr(ctx, "client", lambda service: sts)
        return real_assume(ctx, tenant, role_arn)

    monkeypatch.setattr(ea, "assume_tenant_role", spy)
    _stubbed_runtime(monkeypatch, [("company_ab/x", "ok"), ("company_a/x", "denied")], [])
    result = run_cli(
        "--config", _config(tmp_path, "abac"), "access", "check", "--tenant", "company_ab",
        "--models", "company_ab/x,company_a/x",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    assert requests[0]["RoleArn"] == ABAC_ROLE
    assert requests[0]["Tags"] == [{"Key": "tenant", "Value": "company_ab"}]


def test_access_check_unknown_tenant_and_missing_role(
    fast_deployed: dict[str, str], run_cli: Run, tmp_path: Path
) -> None:
    config = _config(tmp_path)
    unknown = run_cli("--config", config, "access", "check", "--tenant", "company_c")
    assert unknown.exit_code == 1
    assert "Unknown tenant 'company_c': the configured tenants are company_a, company_ab." in unknown.stderr
    no_stack = run_cli("--config", config, "access", "check", "--tenant", "company_a")
    assert no_stack.exit_code == 1
    assert "No stack output TenantRoleCompanyA" in no_stack.stderr


def test_access_check_json_follows_its_schema_and_still_exits_1_on_a_mismatch(
    fast_deployed: dict[str, str], run_cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_deployed["TenantRoleCompanyA"] = ROLE_A
    _stubbed_runtime(
        monkeypatch,
        [("company_a/m.tar.gz", "ok"), ("company_ab/m.tar.gz", "ok"), ("common/x", "ValidationError")],
        [],
    )

    result = run_cli(
        "--config", _config(tmp_path), "access", "check", "-t", "company_a", "-o", "json",
        "--models", "company_a/m.tar.gz,company_ab/m.tar.gz,common/x",
    )  # fmt: skip

    assert result.exit_code == 1
    document = json_document(result, "mme.access.check/1")
    assert result.stderr == ""
    assert {key: value for key, value in document.items() if key != "probes"} == {
        "schema": "mme.access.check/1",
        "tenant": "company_a",
        "mode": "roles",
        "role_arn": ROLE_A,
        "endpoint_name": ENDPOINT,
        "patterns": ["company_a/*", "Chicago_IL/*", "common/*"],
        "mismatches": 1,
        "all_match": False,
    }
    assert document["probes"] == [
        {
            "target_model": "company_a/m.tar.gz",
            "source": "--models",
            "expected": "allow",
            "observed": "allowed",
            "detail": None,
            "matches": True,
        },
        {
            "target_model": "company_ab/m.tar.gz",
            "source": "--models",
            "expected": "deny",
            "observed": "allowed",
            "detail": None,
            "matches": False,
        },
        {
            "target_model": "common/x",
            "source": "--models",
            "expected": "allow",
            "observed": "error",
            "detail": "ValidationError: refused",
            "matches": True,
        },
    ]
