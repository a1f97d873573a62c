"""The files evaluate commits to git stay bounded at any number of test rows (issue 14)."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy.spatial import cKDTree
from sklearn.metrics import roc_curve

from modelci.config import DataParams
from modelci.judge.metrics import Predictions, compute_metrics
from modelci.pipeline.plot_data import (
    MAX_CURVE_POINTS,
    MAX_SCATTER_ROWS,
    confusion_counts,
    evenly_spaced,
    plot_tables,
    thin_curve,
)

pytestmark = pytest.mark.unit

# What plots/ may hold in bytes, whatever the number of rows: a binary confusion matrix and two
# curves of at most MAX_CURVE_POINTS lines, or two scatters of MAX_SCATTER_ROWS lines.
PLOTS_BOUND = 128 * 1024
BIG = 1_000_000


def data(task: str) -> DataParams:
    target = {"type": "float"} if task == "regression" else {"type": "int"}
    return DataParams.model_validate(
        {"source": "x.csv", "target": "y", "task": task, "columns": {"x": target, "y": target}}
    )


@functools.cache
def binary(rows: int) -> Predictions:
    """Scores with signal: positives score higher on average (cached: read-only use)."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, rows)
    score = 1 / (1 + np.exp(-(2.0 * truth - 1 + rng.normal(0, 1.2, rows))))
    proba = np.column_stack([1 - score, score])
    return Predictions(truth, (score > 0.5).astype(int), proba, [0, 1])


def regression(rows: int) -> Predictions:
    rng = np.random.default_rng(0)
    truth = rng.normal(10, 3, rows)
    return Predictions(truth, truth + rng.normal(0, 1, rows), None, [])


@functools.cache
def big_binary_tables() -> dict[str, pd.DataFrame]:
    return plot_tables(binary(BIG), data("binary"))


def sizes(tables: dict[str, pd.DataFrame]) -> dict[str, int]:
    out = {}
    for name, table in tables.items():
        buffer = io.StringIO()
        table.to_csv(buffer, index=False)
        out[name] = len(buffer.getvalue().encode())
    return out


@pytest.mark.parametrize(("task", "make"), [("binary", binary), ("regression", regression)])
def test_plot_files_do_not_grow_with_the_rows(
    task: str, make: Callable[[int], Predictions]
) -> None:
    big = big_binary_tables() if task == "binary" else plot_tables(regression(BIG), data(task))
    small = plot_tables(make(10_000), data(task))
    assert set(small) == set(big)
    for name, table in big.items():
        limit = MAX_SCATTER_ROWS if task == "regression" else MAX_CURVE_POINTS
        assert len(table) <= limit, name
    assert sum(sizes(big).values()) <= PLOTS_BOUND, sizes(big)


def test_confusion_counts_are_exact_at_a_million_rows() -> None:
    pred = binary(BIG)
    table = big_binary_tables()["confusion.csv"]
    assert len(table) == 4
    assert table["count"].sum() == BIG
    for row in table.itertuples():
        expected = np.sum((pred.y_true == int(row.actual)) & (pred.y_pred == int(row.predicted)))
        assert row.count == expected


def test_thinned_roc_stays_close_to_the_full_curve_and_auc_uses_every_row() -> None:
    pred = binary(BIG)
    fpr, tpr, _ = roc_curve(pred.y_true, pred.proba[:, 1] if pred.proba is not None else None)
    assert len(fpr) > 10 * MAX_CURVE_POINTS  # a large curve, or the test proves nothing
    roc = big_binary_tables()["roc.csv"]
    kept = roc[["fpr", "tpr"]].to_numpy()
    full = np.column_stack([fpr, tpr])
    # every vertex of the full curve lies within the documented distance of a kept one
    nearest, _ = cKDTree(kept).query(full)
    assert nearest.max() <= 2 / (MAX_CURVE_POINTS - 2) + 1e-6
    assert (roc.iloc[0].tolist(), roc.iloc[-1].tolist()) == ([0.0, 0.0], [1.0, 1.0])
    # the AUC is the exact one, from all rows, not from the thinned curve
    exact = np.trapezoid(tpr, fpr)
    assert compute_metrics(pred, data("binary"))["roc_auc"] == pytest.approx(exact, abs=1e-6)


def test_thin_curve_keeps_small_curves_whole_and_endpoints_always() -> None:
    xs = np.linspace(0, 1, 10)
    assert thin_curve(xs, xs, limit=20).tolist() == list(range(10))
    xs = np.linspace(0, 1, 10_000)
    keep = thin_curve(xs, xs**2, limit=50)
    assert len(keep) <= 50
    assert (keep[0], keep[-1]) == (0, 9_999)
    assert thin_curve(np.zeros(100), np.zeros(100), limit=10).tolist() == [0, 99]


def test_evenly_spaced_is_bounded_and_deterministic() -> None:
    assert evenly_spaced(5, 10).tolist() == [0, 1, 2, 3, 4]
    picked = evenly_spaced(BIG, MAX_SCATTER_ROWS)
    assert len(picked) == MAX_SCATTER_ROWS
    assert (picked[0], picked[-1]) == (0, BIG - 1)
    assert (np.diff(picked) > 0).all()


def test_confusion_counts_include_pairs_never_seen() -> None:
    table = confusion_counts(np.array(["a", "b"]), np.array(["a", "a"]))
    assert table.to_dict("records") == [
        {"actual": "a", "predicted": "a", "count": 1},
        {"actual": "a", "predicted": "b", "count": 0},
        {"actual": "b", "predicted": "a", "count": 1},
        {"actual": "b", "predicted": "b", "count": 0},
    ]
