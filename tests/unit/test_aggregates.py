"""The Dask engine's evaluate: metrics, slices and plots from per-partition aggregates equal the
local stage's from every prediction (docs/scale.md, "evaluate")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelci.config import DataParams
from modelci.judge import aggregates as agg
from modelci.judge.metrics import Predictions, compute_metrics, slice_metrics, subset
from modelci.pipeline.cluster_evaluate import exact_quantiles
from modelci.pipeline.plot_data import aggregate_plot_tables, plot_tables

pytestmark = pytest.mark.unit

ROWS = 20_000


def data(task: str) -> DataParams:
    target = {"type": "float"} if task == "regression" else {"type": "int"}
    return DataParams.model_validate(
        {
            "source": "x.csv",
            "target": "y",
            "task": task,
            "columns": {"x": {"type": "float"}, "y": target},
        }
    )


def predictions(task: str) -> Predictions:
    rng = np.random.default_rng(7)
    if task == "regression":
        truth = rng.normal(50, 10, ROWS)
        return Predictions(truth, truth + rng.normal(0, 3, ROWS), None, [])
    k = 2 if task == "binary" else 4
    truth = rng.integers(0, k, ROWS)
    logits = rng.normal(0, 1.0, (ROWS, k)) + 1.5 * np.eye(k)[truth]
    # float32 like the boosters' predict_proba, with the few distinct values of a tree ensemble
    proba = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).round(4)
    proba = (proba / proba.sum(axis=1, keepdims=True)).astype(np.float32)
    return Predictions(truth, np.argmax(proba, axis=1), proba, list(range(k)))


def summed(pred: Predictions, classification: bool, cuts: list[int]) -> agg.Aggregate:
    total = agg.Aggregate()
    for mask in np.split(np.arange(ROWS), cuts):
        keep = np.zeros(ROWS, dtype=bool)
        keep[mask] = True
        total = total + agg.aggregate(subset(pred, keep), classification)
    return total


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_metrics_from_partition_aggregates_equal_the_local_ones(task: str) -> None:
    params = data(task)
    pred = predictions(task)
    local = compute_metrics(pred, params)
    total = summed(pred, params.is_classification, [1, 7_000, 7_001, 19_000])
    found = agg.metrics(total, params, pred.classes)
    assert set(found) == set(local)
    bound = 0.0
    if task == "binary":
        bound = agg.auc_error_bound(*total.scores[1])
        assert bound < 1e-3
    for name, value in local.items():
        tolerance = 2e-6 + (bound if name in ("roc_auc", "average_precision") else 0.0)
        assert found[name] == pytest.approx(value, abs=tolerance), name


def test_roc_auc_is_exact_when_no_bin_holds_both_classes() -> None:
    truth = np.array([0, 1, 0, 1, 1, 0])
    score = np.array([0.1, 0.9, 0.35, 0.3, 0.8, 0.2], dtype=np.float32)
    proba = np.column_stack([1 - score, score])
    pred = Predictions(truth, (score > 0.5).astype(int), proba, [0, 1])
    total = agg.aggregate(pred, classification=True)
    assert agg.auc_error_bound(*total.scores[1]) == 0.0
    from sklearn.metrics import average_precision_score, roc_auc_score

    assert agg.roc_auc(*total.scores[1]) == pytest.approx(roc_auc_score(truth, score))
    assert agg.average_precision(*total.scores[1]) == pytest.approx(
        average_precision_score(truth, score)
    )


def test_slices_and_plots_from_aggregates() -> None:
    params = data("binary")
    pred = predictions("binary")
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.integers(0, 40, ROWS).astype("float64")})
    local = slice_metrics(pred, frame, params, ("x",), 10)
    # the quartile edges from merged value counts, then each partition cut with them
    halves = [frame["x"][: ROWS // 2], frame["x"][ROWS // 2 :]]
    counts = halves[0].value_counts().add(halves[1].value_counts(), fill_value=0)
    edges = exact_quantiles(counts)
    np.testing.assert_array_equal(edges, frame["x"].quantile(np.linspace(0, 1, 5)).to_numpy())
    per_value: dict[str, agg.Aggregate] = {}
    for half in halves:
        cut = pd.cut(half, bins=edges, include_lowest=True, duplicates="drop").astype(str)
        for value in cut.unique():
            keep = np.zeros(ROWS, dtype=bool)
            keep[half.index[(cut == value).to_numpy()]] = True
            part = agg.aggregate(subset(pred, keep), True)
            per_value[value] = per_value[value] + part if value in per_value else part
    found = agg.slice_metrics({"x": per_value}, params, pred.classes, 10)
    assert list(found["x"]) == list(local["x"])
    for value, entry in local["x"].items():
        assert found["x"][value]["rows"] == entry["rows"]
        assert found["x"][value]["accuracy"] == pytest.approx(entry["accuracy"], abs=2e-6)

    total = summed(pred, True, [5_000])
    tables = aggregate_plot_tables(total, pred.classes, pd.DataFrame(), params)
    expected = plot_tables(pred, params)
    pd.testing.assert_frame_equal(tables["confusion.csv"], expected["confusion.csv"])
    assert len(tables["roc.csv"]) <= 250
    # the binned curve passes within a bin of the exact one
    exact = expected["roc.csv"]
    assert np.interp(0.5, tables["roc.csv"]["fpr"], tables["roc.csv"]["tpr"]) == pytest.approx(
        np.interp(0.5, exact["fpr"], exact["tpr"]), abs=0.01
    )
