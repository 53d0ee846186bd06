"""The transform modes answer rows they cannot transform with one marker line, not a 4xx.

The training pipeline runs one batch transform per split over every location's file; a 4xx for
one file's mini-batch would fail the job for every location. So rows refused in either transform
mode (``labelled-transform``, ``unlabelled-transform``: both read the same raw files) come back 200
as ``#mme-transform-error: <reason>`` (the module docstring), which the check step finds in that
location's ``.out`` file. Rejections that say the job itself is configured wrongly (406, 413, 415)
stay 4xx, and serving mode is unchanged (tests/ml/test_preprocessor_serving.py). Every test that
takes ``transform_mode`` runs once per transform mode.
"""

from __future__ import annotations

import math
from http import HTTPStatus

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mme_shared import transform_output
from mme_shared.housing_data import FEATURE_COLUMNS, LocationDataset, to_csv
from preprocessor import housing_preprocessor as hp
from tests.ml.conftest import TRANSFORM_MODES

WALKTHROUGH_ROW = "1993,2728,6,3.0,0.7,1,y,y"
LABELLED_ROW = f"{WALKTHROUGH_ROW},439972.62"
MARKER = "#mme-transform-error: "


def invoke(
    model: hp.LoadedPreprocessor,
    body: str | bytes,
    content_type: str = "text/csv",
    accept: str | None = "text/csv",
) -> tuple[str, str] | hp.RejectedRequest:
    return hp.output_fn(hp.predict_fn(hp.input_fn(body, content_type), model), accept)


def test_the_marker_is_the_documented_text() -> None:
    assert hp.TRANSFORM_ERROR_MARKER + " " == MARKER


def test_the_transform_modes_are_the_shared_values() -> None:
    """The values the training pipeline imports from mme_shared select exactly these two modes."""
    assert [mode.value for mode in TRANSFORM_MODES] == [
        transform_output.LABELLED_TRANSFORM_MODE,
        transform_output.UNLABELLED_TRANSFORM_MODE,
    ]
    assert [mode.value for mode in TRANSFORM_MODES] == ["labelled-transform", "unlabelled-transform"]
    assert hp.MODE_ENV_VAR == transform_output.PREPROCESSOR_MODE_ENV == "MME_PREPROCESSOR_MODE"


BAD_ROWS = [
    pytest.param(
        WALKTHROUGH_ROW, "text/csv", "Row 1 has 8 fields but 9 are expected here", id="label-missing"
    ),
    pytest.param(
        f"{LABELLED_ROW}\n{WALKTHROUGH_ROW}", "text/csv", "Row 2 has 8 fields but 9", id="second-row-short"
    ),
    pytest.param(f"{LABELLED_ROW},1", "text/csv", "Row 1 has 10 fields but 9", id="too-many-fields"),
    pytest.param(
        "1993,big,6,3.0,0.7,1,y,y,1.0",
        "text/csv",
        "Row 1, column SQUARE_FEET: 'big' is not a finite number.",
        id="text-in-a-number",
    ),
    pytest.param(f"{WALKTHROUGH_ROW},n/a", "text/csv", "column PRICE: 'n/a' is not a finite", id="bad-label"),
    pytest.param(f"{WALKTHROUGH_ROW},nan", "text/csv", "column PRICE: 'nan' is not a finite", id="nan-label"),
    pytest.param(
        "1993,2728,6,1.7e308,0.7,1,y,y,1.0",
        "text/csv",
        "Row 1, column NUM_BATHROOMS: 1.7e+308 is out of range",
        id="out-of-range",
    ),
    pytest.param(
        "1993,2728,6,3.0,0.7,1,y,,1.0", "text/csv", "Row 1, column DECK is empty", id="empty-category"
    ),
    pytest.param(
        f"{','.join(FEATURE_COLUMNS)},PRICE\n{LABELLED_ROW}", "text/csv", "is a header", id="header-row"
    ),
    pytest.param(f"{LABELLED_ROW}\n\n{LABELLED_ROW}", "text/csv", "Row 2 is empty", id="blank-line"),
    pytest.param(b"1993,2728,6,3.0,0.7,1,\xff,y,1.0", "text/csv", "not valid UTF-8", id="not-utf-8"),
    pytest.param("", "text/csv", "The request body is empty", id="empty-body"),
    pytest.param("[[1, 2]", "application/json", "The request body is not valid JSON", id="bad-json"),
]


@pytest.mark.parametrize(("body", "content_type", "reason"), BAD_ROWS)
@pytest.mark.usefixtures("transform_mode")
def test_rows_that_cannot_be_transformed_get_one_marker_line(
    loaded_model: hp.LoadedPreprocessor, body: str | bytes, content_type: str, reason: str
) -> None:
    result = invoke(loaded_model, body, content_type)
    assert not isinstance(result, hp.RejectedRequest), result
    line, media_type = result
    assert media_type == "text/csv"
    assert line.startswith(MARKER)
    assert reason in line
    assert line.splitlines() == [line]
    assert len(line) <= len(MARKER) + hp.MAX_TRANSFORM_ERROR_REASON_CHARS


