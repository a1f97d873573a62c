"""Task metrics, slices and plot tables on hand-made predictions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from modelci.config import DataParams
from modelci.errors import ConfigError
from modelci.judge.metrics import (
    HIGHER_IS_BETTER,
    Predictions,
    compute_metrics,
    predict,
    slice_metrics,
)
from modelci.pipeline.plot_data import plot_tables

pytestmark = pytest.mark.unit


def data(task: str, **extra: object) -> DataParams:
    target = {"type": "float"} if task == "regression" else {"type": "int"}
    return DataParams.model_validate(
        {
            "source": "x.csv",
            "target": "y",
            "task": task,
            "columns": {"group": {"type": "category"}, "y": target},
            **extra,
        }
    )


BINARY = Predictions(
    y_true=np.array([0, 0, 1, 1, 1, 0]),
    y_pred=np.array([0, 1, 1, 1, 0, 0]),
    proba=np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.8, 0.2]]),
    classes=[0, 1],
)


def test_binary_metrics() -> None:
    scores = compute_metrics(BINARY, data("binary"))
    assert scores["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert scores["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert scores["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert scores["roc_auc"] == pytest.approx(8 / 9, abs=1e-6)
    assert 0 < scores["log_loss"] < 1
    assert set(scores) <= set(HIGHER_IS_BETTER)


def test_positive_label_flips_precision() -> None:
    scores = compute_metrics(BINARY, data("binary", positive_label=0))
    assert scores["roc_auc"] == pytest.approx(8 / 9, abs=1e-6)  # symmetric
    assert scores["precision"] == pytest.approx(2 / 3, abs=1e-6)


def test_unknown_positive_label_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"data\.positive_label: 7 is not a class"):
        compute_metrics(BINARY, data("binary", positive_label=7))


def test_multiclass_metrics() -> None:
    pred = Predictions(
        y_true=np.array(["a", "b", "c", "a"]),
        y_pred=np.array(["a", "b", "b", "a"]),
        proba=np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3], [0.7, 0.2, 0.1]]),
        classes=["a", "b", "c"],
    )
    scores = compute_metrics(pred, data("multiclass"))
    assert scores["accuracy"] == 0.75
    assert {"f1_macro", "f1_weighted", "roc_auc", "log_loss"} <= set(scores)
    tables = plot_tables(pred, data("multiclass"))
    assert set(tables) == {"confusion.csv", "roc.csv", "precision_recall.csv"}


def test_regression_metrics_and_plots() -> None:
    pred = Predictions(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.5, 2.0]), None, [])
    scores = compute_metrics(pred, data("regression"))
    assert scores["mae"] == pytest.approx(0.5)
    assert scores["rmse"] == pytest.approx(math.sqrt((0.25 + 1) / 3), abs=1e-6)
    tables = plot_tables(pred, data("regression"))
    assert tables["residuals.csv"]["residual"].tolist() == [0.0, -0.5, 1.0]
    assert set(tables) == {"predictions.csv", "residuals.csv"}


def test_binary_plot_tables() -> None:
    tables = plot_tables(BINARY, data("binary"))
    roc = tables["roc.csv"]
    assert list(roc.columns) == ["fpr", "tpr"]
    assert roc["fpr"].is_monotonic_increasing
    confusion = tables["confusion.csv"]
    assert confusion.to_dict("records") == [
        {"actual": "0", "predicted": "0", "count": 2},
        {"actual": "0", "predicted": "1", "count": 1},
        {"actual": "1", "predicted": "0", "count": 1},
        {"actual": "1", "predicted": "1", "count": 2},
    ]


def test_slices_skip_metrics_for_small_groups() -> None:
    frame = pd.DataFrame({"group": ["x", "x", "x", "x", "y", "y"]})
    result = slice_metrics(BINARY, frame, data("binary"), ("group",), min_rows=3)
    assert result["group"]["x"]["rows"] == 4
    assert "accuracy" in result["group"]["x"]
    assert result["group"]["y"] == {"rows": 2}


class CountingClassifier:
    """Probabilities from a fixed table; counts how often it is asked."""

    classes_ = np.array(["no", "yes"])

    def __init__(self, proba: np.ndarray) -> None:
        self.proba = proba
        self.calls: list[str] = []

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        self.calls.append("predict_proba")
        return self.proba

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        self.calls.append("predict")
        return np.asarray(self.classes_)[self.proba.argmax(axis=1)]


def test_predict_runs_a_classifier_once() -> None:
    model = CountingClassifier(np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]))
    pred = predict(model, pd.DataFrame({"x": [1, 2, 3]}), pd.Series(["no", "yes", "no"]))
    assert model.calls == ["predict_proba"]
    assert pred.y_pred.tolist() == ["no", "yes", "no"]  # a tie goes to the first class
    assert pred.classes == ["no", "yes"]


def test_predict_uses_predict_without_probabilities() -> None:
    class Regressor:
        def predict(self, features: pd.DataFrame) -> np.ndarray:
            return np.array([1.5, 2.5])

    pred = predict(Regressor(), pd.DataFrame({"x": [1, 2]}), pd.Series([1.0, 3.0]))
    assert pred.y_pred.tolist() == [1.5, 2.5]
    assert pred.proba is None
