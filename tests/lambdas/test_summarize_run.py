"""The run-summary Lambda against moto, fed realistic Distributed Map ResultWriter exports.

The export is written the way Step Functions writes it (AWS documentation, "ResultWriter (Map)"):
``<prefix><map run id>/manifest.json`` lists ``SUCCEEDED_n.json``/``FAILED_n.json``/``PENDING_n.json``
files by status, each a JSON array of child execution records whose ``Input`` and ``Output`` are
JSON strings. moto's own ResultWriter writes the same manifest but no result files, so the files
are built here.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import sys
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from moto.core.models import DEFAULT_ACCOUNT_ID

from mme_shared import generation
from tests.lambdas.conftest import ALGORITHM, BUCKET, REGION, RUN_ID, MotoAccount

_HANDLER_DIR = Path(__file__).resolve().parents[2] / "lambda" / "summarize_run"
if str(_HANDLER_DIR) not in sys.path:
    sys.path.insert(0, str(_HANDLER_DIR))
summarize_run = importlib.import_module("summarize_run")

STATE_MACHINE = "TrainingPipelineStateMachine"
MAP_LABEL = "TrainLocations"
MAP_RUN_ID = "4977ded7-b097-3bee-81e1-7863c5660f29"
MAP_RUN_ARN = f"arn:aws:states:{REGION}:{DEFAULT_ACCOUNT_ID}:mapRun:{STATE_MACHINE}/{MAP_LABEL}:{MAP_RUN_ID}"
RESULTS_PREFIX = f"pipeline-runs/{RUN_ID}/results/"
EXPORT_PREFIX = f"{RESULTS_PREFIX}{MAP_RUN_ID}/"
MANIFEST_KEY = f"{EXPORT_PREFIX}manifest.json"
SUMMARY_KEY = f"pipeline-runs/{RUN_ID}/summary.json"
METRIC = "validation:absolute_loss"

Record = dict[str, Any]


@pytest.fixture(autouse=True)
def _fresh_client() -> Iterator[None]:
    summarize_run._s3_client.cache_clear()
    yield
    summarize_run._s3_client.cache_clear()


# --------------------------------------------------------------------------------------------------
# Building a ResultWriter export


def fragment(location: str) -> str:
    return location.replace("_", "-")


def plan_item(location: str, run_id: str = RUN_ID) -> dict[str, str]:
    """What plan_run writes for a location (the child execution's input)."""
    job = fragment(location)
    return {
        "run_id": run_id,
        "location": location,
        "training_job_name": f"ll-{job}-{run_id}",
        "transform_train_job_name": f"tt-{job}-{run_id}",
        "transform_validation_job_name": f"tv-{job}-{run_id}",
        "raw_train_uri": f"s3://{BUCKET}/raw-data/{run_id}/train/{location}.csv",
        "raw_validation_uri": f"s3://{BUCKET}/raw-data/{run_id}/validation/{location}.csv",
        "preprocessed_train_uri": f"s3://{BUCKET}/preprocessed-data/{run_id}/{location}/train/",
        "preprocessed_validation_uri": f"s3://{BUCKET}/preprocessed-data/{run_id}/{location}/validation/",
        "training_output_uri": f"s3://{BUCKET}/training-output/{run_id}/",
    }


@functools.cache
def execution_arn(location: str) -> str:
    name = uuid.uuid5(uuid.NAMESPACE_URL, location)
    return f"arn:aws:states:{REGION}:{DEFAULT_ACCOUNT_ID}:execution:{STATE_MACHINE}/{MAP_LABEL}:{name}"


def child_input(location: str, run_id: str = RUN_ID) -> str:
    """A child execution's input: the training Map's ItemSelector output around the plan item."""
    return json.dumps({"item": plan_item(location, run_id), "preprocessor_model_name": f"pp-{run_id}"})


def child_record(location: str, status: str, *, output: object = None, **extra: Any) -> Record:
    """A child execution record as the ResultWriter exports it (Transformation NONE)."""
    record: Record = {
        "ExecutionArn": execution_arn(location),
        "Input": child_input(location),
        "InputDetails": {"Included": True},
        "Name": execution_arn(location).rsplit(":", 1)[1],
        "RedriveCount": 0,
        "RedriveStatus": "NOT_REDRIVABLE" if status == "SUCCEEDED" else "REDRIVABLE_BY_MAP_RUN",
        "RedriveStatusReason": f"Execution is {status} and cannot be redriven"
        if status == "SUCCEEDED"
        else "",
        "StartDate": "2025-05-01T10:00:00.000Z",
        "StateMachineArn": f"arn:aws:states:{REGION}:{DEFAULT_ACCOUNT_ID}:stateMachine:{STATE_MACHINE}",
        "Status": status,
        "StopDate": "2025-05-01T10:41:07.512Z",
    }
    if output is not None:
        record["Output"] = output if isinstance(output, str) else json.dumps(output)
        record["OutputDetails"] = {"Included": True}
    record.update(extra)
    return record


def trained(location: str, value: float | None = 0.25) -> dict[str, Any]:
    """The iterator's output for a location whose model was promoted."""
    job = f"ll-{fragment(location)}-{RUN_ID}"
    return {
        "location": location,
        "status": "SUCCEEDED",
        "training_job_name": job,
        "target_model": f"{location}/{location}-{job}.tar.gz",
        "model_version": job,
        "validation_metrics": {} if value is None else {METRIC: value},
    }


def caught(location: str, step: str, error: str, cause: str) -> dict[str, Any]:
    """The iterator's output for a failure its Catch turned into a result."""
    return {"location": location, "status": "FAILED", "failed_step": step, "error": error, "cause": cause}


def succeeded_entry(location: str, value: float | None = 0.25) -> dict[str, Any]:
    entry = trained(location, value)
    del entry["status"]
    return entry


def write_export(
    aws: MotoAccount,
    files: dict[str, Sequence[Sequence[Record] | str]],
    *,
    manifest: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write result files (records, or raw text) and their manifest; return the Map's output."""
    result_files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status, contents in files.items():
        for index, content in enumerate(contents):
            key = f"{EXPORT_PREFIX}{status}_{index}.json"
            body = (content if isinstance(content, str) else json.dumps(list(content))).encode("utf-8")
            aws.put(key, body)
            result_files.setdefault(status, []).append({"Key": key, "Size": len(body)})
    document = {"DestinationBucket": BUCKET, "MapRunArn": MAP_RUN_ARN, "ResultFiles": result_files}
    aws.put(MANIFEST_KEY, json.dumps({**document, **(manifest or {})}, indent=2).encode("utf-8"))
    return {"MapRunArn": MAP_RUN_ARN, "ResultWriterDetails": {"Bucket": BUCKET, "Key": MANIFEST_KEY}}


GENERATION = "pp-served-run"
PLAN_FIELDS: dict[str, Any] = {"generation": GENERATION, "refit": False, "location_count": 6}
"""What the state machine passes from the plan besides the Map's result: a partial run of 6 locations."""


def event(map_result: object, run_id: str = RUN_ID, **plan: Any) -> dict[str, Any]:
    return {"run_id": run_id, "map_result": map_result, **PLAN_FIELDS, **plan}


def summarize(aws: MotoAccount, map_result: object, run_id: str = RUN_ID, **plan: Any) -> dict[str, Any]:
    """Run the pure function the handler runs, with the recorded moto S3 client."""
    result: dict[str, Any] = summarize_run.summarize_run(
        summarize_run.parse_summary_event(event(map_result, run_id, **plan)),
        s3=aws.s3,
        settings=summarize_run.load_summary_settings(aws.environment()),
    )
    return result


# --------------------------------------------------------------------------------------------------
# A realistic run


TRAINING_FAILURE_CAUSE = json.dumps(
    {
        "FailureReason": "ClientError: Unable to read data channel 'validation'. Requested content-type is "
        "'text/csv;label_size=1'.",
        "TrainingJobName": f"ll-Chicago-IL-{RUN_ID}",
        "TrainingJobStatus": "Failed",
    }
)
RUNTIME_CAUSE = (
    "An error occurred while executing the state 'PromoteModel' (entered at the event id #18). The JSONPath "
    "'$.Payload.target_model' specified for the field 'target_model.$' could not be found in the input."
)


def realistic_export(aws: MotoAccount) -> dict[str, Any]:
    return write_export(
        aws,
        {
            "SUCCEEDED": [
                [
                    child_record("Seattle_WA", "SUCCEEDED", output=trained("Seattle_WA", 0.3125)),
                    child_record(
                        "Chicago_IL",
                        "SUCCEEDED",
                        output=caught(
                            "Chicago_IL", "TrainModel", "States.TaskFailed", TRAINING_FAILURE_CAUSE
                        ),
                    ),
                    child_record("Austin_TX", "SUCCEEDED", output=trained("Austin_TX", None)),
                ],
                [child_record("Boston_MA", "SUCCEEDED", output=trained("Boston_MA", 2))],
            ],
            "FAILED": [
                [
                    child_record("Denver_CO", "FAILED", Error="States.Runtime", Cause=RUNTIME_CAUSE),
                    child_record("ElPaso_TX", "TIMED_OUT"),
                ]
            ],
            "PENDING": [],
        },
    )


EXPECTED_SUCCEEDED = [
    succeeded_entry("Austin_TX", None),
    succeeded_entry("Boston_MA", 2),
    succeeded_entry("Seattle_WA", 0.3125),
]
EXPECTED_FAILED = [
    {
        "location": "Chicago_IL",
        "failed_step": "TrainModel",
        "error": "States.TaskFailed",
        "cause": TRAINING_FAILURE_CAUSE,
        "execution_arn": execution_arn("Chicago_IL"),
    },
    {
        "location": "Denver_CO",
        "failed_step": None,
        "error": "States.Runtime",
        "cause": RUNTIME_CAUSE,
        "execution_arn": execution_arn("Denver_CO"),
    },
    {
        "location": "ElPaso_TX",
        "failed_step": None,
        "error": "TIMED_OUT",
        "cause": "The location's child execution ended TIMED_OUT and gave no cause.",
        "execution_arn": execution_arn("ElPaso_TX"),
    },
]


def test_a_realistic_export_is_summarised_by_location(aws: MotoAccount) -> None:
    map_result = realistic_export(aws)

    result = summarize(aws, map_result)

    assert result == {
        "run_id": RUN_ID,
        "generation": GENERATION,
        "refit": False,
        "generation_complete": False,
        "summary_key": SUMMARY_KEY,
        "succeeded_count": 3,
        "failed_count": 3,
        "succeeded": EXPECTED_SUCCEEDED,
        "failed": EXPECTED_FAILED,
        "truncated": False,
        "nothing_promoted": False,
    }
    assert json.loads(aws.read(SUMMARY_KEY)) == {
        "run_id": RUN_ID,
        "generation": GENERATION,
        "refit": False,
        "succeeded": EXPECTED_SUCCEEDED,
        "failed": EXPECTED_FAILED,
        "succeeded_count": 3,
        "failed_count": 3,
        "nothing_promoted": False,
        "generation_complete": False,
    }
    reads = [call.key for call in aws.recorder.calls if call.operation == "GetObject"]
    assert reads == [
        MANIFEST_KEY,
        f"{EXPORT_PREFIX}SUCCEEDED_0.json",
        f"{EXPORT_PREFIX}SUCCEEDED_1.json",
        f"{EXPORT_PREFIX}FAILED_0.json",
    ]
    [put] = [call for call in aws.recorder.calls if call.operation == "PutObject"]
    assert put.key == SUMMARY_KEY
    assert put.params["ContentType"] == "application/json"
    assert not {"ServerSideEncryption", "SSEKMSKeyId"} & set(put.params)


def test_summarising_again_writes_the_same_bytes(aws: MotoAccount) -> None:
    map_result = realistic_export(aws)
    first = summarize(aws, map_result)
    summary = aws.read(SUMMARY_KEY)

    assert summarize(aws, map_result) == first
    assert aws.read(SUMMARY_KEY) == summary


def test_the_handler_reads_its_environment(aws: MotoAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    map_result = realistic_export(aws)
    monkeypatch.setenv("BUCKET_NAME", "another-bucket")
    monkeypatch.setenv("KMS_KEY_ARN", aws.kms_key_arn)
    monkeypatch.setenv("ALGORITHM", ALGORITHM)
    with pytest.raises(summarize_run.ResultsOutsideRun, match="only reads s3://another-bucket/"):
        summarize_run.handler(event(map_result), None)

    monkeypatch.setenv("BUCKET_NAME", BUCKET)
    result = summarize_run.handler(event(map_result), None)
    assert (result["succeeded_count"], result["failed_count"]) == (3, 3)


def test_a_pending_child_and_json_lines_results(aws: MotoAccount) -> None:
    """WriterConfig OutputType JSONL writes one record per line; PENDING children never finished."""
    lines = "\n".join(
        json.dumps(child_record(name, "SUCCEEDED", output=trained(name))) for name in ("B", "A")
    )
    map_result = write_export(aws, {"SUCCEEDED": [lines + "\n"], "PENDING": [[child_record("C", "PENDING")]]})

    result = summarize(aws, map_result)

    assert result["succeeded"] == [succeeded_entry("A"), succeeded_entry("B")]
    assert result["failed"] == [
        {
            "location": "C",
            "failed_step": None,
            "error": "NotCompleted",
            "cause": "The Map Run ended before this location's child execution completed.",
            "execution_arn": execution_arn("C"),
        }
    ]


def test_an_empty_map_run_gives_an_empty_summary(aws: MotoAccount) -> None:
    """The manifest moto's ResultWriter writes: all three lists empty."""
    result = summarize(aws, write_export(aws, {}))

    assert result == {
        "run_id": RUN_ID,
        "generation": GENERATION,
        "refit": False,
        "generation_complete": False,
        "summary_key": SUMMARY_KEY,
        "succeeded_count": 0,
        "failed_count": 0,
        "succeeded": [],
        "failed": [],
        "truncated": False,
        "nothing_promoted": True,
    }


@pytest.mark.parametrize(
    ("output", "cause"),
    [
        pytest.param(
            {**trained("Omaha_NE"), "training_job_name": None},
            "its output has no training_job_name string",
            id="missing-field",
        ),
        pytest.param(
            trained("Tulsa_OK"), "its output names location 'Tulsa_OK' instead of 'Omaha_NE'", id="other"
        ),
        pytest.param(
            {**trained("Omaha_NE"), "validation_metrics": {METRIC: "0.2"}},
            f"its output has a validation metric '{METRIC}' whose value is not a number",
            id="metric-text",
        ),
        pytest.param(
            {**trained("Omaha_NE"), "validation_metrics": None},
            "its output has validation_metrics that are not an object of metric name to number",
            id="metrics-null",
        ),
        pytest.param(
            '{"location": "Omaha_NE", "status": "SUCCEEDED", "validation_metrics": {"m": NaN}}',
            "its output is not JSON",
            id="nan",
        ),
        pytest.param(
            {**trained("Omaha_NE"), "status": "DONE"}, "its output has status 'DONE' instead of", id="status"
        ),
        pytest.param([trained("Omaha_NE")], "its output is a JSON array, not an object", id="array"),
    ],
)
def test_an_unexpected_child_output_is_reported_as_that_locations_failure(
    aws: MotoAccount, output: object, cause: str
) -> None:
    map_result = write_export(
        aws,
        {
            "SUCCEEDED": [
                [
                    child_record("Omaha_NE", "SUCCEEDED", output=output),
                    child_record("Reno_NV", "SUCCEEDED", output=trained("Reno_NV")),
                ]
            ]
        },
    )

    result = summarize(aws, map_result)

    assert result["succeeded"] == [succeeded_entry("Reno_NV")]
    [failure] = result["failed"]
    assert (failure["location"], failure["error"]) == ("Omaha_NE", "MalformedLocationResult")
    assert failure["cause"].startswith("The location's child execution succeeded, but ")
    assert cause in failure["cause"]


# --------------------------------------------------------------------------------------------------
# Sorting, counting and the bounded result


def test_long_lists_and_causes_are_cut_in_the_result_only(aws: MotoAccount) -> None:
    long_cause = "SageMaker reported: " + "x" * 5_000
    succeeded = [f"ok-{index:03d}" for index in range(120)]
    failed = [f"bad-{index:03d}" for index in range(60)]
    records = [
        child_record(name, "SUCCEEDED", output=trained(name, index)) for index, name in enumerate(succeeded)
    ]
    records += [
        child_record(name, "SUCCEEDED", output=caught(name, "TrainModel", "States.TaskFailed", long_cause))
        for name in failed
    ]
    map_result = write_export(aws, {"SUCCEEDED": [records[::-1]]})  # the export's order is not the summary's

    result = summarize(aws, map_result)

    assert (result["succeeded_count"], result["failed_count"], result["truncated"]) == (120, 60, True)
    assert [entry["location"] for entry in result["succeeded"]] == succeeded[:50]
    assert [entry["location"] for entry in result["failed"]] == failed[:50]
    for entry in result["failed"]:
        assert entry["cause"] == long_cause[:1_000] + " [truncated]"
    summary = json.loads(aws.read(SUMMARY_KEY))
    assert [entry["location"] for entry in summary["succeeded"]] == succeeded
    assert [entry["location"] for entry in summary["failed"]] == failed
    assert {entry["cause"] for entry in summary["failed"]} == {long_cause}


@pytest.mark.parametrize(
    ("succeeded_count", "failed_count", "truncated"), [(50, 50, False), (51, 0, True), (0, 51, True)]
)
def test_truncated_says_whether_a_list_was_cut(
    aws: MotoAccount, succeeded_count: int, failed_count: int, truncated: bool
) -> None:
    succeeded = [
        child_record(f"ok-{i}", "SUCCEEDED", output=trained(f"ok-{i}")) for i in range(succeeded_count)
    ]
    failed = [child_record(f"bad-{i}", "FAILED", Error="E", Cause="short") for i in range(failed_count)]
    map_result = write_export(aws, {"SUCCEEDED": [succeeded], "FAILED": [failed]})

    result = summarize(aws, map_result)

    assert (result["succeeded_count"], result["failed_count"]) == (succeeded_count, failed_count)
    assert (len(result["succeeded"]), len(result["failed"])) == (
        min(succeeded_count, 50),
        min(failed_count, 50),
    )
    assert result["truncated"] is truncated


def test_one_long_cause_alone_marks_the_result_truncated(aws: MotoAccount) -> None:
    cause = "y" * 1_001
    map_result = write_export(aws, {"FAILED": [[child_record("Salem_OR", "FAILED", Error="E", Cause=cause)]]})

    result = summarize(aws, map_result)

    assert result["truncated"] is True
    assert result["failed"][0]["cause"] == "y" * 1_000 + " [truncated]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 1_000, ("a" * 1_000, False)),
        ("a" * 1_001, ("a" * 1_000 + " [truncated]", True)),
        ('"' * 600, ('"' * 500 + " [truncated]", True)),  # each quote is 2 bytes as JSON
        ("\U0001f600" * 100, ("\U0001f600" * 83 + " [truncated]", True)),  # 12 bytes each as \\ud83d\\ude00
        ("", ("", False)),
    ],
)
def test_shorten_bounds_the_json_size_whatever_the_characters(text: str, expected: tuple[str, bool]) -> None:
    assert summarize_run.shorten(text, 1_000) == expected
    assert len(json.dumps(expected[0].removesuffix(" [truncated]"))) - 2 <= 1_000


def test_ten_thousand_locations_with_the_largest_fields_return_far_below_256_kb(aws: MotoAccount) -> None:
    """10,000 locations; the entries that are returned have every field at its maximum length.

    The returned entries are the first 50 of each list by location; with 32-character names that
    sort by index, those are among the first 500 records, which get the largest values (texts of
    characters that take 12 bytes each once JSON-escaped). The rest stay realistic, to keep the
    export small enough for a fast test.
    """
    location_count = 10_000
    names = [f"{'L' * 27}{index:05d}" for index in range(location_count)]  # 32 characters, the maximum
    long_text = "\U0001f600" * 100  # 1,200 bytes as JSON: over every text limit
    records = []
    for index, name in enumerate(names):
        largest = index < 500
        if index % 10:
            output: dict[str, Any] = trained(name)
            if largest:
                output |= {
                    "training_job_name": "j" * 63,
                    "target_model": "t" * 256,
                    "model_version": "v" * 63,
                    "validation_metrics": {"m" * 255: -1.2345678901234567e-300},
                }
        else:
            output = caught(name, "TrainModel", "States.TaskFailed", "failed")
            if largest:
                output |= {"failed_step": long_text, "error": long_text, "cause": long_text}
        extra = {"ExecutionArn": "arn:" + "a" * 600} if largest else {}
        records.append(child_record(name, "SUCCEEDED", output=output, **extra))
    map_result = write_export(aws, {"SUCCEEDED": [records[:5_000], records[5_000:]]})

    result = summarize(aws, map_result)

    assert (result["succeeded_count"], result["failed_count"]) == (9_000, 1_000)
    assert (len(result["succeeded"]), len(result["failed"]), result["truncated"]) == (50, 50, True)
    assert result["succeeded"][-1]["target_model"] == "t" * 256
    assert all(entry["cause"].endswith(" [truncated]") for entry in result["failed"])
    payload = len(json.dumps(result).encode("utf-8"))  # with ASCII escapes: the largest serialisation
    assert payload < 200 * 1024, payload
    summary = json.loads(aws.read(SUMMARY_KEY))
    assert len(summary["succeeded"]) + len(summary["failed"]) == location_count
    assert summary["failed"][0]["cause"] == long_text


# --------------------------------------------------------------------------------------------------
# Only this run's results are read


OTHER_RUN_MANIFEST = f"pipeline-runs/other-run/results/{MAP_RUN_ID}/manifest.json"


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        pytest.param("another-bucket", MANIFEST_KEY, id="other-bucket"),
        pytest.param(BUCKET, OTHER_RUN_MANIFEST, id="other-run"),
        pytest.param(BUCKET, f"pipeline-runs/{RUN_ID}/manifest.json", id="above-results"),
        pytest.param(BUCKET, f"models/{RUN_ID}/results/manifest.json", id="models"),
        pytest.param(BUCKET, f"pipeline-runs/{RUN_ID}-b/results/x/manifest.json", id="prefix-of-run-id"),
    ],
)
def test_a_manifest_outside_the_runs_results_is_not_read(aws: MotoAccount, bucket: str, key: str) -> None:
    write_export(aws, {"SUCCEEDED": [[child_record("A", "SUCCEEDED", output=trained("A"))]]})
    state = aws.bucket_state()
    map_result = {"MapRunArn": MAP_RUN_ARN, "ResultWriterDetails": {"Bucket": bucket, "Key": key}}

    with pytest.raises(summarize_run.ResultsOutsideRun) as raised:
        summarize(aws, map_result)

    assert str(raised.value) == (
        f"The Map's manifest s3://{bucket}/{key} is outside this run's results; run {RUN_ID!r} only reads "
        f"s3://{BUCKET}/{RESULTS_PREFIX}, where its training Map writes them."
    )
    assert aws.recorder.calls == []
    assert aws.bucket_state() == state


