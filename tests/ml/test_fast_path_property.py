"""Property: the fast serving path gives exactly the fitted ColumnTransformer's output.

Rows are random but valid (any finite numbers, known and unknown categories, text that needs CSV
quoting); the comparison is bit for bit, so a different operation order or a lost digit fails.
"""

from __future__ import annotations

import csv
import io
import json
import os
from unittest import mock

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mme_shared.housing_data import CATEGORICAL_FEATURE_COLUMNS, FEATURE_COLUMNS, NUMERIC_FEATURE_COLUMNS
from preprocessor import housing_preprocessor as hp

PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

numbers = st.one_of(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-10_000, max_value=10_000).map(float),
)
categories = st.one_of(
    st.sampled_from(["y", "n"]),
    st.text(alphabet='abnyYN ,"é', min_size=1, max_size=6).filter(lambda text: text.strip() == text != ""),
)
Row = tuple[list[float], list[str], float]
rows = st.lists(
    st.tuples(
        st.lists(numbers, min_size=len(NUMERIC_FEATURE_COLUMNS), max_size=len(NUMERIC_FEATURE_COLUMNS)),
        st.lists(
            categories, min_size=len(CATEGORICAL_FEATURE_COLUMNS), max_size=len(CATEGORICAL_FEATURE_COLUMNS)
        ),
        numbers,
    ),
    min_size=1,
    max_size=40,
)


def reference(model: hp.LoadedPreprocessor, sample: list[Row]) -> np.ndarray:
    """ColumnTransformer.transform on a DataFrame built straight from the generated values."""
    frame = pd.DataFrame(
        [numeric + categorical for numeric, categorical, _ in sample], columns=list(FEATURE_COLUMNS)
    ).astype({column: "float64" for column in NUMERIC_FEATURE_COLUMNS})
    result: np.ndarray = model.column_transformer.transform(frame)
    return result


def as_csv(sample: list[Row], labelled: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for numeric, categorical, label in sample:
        writer.writerow([*map(repr, numeric), *categorical, *([repr(label)] if labelled else [])])
    return buffer.getvalue()


def same_bits(left: np.ndarray, right: np.ndarray) -> bool:
    return left.shape == right.shape and left.dtype == right.dtype and left.tobytes() == right.tobytes()


@PROPERTY_SETTINGS
@given(sample=rows)
def test_fast_transform_equals_the_column_transformer(
    loaded_model: hp.LoadedPreprocessor, sample: list[Row]
) -> None:
    batch = hp.ParsedBatch(
        numeric=np.array([numeric for numeric, _, _ in sample], dtype=np.float64),
        categorical=tuple(
            list(column) for column in zip(*(categorical for _, categorical, _ in sample), strict=True)
        ),
        labels=None,
    )
    assert same_bits(loaded_model.transform(batch), reference(loaded_model, sample))


@PROPERTY_SETTINGS
@given(sample=rows)
def test_csv_requests_end_to_end_equal_the_column_transformer(
    loaded_model: hp.LoadedPreprocessor, sample: list[Row]
) -> None:
    with mock.patch.dict(os.environ, {hp.MODE_ENV_VAR: hp.Mode.SERVING.value}):
        result = hp.output_fn(
            hp.predict_fn(hp.input_fn(as_csv(sample, False), "text/csv"), loaded_model), "text/csv"
        )
    assert not isinstance(result, hp.RejectedRequest), result
    served = np.array([[float(cell) for cell in line.split(",")] for line in result[0].split("\n")])
    assert same_bits(served, reference(loaded_model, sample))


@PROPERTY_SETTINGS
@given(sample=rows)
def test_labelled_json_requests_end_to_end_equal_the_column_transformer(
    loaded_model: hp.LoadedPreprocessor, sample: list[Row]
) -> None:
    body = json.dumps([[*numeric, *categorical, label] for numeric, categorical, label in sample])
    with mock.patch.dict(os.environ, {hp.MODE_ENV_VAR: hp.Mode.LABELLED_TRANSFORM.value}):
        result = hp.output_fn(
            hp.predict_fn(hp.input_fn(body.encode("utf-8"), "application/json"), loaded_model),
            "application/json",
        )
    assert not isinstance(result, hp.RejectedRequest), result
    instances = json.loads(result[0])["instances"]
    assert [instance["label"] for instance in instances] == [label for _, _, label in sample]
    served = np.array([instance["features"] for instance in instances], dtype=np.float64)
    assert same_bits(served, reference(loaded_model, sample))