BAD_IN_BOTH_MODES = [
    param for param in BAD_ROWS if param.id in {"header-row", "not-utf-8", "empty-body", "bad-json"}
]


@pytest.mark.parametrize(("body", "content_type", "reason"), BAD_IN_BOTH_MODES)
@pytest.mark.usefixtures("serving_mode")
def test_serving_mode_still_answers_bad_rows_with_a_400(
    loaded_model: hp.LoadedPreprocessor, body: str | bytes, content_type: str, reason: str
) -> None:
    result = invoke(loaded_model, body, content_type)
    assert isinstance(result, hp.RejectedRequest), result
    assert result.status == HTTPStatus.BAD_REQUEST
    assert reason in result.message


@pytest.mark.usefixtures("transform_mode")
def test_the_marker_is_the_same_whatever_the_accept_type(loaded_model: hp.LoadedPreprocessor) -> None:
    """A JSON Accept is valid, so bad rows are still rows: the same marker line, as text/csv."""
    as_csv = invoke(loaded_model, WALKTHROUGH_ROW, accept="text/csv")
    assert invoke(loaded_model, WALKTHROUGH_ROW, accept="application/json") == as_csv
    assert invoke(loaded_model, WALKTHROUGH_ROW, accept=None) == as_csv


DEPLOYMENT_ERRORS = [
    pytest.param(
        LABELLED_ROW, "text/plain", "text/csv", HTTPStatus.UNSUPPORTED_MEDIA_TYPE, id="content-type"
    ),
    pytest.param(LABELLED_ROW, "text/csv", "application/xml", HTTPStatus.NOT_ACCEPTABLE, id="accept"),
    pytest.param(
        WALKTHROUGH_ROW, "text/csv", "application/xml", HTTPStatus.NOT_ACCEPTABLE, id="accept-before-bad-rows"
    ),
    pytest.param(
        (LABELLED_ROW + "\n") * (hp.MAX_REQUEST_BYTES // len(LABELLED_ROW)),
        "text/csv",
        "text/csv",
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        id="larger-than-any-mini-batch",
    ),
]


@pytest.mark.parametrize(("body", "content_type", "accept", "status"), DEPLOYMENT_ERRORS)
@pytest.mark.usefixtures("transform_mode")
def test_a_misconfigured_transform_job_still_gets_its_4xx(
    loaded_model: hp.LoadedPreprocessor, body: str, content_type: str, accept: str, status: HTTPStatus
) -> None:
    """True of every file of the job alike, so failing the job loudly is right."""
    result = invoke(loaded_model, body, content_type, accept)
    assert isinstance(result, hp.RejectedRequest), result
    assert result.status == status


def test_the_reason_stays_on_one_line_whatever_it_holds() -> None:
    reason = "first\nsecond\r\nthird\rfourth\x0bfifth\x0csixth\x1cseventh\x85eighth\u2028ninth\u2029tenth\t."
    line = hp.transform_error_line(reason)
    assert line == f"{MARKER}first second third fourth fifth sixth seventh eighth ninth tenth ."
    assert line.splitlines() == [line]


def test_a_long_reason_is_cut() -> None:
    line = hp.transform_error_line("x" * 10_000)
    assert line == MARKER + "x" * (hp.MAX_TRANSFORM_ERROR_REASON_CHARS - 3) + "..."
    assert hp.transform_error_line("  \n ") == f"{MARKER}the rows could not be transformed."


def test_a_whole_split_file_still_transforms_and_never_starts_with_the_marker(
    loaded_model: hp.LoadedPreprocessor,
    rehearsal_datasets: dict[str, LocationDataset],
    transform_mode: hp.Mode,
) -> None:
    houses = rehearsal_datasets["Houston_TX"].train
    result = invoke(loaded_model, to_csv(houses))
    assert not isinstance(result, hp.RejectedRequest)
    lines = result[0].split("\n")
    assert len(lines) == len(houses)
    assert not any(line.startswith("#") for line in lines)
    label_columns = 1 if transform_mode.writes_label else 0
    assert {len(line.split(",")) for line in lines} == {label_columns + loaded_model.feature_count}


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=200, deadline=None)
@given(
    numbers=st.lists(finite, min_size=7, max_size=7),
    porch=st.sampled_from(["y", "n", "maybe"]),
    deck=st.sampled_from(["y", "n", "x"]),
)
def test_no_valid_row_can_produce_a_line_that_looks_like_the_marker(
    loaded_model: hp.LoadedPreprocessor, numbers: list[float], porch: str, deck: str
) -> None:
    """Every output line of a valid row is comma-separated float reprs: no '#' anywhere."""
    row = [*map(repr, numbers[:6]), porch, deck, repr(numbers[6])]
    batch = hp.parse_csv(",".join(row), hp.Mode.LABELLED_TRANSFORM)
    features = loaded_model.transform(batch)
    if not np.isfinite(features).all():
        return  # refused as out of range: that request gets the marker, not a data line
    line = hp.format_csv(hp.TransformedBatch(features=features, labels=batch.labels))
    assert "#" not in line
    assert "\n" not in line
    assert all(math.isfinite(float(cell)) for cell in line.split(","))
