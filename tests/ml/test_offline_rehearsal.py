"""Offline rehearsal of the pipeline: shared preprocessor -> labelled transform -> one model per city.

The preprocessor is the one the container-like training run fitted on four locations' train
splits; each split is pushed through the serving functions in labelled-transform mode (what batch
transform does), and a scikit-learn LinearRegression stands in for the linear learner.

Bounds come from the generator, not from observed results. Prices are linear in the features plus
Gaussian noise of standard deviation sigma (``noise_sd``), so the best possible validation RMSE is
sigma. Fitting p parameters on n rows inflates the expected squared error by about (1 + p/n), and
the RMSE measured on m validation rows has a relative standard error of about 1/sqrt(2m). Hence:

    sigma * (1 - 4/sqrt(2m))  <  RMSE  <  sigma * sqrt(1 + p/n) * (1 + 4/sqrt(2m))

(four standard errors each way; the lower bound shows the noise is really there and nothing
leaks the label). A fitted per-square-foot price has standard error about
sigma / (sqrt(n) * sd(SQUARE_FEET)) because the features are drawn independently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression  # type: ignore[import-untyped]

from mme_shared.housing_data import LocationDataset, to_csv
from preprocessor import housing_preprocessor as hp
from tests.ml.conftest import REHEARSAL_LOCATIONS

SQUARE_FEET = 1
"""Output column of the standardised SQUARE_FEET (the order of NUMERIC_FEATURE_COLUMNS)."""
FRONT_PORCH_N, FRONT_PORCH_Y, DECK_N, DECK_Y = 6, 7, 8, 9
PARAMETERS = 11
"""10 features plus the intercept (an upper bound: the one-hot pairs are collinear with it)."""
STANDARD_ERRORS = 4


@dataclass(frozen=True)
class CityModel:
    model: LinearRegression
    validation_rmse: float
    train_rows: int
    validation_rows: int


def batch_transform(model: hp.LoadedPreprocessor, raw_csv: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw labelled CSV through the serving functions; returns (features, labels) from label-first CSV."""
    result = hp.output_fn(hp.predict_fn(hp.input_fn(raw_csv, "text/csv"), model), "text/csv")
    assert not isinstance(result, hp.RejectedRequest), result
    table = np.array([[float(cell) for cell in line.split(",")] for line in result[0].split("\n")])
    return table[:, 1:], table[:, 0]


@pytest.fixture(scope="module")
def city_models(
    loaded_model: hp.LoadedPreprocessor, rehearsal_datasets: dict[str, LocationDataset]
) -> dict[str, CityModel]:
    models = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(hp.MODE_ENV_VAR, hp.Mode.LABELLED_TRANSFORM.value)
        for location, data in rehearsal_datasets.items():
            train_x, train_y = batch_transform(loaded_model, to_csv(data.train))
            validation_x, validation_y = batch_transform(loaded_model, to_csv(data.validation))
            regression = LinearRegression().fit(train_x, train_y)
            rmse = float(np.sqrt(np.mean((regression.predict(validation_x) - validation_y) ** 2)))
            models[location] = CityModel(regression, rmse, len(train_y), len(validation_y))
    return models


def test_every_location_was_rehearsed(city_models: dict[str, CityModel]) -> None:
    assert sorted(city_models) == sorted(REHEARSAL_LOCATIONS)
    assert {(m.train_rows, m.validation_rows) for m in city_models.values()} == {(700, 200)}


@pytest.mark.parametrize("location", REHEARSAL_LOCATIONS)
def test_validation_error_is_the_noise_level(
    city_models: dict[str, CityModel], rehearsal_datasets: dict[str, LocationDataset], location: str
) -> None:
    city = city_models[location]
    sigma = rehearsal_datasets[location].coefficients.noise_sd
    sampling = STANDARD_ERRORS / math.sqrt(2 * city.validation_rows)
    upper = sigma * math.sqrt(1 + PARAMETERS / city.train_rows) * (1 + sampling)
    lower = sigma * (1 - sampling)
    assert lower < city.validation_rmse < upper, (location, city.validation_rmse, lower, upper)


@pytest.mark.parametrize("location", REHEARSAL_LOCATIONS)
def test_each_city_model_recovers_its_own_prices(
    city_models: dict[str, CityModel],
    rehearsal_datasets: dict[str, LocationDataset],
    loaded_model: hp.LoadedPreprocessor,
    location: str,
) -> None:
    data = rehearsal_datasets[location]
    coefficients = city_models[location].model.coef_
    sigma, n = data.coefficients.noise_sd, city_models[location].train_rows
    square_feet = np.array([house.square_feet for house in data.train], dtype=float)
    per_square_foot = coefficients[SQUARE_FEET] / loaded_model.scales[SQUARE_FEET]
    standard_error = sigma / (math.sqrt(n) * square_feet.std())
    assert abs(per_square_foot - data.coefficients.per_square_foot) < STANDARD_ERRORS * standard_error
    # A binary feature present in about half the rows: standard error about 2 sigma / sqrt(n).
    binary_error = STANDARD_ERRORS * 2 * sigma / math.sqrt(n)
    deck = coefficients[DECK_Y] - coefficients[DECK_N]
    porch = coefficients[FRONT_PORCH_Y] - coefficients[FRONT_PORCH_N]
    assert abs(deck - data.coefficients.deck) < binary_error
    assert abs(porch - data.coefficients.front_porch) < binary_error
    assert deck > 0
    assert porch > 0


def test_new_york_square_feet_are_worth_far_more_than_houston_ones(
    city_models: dict[str, CityModel], loaded_model: hp.LoadedPreprocessor
) -> None:
    """The point of one model per city, measured on the fitted models (same shared scaling)."""
    new_york = city_models["NewYork_NY"].model.coef_[SQUARE_FEET]
    houston = city_models["Houston_TX"].model.coef_[SQUARE_FEET]
    assert new_york > 3 * houston > 0
    chicago = city_models["Chicago_IL"].model.coef_[SQUARE_FEET]
    san_francisco = city_models["SanFrancisco_CA"].model.coef_[SQUARE_FEET]
    assert houston < chicago < new_york < san_francisco
