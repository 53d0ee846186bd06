"""Synthetic housing data, one reproducible data set per location (pure standard library).

Why this exists: the walkthrough's point is that *features move prices differently per city*, so
each city gets its own model. The original generator used one formula everywhere, had no noise and
ignored DECK; this one gives every location its own coefficients, adds Gaussian noise and makes
both FRONT_PORCH and DECK matter. It uses only the standard library so the data-generation Lambda
can run it without numpy, and the scikit-learn preprocessor imports its column names from here so
the two sides cannot disagree about the layout.

Row layout (CSV, no header, ``\\n`` line endings)::

    YEAR_BUILT,SQUARE_FEET,NUM_BEDROOMS,NUM_BATHROOMS,LOT_ACRES,GARAGE_SPACES,FRONT_PORCH,DECK,PRICE
    1993,2728,6,3.0,0.70,1,y,y,1812345.67

The label PRICE is the **last** column, after the 8 features in the order a serving request
sends them; the preprocessor's labelled batch transform moves it to the first column.

Features (per house, drawn in this order from the location's own ``random.Random``):

- YEAR_BUILT: round(normal(1995, 10)), clamped to 1900..2019
- SQUARE_FEET: round(normal(3000, 750)), clamped to 500..6500
- NUM_BEDROOMS: uniform integer 2..6
- NUM_BATHROOMS: uniform from 1.0, 1.5, 2.0, 2.5, 3.0
- LOT_ACRES: normal(1.0, 0.25) rounded to 2 decimals, at least 0.10
- GARAGE_SPACES: uniform integer 0..3
- FRONT_PORCH, DECK: ``y`` or ``n`` with probability 1/2 each

Price (USD, rounded to cents), linear in the features as written to the CSV::

    PRICE = base + sqft * SQUARE_FEET + year * (YEAR_BUILT - 1995) + bedroom * NUM_BEDROOMS
            + bathroom * NUM_BATHROOMS + lot * LOT_ACRES + garage * GARAGE_SPACES
            + porch * [FRONT_PORCH = y] + deck * [DECK = y] + normal(0, noise_sd)

Coefficients of the default locations (USD per unit: sqft = per square foot, year = per year
newer than 1995, bed = per bedroom, bath = per bathroom, lot = per lot acre, garage = per garage
space, porch and deck = when present, noise = standard deviation of the noise term):

| Location        |    base | sqft |  year |    bed |   bath |     lot | garage |  porch |   deck |  noise |
|-----------------|--------:|-----:|------:|-------:|-------:|--------:|-------:|-------:|-------:|-------:|
| NewYork_NY      | 120,000 |  450 | 1,500 | 30,000 | 35,000 | 150,000 | 25,000 | 20,000 | 15,000 | 45,000 |
| LosAngeles_CA   | 110,000 |  400 | 1,800 | 25,000 | 30,000 | 180,000 | 15,000 | 10,000 | 25,000 | 40,000 |
| Chicago_IL      |  60,000 |  170 |   900 | 12,000 | 15,000 |  50,000 | 12,000 |  9,000 |  8,000 | 20,000 |
| Houston_TX      |  45,000 |  110 |   700 |  9,000 | 12,000 |  35,000 |  8,000 |  6,000 | 10,000 | 15,000 |
| Dallas_TX       |  50,000 |  130 |   800 | 10,000 | 12,000 |  40,000 |  9,000 |  7,000 | 11,000 | 16,000 |
| Phoenix_AZ      |  55,000 |  150 | 1,000 |  9,000 | 13,000 |  30,000 | 10,000 |  4,000 |  6,000 | 18,000 |
| Philadelphia_PA |  50,000 |  140 |   600 | 11,000 | 14,000 |  45,000 | 10,000 | 12,000 |  7,000 | 17,000 |
| SanAntonio_TX   |  40,000 |  100 |   600 |  8,000 | 10,000 |  30,000 |  7,000 |  5,000 |  9,000 | 14,000 |
| SanDiego_CA     | 100,000 |  380 | 1,600 | 22,000 | 28,000 | 160,000 | 14,000 | 11,000 | 22,000 | 38,000 |
| SanFrancisco_CA | 150,000 |  600 | 2,000 | 35,000 | 40,000 | 220,000 | 30,000 | 15,000 | 20,000 | 55,000 |

Any other location (users configure their own) gets coefficients derived from a SHA-256 hash of
its name with a fixed salt, so they never depend on the data seed: a *market level* uniform in
1.0..5.0 multiplies the Houston-like baseline (base 40,000, sqft 110, year 500, bedroom 8,000,
bathroom 10,000, lot 35,000, garage 7,000, porch 4,500, deck 6,000), each coefficient then gets
its own uniform factor 0.8..1.2, and noise_sd is 100 times the per-square-foot coefficient.

Reproducibility: the rows of a location come from ``random.Random`` seeded with the first 8
bytes of SHA-256(``"mme-housing-rows:<seed>:<location>"``), never Python's ``hash()`` (which is
salted per process). Row *i* of a location is the same house whatever the split fractions; the
splits are consecutive slices (train, then validation, then test), so they are disjoint by
construction and no row can leak from one split into another.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from mme_shared.naming import validate_location_name

NUMERIC_FEATURE_COLUMNS: Final = (
    "YEAR_BUILT",
    "SQUARE_FEET",
    "NUM_BEDROOMS",
    "NUM_BATHROOMS",
    "LOT_ACRES",
    "GARAGE_SPACES",
)
CATEGORICAL_FEATURE_COLUMNS: Final = ("FRONT_PORCH", "DECK")
FEATURE_COLUMNS: Final = NUMERIC_FEATURE_COLUMNS + CATEGORICAL_FEATURE_COLUMNS
"""The 8 features, in the order of a raw CSV row and of a serving request."""
LABEL_COLUMN: Final = "PRICE"
RAW_COLUMNS: Final = (*FEATURE_COLUMNS, LABEL_COLUMN)
"""A generated CSV row: the 8 features, then the label last."""
CATEGORY_VALUES: Final = ("n", "y")
"""The values the generator writes for FRONT_PORCH and DECK."""

YEAR_BUILT_RANGE: Final = (1900, 2019)
SQUARE_FEET_RANGE: Final = (500, 6500)
NUM_BEDROOMS_RANGE: Final = (2, 6)
NUM_BATHROOMS_VALUES: Final = (1.0, 1.5, 2.0, 2.5, 3.0)
MIN_LOT_ACRES: Final = 0.10
GARAGE_SPACES_RANGE: Final = (0, 3)
REFERENCE_YEAR: Final = 1995
"""YEAR_BUILT enters the price as years newer than this (the mean build year)."""

_ROW_SEED_PREFIX: Final = "mme-housing-rows"
_COEFFICIENT_SALT: Final = "mme-housing-coefficients"


@dataclass(frozen=True)
class PriceCoefficients:
    """One location's price formula (USD); see the module docstring for the formula."""

    base: float
    per_square_foot: float
    per_year_newer: float
    per_bedroom: float
    per_bathroom: float
    per_lot_acre: float
    per_garage_space: float
    front_porch: float
    deck: float
    noise_sd: float


