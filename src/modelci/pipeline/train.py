"""Stage ``train``: preprocessing chosen by column type + the estimator named in params, or the
user's own ``train.pipeline`` factory."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from typing import Any

import pandas as pd

from modelci.config import DataParams, Params, TrainParams
from modelci.errors import ConfigError
from modelci.fileio import write_bytes, write_json
from modelci.layout import DEFAULT_PATHS, StagePaths
from modelci.threads import fixed_threads


def _import(path: str, key: str, separator: str) -> Any:
    """The object ``path`` names (``module.Class`` or ``module:function``), or a ConfigError."""
    module_name, _, name = path.rpartition(separator)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"params.yaml: {key}: cannot import {path!r}: {error}") from None
    found = getattr(module, name, None)
    if found is None:
        raise ConfigError(
            f"params.yaml: {key}: cannot import {path!r}: "
            f"module {module_name!r} has no attribute {name!r}"
        )
    return found


def import_estimator(path: str) -> type:
    """Import ``package.module.Class`` named by ``train.estimator``."""
    estimator = _import(path, "train.estimator", ".")
    if not inspect.isclass(estimator) or not hasattr(estimator, "fit"):
        raise ConfigError(f"params.yaml: train.estimator: {path!r} is not an estimator class")
    return estimator


def _check_task(model: Any, data: DataParams, key: str, name: str) -> None:
    """A classifier for classification tasks, a regressor for regression."""
    from sklearn.base import is_classifier, is_regressor

    if data.is_classification and not is_classifier(model):
        raise ConfigError(
            f"params.yaml: {key}: {name} is not a classifier but data.task is {data.task!r}"
        )
    if not data.is_classification and not is_regressor(model):
        raise ConfigError(
            f"params.yaml: {key}: {name} is not a regressor but data.task is 'regression'"
        )


def call_factory(data: DataParams, train: TrainParams) -> Any:
    """Call the ``train.pipeline`` factory with the keyword arguments it names (``data``,
    ``train``: the typed params sections), so a factory can take none, one or both."""
    if train.pipeline is None:
        raise ConfigError("params.yaml: train.pipeline: not set")
    factory = _import(train.pipeline, "train.pipeline", ":")
    if not callable(factory):
        raise ConfigError(f"params.yaml: train.pipeline: {train.pipeline!r} is not callable")
    accepted = inspect.signature(factory).parameters
    offered = {"data": data, "train": train}
    try:
        return factory(**{name: value for name, value in offered.items() if name in accepted})
    except Exception as error:
        raise ConfigError(
            f"params.yaml: train.pipeline: {train.pipeline}() raised "
            f"{type(error).__name__}: {error}"
        ) from None


def make_model(data: DataParams, train: TrainParams) -> Any:
    """The unfitted model, and the check every command that reads ``train:`` runs before work.

    ``train.estimator`` alone: modelci's preprocessing + the estimator. ``train.pipeline``
    alone: the factory's estimator or Pipeline is the model. Both: the factory's transformer
    (feature engineering), then the estimator.
    """
    if train.pipeline is None:
        return build_pipeline(data, train)
    built = call_factory(data, train)
    what = type(built).__name__
    if train.estimator is None:
        if not (hasattr(built, "fit") and hasattr(built, "predict")):
            raise ConfigError(
                f"params.yaml: train.pipeline: {train.pipeline}() returned a {what}, not an "
                "estimator (no fit/predict); return an estimator or Pipeline, or return a "
                "transformer and set train.estimator"
            )
        _check_task(built, data, "train.pipeline", f"{train.pipeline}() ({what})")
        return built
    if not (hasattr(built, "fit") and hasattr(built, "transform")):
        raise ConfigError(
            f"params.yaml: train.pipeline: with train.estimator set, {train.pipeline}() must "
            f"return a transformer (fit/transform), not a {what}"
        )
    from sklearn.pipeline import Pipeline

    return Pipeline([("features", built), ("model", make_estimator(data, train))])


def make_estimator(data: DataParams, train: TrainParams) -> Any:
    """Instantiate the estimator, seeding it with ``train.seed`` unless params set random_state,
    and giving it ``train.n_threads`` workers (above 1) unless params set n_jobs.

    Also the check run before any work (``check-params``, ``train``, ``evaluate``): the class
    imports, is an estimator of the task's kind, and accepts ``estimator_params`` (names by
    construction, values by scikit-learn's own parameter constraints when it declares them).
    """
    from sklearn.utils._param_validation import InvalidParameterError

    from modelci.pipeline import boosting

    if train.estimator is None:
        raise ConfigError("params.yaml: train.estimator: not set")
    cls = import_estimator(train.estimator)
    kwargs = dict(train.estimator_params)
    library = boosting.library(cls)
    # XGBoost's classes take **kwargs: the parameters they accept are their get_params() names.
    accepted = set(cls().get_params()) if library else set(inspect.signature(cls).parameters)
    if "random_state" in accepted:
        kwargs.setdefault("random_state", train.seed)
    if library:
        for key, value in boosting.defaults(library, train.n_threads).items():
            kwargs.setdefault(key, value)
    elif "n_jobs" in accepted and train.n_threads > 1:
        # scikit-learn's default (None) is one job already; passing n_jobs=1 makes some
        # estimators warn that it has no effect (LogisticRegression since 1.8).
        kwargs.setdefault("n_jobs", train.n_threads)
    try:
        estimator = cls(**kwargs)
    except TypeError as error:
        raise ConfigError(f"params.yaml: train.estimator_params: {error}") from None
    _check_task(estimator, data, "train.estimator", train.estimator)
    if library:
        # Their classes inherit scikit-learn's _validate_params but declare no constraints.
        _check_labels(data, train.estimator, library)
        boosting.check_params(estimator, library, _class_count(data))
        return estimator
    validate_params = getattr(estimator, "_validate_params", None)
    if callable(validate_params):
        try:
            validate_params()
        except InvalidParameterError as error:
            raise ConfigError(f"params.yaml: train.estimator_params: {error}") from None
    return estimator


def _class_count(data: DataParams) -> int | None:
    """The number of classes the task has (3 for multiclass without declared categories)."""
    if not data.is_classification:
        return None
    categories = data.columns[data.target].categories
    return 2 if data.task == "binary" else len(categories) if categories else 3


def _check_labels(data: DataParams, estimator: str, library: str) -> None:
    """XGBoost's classifiers take class labels 0..n-1 only (LightGBM's encode any labels)."""
    spec = data.columns[data.target]
    labels = spec.categories or ("",)
    if (
        library == "xgboost"
        and data.is_classification
        and spec.type == "category"
        and not all(isinstance(value, int) for value in labels)
    ):
        raise ConfigError(
            f"params.yaml: train.estimator: {estimator} needs integer class labels "
            f"0..n-1, but data.target {data.target!r} is a category column; encode it as "
            "int or use lightgbm.LGBMClassifier"
        )


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

    pipeline = make_model(data, train)
    features, target = features_and_target(frame, data)
    try:
        with fixed_threads(train.n_threads):
            return pipeline.fit(features, target)
    except InvalidParameterError as error:
        raise ConfigError(f"params.yaml: train.estimator_params: {error}") from None


def run(params: Params, paths: StagePaths = DEFAULT_PATHS) -> str:
    """Fit and write the model file; returns its sha256 (MLflow logging happens in evaluate)."""
    from modelci.modelfile import dump_model, load_model_bytes
    from modelci.pipeline import cluster

    cluster.check_estimator(params)
    if params.compute.engine == "dask":
        model, record = cluster.train(params, paths)
    else:
        model, record = fit(pd.read_parquet(paths.train), params.data, params.train), None
    data = dump_model(model)
    if record is not None:
        # The file must load with the trusted types evaluate and serving use (the defaults plus
        # train.trusted_types): a refusal fails here, before any file is written.
        load_model_bytes(data, str(paths.model), params.trusted_types)
    write_bytes(paths.model, data)
    if record is not None:
        write_json(paths.compute, record)
    return hashlib.sha256(data).hexdigest()
