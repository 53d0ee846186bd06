"""The run-planning Lambda against moto: the plan's exact items, idempotent retries, rejected inputs.

The expected keys and job names are spelled out literally here (not computed with ``s3_layout``
or ``naming``), so a change of the layout that would break the state machine's wiring fails a test.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.stub import Stubber  # type: ignore[import-untyped]

from mme_constructs.algorithms import ALGORITHMS
from tests.lambdas.conftest import ALGORITHM, BUCKET, REGION, RUN_ID, MotoAccount

_HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda" / "plan_run"
if str(_HANDLER_DIR) not in sys.path:
    sys.path.insert(0, str(_HANDLER_DIR))
plan_run = importlib.import_module("plan_run")

PLAN_KEY = f"pipeline-runs/{RUN_ID}/plan.json"
MANIFEST_KEY = "location-manifests/three-cities.json"
LOCATIONS = ["NewYork_NY", "Chicago_IL", "austin-tx"]
"""Deliberately not sorted: the plan keeps the input order."""
STEP = "ll"
"""The training-job step of the default algorithm (linear learner); others are tested below."""
ALGORITHM_STEPS = [pytest.param(algorithm.job_step, id=name) for name, algorithm in ALGORITHMS.items()]


@pytest.fixture(autouse=True)
def _fresh_client() -> Iterator[None]:
    plan_run._s3_client.cache_clear()
    yield
    plan_run._s3_client.cache_clear()


def run(
    aws: MotoAccount,
    event: object,
    *,
    max_locations: int = 10_000,
    training_step: str = STEP,
    algorithm: str = ALGORITHM,
) -> dict[str, Any]:
    """Run the pure function the handler runs, with the recorded moto S3 client."""
    result: dict[str, Any] = plan_run.plan_run(
        plan_run.parse_run_event(event),
        s3=aws.s3,
        settings=plan_run.PlanSettings(
            bucket=BUCKET, max_locations=max_locations, training_step=training_step, algorithm=algorithm
        ),
    )
    return result


def expected_item(
    location: str, job_fragment: str, run_id: str = RUN_ID, generation: str | None = None, step: str = STEP
) -> dict[str, str]:
    return {
        "run_id": run_id,
        "location": location,
        "generation": generation or f"pp-{run_id}",
        "training_job_name": f"{step}-{job_fragment}-{run_id}",
        "preprocessed_train_uri": f"s3://{BUCKET}/preprocessed-data/{run_id}/train/{location}.csv.out",
        "preprocessed_validation_uri": f"s3://{BUCKET}/preprocessed-data/{run_id}/validation/{location}.csv.out",
        "training_output_uri": f"s3://{BUCKET}/training-output/{run_id}/",
    }


EXPECTED_ITEMS = [
    expected_item("NewYork_NY", "NewYork-NY"),
    expected_item("Chicago_IL", "Chicago-IL"),
    expected_item("austin-tx", "austin-tx"),
]


def expected_result(run_id: str, count: int, **changes: Any) -> dict[str, Any]:
    """The result of a first run (it fits generation pp-<run id>), with ``changes`` applied."""
    generation = changes.get("generation", f"pp-{run_id}")
    return {
        "run_id": run_id,
        "location_count": count,
        "plan_key": f"pipeline-runs/{run_id}/plan.json",
        "results_prefix": f"pipeline-runs/{run_id}/results/",
        "generation_results_prefix": f"pipeline-runs/{run_id}/generation/",
        "generation": generation,
        "refit": True,
        "refit_reason": "first generation",
        "replaces_generation": None,
        "added_locations": 0,
        "preprocessor_job_name": f"pp-{run_id}",
        "preprocessor_model_name": f"pp-{run_id}",
        "preprocessor_artifact_uri": f"s3://{BUCKET}/preprocessor/{generation}/model.tar.gz",
        **changes,
        "raw_train_prefix_uri": f"s3://{BUCKET}/raw-data/{run_id}/train/",
        "raw_validation_prefix_uri": f"s3://{BUCKET}/raw-data/{run_id}/validation/",
        "preprocessed_train_prefix_uri": f"s3://{BUCKET}/preprocessed-data/{run_id}/train/",
        "preprocessed_validation_prefix_uri": f"s3://{BUCKET}/preprocessed-data/{run_id}/validation/",
        "transform_train_job_name": f"tt-{run_id}",
        "transform_validation_job_name": f"tv-{run_id}",
        "training_output_uri": f"s3://{BUCKET}/training-output/{run_id}/",
    }


def test_an_inline_list_becomes_one_item_per_location_in_input_order(aws: MotoAccount) -> None:
    result = run(aws, {"run_id": RUN_ID, "request": {"locations": LOCATIONS}})

    assert result == expected_result(RUN_ID, 3)
    plan = json.loads(aws.read(PLAN_KEY))
    assert plan == EXPECTED_ITEMS
    assert [list(item) for item in plan] == [list(EXPECTED_ITEMS[0])] * 3  # a fixed key order
    assert aws.object_keys() == [PLAN_KEY]
    # Looked for the served, then the newest complete generation (neither exists: a first run).
    assert [(call.operation, call.key) for call in aws.recorder.calls[:2]] == [
        ("GetObject", "preprocessor/serving.json"),
        ("GetObject", "preprocessor/newest.json"),
    ]
    put = aws.recorder.calls[2]
    assert put.operation == "PutObject"
    assert put.params["IfNoneMatch"] == "*"
    assert put.params["ContentType"] == "application/json"
    # The bucket's default encryption (SSE-KMS, project key) applies; the function names no key.
    assert not {"ServerSideEncryption", "SSEKMSKeyId"} & set(put.params)


@pytest.mark.parametrize("step", ALGORITHM_STEPS)
def test_each_algorithms_training_jobs_are_named_with_its_step(aws: MotoAccount, step: str) -> None:
    result = run(aws, {"run_id": RUN_ID, "request": {"locations": LOCATIONS}}, training_step=step)

    assert result == expected_result(RUN_ID, 3)  # the run's other names do not depend on it
    assert [item["training_job_name"] for item in json.loads(aws.read(PLAN_KEY))] == [
        f"{step}-NewYork-NY-{RUN_ID}",
        f"{step}-Chicago-IL-{RUN_ID}",
        f"{step}-austin-tx-{RUN_ID}",
    ]


def test_a_manifest_gives_the_same_items_as_the_same_list_inline(aws: MotoAccount) -> None:
    aws.put(MANIFEST_KEY, json.dumps(LOCATIONS, indent=2).encode("utf-8"))

    result = run(
        aws, {"run_id": RUN_ID, "request": {"locations_manifest_key": MANIFEST_KEY, "locations": None}}
    )

    assert result == expected_result(RUN_ID, 3)
    assert json.loads(aws.read(PLAN_KEY)) == EXPECTED_ITEMS
    assert aws.recorder.operations() == ["GetObject", "GetObject", "GetObject", "PutObject"]
    assert aws.recorder.calls[0].key == MANIFEST_KEY


def test_a_manifest_saved_with_a_byte_order_mark_is_read(aws: MotoAccount) -> None:
    aws.put(MANIFEST_KEY, b"\xef\xbb\xbf" + json.dumps(LOCATIONS).encode("utf-8"))

    assert (
        run(aws, {"run_id": "run-bom", "request": {"locations_manifest_key": MANIFEST_KEY}})["location_count"]
        == 3
    )


def test_a_retry_finds_its_own_plan_and_writes_nothing(aws: MotoAccount) -> None:
    event = {"run_id": RUN_ID, "request": {"locations": LOCATIONS}}
    first = run(aws, event)
    plan_bytes = aws.read(PLAN_KEY)
    state = aws.bucket_state()
    aws.recorder.clear()

    assert run(aws, event) == first
    assert aws.bucket_state() == state  # no new object version in the versioned bucket
    assert aws.read(PLAN_KEY) == plan_bytes
    # The two generation reads, then a refused create and the comparison.
    assert aws.recorder.operations() == ["GetObject", "GetObject", "PutObject", "GetObject"]


def test_a_run_id_that_already_has_another_plan_is_refused(aws: MotoAccount) -> None:
    run(aws, {"run_id": RUN_ID, "request": {"locations": LOCATIONS}})
    plan_bytes = aws.read(PLAN_KEY)
    state = aws.bucket_state()

    with pytest.raises(plan_run.RunAlreadyPlanned) as raised:
        run(aws, {"run_id": RUN_ID, "request": {"locations": ["Boston_MA"]}})

    assert str(raised.value) == (
        f"Run {RUN_ID!r} already has a different plan at s3://{BUCKET}/{PLAN_KEY}; the run id is the "
        "execution name, so start the new run under a name not used before."
    )
    assert aws.bucket_state() == state
    assert aws.read(PLAN_KEY) == plan_bytes


def test_plans_of_different_runs_do_not_interfere(aws: MotoAccount) -> None:
    run(aws, {"run_id": "run-a", "request": {"locations": LOCATIONS}})
    run(aws, {"run_id": "run-b", "request": {"locations": ["Boston_MA"]}})

    assert json.loads(aws.read("pipeline-runs/run-b/plan.json")) == [
        expected_item("Boston_MA", "Boston-MA", "run-b")
    ]
    assert len(json.loads(aws.read("pipeline-runs/run-a/plan.json"))) == 3


def test_ten_thousand_locations_from_a_manifest(aws: MotoAccount) -> None:
    names = [f"loc-{index:05d}" for index in range(10_000)]
    aws.put(MANIFEST_KEY, json.dumps(names).encode("utf-8"))

    result = run(
        aws, {"run_id": RUN_ID, "request": {"locations_manifest_key": MANIFEST_KEY}}, max_locations=10_000
    )

    assert result["location_count"] == 10_000
    plan = json.loads(aws.read(PLAN_KEY))
    assert [item["location"] for item in plan] == names
    assert plan[9_999] == expected_item("loc-09999", "loc-09999")


def test_the_handler_reads_its_environment(aws: MotoAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUCKET_NAME", BUCKET)
    monkeypatch.setenv("MAX_LOCATIONS", "2")
    monkeypatch.setenv("TRAINING_JOB_STEP", "xg")
    monkeypatch.setenv("ALGORITHM", "xgboost")

    with pytest.raises(plan_run.InvalidRunRequest, match="more than MAX_LOCATIONS=2"):
        plan_run.handler({"run_id": RUN_ID, "request": {"locations": LOCATIONS}}, None)
    assert aws.object_keys() == []

    result = plan_run.handler({"run_id": RUN_ID, "request": {"locations": LOCATIONS[:2]}}, None)
    assert result == expected_result(RUN_ID, 2)
    assert json.loads(aws.read(PLAN_KEY)) == [
        expected_item("NewYork_NY", "NewYork-NY", step="xg"),
        expected_item("Chicago_IL", "Chicago-IL", step="xg"),
    ]


# --------------------------------------------------------------------------------------------------
# Rejected requests: each names what is wrong and writes nothing


BAD_EVENTS = [
    pytest.param(["NewYork_NY"], "The event must be a JSON object, got array;", id="not-an-object"),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": LOCATIONS}, "bucket": "other"},
        "The event has unexpected field(s) bucket;",
        id="unknown-field",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": LOCATIONS, "generation": "pp-x"}},
        "The execution input has unexpected field(s) generation;",
        id="unknown-input-field",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": ["NewYork_NY"]},
        "The execution input must be a JSON object, got array;",
        id="input-not-an-object",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": LOCATIONS, "refit": "yes"}},
        "refit must be true or false, got string.",
        id="refit-not-a-bool",
    ),
    pytest.param({"request": {"locations": LOCATIONS}}, "The event is missing run_id;", id="missing-run-id"),
    pytest.param(
        {"run_id": "run_2025", "request": {"locations": LOCATIONS}},
        "run_id 'run_2025' is not allowed: use 1 to 24 characters",
        id="run-id-underscore",
    ),
    pytest.param(
        {"run_id": "run-2025-", "request": {"locations": LOCATIONS}},
        "run_id 'run-2025-' is not allowed: use 1 to 24 characters from A-Z, a-z, 0-9 and '-', starting "
        "and ending with a letter or digit",
        id="run-id-ends-with-a-hyphen",
    ),
    pytest.param(
        {"run_id": "r" * 25, "request": {"locations": LOCATIONS}},
        "the run id is the Step Functions execution name, so start the execution with a name that follows",
        id="run-id-too-long",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": LOCATIONS, "locations_manifest_key": MANIFEST_KEY}},
        "The execution input must have exactly one of locations and locations_manifest_key, got both; "
        'expected {"locations": [str, ...]} or {"locations_manifest_key": ',
        id="both-sources",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": None, "locations_manifest_key": None}},
        "must have exactly one of locations and locations_manifest_key, got neither;",
        id="no-source",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": "NewYork_NY"}},
        "locations must be a JSON array of location names, got string.",
        id="locations-not-a-list",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": []}}, "Locations has no location names;", id="empty-list"
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": ["NewYork_NY", "New York"]}},
        "locations[1]: location name 'New York' is not allowed: use 1 to 32 characters",
        id="invalid-name",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": [42]}},
        "locations[0]: location name must be a string",
        id="name-not-a-string",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": ["NewYork_NY", "Chicago_IL", "newyork-ny"]}},
        "locations[2] 'newyork-ny' collides with locations[0] 'NewYork_NY': SageMaker job names ignore case",
        id="collision",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations": ["a", "b", "c", "d"]}},
        "Locations has 4 location names, more than MAX_LOCATIONS=3; split the locations",
        id="too-many",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations_manifest_key": "raw-data/all.json"}},
        "locations_manifest_key 'raw-data/all.json' is not allowed: upload the manifest under "
        "location-manifests/",
        id="manifest-outside-prefix",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations_manifest_key": "location-manifests/"}},
        "locations_manifest_key 'location-manifests/' is not allowed",
        id="manifest-key-is-the-prefix",
    ),
    pytest.param(
        {"run_id": RUN_ID, "request": {"locations_manifest_key": ["location-manifests/a.json"]}},
        "locations_manifest_key must be a string (an S3 key under location-manifests/), got array.",
        id="manifest-key-not-a-string",
    ),
]


@pytest.mark.parametrize(("event", "message"), BAD_EVENTS)
def test_a_bad_event_is_rejected_and_nothing_is_written(
    aws: MotoAccount, event: object, message: str
) -> None:
    state = aws.bucket_state()

    with pytest.raises(plan_run.InvalidRunRequest) as raised:
        run(aws, event, max_locations=3)

    assert message in str(raised.value)
    assert str(raised.value).endswith(".")
    assert "\n" not in str(raised.value)
    assert aws.bucket_state() == state
    assert "PutObject" not in aws.recorder.operations()


MANIFEST_URI = f"s3://{BUCKET}/{MANIFEST_KEY}"

BAD_MANIFESTS = [
    pytest.param(None, f"The location manifest {MANIFEST_URI} does not exist;", id="missing"),
    pytest.param(
        b"NewYork_NY\nChicago_IL\n", f"The location manifest {MANIFEST_URI} is not UTF-8 JSON", id="csv"
    ),
    pytest.param(b'["NewYork_NY", "Chicago_IL"', "is not UTF-8 JSON", id="truncated-json"),
    pytest.param(b"\xff\xfe[]", "is not UTF-8 JSON", id="not-utf8"),
    pytest.param(
        b'{"locations": ["NewYork_NY"]}',
        f"The location manifest {MANIFEST_URI} holds a JSON object, not an array;",
        id="object",
    ),
    pytest.param(
        b'["NewYork_NY", 7]',
        f"Entry [1] of the location manifest {MANIFEST_URI} is a JSON number, not a location name string.",
        id="number-entry",
    ),
    pytest.param(b"[]", f"The location manifest {MANIFEST_URI} has no location names;", id="empty"),
    pytest.param(
        b'["NewYork_NY", "../models/x"]',
        f"entry [1] of the location manifest {MANIFEST_URI}: location name '../models/x' is not allowed",
        id="invalid-name",
    ),
    pytest.param(
        b'["Chicago_IL", "CHICAGO-IL"]',
        f"entry [1] of the location manifest {MANIFEST_URI} 'CHICAGO-IL' collides with entry [0]",
        id="collision",
    ),
    pytest.param(
        b'["a", "b", "c", "d"]',
        f"The location manifest {MANIFEST_URI} has 4 location names, more than MAX_LOCATIONS=3;",
        id="too-many",
    ),
]


@pytest.mark.parametrize(("body", "message"), BAD_MANIFESTS)
def test_a_bad_manifest_is_rejected_and_nothing_is_written(
    aws: MotoAccount, body: bytes | None, message: str
) -> None:
    if body is not None:
        aws.put(MANIFEST_KEY, body)
    state = aws.bucket_state()

    with pytest.raises(plan_run.LocationManifestError) as raised:
        run(aws, {"run_id": RUN_ID, "request": {"locations_manifest_key": MANIFEST_KEY}}, max_locations=3)

    assert message in str(raised.value)
    assert aws.bucket_state() == state
    assert aws.recorder.operations() == ["GetObject"]


def test_an_oversized_manifest_is_not_read(aws: MotoAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps(LOCATIONS).encode("utf-8")
    aws.put(MANIFEST_KEY, body)
    monkeypatch.setattr(plan_run, "MANIFEST_MAX_BYTES", len(body) - 1)

    with pytest.raises(plan_run.LocationManifestError, match=rf"is {len(body)} bytes, more than the"):
        run(aws, {"run_id": RUN_ID, "request": {"locations_manifest_key": MANIFEST_KEY}})
    assert aws.object_keys() == [MANIFEST_KEY]


def test_an_unreadable_manifest_says_it_may_be_missing() -> None:
    """Without s3:ListBucket, S3 answers 403 for a missing key (moto cannot, so a Stubber does)."""
    s3 = boto3.client("s3", region_name=REGION)  # fake credentials from the autouse fixture
    with Stubber(s3) as stubber:
        stubber.add_client_error(
            "get_object",
            service_error_code="AccessDenied",
            http_status_code=403,
            expected_params={"Bucket": BUCKET, "Key": MANIFEST_KEY},
        )
        with pytest.raises(plan_run.LocationManifestError) as raised:
            plan_run.plan_run(
                plan_run.parse_run_event(
                    {"run_id": RUN_ID, "request": {"locations_manifest_key": MANIFEST_KEY}}
                ),
                s3=s3,
                settings=plan_run.PlanSettings(
                    bucket=BUCKET, max_locations=10, training_step=STEP, algorithm=ALGORITHM
                ),
            )
        stubber.assert_no_pending_responses()  # and no further call (a Stubber fails unexpected ones)
    assert str(raised.value) == (
        f"The location manifest {MANIFEST_URI} cannot be read (AccessDenied): it does not exist, or it is "
        "encrypted with a key other than the project key."
    )


GOOD_ENVIRONMENT = {
    "BUCKET_NAME": BUCKET,
    "MAX_LOCATIONS": "10",
    "TRAINING_JOB_STEP": "kn",
    "ALGORITHM": "knn",
}


def _without(name: str) -> dict[str, str]:
    return {key: value for key, value in GOOD_ENVIRONMENT.items() if key != name}


def _step_refused(step: str) -> str:
    return (
        f"Environment variable TRAINING_JOB_STEP: training-job step {step!r} is not allowed: use two "
        "lower-case letters other than pp, tt, tv."
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (_without("BUCKET_NAME"), "Environment variable BUCKET_NAME '' is not an S3 bucket name;"),
        ({**GOOD_ENVIRONMENT, "BUCKET_NAME": "Not_A_Bucket"}, "BUCKET_NAME 'Not_A_Bucket' is not"),
        (
            _without("MAX_LOCATIONS"),
            "Environment variable MAX_LOCATIONS '' must be a whole number of at least 1.",
        ),
        ({**GOOD_ENVIRONMENT, "MAX_LOCATIONS": "0"}, "MAX_LOCATIONS '0' must be a whole number"),
        ({**GOOD_ENVIRONMENT, "MAX_LOCATIONS": "ten"}, "MAX_LOCATIONS 'ten' must be a whole number"),
        ({**GOOD_ENVIRONMENT, "MAX_LOCATIONS": "-5"}, "MAX_LOCATIONS '-5' must be a whole number"),
        (_without("TRAINING_JOB_STEP"), _step_refused("")),
        # Another step's prefix would let a location's job collide with the run's own jobs.
        *(
            ({**GOOD_ENVIRONMENT, "TRAINING_JOB_STEP": step}, _step_refused(step))
            for step in ("pp", "tt", "tv")
        ),
        *(
            ({**GOOD_ENVIRONMENT, "TRAINING_JOB_STEP": step}, _step_refused(step))
            for step in ("LL", "l", "lll", "l1", "ll-", " ll")
        ),
        (
            _without("ALGORITHM"),
            "Environment variable ALGORITHM '' is not an algorithm name (1 to 32 characters from a-z, 0-9 "
            "and '-', starting with a letter); the stack must set it to training.algorithm.",
        ),
        (
            {**GOOD_ENVIRONMENT, "ALGORITHM": "k-NN"},
            "Environment variable ALGORITHM 'k-NN' is not an algorithm",
        ),
    ],
)
def test_a_bad_environment_names_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(plan_run.InvalidEnvironment) as raised:
        plan_run.load_plan_settings(environ)
    assert message in str(raised.value)
    if "TRAINING_JOB_STEP" in message or "'' is not an algorithm" in message:
        assert str(raised.value) == message  # one plain sentence


@pytest.mark.parametrize(("algorithm", "step"), [(name, a.job_step) for name, a in ALGORITHMS.items()])
def test_the_environment_is_parsed(algorithm: str, step: str) -> None:
    settings = plan_run.load_plan_settings(
        {"BUCKET_NAME": BUCKET, "MAX_LOCATIONS": " 10000 ", "TRAINING_JOB_STEP": step, "ALGORITHM": algorithm}
    )
    assert settings == plan_run.PlanSettings(
        bucket=BUCKET, max_locations=10_000, training_step=step, algorithm=algorithm
    )


# --------------------------------------------------------------------------------------------------
# The generation a run trains into


_LEGACY: Final = object()
"""A complete.json from before there was a choice of algorithm: no ``algorithm`` field."""


def _refer(
    aws: MotoAccount, key: str, generation: str, *, algorithm: object = ALGORITHM, complete: bool = True
) -> None:
    """newest.json or serving.json naming ``generation``, and (``complete``) the generation's
    complete.json as the summary Lambda wrote it, recording ``algorithm``."""
    aws.put(key, json.dumps({"format_version": 1, "generation": generation, "endpoint_name": None,
                             "updated_at": "2026-12-01T10:00:00Z"}).encode("utf-8"))  # fmt: skip
    if complete:
        record = {"format_version": 1, "generation": generation, "run_id": generation.removeprefix("pp-"),
                  "location_count": 1, "completed_at": "2026-12-01T10:00:00Z"}  # fmt: skip
        if algorithm is not _LEGACY:
            record["algorithm"] = algorithm
        aws.put(f"preprocessor/{generation}/complete.json", json.dumps(record).encode("utf-8"))


def _point(aws: MotoAccount, generation: str, *locations: str) -> None:
    for location in locations:
        aws.put(f"model-pointers/{generation}/{location}.json", b"{}")  # only the key is listed


def test_a_partial_run_reuses_the_served_generation_and_never_refits(aws: MotoAccount) -> None:
    _refer(aws, "preprocessor/serving.json", "pp-served")
    _refer(aws, "preprocessor/newest.json", "pp-newer")  # complete, but not served: not used
    _point(aws, "pp-served", "Boston_MA", "Chicago_IL")

    result = run(aws, {"run_id": RUN_ID, "request": {"locations": ["Chicago_IL"]}})

    assert result == expected_result(RUN_ID, 1, generation="pp-served", refit=False, refit_reason=None)
    assert json.loads(aws.read(PLAN_KEY)) == [
        expected_item("Chicago_IL", "Chicago-IL", generation="pp-served")
    ]
    assert "ListObjectsV2" not in aws.recorder.operations()  # only a refit takes over locations
    # The served generation's record says its models are the deployment's algorithm's.
    assert ("GetObject", "preprocessor/pp-served/complete.json") in [
        (call.operation, call.key) for call in aws.recorder.calls
    ]


def test_before_anything_is_served_a_run_reuses_the_newest_complete_generation(aws: MotoAccount) -> None:
    _refer(aws, "preprocessor/newest.json", "pp-first")

    result = run(aws, {"run_id": RUN_ID, "request": {"locations": ["Chicago_IL"], "refit": False}})

    assert (result["generation"], result["refit"]) == ("pp-first", False)
    assert result["preprocessor_artifact_uri"] == f"s3://{BUCKET}/preprocessor/pp-first/model.tar.gz"


def test_a_refit_fits_a_new_generation_and_retrains_every_served_location(aws: MotoAccount) -> None:
    _refer(aws, "preprocessor/serving.json", "pp-served")
    _point(aws, "pp-served", "Boston_MA", "Chicago_IL", "austin-tx")
    _point(aws, "pp-other", "Denver_CO")  # another generation's locations are not taken over

    result = run(
        aws, {"run_id": RUN_ID, "request": {"locations": ["NewYork_NY", "chicago-il"], "refit": True}}
    )

    assert result == expected_result(
        RUN_ID, 4, refit_reason="requested", replaces_generation="pp-served", added_locations=2
    )
    # The request's locations first, in its order, then the served ones it did not name (sorted);
    # chicago-il is Chicago_IL's job-name twin, so the request's spelling stands for both.
    assert [item["location"] for item in json.loads(aws.read(PLAN_KEY))] == [
        "NewYork_NY", "chicago-il", "Boston_MA", "austin-tx"
    ]  # fmt: skip


def test_a_refit_without_locations_retrains_exactly_the_served_ones(aws: MotoAccount) -> None:
    _refer(aws, "preprocessor/serving.json", "pp-served")
    _point(aws, "pp-served", "Boston_MA", "Chicago_IL")

    result = run(aws, {"run_id": RUN_ID, "request": {"locations": [], "refit": True}})

    assert (result["location_count"], result["added_locations"]) == (2, 2)
    assert json.loads(aws.read(PLAN_KEY)) == [
        expected_item("Boston_MA", "Boston-MA"),
        expected_item("Chicago_IL", "Chicago-IL"),
    ]


def test_a_refit_that_would_exceed_the_location_limit_is_refused(aws: MotoAccount) -> None:
    _refer(aws, "preprocessor/serving.json", "pp-served")
    _point(aws, "pp-served", "a", "b", "c")

    with pytest.raises(
        plan_run.InvalidRunRequest, match="the 3 of generation pp-served a refit must retrain"
    ):
        run(aws, {"run_id": RUN_ID, "request": {"locations": ["d"], "refit": True}}, max_locations=3)
    assert "PutObject" not in aws.recorder.operations()


def test_an_empty_refit_with_nothing_to_retrain_is_refused(aws: MotoAccount) -> None:
    with pytest.raises(plan_run.InvalidRunRequest, match="no served generation whose locations a refit"):
        run(aws, {"run_id": RUN_ID, "request": {"locations": [], "refit": True}})
    assert aws.object_keys() == []


@pytest.mark.parametrize("served_by", ["serving", "newest"])
def test_after_the_algorithm_changed_a_run_refits_every_location_of_the_old_generation(
    aws: MotoAccount, served_by: str
) -> None:
    """Models of another algorithm cannot be served by this deployment's container, nor may new ones
    join the old generation: the run fits a new generation and retrains the old one's locations."""
    _refer(aws, f"preprocessor/{served_by}.json", "pp-served", algorithm="linear-learner")
    _point(aws, "pp-served", "Boston_MA", "Chicago_IL")

    result = run(
        aws,
        {"run_id": RUN_ID, "request": {"locations": ["Chicago_IL"]}},
        algorithm="xgboost",
        training_step="xg",
    )

    assert result == expected_result(
        RUN_ID, 2, refit_reason="algorithm changed", replaces_generation="pp-served", added_locations=1
    )
    assert json.loads(aws.read(PLAN_KEY)) == [
        expected_item("Chicago_IL", "Chicago-IL", step="xg"),
        expected_item("Boston_MA", "Boston-MA", step="xg"),
    ]


