"""The preprocessor under the SageMaker scikit-learn container's own toolkits (the contract test).

The tests in ``tests/ml`` call ``model_fn``/``input_fn``/``predict_fn``/``output_fn`` and ``main``
directly. In SageMaker nothing calls them directly: the container's toolkits do, and they decode
the body, wrap exceptions and add headers on the way. Here the real toolkits from PyPI
(``requirements-contract.txt``, installed by ``make test`` into ``.venv-contract``) run the
preprocessor through ``container_driver.py``, in a subprocess of that venv's python:

- a training job through ``sagemaker-training``'s runner, in a fake ``/opt/ml``
  (``SAGEMAKER_BASE_DIR``) laid out as SageMaker lays it out, with the hyperparameters the
  training stack passes; its artifact is then served;
- requests through ``sagemaker-containers``' serving stack (module install, ``Transformer``,
  the Flask ``Worker``), with the environment the endpoint stack gives the container, once with
  the source tarball as ``SAGEMAKER_SUBMIT_DIRECTORY`` and once with the artifact's own ``code/``
  folder (the network-isolated endpoint).

- the same requests as a batch transform of the training pipeline sends them, with the model's
  environment plus ``MME_PREPROCESSOR_MODE`` set to each transform mode in turn
  (``labelled-transform``, ``unlabelled-transform``).

The contract: good rows get 200 with 10 features in CSV and JSON; every bad request gets a 4xx with
a JSON body that says what was wrong, never a 500; a training run writes its artifact, and a failed
one leaves its reason in ``output/failure``, which SageMaker shows as the job's FailureReason. In
labelled-transform mode a location's file comes back label first, in unlabelled-transform mode as
the 10 features alone; in both, rows that cannot be transformed get 200 with exactly one line,
``#mme-transform-error: <reason>``, so one location's bad file cannot fail the batch transform
shared by every location, and a job configured wrongly (Content-Type, Accept, payload size) still
gets its 4xx.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import pandas as pd  # type: ignore[import-untyped]
import pytest

from mme_constructs.preprocessor_source import (
    ENTRY_POINT,
    PREPROCESSOR_SOURCE_DIR,
    SHARED_PACKAGE_DIR,
    pack_source_tarball,
)
from mme_shared.housing_data import (
    FEATURE_COLUMNS,
    NUMERIC_FEATURE_COLUMNS,
    generate_location_dataset,
    to_csv,
)
from preprocessor import housing_preprocessor as hp
from tests.shared_setup import once, session_folder

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT_VENV = REPO_ROOT / ".venv-contract"
CONTRACT_PYTHON = CONTRACT_VENV / "bin" / "python"
CONTRACT_STAMP = CONTRACT_VENV / ".installed"
DRIVER = Path(__file__).with_name("container_driver.py")
MISSING_VENV = (
    f"The contract venv {CONTRACT_VENV.name} is missing (no {CONTRACT_STAMP.relative_to(REPO_ROOT)}): "
    "run `make test`, which builds it from requirements-contract.txt before running pytest "
    "(or `make contract-setup` to build only that venv)."
)
TIMEOUT_SECONDS = 300
FEATURE_DIM = 10
WALKTHROUGH_ROW = "1993,2728,6,3.0,0.7,1,y,y"
TRAINING_LOCATIONS = ("NewYork_NY", "Houston_TX", "Chicago_IL")
REGION = "us-east-1"
HOST = "localhost"
"""SageMaker names training hosts algo-N; they resolve only on its network, and the runner waits up
to 15 minutes for every host to resolve. The fake cluster's one host is therefore localhost."""


# --- The contract venv ---------------------------------------------------------------------------


def test_the_contract_venv_is_installed() -> None:
    """Fails (never skips) without the venv: CI runs `make test`, which builds it."""
    if not (CONTRACT_STAMP.is_file() and CONTRACT_PYTHON.is_file()):
        pytest.fail(MISSING_VENV, pytrace=False)


@pytest.fixture(scope="session")
def contract_python() -> Path:
    if not (CONTRACT_STAMP.is_file() and CONTRACT_PYTHON.is_file()):
        pytest.fail(MISSING_VENV, pytrace=False)
    return CONTRACT_PYTHON


def driver_environment(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without Python, SageMaker or preprocessor settings, plus ``variables``."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "SM_", "SAGEMAKER_", hp.MODE_ENV_VAR))
        or name == "PYTHONDONTWRITEBYTECODE"
    }
    return {**inherited, "LC_ALL": "C.UTF-8", **variables}