def test_a_result_file_outside_the_runs_results_is_not_read(aws: MotoAccount) -> None:
    outside = "model-pointers/NewYork_NY.json"
    aws.put(
        outside, json.dumps([child_record("NewYork_NY", "SUCCEEDED", output=trained("NewYork_NY"))]).encode()
    )
    map_result = write_export(aws, {"SUCCEEDED": [[child_record("A", "SUCCEEDED", output=trained("A"))]]})
    manifest = json.loads(aws.read(MANIFEST_KEY))
    manifest["ResultFiles"]["SUCCEEDED"].append({"Key": outside, "Size": 10})
    aws.put(MANIFEST_KEY, json.dumps(manifest).encode("utf-8"))
    state = aws.bucket_state()

    with pytest.raises(
        summarize_run.ResultsOutsideRun,
        match=re.escape(f"The SUCCEEDED result file s3://{BUCKET}/{outside} is outside"),
    ):
        summarize(aws, map_result)

    assert [call.key for call in aws.recorder.calls] == [MANIFEST_KEY]  # checked before any file is read
    assert aws.bucket_state() == state


def test_a_manifest_for_another_bucket_is_refused(aws: MotoAccount) -> None:
    map_result = write_export(aws, {}, manifest={"DestinationBucket": "another-bucket"})

    with pytest.raises(
        summarize_run.ResultsOutsideRun, match="The manifest's DestinationBucket s3://another-bucket/"
    ):
        summarize(aws, map_result)