_Coeff = PriceCoefficients
DEFAULT_COEFFICIENTS: Final[dict[str, PriceCoefficients]] = {
    # location:                base,  sqft,  year,   bed,  bath,   lot, garage, porch, deck, noise
    "NewYork_NY":      _Coeff( 120e3,   450,  1500,  30e3,  35e3, 150e3,  25e3,  20e3,  15e3,  45e3),
    "LosAngeles_CA":   _Coeff( 110e3,   400,  1800,  25e3,  30e3, 180e3,  15e3,  10e3,  25e3,  40e3),
    "Chicago_IL":      _Coeff(  60e3,   170,   900,  12e3,  15e3,  50e3,  12e3,   9e3,   8e3,  20e3),
    "Houston_TX":      _Coeff(  45e3,   110,   700,   9e3,  12e3,  35e3,   8e3,   6e3,  10e3,  15e3),
    "Dallas_TX":       _Coeff(  50e3,   130,   800,  10e3,  12e3,  40e3,   9e3,   7e3,  11e3,  16e3),
    "Phoenix_AZ":      _Coeff(  55e3,   150,  1000,   9e3,  13e3,  30e3,  10e3,   4e3,   6e3,  18e3),
    "Philadelphia_PA": _Coeff(  50e3,   140,   600,  11e3,  14e3,  45e3,  10e3,  12e3,   7e3,  17e3),
    "SanAntonio_TX":   _Coeff(  40e3,   100,   600,   8e3,  10e3,  30e3,   7e3,   5e3,   9e3,  14e3),
    "SanDiego_CA":     _Coeff( 100e3,   380,  1600,  22e3,  28e3, 160e3,  14e3,  11e3,  22e3,  38e3),
    "SanFrancisco_CA": _Coeff( 150e3,   600,  2000,  35e3,  40e3, 220e3,  30e3,  15e3,  20e3,  55e3),
}  # fmt: skip
"""The documented table; the keys are the walkthrough's 10 default locations."""

