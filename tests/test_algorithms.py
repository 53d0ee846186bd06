"""The algorithm descriptions: internally consistent, complete, and their response formats read right.

The response bodies are the ones each container documents (or, for XGBoost, the one its open-source
multi-model handler writes: ``sagemaker_xgboost_container/algorithm_mode/handler_service.py``).
"""

from __future__ import annotations

import pytest

from mme_constructs import image_table
from mme_constructs.algorithms import (
    ALGORITHMS,
    JOB_STEPS,
    Algorithm,
    ResponseUnreadable,
    algorithm_named,
    title_of,
)
from mme_shared import naming
from project_config.model import PREPROCESSED_FEATURE_COUNT

EACH = pytest.mark.parametrize("algorithm", ALGORITHMS.values(), ids=list(ALGORITHMS))

# One body per algorithm, for two rows, as the container writes it.
TWO_ROWS = {
    "linear-learner": (
        b'{"predictions": [{"score": 412345.5}, {"score": 298000.25}]}',
        [412345.5, 298000.25],
    ),
    "knn": (
        b'{"predictions": [{"predicted_label": 401000.0}, {"predicted_label": 305500.0}]}',
        [401000.0, 305500.0],
    ),
    "randomcutforest": (b'{"scores": [{"score": 0.8712}, {"score": 2.403}]}', [0.8712, 2.403]),
    "xgboost": (b"410876.40625,301222.875", [410876.40625, 301222.875]),
}


def test_every_algorithm_has_a_response_case() -> None:
    assert TWO_ROWS.keys() == ALGORITHMS.keys()


@EACH
def test_response_format_reads_its_containers_answer(algorithm: Algorithm) -> None:
    body, expected = TWO_ROWS[algorithm.name]
    assert algorithm.response.values(body) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"123.4000015258789", [123.4000015258789]),
        (b"1.5,2.5", [1.5, 2.5]),
        (b"1.5\n2.5\n", [1.5, 2.5]),  # the single-model CSV form, one line per row
    ],
)
def test_xgboost_csv_bodies(body: bytes, expected: list[float]) -> None:
    assert ALGORITHMS["xgboost"].response.values(body) == expected


@EACH
@pytest.mark.parametrize(
    "body",
    [b"", b"<html>500</html>", b'{"predictions": [{"label": 1}]}', b'{"scores": "x"}', b"[1.5]", b"\xff\xfe"],
)
def test_unreadable_answer_says_what_was_expected(algorithm: Algorithm, body: bytes) -> None:
    if algorithm.name == "xgboost" and body == b"[1.5]":
        pytest.skip("a JSON array is not CSV either, covered below")
    with pytest.raises(
        ResponseUnreadable, match=f"^expected {algorithm.response.shape}$".replace("[", r"\[")
    ):
        algorithm.response.values(body)


def test_xgboost_json_array_is_not_its_csv_format() -> None:
    with pytest.raises(ResponseUnreadable, match=r"^expected one number per row"):
        ALGORITHMS["xgboost"].response.values(b"[1.5]")


@EACH
def test_accept_header_is_one_the_algorithm_answers(algorithm: Algorithm) -> None:
    # Linear learner, k-NN and RCF answer JSON; XGBoost's multi-model handler matches text/csv exactly.
    assert algorithm.response.accept == ("text/csv" if algorithm.name == "xgboost" else "application/json")


@EACH
def test_name_title_and_step(algorithm: Algorithm) -> None:
    assert algorithm_named(algorithm.name) is algorithm
    assert naming.validate_training_step(algorithm.job_step) == algorithm.job_step
    assert len(naming.training_job_name("A" * 32, "r" * 24, algorithm.job_step)) <= 63


def test_steps_are_unique_and_unknown_names_are_refused() -> None:
    assert len(set(JOB_STEPS)) == len(JOB_STEPS) == len(ALGORITHMS)
    with pytest.raises(
        ValueError, match=r"^must be one of linear-learner, xgboost, knn, randomcutforest, got 'fm'$"
    ):
        algorithm_named("fm")


@EACH
def test_default_image_is_in_the_tables_and_served(algorithm: Algorithm) -> None:
    assert algorithm.default_image_tag in image_table.available_algorithm_tags(algorithm.image_family)
    assert algorithm.default_image_tag not in algorithm.unserved_image_tags
    assert set(algorithm.unserved_image_tags) <= set(
        image_table.available_algorithm_tags(algorithm.image_family)
    )


@EACH
def test_channels_match_what_the_preprocessor_emits(algorithm: Algorithm) -> None:
    names = [channel.name for channel in algorithm.channels]
    assert (names[0], algorithm.channels[0].split) == ("train", "train")
    assert len(set(names)) == len(names)
    label_free = algorithm.content_type.replace(" ", "").endswith("label_size=0")
    assert label_free == (algorithm.preprocessor_output == "features-only")
    assert algorithm.content_type.startswith("text/csv")


@EACH
def test_defaults_are_valid_and_fixed_settings_cannot_be_overridden(algorithm: Algorithm) -> None:
    values = algorithm.training_hyperparameters({}, PREPROCESSED_FEATURE_COUNT)
    assert all(isinstance(value, str) for value in values.values())
    fixed = algorithm.fixed_hyperparameters(PREPROCESSED_FEATURE_COUNT)
    assert fixed.items() <= values.items()
    assert not set(fixed) & set(algorithm.hyperparameters.model_fields)
    if algorithm.name != "xgboost":
        assert fixed["feature_dim"] == "10"  # the 1P algorithms need it; XGBoost reads it off the data


def test_values_are_sagemaker_strings() -> None:
    values = ALGORITHMS["xgboost"].training_hyperparameters(
        {"eta": 0.05, "num_round": 250, "early_stopping_rounds": 10}, PREPROCESSED_FEATURE_COUNT
    )
    assert values == {
        "num_round": "250",
        "objective": "reg:squarederror",
        "eta": "0.05",
        "max_depth": "5",
        "min_child_weight": "1.0",
        "subsample": "0.8",
        "gamma": "0.0",
        "eval_metric": "rmse",
        "early_stopping_rounds": "10",
    }
    assert "early_stopping_rounds" not in ALGORITHMS["xgboost"].training_hyperparameters({}, 10)
    assert ALGORITHMS["knn"].training_hyperparameters({}, 10) == {
        "k": "10",
        "sample_size": "500",
        "index_type": "faiss.Flat",
        "feature_dim": "10",
        "predictor_type": "regressor",
    }
    assert ALGORITHMS["randomcutforest"].training_hyperparameters({}, 10) == {
        "num_trees": "100",
        "num_samples_per_tree": "256",
        "feature_dim": "10",
    }


def test_random_cut_forest_trains_on_one_sharded_channel_without_label() -> None:
    rcf = ALGORITHMS["randomcutforest"]
    assert [(c.name, c.split, c.sharded) for c in rcf.channels] == [("train", "train", True)]
    assert rcf.content_type == "text/csv;label_size=0"
    assert rcf.prediction == "anomaly score"


def test_knn_holds_out_on_its_test_channel() -> None:
    assert [(c.name, c.split) for c in ALGORITHMS["knn"].channels] == [
        ("train", "train"),
        ("test", "validation"),
    ]


def test_title_of_a_known_and_an_unknown_algorithm() -> None:
    assert title_of("knn") == "k-NN"
    assert title_of("factorization-machines") == "factorization-machines"