# --------------------------------------------------------------------------------------------------
# Results that cannot be summarised honestly


def _export_with(aws: MotoAccount, case: str) -> dict[str, Any]:
    ok = child_record("A", "SUCCEEDED", output=trained("A"))
    if case == "no-manifest":
        return {"MapRunArn": MAP_RUN_ARN, "ResultWriterDetails": {"Bucket": BUCKET, "Key": MANIFEST_KEY}}
    if case == "other-map-run":
        return write_export(aws, {}, manifest={"MapRunArn": MAP_RUN_ARN.replace(MAP_RUN_ID, "0" * 36)})
    if case == "manifest-not-json":
        write_export(aws, {})
        aws.put(MANIFEST_KEY, b"<Error>NoSuchKey</Error>")
        return {"MapRunArn": MAP_RUN_ARN, "ResultWriterDetails": {"Bucket": BUCKET, "Key": MANIFEST_KEY}}
    if case == "unknown-status":
        return write_export(aws, {"ABORTED": [[ok]]})
    if case == "missing-file":
        map_result = write_export(aws, {"SUCCEEDED": [[ok]]})
        aws.inspect_s3.delete_object(Bucket=BUCKET, Key=f"{EXPORT_PREFIX}SUCCEEDED_0.json")
        return map_result
    if case == "compact-transformation":
        return write_export(aws, {"SUCCEEDED": [[trained("A")]]})
    if case == "duplicate":
        return write_export(aws, {"SUCCEEDED": [[ok]], "FAILED": [[child_record("A", "FAILED", Error="E")]]})
    if case == "listed-as-succeeded-but-failed":
        return write_export(aws, {"SUCCEEDED": [[child_record("A", "FAILED", output=trained("A"))]]})
    if case == "other-run":
        record = child_record("A", "SUCCEEDED", output=trained("A"), Input=child_input("A", "run-old"))
        return write_export(aws, {"SUCCEEDED": [[record]]})
    if case == "input-without-location":
        return write_export(
            aws, {"FAILED": [[child_record("A", "FAILED", Input='{"item": {"run_id": "x"}}')]]}
        )
    if case == "input-without-item":
        return write_export(aws, {"FAILED": [[child_record("A", "FAILED", Input='{"location": "A"}')]]})
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "no-manifest",
            f"The Map's manifest s3://{BUCKET}/{MANIFEST_KEY} does not exist or cannot be read (NoSuchKey).",
        ),
        ("other-map-run", f"belongs to Map Run 'arn:aws:states:{REGION}:{DEFAULT_ACCOUNT_ID}:mapRun:"),
        ("manifest-not-json", "is not JSON"),
        ("unknown-status", "lists result files of unknown status(es) ABORTED;"),
        (
            "missing-file",
            f"The SUCCEEDED result file s3://{BUCKET}/{EXPORT_PREFIX}SUCCEEDED_0.json does not exist",
        ),
        ("compact-transformation", "has no Input string; the training Map's ResultWriter must keep"),
        ("duplicate", "Location 'A' has two results (record [0] of "),
        ("listed-as-succeeded-but-failed", "is listed as SUCCEEDED but its Status is 'FAILED'."),
        ("other-run", f"is a plan item of run 'run-old', not of run {RUN_ID!r}."),
        ("input-without-location", "has an Input whose location must be a string"),
        ("input-without-item", "has an Input without the plan item: expected a JSON object with an 'item'"),
    ],
)
def test_unreadable_results_are_an_error_and_nothing_is_written(
    aws: MotoAccount, case: str, message: str
) -> None:
    map_result = _export_with(aws, case)
    state = aws.bucket_state()

    with pytest.raises(summarize_run.MapResultsUnreadable) as raised:
        summarize(aws, map_result)

    assert message in str(raised.value)
    assert aws.bucket_state() == state
    assert "PutObject" not in aws.recorder.operations()


