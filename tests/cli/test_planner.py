"""``mme plan`` and its arithmetic (``mme_cli.planner``): hand-computed small cases, overrides, bad
input, the command's output for 10, 1,000 and 10,000 locations, and that it calls no AWS."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import boto3  # type: ignore[import-untyped]
import pytest

from mme_cli import instance_memory, planner
from mme_cli.commands.plan import duration
from project_config import instance_types, load_default_config
from project_config.model import MULTI_MODEL_CPU_FAMILIES
from tests.cli.conftest import CliResult

RunCli = Callable[..., CliResult]

M4_USABLE_MIB = 0.79 * 16 * 1024  # 12,943.36 MiB: the walkthrough's 79% of an ml.m4.xlarge
PER_MODEL_MIB = M4_USABLE_MIB / 121  # 106.97 MiB


def workload(**changes: object) -> planner.Workload:
    base = planner.Workload(
        locations=10,
        refit=False,
        parallel_training_jobs=4,
        warm_pool_keep_alive_seconds=300,
        houses_per_location=1000,
        validation_fraction=0.2,
        test_fraction=0.1,
        training_instance_type="ml.c4.xlarge",
        preprocessor_instance_type="ml.c4.xlarge",
        transform_instance_type="ml.c4.xlarge",
        endpoint_instance_type="ml.m4.xlarge",
        autoscaling_max_capacity=4,
        execution_timeout_minutes=360,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def training_map(locations: int, parallel: int, keep_alive: int) -> planner.TrainingMap:
    return planner.training_map(
        locations,
        parallel,
        keep_alive,
        train_seconds=90,
        gap_seconds=2,
        cold_start_seconds=240,
        warm_start_seconds=30,
        billed_start_seconds=60,
    )


# --------------------------------------------------------------------------------------------------
# The training Map: waves, warm vs cold, billed time


def test_waves_with_warm_pool_hits() -> None:
    mapped = training_map(10, 4, keep_alive=300)
    assert (mapped.slots, mapped.waves, mapped.warm_pool_hits) == (4, 3, True)
    assert (mapped.cold_jobs, mapped.warm_jobs) == (4, 6)
    # first wave cold: 240 + 90 + 2; two more waves warm: 2 * (30 + 90 + 2)
    assert mapped.wall_seconds == 332 + 244
    # idle: each of the 4 pools kept 300 s after its last job, plus 6 gaps of 2 s between jobs
    assert mapped.warm_pool_idle_seconds == 4 * 300 + 6 * 2
    # 4 cold jobs billed 60 + 90, 6 warm jobs 30 + 90, plus the idle time
    assert mapped.billed_seconds == 4 * 150 + 6 * 120 + 1212


def test_without_a_warm_pool_every_job_starts_cold() -> None:
    mapped = training_map(10, 4, keep_alive=0)
    assert (mapped.warm_pool_hits, mapped.cold_jobs, mapped.warm_jobs) == (False, 10, 0)
    assert mapped.wall_seconds == 332 + 2 * (240 + 90 + 2)
    assert mapped.billed_seconds == 10 * 150
    assert mapped.warm_pool_idle_seconds == 0


def test_a_keep_alive_shorter_than_the_gap_misses_and_is_still_billed() -> None:
    mapped = training_map(10, 4, keep_alive=1)  # the gap between two jobs is 2 s
    assert (mapped.warm_pool_hits, mapped.cold_jobs) == (False, 10)
    assert mapped.wall_seconds == 332 + 2 * 332
    assert mapped.warm_pool_idle_seconds == 10 * 1  # every job leaves a pool that expires unused
    assert mapped.billed_seconds == 10 * 150 + 10


def test_fewer_locations_than_slots_is_one_wave() -> None:
    mapped = training_map(3, 4, keep_alive=300)
    assert (mapped.slots, mapped.waves, mapped.cold_jobs, mapped.warm_jobs) == (3, 1, 3, 0)
    assert mapped.wall_seconds == 332
    assert mapped.billed_seconds == 3 * 150 + 3 * 300


def test_the_whole_run_of_ten_locations_by_hand() -> None:
    result = planner.plan(workload())
    assert result.rows_per_location == (700, 200, 100)
    assert result.assumptions.train_seconds == 60 + 30 * 900 / 1000  # 87 s
    assert result.jobs == {
        "preprocessor training job": 0,
        "batch transform jobs": 2,
        "linear learner training jobs": 10,
    }
    assert (
        result.api_calls["lambda:Invoke"] == 1 + 10 + 10 + 10 + 1
    )  # plan, generate, check, promote, summary
    assert result.api_calls["sagemaker:CreateTrainingJob"] == 10
    assert result.api_calls["sagemaker:CreateModel"] == 1
    transform = 300 + 10 * 0.1 + 7000 / 42_500  # the train split is the longer of the two
    training = (240 + 87 + 2) + 2 * (30 + 87 + 2)
    assert result.wall_seconds == pytest.approx(1 + 2 + 1 + transform + training + 1)
    transforms_billed = (60 + 10 * 0.1 + 7000 / 42_500) + (60 + 10 * 0.1 + 2000 / 42_500)
    training_billed = 4 * (60 + 87) + 6 * (30 + 87) + (4 * 300 + 6 * 2)
    assert result.instance_hours_by_type == {
        "ml.c4.xlarge": pytest.approx((transforms_billed + training_billed) / 3600)
    }
    assert result.peak_training_instances == result.peak_warm_pool_instances == 4
    assert not result.exceeds_execution_timeout


def test_a_refit_adds_one_training_job_and_its_lambda() -> None:
    plain, refit = planner.plan(workload()), planner.plan(workload(refit=True))
    assert refit.jobs["preprocessor training job"] == 1
    assert (
        refit.api_calls["sagemaker:CreateTrainingJob"] == plain.api_calls["sagemaker:CreateTrainingJob"] + 1
    )
    assert refit.api_calls["lambda:Invoke"] == plain.api_calls["lambda:Invoke"] + 1
    fit = 30 + 10 * 700 / 50_000
    assert refit.assumptions.preprocessor_fit_seconds == pytest.approx(fit)
    assert refit.wall_seconds == pytest.approx(plain.wall_seconds + 240 + fit + 1)
    assert refit.instance_hours_by_kind["preprocessor training job"] == pytest.approx((60 + fit) / 3600)


def test_a_long_run_is_flagged_against_the_execution_timeout() -> None:
    result = planner.plan(workload(locations=1000))
    assert result.training_map.waves == 250
    assert result.exceeds_execution_timeout  # 250 waves of about 2 minutes > 6 hours


# --------------------------------------------------------------------------------------------------
# Models per endpoint instance


def test_the_calibration_reproduces_the_walkthrough() -> None:
    result = planner.plan(workload())
    assert result.loaded_model_mib == pytest.approx(PER_MODEL_MIB)
    assert result.endpoint.models_per_instance == 121  # not 120: the floor absorbs float error
    fits = {fit.instance_type: fit.models_per_instance for fit in result.alternatives}
    assert fits["ml.r5.xlarge"] == 242  # twice the memory
    assert fits["ml.c4.xlarge"] == math.floor(7.5 * 1024 * 0.79 / PER_MODEL_MIB) == 56


@pytest.mark.parametrize(("locations", "instances"), [(10, 1), (121, 1), (122, 2), (1000, 9), (10_000, 83)])
def test_instances_that_keep_every_model_loaded(locations: int, instances: int) -> None:
    assert planner.plan(workload(locations=locations)).endpoint.instances_needed == instances


def test_a_baseline_and_a_bigger_model_change_the_fit() -> None:
    baseline = planner.plan(workload(), planner.Assumptions(endpoint_baseline_mib=1024))
    per_model = (M4_USABLE_MIB - 1024) / 121  # 98.51 MiB
    assert baseline.loaded_model_mib == pytest.approx(per_model)
    assert baseline.endpoint.models_per_instance == 121  # still the calibration point
    r5 = next(fit for fit in baseline.alternatives if fit.instance_type == "ml.r5.xlarge")
    assert r5.models_per_instance == math.floor((0.79 * 32 * 1024 - 1024) / per_model) == 252
    bigger = planner.plan(workload(), planner.Assumptions(model_mb=10.01))  # 10 MB more than the default
    assert bigger.loaded_model_mib == pytest.approx(PER_MODEL_MIB + 10_000_000 / 2**20)
    assert bigger.endpoint.models_per_instance == 111


def test_the_memory_table_covers_every_allowed_endpoint_type() -> None:
    allowed = instance_types.allowed_types(instance_types.ENDPOINT, MULTI_MODEL_CPU_FAMILIES)
    assert instance_memory.table_types() == allowed
    assert instance_memory.memory_gib(planner.CALIBRATION_INSTANCE_TYPE) == 16
    assert instance_memory.memory_gib("ml.g5.xlarge") is None


def test_alternatives_are_one_type_per_allowed_family() -> None:
    alternatives = planner.alternative_types("ml.m4.xlarge")
    families = {instance_types.instance_family(t) for t in alternatives}
    assert families == set(MULTI_MODEL_CPU_FAMILIES) - instance_types.INSTANCE_STORAGE_FAMILIES - {"m4"}
    assert "ml.m4.xlarge" not in alternatives
    assert "ml.r5.xlarge" in alternatives


def test_the_generation_concurrency_is_the_pipelines() -> None:
    from mme_constructs.training_definition import GENERATION_CONCURRENCY

    assert planner.GENERATION_CONCURRENCY == GENERATION_CONCURRENCY


# --------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("changes", "assumptions", "problem"),
    [
        ({"locations": 0}, {}, "--locations must be at least 1, got 0"),
        ({"parallel_training_jobs": 0}, {}, "--parallel must be at least 1"),
        ({"warm_pool_keep_alive_seconds": 3601}, {}, "--keep-alive-seconds must be from 0 to 3600"),
        ({}, {"warm_start_seconds": -1.0}, "--warm-start-seconds must be a number of at least 0, got -1"),
        ({}, {"training_cold_start_seconds": -5.0}, "--training-start-seconds must be"),
        ({}, {"train_seconds": float("nan")}, "--train-seconds must be"),
        ({}, {"transform_rows_per_second": 0.0}, "--transform-rows-per-second must be above 0"),
        ({}, {"endpoint_baseline_mib": 20_000.0}, "leaves no memory"),
    ],
)
def test_bad_input_is_one_sentence(
    changes: dict[str, object], assumptions: dict[str, float], problem: str
) -> None:
    with pytest.raises(planner.PlanError, match=problem.replace("(", r"\(")) as raised:
        planner.plan(workload(**changes), planner.Assumptions(**assumptions))
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--locations", "0"], "--locations"),
        (["--locations", "-3"], "--locations"),
        (["--train-seconds", "-1"], "--train-seconds"),
        (["--warm-start-seconds", "-0.5"], "--warm-start-seconds"),
        (["--keep-alive-seconds", "4000"], "--keep-alive-seconds"),
        (["--transform-rows-per-second", "0"], "--transform-rows-per-second must be above 0"),
        (["--output", "yaml"], "--output"),
    ],
)
def test_the_command_refuses_bad_input_with_exit_2(
    no_aws: None, run_cli: RunCli, args: list[str], says: str
) -> None:
    result = run_cli("plan", *args)
    assert result.exit_code == 2
    assert says in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------------------------------
# The command, with no AWS at all


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, region or profile, and any boto3 session is a failure."""
    for variable in (
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
        "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    ):  # fmt: skip
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("mme plan must not create an AWS session")

    monkeypatch.setattr(boto3, "Session", refuse)
    monkeypatch.setattr(boto3, "client", refuse)
    monkeypatch.setenv("COLUMNS", "200")


def test_the_keep_alive_comes_from_the_config() -> None:
    config = load_default_config()
    expected = getattr(config.training, "warm_pool_keep_alive_seconds", 0)
    assert (
        planner.Workload.from_config(config, locations=5, refit=False).warm_pool_keep_alive_seconds
        == expected
    )
    overridden = planner.Workload.from_config(
        config, locations=5, refit=False, warm_pool_keep_alive_seconds=0
    )
    assert overridden.warm_pool_keep_alive_seconds == 0


def test_plan_for_ten_locations(no_aws: None, run_cli: RunCli) -> None:
    result = run_cli("plan", "--locations", "10", "--keep-alive-seconds", "300")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "One training run of 10 location(s)" in out
    assert f"Modelled wall time: {duration(planner.plan(workload()).wall_seconds)}" in out
    assert "Modelled wall time: 14 min 33 s" in out  # 873.2 s, computed by hand above
    assert "3 wave(s), 4 cold, 6 warm-pool hits" in out
    assert "107.0 MiB each" in out
    assert "ml.m4.xlarge (configured)" in out
    for option in ("--training-start-seconds", "--warm-start-seconds", "--model-mb", "(calibration)"):
        assert option in out
    assert planner.WARM_POOLS_GUIDE in out


def test_the_algorithm_comes_from_the_config() -> None:
    config = load_default_config()
    assert (
        planner.Workload.from_config(config, locations=5, refit=False).algorithm == config.training.algorithm
    )


def test_the_plan_names_the_configured_algorithm_and_keeps_the_numbers() -> None:
    plain, xgboost = planner.plan(workload()), planner.plan(workload(algorithm="xgboost"))
    assert xgboost.jobs == {
        "preprocessor training job": 0,
        "batch transform jobs": 2,
        "XGBoost training jobs": 10,
    }
    assert "XGBoost training jobs" in xgboost.instance_hours_by_kind
    assert xgboost.wall_seconds == plain.wall_seconds  # the model is linear learner's: only labels move
    assert xgboost.instance_hours_by_type == plain.instance_hours_by_type
    rows = {option: (meaning, source) for option, _, meaning, source in planner.assumption_rows(xgboost)}
    assert rows["--train-seconds"][0].startswith("one XGBoost job's training")
    assert rows["--train-seconds"][1].startswith("estimate for linear learner: 60 s + 30 s per 1,000 rows")
    assert rows["--train-seconds"][1].endswith(", not measured for XGBoost")
    assert rows["--model-mb"][1].endswith("; a linear-learner figure, not measured for XGBoost")
    assert rows["(calibration)"][1].endswith("; a linear-learner figure, not measured for XGBoost")
    own = {option: source for option, _, _, source in planner.assumption_rows(plain)}
    assert "not measured" not in own["--train-seconds"] + own["--model-mb"] + own["(calibration)"]


def test_an_unknown_algorithm_is_one_sentence() -> None:
    with pytest.raises(planner.PlanError, match="the algorithm 'svm' is not one of linear-learner, xgboost"):
        planner.plan(workload(algorithm="svm"))


def test_plan_for_a_random_cut_forest_config(no_aws: None, run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"training": {"algorithm": "randomcutforest"}}))
    result = run_cli("--config", str(config), "plan", "--locations", "10")
    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "SageMaker Random Cut Forest training jobs" in out
    assert "linear learner training jobs" not in out
    assert (
        "The default times and sizes are calibrated on linear learner, not Random Cut Forest: override them "
        "with measurements of it (e.g. --train-seconds, --model-mb)."
    ) in out


