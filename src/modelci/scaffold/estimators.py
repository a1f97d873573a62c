"""The estimators ``modelci init --estimator`` offers, with the params it starts them with (no
imports beyond the standard library: the CLI's parser lists them)."""

from __future__ import annotations

from dataclasses import dataclass

_HIST_PARAMS = "{learning_rate: 0.05, max_iter: 200, max_leaf_nodes: 15}"
_XGB_PARAMS = "{n_estimators: 200, learning_rate: 0.05, max_depth: 6}"
_LGBM_PARAMS = "{n_estimators: 200, learning_rate: 0.05, num_leaves: 15, verbose: -1}"


@dataclass(frozen=True)
class Estimator:
    """An estimator ``modelci init --estimator`` knows: its starting params and what it needs."""

    params: str
    classifier: bool
    extra: str | None = None  # the modelci extra that installs its library
    scale_numeric: bool = True
    # Trains on a Dask cluster through its library's Dask interface (``compute.engine: dask``).
    distributed: bool = False


# Trees need no scaling, and XGBoost's split points are training values, which a scaler run in
# float32 by ONNX Runtime would not reproduce exactly (docs/pipeline.md, "XGBoost and LightGBM").
KNOWN_ESTIMATORS = {
    "sklearn.ensemble.HistGradientBoostingClassifier": Estimator(_HIST_PARAMS, True),
    "sklearn.ensemble.HistGradientBoostingRegressor": Estimator(_HIST_PARAMS, False),
    "xgboost.XGBClassifier": Estimator(_XGB_PARAMS, True, "boosting", False),
    "xgboost.XGBRegressor": Estimator(_XGB_PARAMS, False, "boosting", False),
    "lightgbm.LGBMClassifier": Estimator(_LGBM_PARAMS, True, "boosting", False),
    "lightgbm.LGBMRegressor": Estimator(_LGBM_PARAMS, False, "boosting", False),
    # `init --engine dask`: the Dask engine encodes the columns from the schema and never scales.
    "xgboost.dask.DaskXGBClassifier": Estimator(_XGB_PARAMS, True, "dask", distributed=True),
    "xgboost.dask.DaskXGBRegressor": Estimator(_XGB_PARAMS, False, "dask", distributed=True),
    "lightgbm.DaskLGBMClassifier": Estimator(_LGBM_PARAMS, True, "dask", distributed=True),
    "lightgbm.DaskLGBMRegressor": Estimator(_LGBM_PARAMS, False, "dask", distributed=True),
}
ENGINES = ("local", "dask")