# --------------------------------------------------------------------------------------------------
# The event and the environment


GOOD_MAP_RESULT: dict[str, Any] = {
    "MapRunArn": MAP_RUN_ARN,
    "ResultWriterDetails": {"Bucket": BUCKET, "Key": MANIFEST_KEY},
}


@pytest.mark.parametrize(
    ("bad_event", "message"),
    [
        pytest.param([], "The event must be a JSON object, got array;", id="not-an-object"),
        pytest.param(
            {"run_id": RUN_ID, "map_result": {}, **PLAN_FIELDS, "summary": True},
            "The event has unexpected field(s) summary;",
            id="unknown-field",
        ),
        pytest.param(
            {"run_id": RUN_ID},
            "The event is missing map_result, generation, refit, location_count;",
            id="missing",
        ),
        pytest.param(
            event({}, "run_1"),
            "run_id 'run_1' is not allowed: use 1 to 24 characters",
            id="bad-run-id",
        ),
        pytest.param(
            event([{"location": "A", "status": "SUCCEEDED"}]),
            "map_result must be a JSON object, got array; expected the training Map's output with a "
            'ResultWriter, {"MapRunArn": str, "ResultWriterDetails": {"Bucket": str, "Key": str}}.',
            id="map-without-result-writer",
        ),
        pytest.param(
            event({"ResultWriterDetails": {"Bucket": BUCKET, "Key": MANIFEST_KEY}}),
            "map_result is missing MapRunArn; expected the training Map's output with a ResultWriter",
            id="no-map-run-arn",
        ),
        pytest.param(
            event(
                {
                    "MapRunArn": MAP_RUN_ARN,
                    "ResultWriterDetails": {"Bucket": BUCKET, "Key": f"{EXPORT_PREFIX}SUCCEEDED_0.json"},
                }
            ),
            f"map_result.ResultWriterDetails.Key '{EXPORT_PREFIX}SUCCEEDED_0.json' is not allowed: use the "
            "key of a ResultWriter manifest, <prefix><map run id>/manifest.json.",
            id="not-the-manifest",
        ),
        pytest.param(
            event(GOOD_MAP_RESULT, generation="current"),
            "generation 'current' is not allowed: use 'pp-' followed by a run id",
            id="bad-generation",
        ),
        pytest.param(
            event(GOOD_MAP_RESULT, refit="no"), "refit must be true or false, got string.", id="refit"
        ),
        pytest.param(
            event(GOOD_MAP_RESULT, location_count=0),
            "location_count must be a whole number of at least 1, got 0; pass the run plan's location_count.",
            id="count",
        ),
    ],
)
def test_a_bad_event_is_rejected(bad_event: object, message: str) -> None:
    with pytest.raises(summarize_run.InvalidSummaryRequest) as raised:
        summarize_run.parse_summary_event(bad_event)
    assert message in str(raised.value)


