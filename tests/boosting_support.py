"""XGBoost and LightGBM models trained through modelci's own train stage on small datasets that
ship with scikit-learn (no network): the model and integration tests of the boosting extra."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from modelci.config import DataParams, TrainParams

# Each estimator on a dataset of its task: binary, multiclass and regression are all covered.
CASES = {
    "xgboost.XGBClassifier": ("load_breast_cancer", "binary"),
    "xgboost.XGBRegressor": ("load_diabetes", "regression"),
    "lightgbm.LGBMClassifier": ("load_wine", "multiclass"),
    "lightgbm.LGBMRegressor": ("load_diabetes", "regression"),
}
ESTIMATORS = list(CASES)
FEATURES = 8  # the first columns of each dataset: enough for real trees, quick to serve


def require(estimator: str) -> None:
    """Skip when the estimator's library (the boosting extra) is not installed."""
    pytest.importorskip(estimator.split(".", 1)[0], reason="the boosting extra is not installed")


def dataset(estimator: str) -> tuple[pd.DataFrame, DataParams]:
    """The estimator's dataset as a frame, and the data section that declares it."""
    import sklearn.datasets

    loader, task = CASES[estimator]
    bunch = getattr(sklearn.datasets, loader)(as_frame=True)
    frame = bunch.frame.iloc[:, :FEATURES].copy()
    frame.columns = [f"x{index}" for index in range(FEATURES)]
    frame["y"] = bunch.target
    columns: dict[str, Any] = {
        name: {"type": "float", "min": float(frame[name].min()), "max": float(frame[name].max())}
        for name in frame.columns[:FEATURES]
    }
    if task == "regression":
        columns["y"] = {"type": "float"}
    else:
        columns["y"] = {"type": "int", "min": 0, "max": int(frame["y"].max())}
    data = DataParams.model_validate(
        {"source": f"{loader}.csv", "target": "y", "task": task, "columns": columns}
    )
    return frame, data


def train_params(estimator: str) -> TrainParams:
    """Few small trees; no scaling (trees do not need it, and XGBoost's split points are data
    values that a float32 scaler in ONNX would not reproduce exactly: docs/pipeline.md)."""
    extra = {"verbose": -1} if estimator.startswith("lightgbm") else {}
    return TrainParams(
        estimator=estimator,
        estimator_params={"n_estimators": 30, "max_depth": 4, "learning_rate": 0.2, **extra},
        seed=7,
        scale_numeric=False,
    )


def fitted(estimator: str) -> tuple[Any, pd.DataFrame, DataParams, TrainParams]:
    """The fitted pipeline, its training frame, and the params that made it."""
    from modelci.pipeline.train import fit

    frame, data = dataset(estimator)
    train = train_params(estimator)
    return fit(frame, data, train), frame, data, train