_DERIVED_BASELINE: Final = PriceCoefficients(
    base=40_000,
    per_square_foot=110,
    per_year_newer=500,
    per_bedroom=8_000,
    per_bathroom=10_000,
    per_lot_acre=35_000,
    per_garage_space=7_000,
    front_porch=4_500,
    deck=6_000,
    noise_sd=0,  # replaced: noise_sd is 100 x per_square_foot
)
DERIVED_MARKET_LEVEL_RANGE: Final = (1.0, 5.0)
DERIVED_JITTER_RANGE: Final = (0.8, 1.2)
DERIVED_NOISE_PER_SQFT_COEFFICIENT: Final = 100.0


def _sha256_int(text: str) -> int:
    """A stable 64-bit integer from text (Python's hash() is salted per process, so never that)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def coefficients_for(location: str) -> PriceCoefficients:
    """The price formula of ``location``: the documented table, else derived from the name's hash.

    Derived coefficients depend on the name only (not on the data seed), because a city's market
    is a property of the city; the seed only decides which houses are drawn.
    """
    validate_location_name(location)
    if location in DEFAULT_COEFFICIENTS:
        return DEFAULT_COEFFICIENTS[location]
    rng = random.Random(_sha256_int(f"{_COEFFICIENT_SALT}:{location}"))  # noqa: S311 (reproducible, not secret)
    level = rng.uniform(*DERIVED_MARKET_LEVEL_RANGE)

    def scaled(baseline: float) -> float:
        return float(round(baseline * level * rng.uniform(*DERIVED_JITTER_RANGE)))

    b = _DERIVED_BASELINE
    per_square_foot = scaled(b.per_square_foot)
    return PriceCoefficients(
        base=scaled(b.base),
        per_square_foot=per_square_foot,
        per_year_newer=scaled(b.per_year_newer),
        per_bedroom=scaled(b.per_bedroom),
        per_bathroom=scaled(b.per_bathroom),
        per_lot_acre=scaled(b.per_lot_acre),
        per_garage_space=scaled(b.per_garage_space),
        front_porch=scaled(b.front_porch),
        deck=scaled(b.deck),
        noise_sd=DERIVED_NOISE_PER_SQFT_COEFFICIENT * per_square_foot,
    )


def location_seed(location: str, seed: int) -> int:
    """The seed of one location's row generator, derived from the global seed and the name."""
    return _sha256_int(f"{_ROW_SEED_PREFIX}:{seed}:{location}")


@dataclass(frozen=True)
class House:
    """One generated row: the 8 features in CSV order, then the label."""

    year_built: int
    square_feet: int
    num_bedrooms: int
    num_bathrooms: float
    lot_acres: float
    garage_spaces: int
    front_porch: str
    deck: str
    price: float

    def csv_line(self) -> str:
        """The row as one CSV line (no newline), label last, in :data:`RAW_COLUMNS` order."""
        return (
            f"{self.year_built},{self.square_feet},{self.num_bedrooms},{self.num_bathrooms:.1f},"
            f"{self.lot_acres:.2f},{self.garage_spaces},{self.front_porch},{self.deck},{self.price:.2f}"
        )


