"""The training entry, run as SageMaker runs it, and the artifact it leaves for model_fn."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import joblib  # type: ignore[import-untyped]
import numpy as np
import pytest
import sklearn  # type: ignore[import-untyped]

from mme_shared.housing_data import FEATURE_COLUMNS, LocationDataset, to_csv
from preprocessor import housing_preprocessor as hp
from project_config import ProjectConfig
from tests.ml.conftest import ContainerTraining, run_training_like_sagemaker


def test_training_reads_every_file_of_the_channel(
    container_training: ContainerTraining, rehearsal_datasets: dict[str, LocationDataset]
) -> None:
    metadata = json.loads((container_training.model_dir / hp.METADATA_FILE).read_text())
    assert metadata["training_files"] == [
        {"file": f"{location}.csv", "rows": len(rehearsal_datasets[location].train)}
        for location in sorted(rehearsal_datasets)
    ]
    assert metadata["training_rows"] == sum(len(data.train) for data in rehearsal_datasets.values())
    assert metadata["scikit_learn_version"] == sklearn.__version__
    assert metadata["input_columns"] == list(FEATURE_COLUMNS)
    summary = json.loads(container_training.process.stdout.strip().splitlines()[-1])
    assert summary["training_rows"] == metadata["training_rows"]


def test_training_also_reads_files_in_sub_folders(
    tmp_path: Path, rehearsal_datasets: dict[str, LocationDataset]
) -> None:
    """A channel whose prefix holds folders arrives as folders; their files are training data too."""
    channel = tmp_path / "train"
    for index, (location, data) in enumerate(rehearsal_datasets.items()):
        path = channel / ("nested/" * index) / f"{location}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_csv(data.train))
    metadata = hp.train(channel, tmp_path / "model", 10)
    assert [entry["file"] for entry in metadata["training_files"]] == [
        "NewYork_NY.csv",
        "nested/Houston_TX.csv",
        "nested/nested/Chicago_IL.csv",
        "nested/nested/nested/SanFrancisco_CA.csv",
    ]
    assert metadata["training_rows"] == 4 * 700


def test_the_fit_uses_all_locations_statistics(
    container_training: ContainerTraining, rehearsal_datasets: dict[str, LocationDataset]
) -> None:
    """One shared scaler: its mean is the mean over every location's training rows, not the last file's."""
    column_transformer = joblib.load(container_training.model_dir / hp.MODEL_FILE)
    scaler = column_transformer.named_transformers_["numeric"]
    houses = [house for data in rehearsal_datasets.values() for house in data.train]
    assert scaler.n_samples_seen_ == len(houses)
    assert scaler.mean_[1] == pytest.approx(np.mean([house.square_feet for house in houses]), rel=1e-12)
    encoder = column_transformer.named_transformers_["categorical"]
    assert [list(categories) for categories in encoder.categories_] == [["n", "y"], ["n", "y"]]


def test_the_artifact_carries_its_serving_code(container_training: ContainerTraining) -> None:
    """For network-isolated endpoints: SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code."""
    code = container_training.model_dir / hp.CODE_DIR
    assert (code / "housing_preprocessor.py").read_bytes() == (
        container_training.code_dir / "housing_preprocessor.py"
    ).read_bytes()
    assert (code / "mme_shared" / "housing_data.py").is_file()
    assert not list(code.rglob("__pycache__"))


def test_the_tarball_is_self_contained(container_training: ContainerTraining) -> None:
    """The script ran with PYTHONPATH ignored, so mme_shared came from the extracted tarball."""
    located = subprocess.run(
        [sys.executable, "-E", "-s", "-c", "import mme_shared.housing_data as m; print(m.__file__)"],
        cwd=container_training.code_dir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(located).is_relative_to(container_training.code_dir)


def _run(
    tmp_path: Path, source_tarball: bytes, train_files: dict[str, str], feature_dim: int
) -> subprocess.CompletedProcess[str]:
    return run_training_like_sagemaker(
        tmp_path, source_tarball, train_files, {"feature_dim": feature_dim}
    ).process


def test_feature_dim_mismatch_fails_the_job(
    tmp_path: Path, source_tarball: bytes, rehearsal_datasets: dict[str, LocationDataset]
) -> None:
    process = _run(tmp_path, source_tarball, {"a.csv": to_csv(rehearsal_datasets["Houston_TX"].train)}, 12)
    assert process.returncode == 1
    assert "Preprocessor training failed: The fitted preprocessor emits 10 features" in process.stderr
    assert "but feature_dim is 12" in process.stderr
    assert not (tmp_path / "model" / hp.MODEL_FILE).exists()


def test_a_location_missing_a_category_is_caught_by_feature_dim(
    tmp_path: Path, rehearsal_datasets: dict[str, LocationDataset]
) -> None:
    houses = [house for house in rehearsal_datasets["Houston_TX"].train if house.deck == "y"]
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "decks-only.csv").write_text(to_csv(houses))
    message = (
        "The fitted preprocessor emits 9 features (numeric__YEAR_BUILT, numeric__SQUARE_FEET, "
        "numeric__NUM_BEDROOMS, numeric__NUM_BATHROOMS, numeric__LOT_ACRES, numeric__GARAGE_SPACES, "
        "categorical__FRONT_PORCH_n, categorical__FRONT_PORCH_y, categorical__DECK_y) but feature_dim is 10; "
        "FRONT_PORCH and DECK must each take both values 'y' and 'n' in the training data."
    )
    with pytest.raises(hp.TrainingInputError, match=re.escape(message)):
        hp.train(tmp_path / "train", tmp_path / "model", 10)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "The train channel {channel} holds no files; give it every location's train CSV."),
        ({"NewYork_NY/train.csv": ""}, "Train channel file NewYork_NY/train.csv is empty"),
        (
            {"a.csv": "1993,2728,6,3.0,0.7,1,y,y,100.0\n", "b.csv": "1993,2728,6,3.0,0.7,1,y,y\n"},
            "Train channel file b.csv: Row 1 has 8 fields but 9 are expected here "
            "(MME_PREPROCESSOR_MODE=labelled-transform)",
        ),
        (
            {"a.csv": "1993,2728,6,3.0,0.7,1,y,y,100.0\n1993,2728,6,3.0,0.7,1,y,y,oops\n"},
            "Train channel file a.csv: Row 2, column PRICE: 'oops' is not a finite number.",
        ),
        (
            {"a.csv": "YEAR_BUILT,SQUARE_FEET\n"},
            "Train channel file a.csv: Row 1 is a header (YEAR_BUILT,...)",
        ),
    ],
)
def test_unusable_training_input_names_the_file(tmp_path: Path, files: dict[str, str], message: str) -> None:
    channel = tmp_path / "train"
    channel.mkdir()
    for name, text in files.items():
        (channel / name).parent.mkdir(parents=True, exist_ok=True)
        (channel / name).write_text(text)
    with pytest.raises(hp.TrainingInputError, match=re.escape(message.format(channel=channel))):
        hp.train(channel, tmp_path / "model", 10)


def test_main_reports_bad_input_on_stderr_with_exit_code_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "train").mkdir()
    code = hp.main([], {"SM_CHANNEL_TRAIN": str(tmp_path / "train"), "SM_MODEL_DIR": str(tmp_path / "model")})
    assert code == 1
    assert capsys.readouterr().err == (
        f"Preprocessor training failed: The train channel {tmp_path / 'train'} holds no files; "
        "give it every location's train CSV.\n"
    )


def test_main_without_sagemaker_folders_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        hp.main([], {})
    assert exit_info.value.code == 2
    assert "no train channel or model folder" in capsys.readouterr().err


@pytest.fixture
def model_copy(container_training: ContainerTraining, tmp_path: Path) -> Path:
    return Path(shutil.copytree(container_training.model_dir, tmp_path / "model"))


def test_model_fn_refuses_an_artifact_from_another_scikit_learn(model_copy: Path) -> None:
    metadata = json.loads((model_copy / hp.METADATA_FILE).read_text())
    metadata["scikit_learn_version"] = "1.2.1"
    (model_copy / hp.METADATA_FILE).write_text(json.dumps(metadata))
    with pytest.raises(
        RuntimeError,
        match=re.escape(
            "preprocessor.joblib was fitted with scikit-learn 1.2.1 but this container runs "
            f"{sklearn.__version__}; train and serve with the same sklearn_framework_version"
        ),
    ):
        hp.model_fn(str(model_copy))


def test_model_fn_refuses_a_folder_without_the_metadata(model_copy: Path) -> None:
    (model_copy / hp.METADATA_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="must come from this script's training entry"):
        hp.model_fn(str(model_copy))


def test_model_fn_refuses_a_transformer_of_another_shape(model_copy: Path) -> None:
    column_transformer = hp.build_column_transformer()
    column_transformer.set_params(categorical__handle_unknown="error")
    frame = hp.parse_csv(
        "1993,2728,6,3.0,0.7,1,y,y\n1990,2000,3,2.0,1.0,0,n,n", hp.Mode.SERVING
    ).feature_frame()
    joblib.dump(column_transformer.fit(frame), model_copy / hp.MODEL_FILE)
    with pytest.raises(ValueError, match=re.escape("its categorical step is not a plain OneHotEncoder")):
        hp.model_fn(str(model_copy))


def test_unknown_mode_fails_model_loading(model_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misconfigured deployment fails at start-up (health check), not on every request."""
    monkeypatch.setenv(hp.MODE_ENV_VAR, "transform")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "MME_PREPROCESSOR_MODE is 'transform'; set it to "
            "'serving', 'labelled-transform' or 'unlabelled-transform'"
        ),
    ):
        hp.model_fn(str(model_copy))


SCIKIT_LEARN_OF_FRAMEWORK = {"1.2-1": "1.2.1", "1.4-2": "1.4.2", "1.9-0": "1.9.0"}
"""The scikit-learn each SageMaker framework version installs (the container repository's pins)."""


def test_local_scikit_learn_is_the_one_the_configured_container_runs(default_config: ProjectConfig) -> None:
    """Version parity: an artifact fitted in SageMaker must behave as the one these tests fit."""
    framework = default_config.training.sklearn_framework_version
    assert SCIKIT_LEARN_OF_FRAMEWORK.get(framework) == sklearn.__version__, (
        f"training.sklearn_framework_version {framework!r} runs scikit-learn "
        f"{SCIKIT_LEARN_OF_FRAMEWORK.get(framework, 'unknown')}, the tests run {sklearn.__version__}"
    )