@pytest.mark.parametrize("bucket", ["", "Bad_Bucket"])
def test_a_bad_environment_names_the_variable(bucket: str) -> None:
    with pytest.raises(
        summarize_run.InvalidEnvironment, match=f"BUCKET_NAME '{bucket}' is not an S3 bucket name"
    ):
        summarize_run.load_summary_settings({"BUCKET_NAME": bucket} if bucket else {})
    with pytest.raises(summarize_run.InvalidEnvironment, match="KMS_KEY_ARN 'alias' is not a KMS key ARN"):
        summarize_run.load_summary_settings({"BUCKET_NAME": BUCKET, "KMS_KEY_ARN": "alias"})


@pytest.mark.parametrize("algorithm", ["", "XGBoost", "linear learner", "-knn"])
def test_a_bad_algorithm_in_the_environment_is_one_sentence(aws: MotoAccount, algorithm: str) -> None:
    environ = {**aws.environment(), "ALGORITHM": algorithm}
    if not algorithm:
        del environ["ALGORITHM"]
    with pytest.raises(summarize_run.InvalidEnvironment) as raised:
        summarize_run.load_summary_settings(environ)
    assert str(raised.value) == (
        f"Environment variable ALGORITHM {algorithm!r} is not an algorithm name (1 to 32 characters from "
        "a-z, 0-9 and '-', starting with a letter); the stack must set it to training.algorithm."
    )