def expected_price(house: House, coefficients: PriceCoefficients) -> float:
    """The noise-free price of ``house`` under ``coefficients`` (what a perfect model predicts)."""
    c = coefficients
    return (
        c.base
        + c.per_square_foot * house.square_feet
        + c.per_year_newer * (house.year_built - REFERENCE_YEAR)
        + c.per_bedroom * house.num_bedrooms
        + c.per_bathroom * house.num_bathrooms
        + c.per_lot_acre * house.lot_acres
        + c.per_garage_space * house.garage_spaces
        + (c.front_porch if house.front_porch == "y" else 0.0)
        + (c.deck if house.deck == "y" else 0.0)
    )


def _draw_house(rng: random.Random, coefficients: PriceCoefficients) -> House:
    year_built = min(max(round(rng.gauss(1995, 10)), YEAR_BUILT_RANGE[0]), YEAR_BUILT_RANGE[1])
    square_feet = min(max(round(rng.gauss(3000, 750)), SQUARE_FEET_RANGE[0]), SQUARE_FEET_RANGE[1])
    num_bedrooms = rng.randint(*NUM_BEDROOMS_RANGE)
    num_bathrooms = rng.choice(NUM_BATHROOMS_VALUES)
    lot_acres = max(round(rng.gauss(1.0, 0.25), 2), MIN_LOT_ACRES)
    garage_spaces = rng.randint(*GARAGE_SPACES_RANGE)
    front_porch = "y" if rng.random() < 0.5 else "n"
    deck = "y" if rng.random() < 0.5 else "n"
    noise = rng.gauss(0.0, coefficients.noise_sd)
    house = House(
        year_built, square_feet, num_bedrooms, num_bathrooms, lot_acres, garage_spaces, front_porch, deck, 0.0
    )
    price = round(expected_price(house, coefficients) + noise, 2)
    return House(
        year_built,
        square_feet,
        num_bedrooms,
        num_bathrooms,
        lot_acres,
        garage_spaces,
        front_porch,
        deck,
        price,
    )


@dataclass(frozen=True)
class LocationDataset:
    """One location's houses in three disjoint, consecutive splits."""

    location: str
    coefficients: PriceCoefficients
    train: tuple[House, ...]
    validation: tuple[House, ...]
    test: tuple[House, ...]

    def splits(self) -> dict[str, tuple[House, ...]]:
        """The splits by the names the S3 layout uses (``train``, ``validation``, ``test``)."""
        return {"train": self.train, "validation": self.validation, "test": self.test}


def split_sizes(houses: int, validation_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, validation, test) row counts; each fraction is rounded to the nearest row."""
    if isinstance(houses, bool) or not isinstance(houses, int) or houses < 1:
        raise ValueError(f"houses must be a positive integer, got {houses!r}")
    for name, fraction in (("validation_fraction", validation_fraction), ("test_fraction", test_fraction)):
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.0 <= fraction < 1.0:
            raise ValueError(f"{name} must be a number from 0 up to (not including) 1, got {fraction!r}")
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            "validation_fraction + test_fraction must be below 1 so that some rows train the model, "
            f"got {validation_fraction + test_fraction:g}"
        )
    validation = round(houses * validation_fraction)
    test = round(houses * test_fraction)
    train = houses - validation - test
    if train < 1:
        raise ValueError(
            f"{houses} houses leave no training row after {validation} validation and {test} test rows; "
            "generate more houses or use smaller fractions"
        )
    return train, validation, test


def generate_location_dataset(
    location: str,
    *,
    houses: int,
    seed: int,
    validation_fraction: float,
    test_fraction: float,
) -> LocationDataset:
    """Generate ``houses`` rows for ``location`` and split them into train/validation/test.

    Deterministic: the same arguments give the same rows on every machine and Python process.
    """
    validate_location_name(location)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    n_train, n_validation, _ = split_sizes(houses, validation_fraction, test_fraction)
    coefficients = coefficients_for(location)
    rng = random.Random(location_seed(location, seed))  # noqa: S311 (reproducible, not secret)
    rows = tuple(_draw_house(rng, coefficients) for _ in range(houses))
    return LocationDataset(
        location=location,
        coefficients=coefficients,
        train=rows[:n_train],
        validation=rows[n_train : n_train + n_validation],
        test=rows[n_train + n_validation :],
    )


def to_csv(houses: Iterable[House]) -> str:
    """Houses as CSV text: no header, label last, one ``\\n``-terminated line per house."""
    return "".join(f"{house.csv_line()}\n" for house in houses)