def test_plan_for_a_thousand_locations(no_aws: None, run_cli: RunCli) -> None:
    result = run_cli("plan", "--locations", "1000", "--keep-alive-seconds", "300")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "1,000 training jobs, 4 at a time: 250 wave(s), 4 cold, 996 warm-pool hits" in out
    assert "would time out" in out
    assert "9 ml.m4.xlarge instances exceed endpoint.autoscaling.max_capacity (4)" in out


def test_plan_for_ten_thousand_locations_as_json(no_aws: None, run_cli: RunCli) -> None:
    args = ("plan", "--locations", "10000", "--refit", "--keep-alive-seconds", "300", "--output", "json")
    first, second = run_cli(*args), run_cli(*args)
    assert first.exit_code == 0, first.stderr
    assert first.stdout == second.stdout  # deterministic
    document = json.loads(first.stdout)
    assert document["jobs"] == {
        "preprocessor training job": 1,
        "batch transform jobs": 2,
        "linear learner training jobs": 10_000,
    }
    assert document["api_calls"]["sagemaker:CreateTrainingJob"] == 10_001
    assert document["training_map"]["waves"] == 2500
    assert document["endpoint"]["instances_needed"] == 83
    assert document["exceeds_execution_timeout"] is True
    assert {row["option"] for row in document["assumption_sources"]} >= {"--keep-alive-seconds", "--model-mb"}


def test_overrides_reach_the_model(no_aws: None, run_cli: RunCli) -> None:
    result = run_cli(
        "plan", "-n", "8", "--parallel", "8", "--train-seconds", "100", "--training-start-seconds", "200",
        "--keep-alive-seconds", "0", "--output", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    mapped = document["training_map"]
    assert (mapped["waves"], mapped["cold_jobs"], mapped["warm_jobs"]) == (1, 8, 0)
    assert mapped["wall_seconds"] == 200 + 100 + 2
    assert document["assumptions"]["train_seconds"] == 100
    assert document["peak_warm_pool_instances"] == 0


def test_duration_is_whole_seconds() -> None:
    shown = [duration(s) for s in (0.4, 59.6, 61, 3600, 5025)]
    assert shown == ["0 s", "1 min 0 s", "1 min 1 s", "1 h 0 min 0 s", "1 h 23 min 45 s"]