# --------------------------------------------------------------------------------------------------
# A refit completes its generation only when every location was promoted


def two_trained(aws: MotoAccount) -> dict[str, Any]:
    names = ("Austin_TX", "Boston_MA")
    return write_export(
        aws, {"SUCCEEDED": [[child_record(n, "SUCCEEDED", output=trained(n)) for n in names]]}
    )


def test_a_refit_that_promoted_every_location_completes_its_generation(aws: MotoAccount) -> None:
    generation_id = f"pp-{RUN_ID}"
    result = summarize(aws, two_trained(aws), generation=generation_id, refit=True, location_count=2)

    assert (result["generation"], result["refit"], result["generation_complete"]) == (
        generation_id,
        True,
        True,
    )
    assert json.loads(aws.read(SUMMARY_KEY))["generation_complete"] is True
    complete = generation.CompleteGeneration.from_json(
        aws.read(f"preprocessor/{generation_id}/complete.json")
    )
    assert (complete.generation, complete.run_id, complete.location_count) == (generation_id, RUN_ID, 2)
    assert complete.algorithm == ALGORITHM
    newest = generation.GenerationRef.from_json(aws.read("preprocessor/newest.json"))
    assert (newest.generation, newest.endpoint_name, newest.updated_at) == (
        generation_id,
        None,
        complete.completed_at,
    )
    puts = [call for call in aws.recorder.calls if call.operation == "PutObject"]
    # The summary first, then the generation's record, then the reference the endpoint deploy reads.
    assert [call.key for call in puts] == [
        SUMMARY_KEY, f"preprocessor/{generation_id}/complete.json", "preprocessor/newest.json"
    ]  # fmt: skip
    for call in puts[1:]:
        assert (call.params["ServerSideEncryption"], call.params["SSEKMSKeyId"]) == (
            "aws:kms",
            aws.kms_key_arn,
        )

    # A retry (the Lambda ran again) keeps the first record.
    first = aws.read(f"preprocessor/{generation_id}/complete.json")
    assert summarize(aws, two_trained(aws), generation=generation_id, refit=True, location_count=2) == result
    assert aws.read(f"preprocessor/{generation_id}/complete.json") == first


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        pytest.param({"refit": True, "location_count": 3}, "a planned location has no result", id="missing"),
        pytest.param({"refit": False, "location_count": 2}, "a partial run completes nothing", id="partial"),
    ],
)
def test_an_incomplete_refit_or_a_partial_run_records_no_generation(
    aws: MotoAccount, plan: dict[str, Any], why: str
) -> None:
    result = summarize(aws, two_trained(aws), generation=f"pp-{RUN_ID}", **plan)

    assert result["generation_complete"] is False, why
    assert [key for key in aws.object_keys() if key.startswith("preprocessor/")] == []


