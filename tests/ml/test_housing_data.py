"""The synthetic data generator: deterministic, in range, disjoint splits, genuinely per-city prices."""

from __future__ import annotations

import csv
import io
import os
import re
import statistics
import subprocess
import sys
from dataclasses import astuple, fields
from pathlib import Path

import pytest

from mme_shared import housing_data
from mme_shared.housing_data import (
    DEFAULT_COEFFICIENTS,
    RAW_COLUMNS,
    House,
    PriceCoefficients,
    coefficients_for,
    expected_price,
    generate_location_dataset,
    location_seed,
    split_sizes,
    to_csv,
)
from project_config import ProjectConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
DERIVED_NAMES = ("Berlin_DE", "Tokyo-13", "x", "Reykjavik_IS", "a-b_c-9")


def _generate(location: str, houses: int = 1000, seed: int = 42) -> housing_data.LocationDataset:
    return generate_location_dataset(
        location, houses=houses, seed=seed, validation_fraction=0.2, test_fraction=0.1
    )


def test_default_table_covers_the_configured_locations(default_config: ProjectConfig) -> None:
    assert list(DEFAULT_COEFFICIENTS) == default_config.data.locations


def test_docstring_table_matches_the_coefficients() -> None:
    """The Markdown table users read is the table the code uses."""
    doc = housing_data.__doc__
    assert doc is not None
    table_rows = [line for line in doc.splitlines() if re.match(r"\| [A-Z][A-Za-z]+_[A-Z]{2} ", line)]
    documented = {}
    for line in table_rows:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        documented[cells[0]] = PriceCoefficients(*(float(cell.replace(",", "")) for cell in cells[1:]))
    assert documented == DEFAULT_COEFFICIENTS


def test_same_arguments_give_the_same_rows() -> None:
    assert _generate("Chicago_IL") == _generate("Chicago_IL")


def test_rows_do_not_depend_on_the_process() -> None:
    """Python's hash() is salted per process; the generator must not be."""
    script = (
        "from mme_shared.housing_data import generate_location_dataset, to_csv;"
        "d = generate_location_dataset('Phoenix_AZ', houses=50, seed=7,"
        " validation_fraction=0.2, test_fraction=0.1);"
        "print(to_csv(d.train + d.validation + d.test), end='')"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for hash_seed in ("1", "2")
    }
    expected = _generate("Phoenix_AZ", houses=50, seed=7)
    assert outputs == {to_csv(expected.train + expected.validation + expected.test)}


def test_seed_and_location_each_change_the_rows() -> None:
    base = _generate("Dallas_TX", houses=50)
    assert _generate("Dallas_TX", houses=50, seed=43).train != base.train
    assert location_seed("Dallas_TX", 42) != location_seed("Houston_TX", 42)
    assert location_seed("Dallas_TX", 42) != location_seed("Dallas_TX", 43)


def test_split_sizes_follow_the_fractions(default_config: ProjectConfig) -> None:
    data = default_config.data
    dataset = generate_location_dataset(
        "Houston_TX",
        houses=data.houses_per_location,
        seed=data.seed,
        validation_fraction=data.validation_fraction,
        test_fraction=data.test_fraction,
    )
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (700, 200, 100)
    assert list(dataset.splits()) == ["train", "validation", "test"]


def test_splits_are_disjoint_slices_of_one_sequence() -> None:
    """Row i is the same house whatever the fractions, and no row appears in two splits."""
    dataset = _generate("SanDiego_CA")
    all_rows = dataset.train + dataset.validation + dataset.test
    other = generate_location_dataset(
        "SanDiego_CA", houses=1000, seed=42, validation_fraction=0.3, test_fraction=0
    )
    assert other.train + other.validation + other.test == all_rows
    assert other.test == ()
    lines = {name: {house.csv_line() for house in rows} for name, rows in dataset.splits().items()}
    assert sum(map(len, lines.values())) == len(all_rows), "a row value repeats"
    assert not lines["train"] & lines["validation"]
    assert not lines["train"] & lines["test"]
    assert not lines["validation"] & lines["test"]


@pytest.mark.parametrize("location", [*DEFAULT_COEFFICIENTS, *DERIVED_NAMES])
def test_features_stay_in_their_documented_ranges(location: str) -> None:
    dataset = _generate(location)
    houses = dataset.train + dataset.validation + dataset.test
    assert all(1900 <= h.year_built <= 2019 for h in houses)
    assert all(500 <= h.square_feet <= 6500 for h in houses)
    assert {h.num_bedrooms for h in houses} == {2, 3, 4, 5, 6}
    assert {h.num_bathrooms for h in houses} == {1.0, 1.5, 2.0, 2.5, 3.0}
    assert all(h.lot_acres >= 0.10 and round(h.lot_acres, 2) == h.lot_acres for h in houses)
    assert {h.garage_spaces for h in houses} == {0, 1, 2, 3}
    assert {h.front_porch for h in houses} == {h.deck for h in houses} == {"y", "n"}
    assert all(h.price > 0 for h in houses)
    years = [h.year_built for h in houses]
    square_feet = [h.square_feet for h in houses]
    assert abs(statistics.mean(years) - 1995) < 1.5
    assert 8 < statistics.stdev(years) < 12
    assert abs(statistics.mean(square_feet) - 3000) < 100
    assert 650 < statistics.stdev(square_feet) < 850


