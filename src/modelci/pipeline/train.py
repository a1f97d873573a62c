"""Stage ``train``: preprocessing chosen by column type + the estimator named in params."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

import pandas as pd

from modelci.config import DataParams, Params, TrainParams
from modelci.errors import ConfigError
from modelci.pipeline.paths import DEFAULT_PATHS, StagePaths
from modelci.threads import fixed_threads


def import_estimator(path: str) -> type:
    """Import ``package.module.Class`` named by ``train.estimator``."""
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"params.yaml: train.estimator: cannot import {path!r}: {error}"
        ) from None
    estimator = getattr(module, class_name, None)
    if estimator is None:
        raise ConfigError(
            f"params.yaml: train.estimator: cannot import {path!r}: "
            f"module {module_name!r} has no attribute {class_name!r}"
        )
    if not inspect.isclass(estimator) or not hasattr(estimator, "fit"):
        raise ConfigError(f"params.yaml: train.estimator: {path!r} is not an estimator class")
    return estimator


def make_estimator(data: DataParams, train: TrainParams) -> Any:
    """Instantiate the estimator, seeding it with ``train.seed`` unless params set random_state,
    and giving it ``train.n_threads`` workers unless params set n_jobs.

    Also the check run before any work (``check-params``, ``train``, ``evaluate``): the class
    imports, is an estimator of the task's kind, and accepts ``estimator_params`` (names by
    construction, values by scikit-learn's own parameter constraints when it declares them).
    """
    from sklearn.base import is_classifier, is_regressor
    from sklearn.utils._param_validation import InvalidParameterError

    cls = import_estimator(train.estimator)
    kwargs = dict(train.estimator_params)
    accepted = inspect.signature(cls).parameters
    if "random_state" in accepted:
        kwargs.setdefault("random_state", train.seed)
    if "n_jobs" in accepted:
        kwargs.setdefault("n_jobs", train.n_threads)
    try:
        estimator = cls(**kwargs)
    except TypeError as error:
        raise ConfigError(f"params.yaml: train.estimator_params: {error}") from None
    if data.is_classification and not is_classifier(estimator):
        raise ConfigError(
            f"params.yaml: train.estimator: {train.estimator} is not a classifier "
            f"but data.task is {data.task!r}"
        )
    if not data.is_classification and not is_regressor(estimator):
        raise ConfigError(
            f"params.yaml: train.estimator: {train.estimator} is not a regressor "
            "but data.task is 'regression'"
        )
    validate_params = getattr(estimator, "_validate_params", None)
    if callable(validate_params):
        try:
            validate_params()
        except InvalidParameterError as error:
            raise ConfigError(f"params.yaml: train.estimator_params: {error}") from None
    return estimator


def build_pipeline(data: DataParams, train: TrainParams) -> Any:
    """Numeric columns: median impute (+ scale); categorical and bool: mode impute + one-hot."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [name for name in data.features if data.columns[name].is_numeric]
    categorical = [name for name in data.features if not data.columns[name].is_numeric]
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if train.scale_numeric:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ]
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        transformers.append(("categorical", Pipeline(categorical_steps), categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", make_estimator(data, train))])


def features_and_target(frame: pd.DataFrame, data: DataParams) -> tuple[pd.DataFrame, pd.Series]:
    return frame[data.features], frame[data.target]


def fit(frame: pd.DataFrame, data: DataParams, train: TrainParams) -> Any:
    from sklearn.utils._param_validation import InvalidParameterError

    pipeline = build_pipeline(data, train)
    features, target = features_and_target(frame, data)
    try:
        with fixed_threads(train.n_threads):
            return pipeline.fit(features, target)
    except InvalidParameterError as error:
        raise ConfigError(f"params.yaml: train.estimator_params: {error}") from None


def run(params: Params, paths: StagePaths = DEFAULT_PATHS) -> str:
    """Fit and write the model file; returns its sha256 (MLflow logging happens in evaluate)."""
    from modelci.modelfile import save_model

    model = fit(pd.read_parquet(paths.train), params.data, params.train)
    return hashlib.sha256(save_model(model, paths.model)).hexdigest()
