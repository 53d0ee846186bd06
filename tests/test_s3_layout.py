"""The shared S3 key layout and name rules (pure Python, imported by stacks, Lambdas and the CLI)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from mme_constructs.algorithms import ALGORITHMS, JOB_STEPS
from mme_shared import naming, s3_layout
from tests.conftest import REPO_ROOT


def test_keys_for_one_location() -> None:
    assert s3_layout.raw_data_key("run-1", "NewYork_NY", "train") == "raw-data/run-1/train/NewYork_NY.csv"
    assert s3_layout.raw_data_split_prefix("run-1", "train") == "raw-data/run-1/train/"
    assert (
        s3_layout.preprocessed_output_key("run-1", "NewYork_NY", "validation")
        == "preprocessed-data/run-1/validation/NewYork_NY.csv.out"
    )
    assert s3_layout.training_output_prefix("run-1") == "training-output/run-1/"
    assert (
        s3_layout.target_model_name("Chicago_IL", "20261125-0130")
        == "Chicago_IL/Chicago_IL-20261125-0130.tar.gz"
    )
    assert (
        s3_layout.model_version_key("pp-run-1", "Chicago_IL", "v3")
        == "models/pp-run-1/Chicago_IL/Chicago_IL-v3.tar.gz"
    )
    assert s3_layout.location_models_prefix("pp-run-1", "Chicago_IL") == "models/pp-run-1/Chicago_IL/"
    assert (
        s3_layout.current_pointer_key("pp-run-1", "Chicago_IL") == "model-pointers/pp-run-1/Chicago_IL.json"
    )
    assert s3_layout.preprocessor_artifact_key("pp-run-1") == "preprocessor/pp-run-1/model.tar.gz"
    assert s3_layout.generation_record_key("pp-run-1") == "preprocessor/pp-run-1/complete.json"
    assert s3_layout.generation_models_prefix("pp-run-1") == "models/pp-run-1/"
    assert s3_layout.s3_uri("bucket", s3_layout.MULTI_MODEL_PREFIX) == "s3://bucket/models/"


def test_model_names_are_relative_to_the_multi_model_prefix() -> None:
    key = s3_layout.model_version_key("pp-run-1", "Houston_TX", "v1")
    assert key == s3_layout.generation_models_prefix("pp-run-1") + s3_layout.target_model_name(
        "Houston_TX", "v1"
    )


def test_prefixes_are_disjoint_folders() -> None:
    prefixes = s3_layout.ALL_PREFIXES
    assert all(p.endswith("/") and "/" not in p[:-1] for p in prefixes)
    assert len(set(prefixes)) == len(prefixes)
    for key in (s3_layout.NEWEST_GENERATION_KEY, s3_layout.SERVING_GENERATION_KEY):
        assert key.startswith(s3_layout.PREPROCESSOR_PREFIX)
        # Never inside a generation's folder: "newest.json" is not a generation id.
        assert naming.generation_problem(key.removeprefix(s3_layout.PREPROCESSOR_PREFIX).split("/")[0])
    # Pointers are not loadable models, so they must stay outside the multi-model prefix.
    assert not s3_layout.MODEL_POINTERS_PREFIX.startswith(s3_layout.MULTI_MODEL_PREFIX)


@pytest.mark.parametrize("location", ["", "..", "a/b", "../etc", "New York", "x" * 33, "_lead", "é"])
def test_unsafe_locations_never_become_keys(location: str) -> None:
    with pytest.raises(ValueError, match=r"^location name .* is not allowed: use 1 to 32 characters"):
        s3_layout.model_version_key("pp-run-1", location, "v1")


@pytest.mark.parametrize("version", ["", "v/1", "..", "v_1", "-v1", "v" * 64])
def test_unsafe_versions_are_rejected(version: str) -> None:
    with pytest.raises(ValueError, match=r"^model version .* is not allowed"):
        s3_layout.model_version_key("pp-run-1", "Chicago_IL", version)


@pytest.mark.parametrize(
    "generation", ["", "current", "pp-", "pp-run-", "ll-run-1", "pp-a/b", "PP-run", "pp-" + "r" * 25]
)
def test_only_preprocessor_job_names_are_generations(generation: str) -> None:
    with pytest.raises(ValueError, match=r"^preprocessor generation .* is not allowed: use 'pp-' followed"):
        s3_layout.preprocessor_artifact_key(generation)
    with pytest.raises(ValueError, match=r"^preprocessor generation .* is not allowed"):
        s3_layout.current_pointer_key(generation, "Chicago_IL")


def test_a_generation_is_the_preprocessor_job_of_its_run() -> None:
    assert naming.validate_generation(naming.preprocessor_job_name("run-7")) == "pp-run-7"


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(
        ValueError, match="split 'holdout' is not allowed: use one of train, validation, test"
    ):
        s3_layout.raw_data_key("run-1", "Chicago_IL", "holdout")


def test_non_string_location_is_rejected() -> None:
    with pytest.raises(ValueError, match="location name must be a string"):
        naming.validate_location_name(7)


def test_job_name_fragment_and_collision_key() -> None:
    assert naming.job_name_fragment("NewYork_NY") == "NewYork-NY"
    assert naming.location_collision_key("NewYork_NY") == naming.location_collision_key("newyork-ny")
    assert naming.location_collision_key("NewYork_NY") != naming.location_collision_key("NewYork_NJ")


def test_shared_package_uses_only_the_standard_library() -> None:
    """Lambda handlers and the preprocessor package mme_shared as is: no CDK, boto3 or pydantic."""
    allowed = set(sys.stdlib_module_names) | {"mme_shared"}
    for path in Path(REPO_ROOT, "mme_shared").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


SAGEMAKER_JOB_NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
"""botocore's TrainingJobName / TransformJobName pattern (tests/test_sagemaker_requests.py checks
every request against the service model itself)."""


@pytest.mark.parametrize("location", ["A" * 32, "Foo_", "Foo-", "9" * 32, "0", "Z9_-" * 8, "a_-_-b"])
@pytest.mark.parametrize("run_id", ["r" * 24, "0", "a" + "-" * 22 + "z", "run-20250501-120000"])
def test_job_names_are_valid_for_sagemaker_at_the_edges_of_the_rules(location: str, run_id: str) -> None:
    names = [
        naming.preprocessor_job_name(run_id),
        *(naming.training_job_name(location, run_id, step) for step in JOB_STEPS),
        naming.transform_job_name("train", run_id),
        naming.transform_job_name("validation", run_id),
    ]
    assert [SAGEMAKER_JOB_NAME_RE.fullmatch(name) is not None for name in names] == [True] * len(names), names


def test_a_location_ending_in_a_separator_only_doubles_a_hyphen() -> None:
    assert naming.training_job_name("Foo_", "run", "ll") == "ll-Foo--run"


@pytest.mark.parametrize(
    ("algorithm", "job_name"),
    [
        ("linear-learner", "ll-NewYork-NY-run-7"),
        ("xgboost", "xg-NewYork-NY-run-7"),
        ("knn", "kn-NewYork-NY-run-7"),
        ("randomcutforest", "rc-NewYork-NY-run-7"),
    ],
)
def test_each_algorithms_training_jobs_start_with_its_step(algorithm: str, job_name: str) -> None:
    step = ALGORITHMS[algorithm].job_step
    assert naming.validate_training_step(step) == step
    assert naming.training_job_name("NewYork_NY", "run-7", step) == job_name
    longest = naming.training_job_name("A" * 32, "r" * 24, step)
    assert len(longest) == 2 + 1 + 32 + 1 + 24 <= naming.SAGEMAKER_NAME_MAX_LENGTH
    assert SAGEMAKER_JOB_NAME_RE.fullmatch(longest)


def test_every_algorithm_has_its_own_step() -> None:
    """A deployment's IAM grants its training jobs on ``<step>-*`` (tests/iam checks that one
    algorithm's role cannot create another's jobs), so steps are distinct and apart from the run's
    own job steps."""
    assert sorted(JOB_STEPS) == ["kn", "ll", "rc", "xg"]
    assert set(JOB_STEPS).isdisjoint({naming.PREPROCESSOR_STEP, *naming.TRANSFORM_STEPS})


@pytest.mark.parametrize(
    "step", ["", "l", "lll", "LL", "Ll", "l1", "l-", "l_", " ll", "ll\n", "pp", "tt", "tv", None, 7]
)
def test_only_two_letter_steps_of_no_other_job_are_training_steps(step: object) -> None:
    message = f"training-job step {step!r} is not allowed: use two lower-case letters other than pp, tt, tv"
    with pytest.raises(ValueError, match=r"^training-job step ") as raised:
        naming.validate_training_step(step)
    assert str(raised.value) == message
    with pytest.raises(ValueError, match=r"^training-job step ") as raised:
        naming.training_job_name("NewYork_NY", "run-7", step)  # type: ignore[arg-type]
    assert str(raised.value) == message


def test_job_names_are_valid_for_sagemaker_and_traceable() -> None:
    longest = naming.training_job_name("A" * 32, "r" * 24, "ll")
    assert len(longest) <= 63
    assert SAGEMAKER_JOB_NAME_RE.fullmatch(longest)
    assert naming.preprocessor_job_name("run-7") == "pp-run-7"
    assert naming.training_job_name("NewYork_NY", "run-7", "ll") == "ll-NewYork-NY-run-7"
    # One batch transform per split for the whole run: N + O(1) jobs per run.
    assert naming.transform_job_name("train", "run-7") == "tt-run-7"
    assert naming.transform_job_name("validation", "run-7") == "tv-run-7"


@pytest.mark.parametrize("run_id", ["", "r" * 25, "run_7", "-run", "run/7", None, "run-7-", "7-", "-"])
def test_run_ids_that_cannot_be_part_of_a_job_name_are_rejected(run_id: object) -> None:
    with pytest.raises(ValueError, match=r"^run id ") as raised:
        naming.validate_run_id(run_id)
    assert str(raised.value) == (
        f"run id {run_id!r} is not allowed: use 1 to 24 characters from A-Z, a-z, 0-9 and '-', starting "
        "and ending with a letter or digit (it becomes part of SageMaker job names)"
    )


@pytest.mark.parametrize(
    "run_id", ["r", "7", "r" * 24, "a--b", "run-20250501-120000", "deploy-20250501-120000"]
)
def test_run_ids_at_the_edges_of_the_rule_are_accepted(run_id: str) -> None:
    assert naming.validate_run_id(run_id) == run_id


def test_transform_only_for_train_and_validation() -> None:
    with pytest.raises(ValueError, match="split 'test' is not transformed: use train or validation"):
        naming.transform_job_name("test", "run-7")


def test_run_bookkeeping_keys() -> None:
    assert s3_layout.run_plan_key("run-7") == "pipeline-runs/run-7/plan.json"
    assert s3_layout.run_results_prefix("run-7") == "pipeline-runs/run-7/results/"
    assert s3_layout.run_generation_results_prefix("run-7") == "pipeline-runs/run-7/generation/"
    assert s3_layout.run_summary_key("run-7") == "pipeline-runs/run-7/summary.json"


def test_one_batch_transform_per_split_writes_one_output_per_location_file() -> None:
    """The run's transform reads raw-data/<run>/<split>/ and writes <location>.csv.out per <location>.csv."""
    assert s3_layout.preprocessed_split_prefix("run-1", "train") == "preprocessed-data/run-1/train/"
    assert s3_layout.preprocessed_split_prefix("run-1", "validation") == "preprocessed-data/run-1/validation/"
    for split in s3_layout.TRANSFORMED_SPLITS:
        key = s3_layout.preprocessed_output_key("run-1", "NewYork_NY", split)
        assert key == f"preprocessed-data/run-1/{split}/NewYork_NY.csv.out"
        raw_key = s3_layout.raw_data_key("run-1", "NewYork_NY", split)
        # SageMaker's naming: the output prefix plus the input key relative to the input prefix, + .out
        relative = raw_key.removeprefix(s3_layout.raw_data_split_prefix("run-1", split))
        assert key == s3_layout.preprocessed_split_prefix("run-1", split) + relative + ".out"