@pytest.mark.parametrize(("algorithm", "refit"), [("linear-learner", False), ("knn", True)])
def test_a_generation_recorded_without_an_algorithm_holds_linear_learner_models(
    aws: MotoAccount, algorithm: str, refit: bool
) -> None:
    _refer(aws, "preprocessor/serving.json", "pp-served", algorithm=_LEGACY)
    _point(aws, "pp-served", "Chicago_IL")

    result = run(aws, {"run_id": RUN_ID, "request": {"locations": ["Chicago_IL"]}}, algorithm=algorithm)

    assert (result["refit"], result["refit_reason"]) == (refit, "algorithm changed" if refit else None)
    assert result["generation"] == (f"pp-{RUN_ID}" if refit else "pp-served")


def test_a_requested_refit_does_not_read_the_old_generations_record(aws: MotoAccount) -> None:
    _refer(aws, "preprocessor/serving.json", "pp-served", complete=False)
    _point(aws, "pp-served", "Chicago_IL")

    result = run(aws, {"run_id": RUN_ID, "request": {"locations": [], "refit": True}}, algorithm="knn")

    assert (result["refit_reason"], result["location_count"]) == ("requested", 1)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        pytest.param(
            None,
            f"Generation pp-served is named served or newest but has no s3://{BUCKET}/preprocessor/pp-served/"
            'complete.json; restore it from its previous version or start the run with "refit": true.',
            id="missing",
        ),
        pytest.param(
            b'{"generation": "pp-served"}',
            f"s3://{BUCKET}/preprocessor/pp-served/complete.json is unreadable (",
            id="unreadable",
        ),
    ],
)
def test_a_reused_generation_without_a_readable_record_stops_the_run(
    aws: MotoAccount, record: bytes | None, message: str
) -> None:
    _refer(aws, "preprocessor/serving.json", "pp-served", complete=False)
    if record is not None:
        aws.put("preprocessor/pp-served/complete.json", record)
    state = aws.bucket_state()

    with pytest.raises(plan_run.GenerationUnreadable) as raised:
        run(aws, {"run_id": RUN_ID, "request": {"locations": ["Chicago_IL"]}})

    assert message in str(raised.value)
    assert aws.bucket_state() == state


def test_an_unreadable_generation_reference_stops_the_run(aws: MotoAccount) -> None:
    aws.put("preprocessor/serving.json", b'{"generation": "current"}')

    with pytest.raises(plan_run.GenerationUnreadable, match=r"serving.json is not a generation reference"):
        run(aws, {"run_id": RUN_ID, "request": {"locations": ["Chicago_IL"]}})
    assert aws.object_keys() == ["preprocessor/serving.json"]