def run_driver(
    python: Path, arguments: list[str], variables: Mapping[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-I", str(DRIVER), *arguments],
        cwd=cwd,
        env=driver_environment(variables),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )


def output_of(process: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit code {process.returncode}\n--- stdout ---\n{process.stdout}\n--- stderr ---\n{process.stderr}"
    )


@pytest.fixture(scope="session")
def source_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``sagemaker_submit_directory`` / ``SAGEMAKER_SUBMIT_DIRECTORY`` tarball the stacks upload."""
    path = tmp_path_factory.mktemp("source") / "preprocessor-source.tar.gz"
    path.write_bytes(pack_source_tarball(PREPROCESSOR_SOURCE_DIR, [SHARED_PACKAGE_DIR]))
    return path


# --- Training through the runner -----------------------------------------------------------------


@dataclass(frozen=True)
class TrainingJob:
    """One training job in a fake ``/opt/ml`` and the finished ``train`` process."""

    base_dir: Path
    process: subprocess.CompletedProcess[str]

    @property
    def model_dir(self) -> Path:
        return self.base_dir / "model"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"


def write_json(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")


def run_training_job(
    python: Path, base_dir: Path, tarball: Path, train_files: Mapping[str, bytes]
) -> TrainingJob:
    """Lay out ``base_dir`` as SageMaker lays out ``/opt/ml`` for the FitPreprocessor job and run it.

    The hyperparameters are the ones the training stack passes (mme_constructs/training_jobs.py),
    with the tarball's local path in place of its S3 URL; SageMaker hands every value over as a
    string. The channel configuration and resource configuration have SageMaker's shape.
    """
    config = base_dir / "input" / "config"
    write_json(
        config / "hyperparameters.json",
        {
            "sagemaker_program": ENTRY_POINT,
            "sagemaker_submit_directory": str(tarball),
            "sagemaker_region": REGION,
            "sagemaker_container_log_level": "20",
            "feature_dim": str(FEATURE_DIM),
        },
    )
    write_json(
        config / "inputdataconfig.json",
        {
            "train": {
                "ContentType": "text/csv",
                "TrainingInputMode": "File",
                "S3DistributionType": "FullyReplicated",
                "RecordWrapperType": "None",
            }
        },
    )
    write_json(
        config / "resourceconfig.json",
        {
            "current_host": HOST,
            "current_instance_type": "ml.c4.xlarge",
            "current_group_name": "homogeneousCluster",
            "hosts": [HOST],
            "instance_groups": [
                {
                    "instance_group_name": "homogeneousCluster",
                    "instance_type": "ml.c4.xlarge",
                    "hosts": [HOST],
                }
            ],
            "network_interface_name": "eth0",
        },
    )
    channel = base_dir / "input" / "data" / "train"
    for name, data in train_files.items():
        (channel / name).parent.mkdir(parents=True, exist_ok=True)
        (channel / name).write_bytes(data)
    for folder in ("model", "output/data", "code"):
        (base_dir / folder).mkdir(parents=True, exist_ok=True)
    process = run_driver(
        python, ["train"], {"SAGEMAKER_BASE_DIR": str(base_dir), "AWS_REGION": REGION}, base_dir
    )
    return TrainingJob(base_dir, process)


def training_files() -> dict[str, bytes]:
    """Each location's generated train split, as SageMaker downloads the run's train prefix."""
    return {
        f"{location}.csv": to_csv(
            generate_location_dataset(
                location, houses=300, seed=7, validation_fraction=0.0, test_fraction=0.0
            ).train
        ).encode("utf-8")
        for location in TRAINING_LOCATIONS
    }


def process_document(process: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    return {"returncode": process.returncode, "stdout": process.stdout, "stderr": process.stderr}


def process_from(document: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(
        [str(DRIVER)], document["returncode"], document["stdout"], document["stderr"]
    )


@pytest.fixture(scope="session")
def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the training job and the serving start-ups run, once for every xdist worker."""
    return session_folder(tmp_path_factory)


@pytest.fixture(scope="session")
def training_job(contract_python: Path, shared_folder: Path, source_tarball: Path) -> TrainingJob:
    def train(workdir: Path) -> dict[str, Any]:
        job = run_training_job(contract_python, workdir, source_tarball, training_files())
        return {"base_dir": str(job.base_dir), **process_document(job.process)}

    document = once(shared_folder, "opt-ml-train", train)
    return TrainingJob(Path(document["base_dir"]), process_from(document))


def test_training_through_the_runner_writes_the_artifact(training_job: TrainingJob) -> None:
    assert training_job.process.returncode == 0, output_of(training_job.process)
    # The runner ran the script from the extracted tarball with the hyperparameter as an argument.
    assert f"{ENTRY_POINT} --feature_dim {FEATURE_DIM}" in training_job.process.stderr  # its log
    assert (training_job.base_dir / "code" / ENTRY_POINT).is_file()
    metadata = json.loads((training_job.model_dir / hp.METADATA_FILE).read_text(encoding="utf-8"))
    assert (training_job.model_dir / hp.MODEL_FILE).is_file()
    assert len(metadata["output_columns"]) == FEATURE_DIM
    assert [entry["file"] for entry in metadata["training_files"]] == sorted(
        f"{location}.csv" for location in TRAINING_LOCATIONS
    )
    assert (training_job.model_dir / hp.CODE_DIR / ENTRY_POINT).is_file()
    assert (training_job.model_dir / hp.CODE_DIR / "mme_shared" / "housing_data.py").is_file()
    assert (training_job.output_dir / "success").is_file()
    assert not (training_job.output_dir / "failure").exists()


GOOD_TRAINING_FILE = to_csv(
    generate_location_dataset(
        "Dallas_TX", houses=50, seed=7, validation_fraction=0.0, test_fraction=0.0
    ).train
).encode("utf-8")

BAD_TRAINING_CHANNELS = [
    pytest.param(
        {"Dallas_TX.csv": GOOD_TRAINING_FILE, "Austin_TX.csv": b"1993,2728,6,3.0,0.7,1,y,y,big\n"},
        "Train channel file Austin_TX.csv: Row 1, column PRICE: 'big' is not a finite number.",
        id="text-in-a-number",
    ),
    pytest.param(
        {"Dallas_TX.csv": GOOD_TRAINING_FILE, "Austin_TX.csv": b"1993,2728,6,3.0,0.7,1,y,y\n"},
        "Train channel file Austin_TX.csv: Row 1 has 8 fields but 9 are expected here",
        id="label-missing",
    ),
    pytest.param(
        {"Dallas_TX.csv": GOOD_TRAINING_FILE, "Austin_TX.csv": b"1993,2728,6,3.0,0.7,1,\xff,y,1.0\n"},
        "Train channel file Austin_TX.csv is not UTF-8 text.",
        id="not-utf-8",
    ),
    pytest.param(
        {"Dallas_TX.csv": GOOD_TRAINING_FILE, "Austin_TX.csv": b""},
        "Train channel file Austin_TX.csv is empty; every file must hold labelled rows.",
        id="empty-file",
    ),
]


@pytest.mark.parametrize(("train_files", "reason"), BAD_TRAINING_CHANNELS)
def test_a_failed_training_run_leaves_its_reason_in_the_failure_file(
    contract_python: Path, tmp_path: Path, source_tarball: Path, train_files: dict[str, bytes], reason: str
) -> None:
    """SageMaker shows the first 1024 characters of ``/opt/ml/output/failure`` as FailureReason."""
    job = run_training_job(contract_python, tmp_path / "opt-ml", source_tarball, train_files)
    assert job.process.returncode != 0, output_of(job.process)
    failure = job.output_dir / "failure"
    assert failure.is_file(), output_of(job.process)
    assert reason in failure.read_text(encoding="utf-8")[:1024], output_of(job.process)
    assert not (job.output_dir / "success").exists()
    assert not (job.model_dir / hp.MODEL_FILE).exists()


# --- Serving through the worker app --------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One request to the worker app; ``repeat`` repeats the body (a large body stays small here)."""

    name: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    path: str = "/invocations"
    repeat: int = 1

    def as_case(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body_b64": base64.b64encode(self.body).decode("ascii"),
            "repeat": self.repeat,
        }


CSV = "text/csv"
JSON = "application/json"


def post(name: str, body: str | bytes, content_type: str | None = CSV, accept: str | None = CSV) -> Request:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    return Request(name, body if isinstance(body, bytes) else body.encode("utf-8"), headers)


SERVING_ROWS = [
    ",".join(house.csv_line().split(",")[: len(FEATURE_COLUMNS)])
    for house in generate_location_dataset(
        "Seattle_WA", houses=200, seed=11, validation_fraction=0.0, test_fraction=0.0
    ).train
]
BATCH_BODY = "\n".join(SERVING_ROWS) + "\n"


def json_value(text: str) -> object:
    return text if text in ("y", "n") else float(text)


def json_rows(rows: list[str]) -> list[list[object]]:
    return [[json_value(cell) for cell in row.split(",")] for row in rows]


@dataclass(frozen=True)
class GoodRequest:
    """A request the endpoint must answer with 200: ``rows`` rows of 10 features as ``answer``."""

    request: Request
    rows: int = 1
    answer: str = CSV


def good(
    name: str,
    body: str,
    rows: int = 1,
    content_type: str | None = CSV,
    accept: str | None = CSV,
    repeat: int = 1,
) -> GoodRequest:
    request = post(name, body, content_type, accept)
    return GoodRequest(
        Request(request.name, request.body, request.headers, repeat=repeat),
        rows * repeat,
        JSON if accept == JSON else CSV,  # no Accept or */*: SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT
    )


ROW_BYTES = len(WALKTHROUGH_ROW) + 1
GOOD_REQUESTS = [
    good("csv-one-row", WALKTHROUGH_ROW),
    good("csv-batch", BATCH_BODY, rows=len(SERVING_ROWS)),
    good("csv-no-accept-header", WALKTHROUGH_ROW, accept=None),
    good("csv-accept-anything", WALKTHROUGH_ROW, accept="*/*"),
    good("csv-with-charset", WALKTHROUGH_ROW, content_type="text/csv; charset=utf-8"),
    good("csv-byte-order-mark", "\ufeff" + WALKTHROUGH_ROW),
    good("json-rows", json.dumps(json_rows(SERVING_ROWS)), len(SERVING_ROWS), content_type=JSON, accept=JSON),
    good(
        "json-instances-objects",
        json.dumps(
            {"instances": [dict(zip(FEATURE_COLUMNS, row, strict=True)) for row in json_rows(SERVING_ROWS)]}
        ),
        len(SERVING_ROWS),
        content_type=JSON,
        accept=JSON,
    ),
    good("json-in-csv-out", json.dumps(json_rows([WALKTHROUGH_ROW])), content_type=JSON),
    good("csv-in-json-out", WALKTHROUGH_ROW, accept=JSON),
    good("csv-10000-rows", WALKTHROUGH_ROW + "\n", repeat=10_000),
    good("csv-just-within-the-size-limit", WALKTHROUGH_ROW + "\n", repeat=hp.MAX_REQUEST_BYTES // ROW_BYTES),
]


@dataclass(frozen=True)
class BadRequest:
    """A request the endpoint must refuse with ``status`` and a message containing ``message``."""

    request: Request
    status: HTTPStatus
    message: str


def bad(
    name: str,
    body: str | bytes,
    status: HTTPStatus,
    message: str,
    content_type: str | None = CSV,
    accept: str | None = CSV,
    repeat: int = 1,
) -> BadRequest:
    request = post(name, body, content_type, accept)
    return BadRequest(Request(request.name, request.body, request.headers, repeat=repeat), status, message)


LARGE_BODY_ROWS = 7_000_000 // ROW_BYTES
"""About 7 MB of valid rows: more than SageMaker sends one container in one request (6 MB)."""
NOT_UTF_8 = "The request body is not valid UTF-8 text; send UTF-8 encoded CSV or JSON."
WIDTH = "fields but 8 are expected here (MME_PREPROCESSOR_MODE=serving)"


def with_bytes_in_field(column: int, raw: bytes) -> bytes:
    """The walkthrough row with field ``column`` replaced by ``raw``."""
    fields = WALKTHROUGH_ROW.encode().split(b",")
    fields[column] = raw
    return b",".join(fields)


BAD_REQUESTS = [
    bad("too-few-columns", "1993,2728,6,3.0,0.7,1,y", HTTPStatus.BAD_REQUEST, f"Row 1 has 7 {WIDTH}"),
    bad("label-included", f"{WALKTHROUGH_ROW},439972.62", HTTPStatus.BAD_REQUEST, f"Row 1 has 9 {WIDTH}"),
    bad("second-row-short", f"{WALKTHROUGH_ROW}\n1993,2728", HTTPStatus.BAD_REQUEST, f"Row 2 has 2 {WIDTH}"),
    bad(
        "json-row-too-short",
        "[[1993, 2728, 6, 3.0, 0.7, 1, 1]]",
        HTTPStatus.BAD_REQUEST,
        f"Row 1 has 7 {WIDTH}",
        content_type=JSON,
    ),
    bad(
        "json-object-row-missing-key",
        json.dumps([dict(zip(FEATURE_COLUMNS[:-1], json_rows([WALKTHROUGH_ROW])[0], strict=False))]),
        HTTPStatus.BAD_REQUEST,
        "Row 1 lacks DECK",
        content_type=JSON,
    ),
    bad(
        "text-in-a-number",
        "1993,big,6,3.0,0.7,1,y,y",
        HTTPStatus.BAD_REQUEST,
        "Row 1, column SQUARE_FEET: 'big' is not a finite number.",
    ),
    bad(
        "json-text-in-a-number",
        '[[1993, "big", 6, 3.0, 0.7, 1, "y", "y"]]',
        HTTPStatus.BAD_REQUEST,
        "Row 1, column SQUARE_FEET: expected a finite JSON number, got 'big'.",
        content_type=JSON,
    ),
    bad(
        "nan", "1993,2728,6,3.0,nan,1,y,y", HTTPStatus.BAD_REQUEST, "column LOT_ACRES: 'nan' is not a finite"
    ),
    bad(
        "number-too-large-to-scale",
        "1993,2728,6,1.7e308,0.7,1,y,y",
        HTTPStatus.BAD_REQUEST,
        "Row 1, column NUM_BATHROOMS:",
    ),
    bad("empty-category", "1993,2728,6,3.0,0.7,1,y,", HTTPStatus.BAD_REQUEST, "Row 1, column DECK is empty"),
    bad(
        "header-row", f"{','.join(FEATURE_COLUMNS)}\n{WALKTHROUGH_ROW}", HTTPStatus.BAD_REQUEST, "is a header"
    ),
    *(
        bad(f"not-utf-8-in-{name}", with_bytes_in_field(column, b"\xff"), HTTPStatus.BAD_REQUEST, NOT_UTF_8)
        for column, name in enumerate(FEATURE_COLUMNS)
    ),
    *(
        bad(
            f"latin-1-in-{name}-with-charset",
            with_bytes_in_field(column, "é".encode("latin-1")),
            HTTPStatus.BAD_REQUEST,
            NOT_UTF_8,
            content_type="text/csv; charset=utf-8",
        )
        for column, name in enumerate(FEATURE_COLUMNS)
    ),
    bad(
        "json-not-utf-8-in-a-category",
        b'[[1993, 2728, 6, 3.0, 0.7, 1, "\xe9", "y"]]',
        HTTPStatus.BAD_REQUEST,
        NOT_UTF_8,
        content_type=JSON,
    ),
    bad(
        "json-not-utf-8-in-a-number",
        b'[[1993, 27\xff28, 6, 3.0, 0.7, 1, "y", "y"]]',
        HTTPStatus.BAD_REQUEST,
        NOT_UTF_8,
        content_type=JSON,
    ),
    bad("empty-body", "", HTTPStatus.BAD_REQUEST, "The request body is empty"),
    bad("blank-body", " \n\t\n", HTTPStatus.BAD_REQUEST, "The request body is empty"),
    bad("empty-json-body", "", HTTPStatus.BAD_REQUEST, "The request body is empty", content_type=JSON),
    # Without a Content-Type the toolkit says application/json.
    bad(
        "empty-body-no-content-type",
        "",
        HTTPStatus.BAD_REQUEST,
        "The request body is empty",
        content_type=None,
    ),
    bad(
        "csv-without-content-type",
        WALKTHROUGH_ROW,
        HTTPStatus.BAD_REQUEST,
        "The request body is not valid JSON",
        content_type=None,
    ),
    bad(
        "text-plain",
        WALKTHROUGH_ROW,
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "Content type 'text/plain' is not supported; send text/csv or application/json.",
        content_type="text/plain",
    ),
    bad(
        "numpy-content-type",
        b"\x93NUMPY\x01\x00",
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "Content type 'application/x-npy' is not supported",
        content_type="application/x-npy",
    ),
    bad(
        "recordio-content-type",
        b"\x0a\x0b\x0c",
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "Content type 'application/x-recordio-protobuf' is not supported",
        content_type="application/x-recordio-protobuf",
    ),
    bad(
        "unsupported-accept",
        WALKTHROUGH_ROW,
        HTTPStatus.NOT_ACCEPTABLE,
        "Accept type 'application/xml' is not supported",
        accept="application/xml",
    ),
    bad(
        "bad-json",
        "[[1993, 2728,",
        HTTPStatus.BAD_REQUEST,
        "The request body is not valid JSON",
        content_type=JSON,
    ),
    bad(
        "json-without-instances",
        '{"rows": []}',
        HTTPStatus.BAD_REQUEST,
        'must have exactly one key, "instances"',
        content_type=JSON,
    ),
    bad(
        "very-large-body",
        WALKTHROUGH_ROW + "\n",
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"The request body is {LARGE_BODY_ROWS * ROW_BYTES:,} bytes, more than the 6,291,456 bytes",
        repeat=LARGE_BODY_ROWS,
    ),
    bad(
        "very-large-json-body",
        "[" + '[1993, 2728, 6, 3.0, 0.7, 1, "y", "y"],' * 200_000 + '[1993, 2728, 6, 3.0, 0.7, 1, "y", "y"]]',
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "bytes, more than the",
        content_type=JSON,
    ),
]


# --- The transform modes (the training pipeline's batch transforms) -------------------------------

TRANSFORM_MODES = tuple(mode for mode in hp.Mode if mode.is_transform)
"""``labelled-transform`` and ``unlabelled-transform``: every transform case runs in each."""

TRANSFORM_MARKER = "#mme-transform-error: "
"""Starts the one line that answers rows the transform cannot use (the preprocessor's docstring)."""
LABELLED_ROW = f"{WALKTHROUGH_ROW},439972.62"
LABELLED_HOUSES = generate_location_dataset(
    "Denver_CO", houses=120, seed=5, validation_fraction=0.0, test_fraction=0.0
).train
LABELLED_FILE = to_csv(LABELLED_HOUSES)
"""One location's raw split file (8 features then PRICE, no header), as the transform reads it."""
TRANSFORM_WIDTH = "fields but 9 are expected here (MME_PREPROCESSOR_MODE={mode})"
"""Formatted with the transform run's mode (:meth:`ServingRun.expected`)."""


def with_line_replaced(text: str, line_number: int, line: str) -> str:
    lines = text.splitlines()
    lines[line_number - 1] = line
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class MarkedRows:
    """Rows the transform modes cannot transform: 200 with one marker line holding ``reason``."""

    request: Request
    reason: str


def marked(name: str, body: str | bytes, reason: str) -> MarkedRows:
    """A request as the batch transform sends it: Content-Type and Accept exactly text/csv."""
    return MarkedRows(post(f"transform-{name}", body), reason)


MARKED_ROWS = [
    marked("label-missing", WALKTHROUGH_ROW, f"Row 1 has 8 {TRANSFORM_WIDTH}"),
    marked("label-missing-in-a-file", with_line_replaced(LABELLED_FILE, 7, WALKTHROUGH_ROW), "Row 7 has 8"),
    marked(
        "text-in-a-number-in-a-file",
        with_line_replaced(LABELLED_FILE, 50, "1993,big,6,3.0,0.7,1,y,y,1.0"),
        "Row 50, column SQUARE_FEET: 'big' is not a finite number.",
    ),
    marked(
        "text-in-the-label", f"{WALKTHROUGH_ROW},n/a", "Row 1, column PRICE: 'n/a' is not a finite number."
    ),
    marked("nan-label", f"{WALKTHROUGH_ROW},nan", "Row 1, column PRICE: 'nan' is not a finite number."),
    marked(
        "number-too-large-to-scale",
        "1993,2728,6,1.7e308,0.7,1,y,y,1.0",
        "Row 1, column NUM_BATHROOMS: 1.7e+308 is out of range",
    ),
    marked("empty-category", "1993,2728,6,3.0,0.7,1,y,,1.0", "Row 1, column DECK is empty"),
    marked("not-utf-8-in-the-label", f"{WALKTHROUGH_ROW},4399\xff".encode("latin-1"), NOT_UTF_8),
]


@dataclass(frozen=True)
class BadInBothModes:
    """The same request sent to both runs: a marker line in a transform mode, a 400 in serving."""

    name: str
    body: str | bytes
    reason: str

    @property
    def transform_request(self) -> Request:
        return post(f"transform-{self.name}", self.body)

    @property
    def serving_request(self) -> Request:
        return post(f"serving-{self.name}", self.body)


ROWS_BAD_IN_BOTH_MODES = [
    BadInBothModes("header-row", f"{','.join(FEATURE_COLUMNS)},PRICE\n{LABELLED_ROW}", "is a header"),
    BadInBothModes("not-utf-8", with_bytes_in_field(6, b"\xff"), NOT_UTF_8),
    BadInBothModes("empty-body", "", "The request body is empty"),
    BadInBothModes("broken-quoting", '1993,"y,2728', "Row 1 is not valid CSV"),
]


@dataclass(frozen=True)
class MisconfiguredTransform:
    """What only a wrongly configured transform job sends: still a 4xx, true of every file alike."""

    request: Request
    status: HTTPStatus
    message: str


MISCONFIGURED_TRANSFORMS = [
    MisconfiguredTransform(
        post("transform-text-plain", LABELLED_ROW, content_type="text/plain"),
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        "Content type 'text/plain' is not supported",
    ),
    MisconfiguredTransform(
        post("transform-unsupported-accept", LABELLED_ROW, accept="application/xml"),
        HTTPStatus.NOT_ACCEPTABLE,
        "Accept type 'application/xml' is not supported",
    ),
    MisconfiguredTransform(
        post("transform-unsupported-accept-and-bad-rows", WALKTHROUGH_ROW, accept="application/xml"),
        HTTPStatus.NOT_ACCEPTABLE,
        "Accept type 'application/xml' is not supported",
    ),
    MisconfiguredTransform(
        Request(
            "transform-larger-than-a-mini-batch",
            (LABELLED_ROW + "\n").encode(),
            {"Content-Type": CSV, "Accept": CSV},
            repeat=7_000_000 // (len(LABELLED_ROW) + 1),
        ),
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        "bytes, more than the 6,291,456 bytes",
    ),
]


@dataclass(frozen=True)
class ServingRun:
    """The responses of one serving start-up, by request name, and the driver process."""

    responses: dict[str, dict[str, Any]]
    process: subprocess.CompletedProcess[str]
    model_dir: Path
    mode: hp.Mode

    def expected(self, text: str) -> str:
        """``text`` with ``{mode}`` replaced by this run's mode, as the preprocessor's messages name it."""
        return text.replace("{mode}", self.mode.value)


SUBMIT_DIRECTORIES = ("tarball", "model-code")


def run_worker(
    python: Path,
    training_job: TrainingJob,
    root: Path,
    submit_directory: Path | None,
    variables: Mapping[str, str],
    cases: list[Request],
) -> ServingRun:
    """Start the serving stack in ``root`` on the training job's artifact and send ``cases``.

    ``submit_directory`` None serves the copy of the code inside the artifact
    (``/opt/ml/model/code``); ``variables`` are the container's environment besides the base dir,
    program and submit directory.
    """
    assert training_job.process.returncode == 0, output_of(training_job.process)
    base_dir = root / "opt-ml"
    shutil.copytree(training_job.model_dir, base_dir / "model")  # SageMaker extracts model.tar.gz here
    submit = submit_directory if submit_directory is not None else base_dir / "model" / hp.CODE_DIR
    assert len({case.name for case in cases}) == len(cases)
    write_json(root / "cases.json", [case.as_case() for case in cases])
    process = run_driver(
        python,
        ["serve", str(root / "cases.json"), str(root / "results.json"), str(root / "site-packages")],
        {
            "SAGEMAKER_BASE_DIR": str(base_dir),
            "SAGEMAKER_PROGRAM": ENTRY_POINT,
            "SAGEMAKER_SUBMIT_DIRECTORY": str(submit),
            **variables,
        },
        root,
    )
    assert process.returncode == 0, output_of(process)
    responses = json.loads((root / "results.json").read_text(encoding="utf-8"))
    mode = hp.Mode(variables.get(hp.MODE_ENV_VAR, hp.Mode.SERVING.value))
    return ServingRun(responses, process, training_job.model_dir, mode)


def serving_cases() -> list[Request]:
    return (
        [Request("ping", method="GET", path="/ping")]
        + [case.request for case in GOOD_REQUESTS]
        + [case.request for case in BAD_REQUESTS]
        + [case.serving_request for case in ROWS_BAD_IN_BOTH_MODES]
    )


def transform_cases() -> list[Request]:
    return (
        [post("transform-whole-file", LABELLED_FILE), post("transform-json-out", LABELLED_ROW, accept=JSON)]
        + [case.request for case in MARKED_ROWS]
        + [case.transform_request for case in ROWS_BAD_IN_BOTH_MODES]
        + [case.request for case in MISCONFIGURED_TRANSFORMS]
    )


@pytest.fixture(scope="session")
def serving_runs(
    contract_python: Path, training_job: TrainingJob, source_tarball: Path, shared_folder: Path
) -> Callable[[str, str], ServingRun]:
    """``(kind, variant) -> ServingRun``: each start-up of the serving stack, run once per session.

    ``serving``: the environment is the endpoint stack's for container 1
    (mme_constructs/multi_model_endpoint.py); variant ``tarball`` serves the source tarball,
    ``model-code`` the copy of the code inside the artifact, as a network-isolated endpoint does
    (``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code``).

    ``transform``: the serving stack as a batch transform of the training pipeline starts it, with
    CreatePreprocessorModel's container (mme_constructs/training_jobs.py: program, source tarball,
    region, log level; no default Accept) plus the transform job's ``MME_PREPROCESSOR_MODE``, the
    variant. The job sends every mini-batch with ``Content-Type`` and ``Accept`` exactly
    ``text/csv``.
    """
    runs: dict[tuple[str, str], ServingRun] = {}

    def start(kind: str, variant: str, workdir: Path) -> dict[str, Any]:
        if kind == "serving":
            submit = source_tarball if variant == "tarball" else None
            variables = {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": CSV}
            cases = serving_cases()
        else:
            submit, variables, cases = source_tarball, {hp.MODE_ENV_VAR: variant}, transform_cases()
        variables |= {"SAGEMAKER_REGION": REGION, "SAGEMAKER_CONTAINER_LOG_LEVEL": "20"}
        run = run_worker(contract_python, training_job, workdir, submit, variables, cases)
        return {"responses": run.responses, "mode": run.mode.value, **process_document(run.process)}

    def run(kind: str, variant: str) -> ServingRun:
        if (kind, variant) not in runs:
            document = once(
                shared_folder,
                f"opt-ml-{kind}-{variant}",
                lambda workdir: start(kind, variant, workdir),
            )
            runs[kind, variant] = ServingRun(
                document["responses"],
                process_from(document),
                training_job.model_dir,
                hp.Mode(document["mode"]),
            )
        return runs[kind, variant]

    return run


@pytest.fixture(params=SUBMIT_DIRECTORIES)
def serving(request: pytest.FixtureRequest, serving_runs: Callable[[str, str], ServingRun]) -> ServingRun:
    """The serving stack on the training job's artifact, with every serving request sent."""
    return serving_runs("serving", request.param)


def test_the_worker_answers_ping(serving: ServingRun) -> None:
    assert serving.responses["ping"]["status"] == HTTPStatus.OK


def test_the_served_module_is_the_installed_source(serving: ServingRun) -> None:
    """The start-up really installed and imported the submitted code (not some copy on the path)."""
    assert "Successfully installed housing_preprocessor" in serving.process.stdout + serving.process.stderr


def csv_matrix(body: str) -> np.ndarray:
    return np.array([[float(cell) for cell in line.split(",")] for line in body.splitlines()])


def reference_features(model_dir: Path, rows: list[str]) -> np.ndarray:
    """What the fitted ColumnTransformer in the artifact outputs for ``rows`` (scikit-learn itself)."""
    frame = pd.DataFrame([row.split(",") for row in rows], columns=list(FEATURE_COLUMNS))
    for column in NUMERIC_FEATURE_COLUMNS:
        frame[column] = frame[column].astype(np.float64)
    result: np.ndarray = joblib.load(model_dir / hp.MODEL_FILE).transform(frame)
    return result


@pytest.mark.parametrize("good", GOOD_REQUESTS, ids=lambda good: good.request.name)
def test_good_rows_get_200_with_ten_features(serving: ServingRun, good: GoodRequest) -> None:
    response = serving.responses[good.request.name]
    assert response["status"] == HTTPStatus.OK, response
    if good.answer == JSON:
        assert response["content_type"] == JSON  # werkzeug adds a charset to text/* types only
        instances = json.loads(response["body"])["instances"]
        assert len(instances) == good.rows
        assert {len(instance["features"]) for instance in instances} == {FEATURE_DIM}
    else:
        assert response["content_type"] == f"{CSV}; charset=utf-8"
        assert response["body_lines"] == good.rows
        shown = response["body"].splitlines()
        if len(response["body"]) < response["body_bytes"]:
            shown.pop()  # the driver cut the body short, maybe within this line
        assert {len(line.split(",")) for line in shown} == {FEATURE_DIM}


def test_served_features_are_the_fitted_transformers_output(serving: ServingRun) -> None:
    """Through the whole stack the numbers are exactly scikit-learn's, row for row."""
    served = csv_matrix(serving.responses["csv-batch"]["body"])
    assert np.array_equal(served, reference_features(serving.model_dir, SERVING_ROWS))
    as_json = json.loads(serving.responses["json-rows"]["body"])["instances"]
    assert np.array_equal(np.array([instance["features"] for instance in as_json]), served)


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=lambda case: case.request.name)
def test_bad_requests_get_a_4xx_with_a_clear_message(serving: ServingRun, case: BadRequest) -> None:
    response = serving.responses[case.request.name]
    assert response["status"] != HTTPStatus.INTERNAL_SERVER_ERROR, response
    assert response["status"] == case.status, response
    assert response["content_type"] == JSON, response
    answer = json.loads(response["body"])
    assert answer["error"] == case.status.phrase
    assert case.message in answer["message"], answer
    assert answer["message"].endswith("."), answer
    assert len(answer["message"]) < 400, answer


# --- The transform modes through the worker app --------------------------------------------------


@pytest.fixture(params=TRANSFORM_MODES, ids=lambda mode: mode.value)
def transform(request: pytest.FixtureRequest, serving_runs: Callable[[str, str], ServingRun]) -> ServingRun:
    """The serving stack in one transform mode, with every transform request sent."""
    mode: hp.Mode = request.param
    return serving_runs("transform", mode.value)


def label_columns(mode: hp.Mode) -> int:
    """How many columns of a transformed row come before the features: PRICE, or nothing."""
    return 1 if mode is hp.Mode.LABELLED_TRANSFORM else 0


def test_a_location_file_is_transformed_label_first_or_without_the_label(transform: ServingRun) -> None:
    response = transform.responses["transform-whole-file"]
    assert response["status"] == HTTPStatus.OK, response
    assert response["content_type"] == f"{CSV}; charset=utf-8"
    values = csv_matrix(response["body"])
    labels = label_columns(transform.mode)
    assert values.shape == (len(LABELLED_HOUSES), labels + FEATURE_DIM)
    if labels:
        assert values[:, 0].tolist() == [house.price for house in LABELLED_HOUSES]
    rows = [line.rsplit(",", 1)[0] for line in LABELLED_FILE.splitlines()]
    assert np.array_equal(values[:, labels:], reference_features(transform.model_dir, rows))


def test_json_output_carries_the_label_only_in_labelled_transform_mode(transform: ServingRun) -> None:
    response = transform.responses["transform-json-out"]
    assert response["status"] == HTTPStatus.OK, response
    assert response["content_type"] == JSON, response
    (instance,) = json.loads(response["body"])["instances"]
    if label_columns(transform.mode):
        assert instance.pop("label") == float(LABELLED_ROW.rsplit(",", 1)[1])
    assert list(instance) == ["features"]
    assert np.array_equal(
        np.array([instance["features"]]), reference_features(transform.model_dir, [WALKTHROUGH_ROW])
    )


def assert_one_marker_line(response: dict[str, Any], reason: str) -> None:
    assert response["status"] == HTTPStatus.OK, response
    assert response["content_type"] == f"{CSV}; charset=utf-8", response
    body = response["body"]
    assert body.startswith(TRANSFORM_MARKER), response
    assert response["body_lines"] == 1, response
    assert body == body.strip(), response  # no newline before or after: one line when assembled
    assert reason in body, response
    assert body.endswith("."), response


@pytest.mark.parametrize("case", MARKED_ROWS, ids=lambda case: case.request.name)
def test_rows_the_transform_cannot_use_get_200_with_one_marker_line(
    transform: ServingRun, case: MarkedRows
) -> None:
    """So the shared batch transform goes on with the other locations' files."""
    assert_one_marker_line(transform.responses[case.request.name], transform.expected(case.reason))


@pytest.mark.parametrize("case", ROWS_BAD_IN_BOTH_MODES, ids=lambda case: case.name)
def test_the_same_bad_rows_get_a_marker_when_transforming_and_a_400_when_serving(
    transform: ServingRun, serving: ServingRun, case: BadInBothModes
) -> None:
    assert_one_marker_line(transform.responses[case.transform_request.name], case.reason)
    response = serving.responses[case.serving_request.name]
    assert response["status"] == HTTPStatus.BAD_REQUEST, response
    assert response["content_type"] == JSON, response
    assert case.reason in json.loads(response["body"])["message"], response


@pytest.mark.parametrize("case", MISCONFIGURED_TRANSFORMS, ids=lambda case: case.request.name)
def test_a_misconfigured_transform_job_still_gets_a_4xx(
    transform: ServingRun, case: MisconfiguredTransform
) -> None:
    response = transform.responses[case.request.name]
    assert response["status"] == case.status, response
    assert response["content_type"] == JSON, response
    assert case.message in json.loads(response["body"])["message"], response


def test_an_output_assembled_by_lines_tells_every_row_from_a_marker(transform: ServingRun) -> None:
    """SageMaker joins one file's mini-batch responses with newlines (AssembleWith Line): each line of
    the result is then either a transformed row (11 floats, or 10 without the label) or a whole
    marker line."""
    assembled = "\n".join(
        transform.responses[name]["body"]
        for name in ("transform-whole-file", "transform-text-in-a-number-in-a-file", "transform-whole-file")
    )
    lines = assembled.split("\n")
    markers = [line for line in lines if line.startswith(TRANSFORM_MARKER)]
    assert len(markers) == 1
    data = [line for line in lines if not line.startswith(TRANSFORM_MARKER)]
    assert len(data) == 2 * len(LABELLED_HOUSES)
    assert {len(line.split(",")) for line in data} == {label_columns(transform.mode) + FEATURE_DIM}