def test_no_location_output_key_is_a_prefix_of_another_locations() -> None:
    """Each key can be the exact S3Prefix of its location's training channel."""
    locations = ["NY", "NY_2", "NY-2", "NYC", "N"]
    keys = [s3_layout.preprocessed_output_key("run-1", location, "train") for location in locations]
    for key in keys:
        assert [other for other in keys if other.startswith(key)] == [key]


@pytest.mark.parametrize(
    ("run_id", "location", "split", "message"),
    [
        ("run-1", "NewYork_NY", "test", "split 'test' is not transformed: use train or validation"),
        ("run-1", "NewYork_NY", "Train", "split 'Train' is not"),
        ("run/1", "NewYork_NY", "train", "run id 'run/1' is not allowed"),
        ("run-1", "New York", "train", "'New York' is not allowed"),
        ("run-1", "../NY", "train", "'../NY' is not allowed"),
    ],
)
def test_preprocessed_output_keys_refuse_bad_parts(
    run_id: str, location: str, split: str, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        s3_layout.preprocessed_output_key(run_id, location, split)
    if location == "NewYork_NY":
        with pytest.raises(ValueError, match=re.escape(message)):
            s3_layout.preprocessed_split_prefix(run_id, split)


def test_parsers_invert_the_builders() -> None:
    key = s3_layout.model_version_key("pp-run-1", "Chicago_IL", "20261125-0130")
    assert s3_layout.parse_model_version_key("pp-run-1", key) == ("Chicago_IL", "20261125-0130")
    assert s3_layout.parse_multi_model_key(key) == ("pp-run-1", "Chicago_IL")
    pointer = s3_layout.current_pointer_key("pp-run-1", "Chicago_IL")
    assert s3_layout.parse_pointer_key("pp-run-1", pointer) == "Chicago_IL"
    assert s3_layout.parse_run_prefix(s3_layout.run_prefix("run-1")) == "run-1"
    assert s3_layout.parse_s3_uri(s3_layout.s3_uri("bucket", key)) == ("bucket", key)
    assert s3_layout.key_in_bucket(s3_layout.s3_uri("b", key), "b", s3_layout.MULTI_MODEL_PREFIX) == key


@pytest.mark.parametrize(
    "key",
    [
        "models/pp-run-1/Chicago_IL/Houston_TX-v1.tar.gz",  # another location's file name
        "models/pp-run-1/Chicago_IL/Chicago_IL-v1.zip",
        "models/pp-run-1/Chicago_IL/Chicago_IL-.tar.gz",  # no version
        "models/pp-run-2/Chicago_IL/Chicago_IL-v1.tar.gz",  # another generation
        "models/pp-run-1/Chicago_IL/nested/Chicago_IL-v1.tar.gz",
        "models/pp-run-1/bad name/bad name-v1.tar.gz",
        "model-pointers/pp-run-1/Chicago_IL/Chicago_IL-v1.tar.gz",
    ],
)
def test_a_key_the_layout_would_not_write_is_no_model_version(key: str) -> None:
    assert s3_layout.parse_model_version_key("pp-run-1", key) is None


def test_multi_model_keys_name_their_generation_and_location() -> None:
    assert s3_layout.parse_multi_model_key("models/pp-run-1/stray.txt") == ("pp-run-1", None)
    assert s3_layout.parse_multi_model_key("models/pp-run-1/A/B/c.tar.gz") == ("pp-run-1", "A")
    assert s3_layout.parse_multi_model_key("model-pointers/pp-run-1/A.json") is None


@pytest.mark.parametrize(
    "key",
    [
        "model-pointers/pp-run-1/Chicago_IL",  # no .json
        "model-pointers/pp-run-1/.json",
        "model-pointers/pp-run-1/bad name.json",
        "model-pointers/pp-run-1/sub/Chicago_IL.json",
        "model-pointers/pp-run-2/Chicago_IL.json",
        "models/pp-run-1/Chicago_IL.json",
    ],
)
def test_a_key_the_layout_would_not_write_is_no_pointer(key: str) -> None:
    assert s3_layout.parse_pointer_key("pp-run-1", key) is None


@pytest.mark.parametrize(
    "prefix", ["pipeline-runs/", "pipeline-runs/a/b/", "pipeline-runs/-x/", "raw-data/r/"]
)
def test_a_prefix_that_is_no_run_folder_is_no_run(prefix: str) -> None:
    assert s3_layout.parse_run_prefix(prefix) is None


@pytest.mark.parametrize("uri", ["bucket/key", "s3://bucket", "s3://bucket/", "s3:///key", "s3://b/prefix/"])
def test_a_uri_that_names_no_object_is_refused_in_one_sentence(uri: str) -> None:
    with pytest.raises(ValueError, match=r"is not an S3 object URI: use s3://BUCKET/KEY \(one object"):
        s3_layout.parse_s3_uri(uri)
    assert s3_layout.key_in_bucket(uri, "bucket") is None


def test_a_uri_of_another_bucket_or_prefix_has_no_key_here() -> None:
    assert s3_layout.key_in_bucket("s3://other/training-output/x", "bucket") is None
    assert s3_layout.key_in_bucket("s3://bucket/models/x", "bucket", s3_layout.TRAINING_OUTPUT_PREFIX) is None
