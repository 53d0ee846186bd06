"""Benchmark of the preprocessor's serving path (run from the repository root).

    .venv/bin/python -m benchmarks.serving_benchmark

Fits the shared preprocessor on the default locations' training data (with the training entry's
own ``train`` function), loads it with ``model_fn`` and times what the container does per
request, ``input_fn -> predict_fn -> output_fn``:

- one-row latency: the walkthrough's request ``1993,2728,6,3.0,0.7,1,y,y`` as text/csv, p50 and p99;
- batch throughput: one 10,000-row text/csv request, rows per second (median of the repeats).

It also times the plain approach (``pandas.read_csv`` + ``ColumnTransformer.transform``) for one
row, for comparison. Targets (issue 4): p50 <= 1 ms, p99 <= 3 ms, >= 100,000 rows/s. This is a
measurement, not a test: it prints the figures and whether they meet the targets.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]

from mme_shared.housing_data import FEATURE_COLUMNS, generate_location_dataset, to_csv
from preprocessor import housing_preprocessor as hp
from project_config import load_default_config

ONE_ROW = "1993,2728,6,3.0,0.7,1,y,y"
BATCH_ROWS = 10_000
TARGET_P50_MS = 1.0
TARGET_P99_MS = 3.0
TARGET_ROWS_PER_SECOND = 100_000


def fit_default_preprocessor(model_dir: Path) -> hp.LoadedPreprocessor:
    """Train on every default location's train split, as the SageMaker training job would."""
    data = load_default_config().data
    train_dir = model_dir.parent / "train"
    for location in data.locations:
        dataset = generate_location_dataset(
            location,
            houses=data.houses_per_location,
            seed=data.seed,
            validation_fraction=data.validation_fraction,
            test_fraction=data.test_fraction,
        )
        (train_dir / location).mkdir(parents=True)
        (train_dir / location / "train.csv").write_text(to_csv(dataset.train), encoding="utf-8")
    hp.train(train_dir, model_dir)
    return hp.model_fn(str(model_dir))


def batch_body(rows: int) -> str:
    """``rows`` generated houses as a serving request: the 8 features, no label."""
    dataset = generate_location_dataset(
        "Dallas_TX", houses=rows, seed=2024, validation_fraction=0.0, test_fraction=0.0
    )
    return "\n".join(line.rsplit(",", 1)[0] for line in to_csv(dataset.train).splitlines())


def time_calls(call: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    """Wall-clock seconds of each of ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    durations = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        call()
        durations.append((time.perf_counter_ns() - start) / 1e9)
    return durations


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--one-row-requests", type=int, default=20_000, help="timed one-row requests")
    parser.add_argument("--batch-repeats", type=int, default=30, help="timed 10,000-row requests")
    args = parser.parse_args()
    os.environ.pop(hp.MODE_ENV_VAR, None)  # real-time serving: exactly the 8 features

    with tempfile.TemporaryDirectory() as scratch:
        model = fit_default_preprocessor(Path(scratch) / "model")

    def serve(body: str) -> object:
        return hp.output_fn(hp.predict_fn(hp.input_fn(body, "text/csv"), model), "text/csv")

    def plain_pandas_one_row() -> object:
        frame = pd.read_csv(io.StringIO(ONE_ROW), header=None, names=list(FEATURE_COLUMNS))
        return model.column_transformer.transform(frame)

    one_row = time_calls(lambda: serve(ONE_ROW), args.one_row_requests, warmup=1_000)
    plain = time_calls(plain_pandas_one_row, 500, warmup=50)
    body = batch_body(BATCH_ROWS)
    result = serve(body)
    if not (isinstance(result, tuple) and result[0].count("\n") == BATCH_ROWS - 1):
        raise SystemExit(f"the batch request did not produce {BATCH_ROWS} rows: {result!r}")
    batch = time_calls(lambda: serve(body), args.batch_repeats, warmup=3)

    p50_ms = percentile(one_row, 0.50) * 1e3
    p99_ms = percentile(one_row, 0.99) * 1e3
    rows_per_second = BATCH_ROWS / statistics.median(batch)
    print(f"one-row request  p50: {p50_ms:.3f} ms  (target <= {TARGET_P50_MS} ms)")
    print(f"one-row request  p99: {p99_ms:.3f} ms  (target <= {TARGET_P99_MS} ms)")
    print(f"10,000-row request: {rows_per_second:,.0f} rows/s  (target >= {TARGET_ROWS_PER_SECOND:,})")
    print(
        f"  for comparison: pandas.read_csv + ColumnTransformer.transform, one row, p50 "
        f"{percentile(plain, 0.50) * 1e3:.3f} ms; slowest 10,000-row request "
        f"{BATCH_ROWS / max(batch):,.0f} rows/s"
    )
    met = p50_ms <= TARGET_P50_MS and p99_ms <= TARGET_P99_MS and rows_per_second >= TARGET_ROWS_PER_SECOND
    print(f"meets the targets: {'yes' if met else 'NO'}")


if __name__ == "__main__":
    main()