def test_a_refit_with_a_failed_location_records_no_generation(aws: MotoAccount) -> None:
    result = summarize(aws, realistic_export(aws), generation=f"pp-{RUN_ID}", refit=True, location_count=6)

    assert (result["succeeded_count"], result["failed_count"], result["generation_complete"]) == (3, 3, False)
    assert [key for key in aws.object_keys() if key.startswith("preprocessor/")] == []


@pytest.mark.parametrize("algorithm", ["xgboost", "knn", "randomcutforest"])
def test_a_completed_generation_records_the_deployments_algorithm(aws: MotoAccount, algorithm: str) -> None:
    """The endpoint and the next run read it to tell which container can serve the models."""
    generation_id = f"pp-{RUN_ID}"
    request = summarize_run.parse_summary_event(
        event(two_trained(aws), generation=generation_id, refit=True, location_count=2)
    )
    settings = summarize_run.load_summary_settings({**aws.environment(), "ALGORITHM": algorithm})

    assert summarize_run.summarize_run(request, s3=aws.s3, settings=settings)["generation_complete"] is True

    document = json.loads(aws.read(f"preprocessor/{generation_id}/complete.json"))
    assert document["algorithm"] == algorithm
    assert generation.CompleteGeneration.from_json(json.dumps(document).encode()).algorithm == algorithm


def test_a_generation_completed_by_another_run_is_not_completed_again(aws: MotoAccount) -> None:
    generation_id = f"pp-{RUN_ID}"
    aws.put(
        f"preprocessor/{generation_id}/complete.json",
        generation.CompleteGeneration(
            generation_id, "other-run", 2, datetime(2026, 1, 1, tzinfo=UTC)
        ).to_json(),
    )

    with pytest.raises(summarize_run.MapResultsUnreadable, match="already completed by run 'other-run'"):
        summarize(aws, two_trained(aws), generation=generation_id, refit=True, location_count=2)
    assert "preprocessor/newest.json" not in aws.object_keys()
