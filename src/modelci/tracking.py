"""MLflow tracking, set up explicitly by the commands that log (never at import time).

Default store: ``sqlite:///mlflow.db`` in the working directory (git-ignored), no server needed.
``MLFLOW_TRACKING_URI`` points elsewhere; an HTTP server is probed first with a short timeout so
an unreachable one fails in seconds with a clear message instead of hanging on retries.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelci.config import Params, ReleaseParams
from modelci.errors import TrackingError
from modelci.layout import StagePaths
from modelci.lineage import compute_tags, lineage_tags
from modelci.tags import TAG_SHA256

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_DB = Path("mlflow.db")
PROBE_TIMEOUT_S = 3.0
MODEL_FILE_ARTIFACT_DIR = "model_file"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{DEFAULT_DB.resolve()}"


def probe(uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise TrackingError unless an HTTP tracking server answers its health check."""
    if not uri.startswith(("http://", "https://")):
        return
    from modelci import _http

    url = uri.rstrip("/") + "/health"
    try:
        answer = _http.request("GET", url, timeout=timeout, max_bytes=65536)
        reason = "" if answer.ok else f"HTTP {answer.status}"
    except _http.HttpError as error:
        reason = str(error).rsplit(": ", 1)[-1]
    if reason:
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({reason}); start it, fix "
            "MLFLOW_TRACKING_URI, or unset it to use the local sqlite store"
        ) from None


def quiet_mlflow() -> None:
    """MLflow sets its own log levels on import; keep its INFO chatter out of stage output."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def configure(experiment: str) -> str:
    """Point MLflow at the tracking store and experiment; returns the tracking URI."""
    # Fail fast instead of MLflow's default of several retries with backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
    uri = tracking_uri()
    probe(uri)
    import mlflow

    quiet_mlflow()

    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(experiment)
    except Exception as error:  # MlflowException and transport errors alike
        raise TrackingError(
            f"MLflow at {uri}: cannot open experiment {experiment!r}: {error}"
        ) from None
    return uri


def _flat_params(params: ReleaseParams) -> dict[str, Any]:
    flat: dict[str, Any] = {"data.task": params.data.task, "data.target": params.data.target}
    train = params.train
    if train is None:  # the user's own training stage
        return flat
    flat.update(
        {
            "train.estimator": train.estimator,
            "train.pipeline": train.pipeline,
            "train.seed": train.seed,
            "train.scale_numeric": train.scale_numeric,
            "train.n_threads": train.n_threads,
        }
    )
    for key, value in train.estimator_params.items():
        flat[f"train.estimator_params.{key}"] = value
    return {key: value for key, value in flat.items() if value is not None}


def pip_requirements(model: Any = None) -> list[str]:
    """Pinned requirements of the logged model, given explicitly so logging stays fast: the
    scikit-learn stack, plus the distribution of XGBoost or LightGBM when the model holds one of
    their estimators (``xgboost-cpu`` when that is what provides the ``xgboost`` module)."""
    from importlib.metadata import packages_distributions, version

    names = ["scikit-learn", "skops", "pandas", "numpy"]
    nested = model.get_params(deep=True).values() if hasattr(model, "get_params") else ()
    modules = {type(item).__module__.split(".", 1)[0] for item in [model, *nested]}
    used = sorted(modules & {"xgboost", "lightgbm"})
    if used:
        providers = packages_distributions()
        names += [providers.get(module, [module])[0] for module in used]
    return [f"{name}=={version(name)}" for name in names]


def log_run(
    params: ReleaseParams,
    paths: StagePaths,
    model: Any,
    features: pd.DataFrame,
    scores: dict[str, float],
    sha256: str,
) -> str:
    """Log one run for the evaluated model: params, lineage tags, metrics, reports and the model.

    Everything is logged from the evaluate stage so MLflow (several seconds of imports) is loaded
    once per pipeline run; the tags tie the run to the exact model file (sha256) and data (md5).
    """
    configure(params.tracking.experiment)
    import mlflow
    from mlflow.models import infer_signature

    from modelci.modelfile import trusted_types

    quiet_mlflow()
    example = features.head(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's hint about integer columns
        signature = infer_signature(example, model.predict(example))
    tags = lineage_tags(params, {"train": paths.train, "test": paths.test})
    if isinstance(params, Params) and params.compute.engine == "dask":
        tags.update(compute_tags(paths.compute))
    tags[TAG_SHA256] = sha256
    try:
        with mlflow.start_run(
            run_name=f"{params.tracking.model_name}-{sha256[:8]}", tags=tags
        ) as run:
            mlflow.log_params(_flat_params(params))
            mlflow.log_metrics(scores)
            for path in (paths.metrics, paths.slices, paths.model_card, paths.profile):
                if path.is_file():  # a user's own stage may write only some of them
                    mlflow.log_artifact(str(path), artifact_path="reports")
            if paths.plots.is_dir():
                mlflow.log_artifacts(str(paths.plots), artifact_path="plots")
            # The byte-reproducible file DVC tracks: the registry verifies and deploys these bytes.
            mlflow.log_artifact(str(paths.model), artifact_path=MODEL_FILE_ARTIFACT_DIR)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                mlflow.sklearn.log_model(
                    model,
                    name="model",
                    serialization_format="skops",
                    skops_trusted_types=trusted_types(params.trusted_types),
                    signature=signature,
                    input_example=example,
                    pip_requirements=pip_requirements(model),
                )
            return str(run.info.run_id)
    except Exception as error:  # MlflowException and transport errors alike
        raise TrackingError(
            f"MLflow logging to {tracking_uri()} failed: {error}".splitlines()[0]
        ) from None


def find_run(sha256: str) -> str | None:
    """The latest run that logged the model file with this sha256, if the store has one."""
    import mlflow

    runs = mlflow.search_runs(
        filter_string=f"tags.`{TAG_SHA256}` = '{sha256}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0].info.run_id if runs else None
