"""Session fixtures for the ML code: the preprocessor is fitted once, the way SageMaker fits it.

``container_training`` extracts the real source tarball into a fake ``/opt/ml`` tree, writes four
locations' generated training files into the ``train`` channel and runs the entry script in a
fresh interpreter with the ``SM_*`` variables the training toolkit sets. Every serving test then
loads the artifact that run produced.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

from mme_constructs.preprocessor_source import (
    ENTRY_POINT,
    PREPROCESSOR_SOURCE_DIR,
    SHARED_PACKAGE_DIR,
    pack_source_tarball,
)
from mme_shared import s3_layout
from mme_shared.housing_data import LocationDataset, generate_location_dataset, to_csv
from preprocessor import housing_preprocessor as hp
from project_config import ProjectConfig, load_default_config

REHEARSAL_LOCATIONS = ("NewYork_NY", "Houston_TX", "Chicago_IL", "SanFrancisco_CA")
"""Four locations with very different markets (the rehearsal compares New York with Houston)."""
RUN_ID = "rehearsal-1"


@pytest.fixture(scope="session")
def default_config() -> ProjectConfig:
    return load_default_config()


@pytest.fixture(scope="session")
def rehearsal_datasets(default_config: ProjectConfig) -> dict[str, LocationDataset]:
    """The four locations generated with the default data settings."""
    data = default_config.data
    return {
        location: generate_location_dataset(
            location,
            houses=data.houses_per_location,
            seed=data.seed,
            validation_fraction=data.validation_fraction,
            test_fraction=data.test_fraction,
        )
        for location in REHEARSAL_LOCATIONS
    }


@pytest.fixture(scope="session")
def source_tarball() -> bytes:
    return pack_source_tarball(PREPROCESSOR_SOURCE_DIR, [SHARED_PACKAGE_DIR])


@dataclass(frozen=True)
class ContainerTraining:
    """One training run in a fake ``/opt/ml``: its folders and the finished process."""

    code_dir: Path
    train_channel: Path
    model_dir: Path
    process: subprocess.CompletedProcess[str]


def container_environment(root: Path, hyperparameters: dict[str, object]) -> dict[str, str]:
    """The variables the SageMaker training toolkit gives a script-mode entry point."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SM_MODEL_DIR": str(root / "model"),
        "SM_CHANNELS": json.dumps(["train"]),
        "SM_CHANNEL_TRAIN": str(root / "input" / "data" / "train"),
        "SM_INPUT_DIR": str(root / "input"),
        "SM_INPUT_CONFIG_DIR": str(root / "input" / "config"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_HPS": json.dumps(hyperparameters),
        **{f"SM_HP_{name.upper()}": str(value) for name, value in hyperparameters.items()},
        "SM_USER_ENTRY_POINT": ENTRY_POINT,
        "SM_MODULE_NAME": ENTRY_POINT.removesuffix(".py"),
        "SM_MODULE_DIR": "s3://bucket/preprocessor-source.tar.gz",
        "SM_CURRENT_HOST": "algo-1",
        "SM_HOSTS": json.dumps(["algo-1"]),
        "SM_NUM_CPUS": "2",
        "SM_NUM_GPUS": "0",
    }


def run_training_like_sagemaker(
    root: Path, tarball: bytes, train_files: dict[str, str], hyperparameters: dict[str, object]
) -> ContainerTraining:
    """Extract ``tarball`` to ``root/code``, fill the train channel and run the entry script there.

    ``python -E -s`` ignores PYTHONPATH and the user site, so the script can only import what the
    tarball holds (plus the interpreter's own packages), as in the container; SageMaker passes
    hyperparameters as ``--name value`` arguments and runs from the code folder.
    """
    code_dir = root / "code"
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        archive.extractall(code_dir, filter="data")
    train_channel = root / "input" / "data" / "train"
    for name, text in train_files.items():
        (train_channel / name).parent.mkdir(parents=True, exist_ok=True)
        (train_channel / name).write_text(text, encoding="utf-8")
    (root / "output" / "data").mkdir(parents=True)
    arguments = [item for name, value in hyperparameters.items() for item in (f"--{name}", str(value))]
    process = subprocess.run(
        [sys.executable, "-E", "-s", ENTRY_POINT, *arguments],
        cwd=code_dir,
        env=container_environment(root, hyperparameters),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return ContainerTraining(code_dir, train_channel, root / "model", process)


@pytest.fixture(scope="session")
def container_training(
    tmp_path_factory: pytest.TempPathFactory,
    source_tarball: bytes,
    rehearsal_datasets: dict[str, LocationDataset],
    default_config: ProjectConfig,
) -> ContainerTraining:
    """The shared preprocessor fitted on the four locations' train splits, as SageMaker would.

    The channel is the S3 prefix of one run's train split, so SageMaker downloads one file per
    location, named by its key below that prefix; the script must read all four.
    """
    prefix = s3_layout.raw_data_split_prefix(RUN_ID, "train")
    training = run_training_like_sagemaker(
        tmp_path_factory.mktemp("opt-ml"),
        source_tarball,
        {
            s3_layout.raw_data_key(RUN_ID, location, "train").removeprefix(prefix): to_csv(data.train)
            for location, data in rehearsal_datasets.items()
        },
        {"feature_dim": int(default_config.training.training_hyperparameters["feature_dim"])},
    )
    assert training.process.returncode == 0, training.process.stderr
    return training


@pytest.fixture(scope="session")
def loaded_model(container_training: ContainerTraining) -> hp.LoadedPreprocessor:
    """``model_fn`` on the container-trained artifact (in the default serving mode)."""
    with mock.patch.dict(os.environ):
        os.environ.pop(hp.MODE_ENV_VAR, None)
        return hp.model_fn(str(container_training.model_dir))


@pytest.fixture
def labelled_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configure the serving functions as the batch transform of labelled data."""
    monkeypatch.setenv(hp.MODE_ENV_VAR, hp.Mode.LABELLED_TRANSFORM.value)


@pytest.fixture
def unlabelled_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configure the serving functions as the batch transform for an algorithm without a label."""
    monkeypatch.setenv(hp.MODE_ENV_VAR, hp.Mode.UNLABELLED_TRANSFORM.value)


TRANSFORM_MODES = tuple(mode for mode in hp.Mode if mode.is_transform)


@pytest.fixture(params=TRANSFORM_MODES, ids=lambda mode: mode.value)
def transform_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> hp.Mode:
    """Each batch-transform mode in turn (both read the raw files and mark rows they reject)."""
    mode: hp.Mode = request.param
    monkeypatch.setenv(hp.MODE_ENV_VAR, mode.value)
    return mode


@pytest.fixture
def serving_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Configure the serving functions as the real-time endpoint (the variable left unset)."""
    monkeypatch.delenv(hp.MODE_ENV_VAR, raising=False)