@pytest.mark.parametrize("location", ["NewYork_NY", "Houston_TX", "Berlin_DE"])
def test_prices_are_the_formula_plus_noise_of_the_documented_size(location: str) -> None:
    dataset = _generate(location)
    houses = dataset.train + dataset.validation + dataset.test
    residuals = [h.price - expected_price(h, dataset.coefficients) for h in houses]
    noise_sd = dataset.coefficients.noise_sd
    assert abs(statistics.mean(residuals)) < 0.15 * noise_sd
    assert 0.9 * noise_sd < statistics.stdev(residuals) < 1.1 * noise_sd


def test_cities_price_features_differently() -> None:
    new_york, houston = DEFAULT_COEFFICIENTS["NewYork_NY"], DEFAULT_COEFFICIENTS["Houston_TX"]
    assert new_york.per_square_foot >= 4 * houston.per_square_foot
    assert len({c.per_square_foot for c in DEFAULT_COEFFICIENTS.values()}) == len(DEFAULT_COEFFICIENTS)
    assert len({astuple(c) for c in DEFAULT_COEFFICIENTS.values()}) == len(DEFAULT_COEFFICIENTS)


@pytest.mark.parametrize("location", [*DEFAULT_COEFFICIENTS, *DERIVED_NAMES])
def test_deck_and_front_porch_each_raise_the_price(location: str) -> None:
    coefficients = coefficients_for(location)
    plain = House(1995, 3000, 4, 2.0, 1.0, 1, "n", "n", 0.0)
    with_deck = House(1995, 3000, 4, 2.0, 1.0, 1, "n", "y", 0.0)
    with_porch = House(1995, 3000, 4, 2.0, 1.0, 1, "y", "n", 0.0)
    assert (
        expected_price(with_deck, coefficients) - expected_price(plain, coefficients) == coefficients.deck > 0
    )
    assert (
        expected_price(with_porch, coefficients) - expected_price(plain, coefficients)
        == coefficients.front_porch
        > 0
    )


def test_unknown_locations_get_stable_coefficients_from_their_name() -> None:
    berlin = coefficients_for("Berlin_DE")
    assert berlin == coefficients_for("Berlin_DE")
    assert berlin != coefficients_for("Berlin_de")
    assert _generate("Berlin_DE", seed=1).coefficients == _generate("Berlin_DE", seed=2).coefficients
    for name in DERIVED_NAMES:
        c = coefficients_for(name)
        low, high = housing_data.DERIVED_MARKET_LEVEL_RANGE
        jitter_low, jitter_high = housing_data.DERIVED_JITTER_RANGE
        assert 110 * low * jitter_low <= c.per_square_foot <= 110 * high * jitter_high
        assert c.noise_sd == 100 * c.per_square_foot
        assert all(value > 0 for value in astuple(c))


def test_csv_has_no_header_and_the_label_last() -> None:
    houses = _generate("Chicago_IL", houses=20).train
    text = to_csv(houses)
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == len(houses)
    assert all(len(row) == len(RAW_COLUMNS) == 9 for row in rows)
    first = houses[0]
    assert rows[0] == [
        str(first.year_built),
        str(first.square_feet),
        str(first.num_bedrooms),
        f"{first.num_bathrooms:.1f}",
        f"{first.lot_acres:.2f}",
        str(first.garage_spaces),
        first.front_porch,
        first.deck,
        f"{first.price:.2f}",
    ]
    assert [field.name.upper() for field in fields(House)] == list(RAW_COLUMNS)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"houses": 0}, "houses must be a positive integer, got 0"),
        ({"houses": 10.0}, "houses must be a positive integer, got 10.0"),
        (
            {"validation_fraction": -0.1},
            "validation_fraction must be a number from 0 up to (not including) 1",
        ),
        ({"test_fraction": 1.0}, "test_fraction must be a number from 0 up to (not including) 1, got 1.0"),
        (
            {"validation_fraction": 0.6, "test_fraction": 0.4},
            "validation_fraction + test_fraction must be below 1 so that some rows train the model, got 1",
        ),
        ({"houses": 2, "validation_fraction": 0.5, "test_fraction": 0.4}, "2 houses leave no training row"),
        ({"seed": "42"}, "seed must be an integer, got '42'"),
        ({"location": "New York"}, "location name 'New York' is not allowed"),
    ],
)
def test_invalid_arguments_are_refused(arguments: dict[str, object], message: str) -> None:
    call: dict[str, object] = {
        "location": "Dallas_TX",
        "houses": 100,
        "seed": 1,
        "validation_fraction": 0.2,
        "test_fraction": 0.1,
        **arguments,
    }
    location = call.pop("location")
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_location_dataset(location, **call)  # type: ignore[arg-type]


def test_split_sizes_round_each_fraction_to_the_nearest_row() -> None:
    assert split_sizes(1000, 0.2, 0.1) == (700, 200, 100)
    assert split_sizes(21, 0.2, 0.1) == (15, 4, 2)
    assert split_sizes(1, 0.0, 0.0) == (1, 0, 0)
