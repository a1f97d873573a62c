"""XGBoost and LightGBM as ``train.estimator``: what their scikit-learn API needs beyond
scikit-learn's own estimators (install them with the ``boosting`` extra).

- Threads: their ``n_jobs=None`` means every core (scikit-learn's means one), so ``n_jobs`` is
  always set to ``train.n_threads``; LightGBM also gets ``deterministic=True``.
- Parameters: both take ``**kwargs`` and declare no scikit-learn parameter constraints, so a
  misspelled name or an impossible value would pass the constructor and surface (or be ignored
  with a warning) at fit time. :func:`check_params` fits a copy with one tree on a few synthetic
  rows before any work and turns the library's own refusal into a one-line error.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np

from modelci.errors import ConfigError

LIBRARIES = ("xgboost", "lightgbm")
# XGBoost's learner warns, and trains on, when given a parameter it does not use.
_XGB_UNUSED = re.compile(r"Parameters: \{ ?(.+?) ?\} (?:are|is) not used")
_PROBE_ROWS = 24


def library(cls: type) -> str | None:
    """``xgboost`` or ``lightgbm`` for their estimators, else None."""
    top = cls.__module__.split(".", 1)[0]
    return top if top in LIBRARIES else None


def defaults(name: str, n_threads: int) -> dict[str, Any]:
    """Keyword arguments set unless params.yaml sets them: a fixed thread count, and LightGBM's
    deterministic mode (the same bytes for the same data, params and threads)."""
    extra: dict[str, Any] = {"n_jobs": n_threads}
    if name == "lightgbm":
        extra["deterministic"] = True
    return extra


def _lightgbm_unknown(estimator: Any) -> list[str]:
    """Keyword arguments LightGBM knows neither as a scikit-learn API name nor as one of its
    parameters or aliases (it silently ignores them with ``verbose: -1``)."""
    from lightgbm.basic import _ConfigAliases

    known = set(type(estimator)().get_params())
    for name, aliases in _ConfigAliases._get_all_param_aliases().items():
        known.update([name, *aliases])
    return sorted(set(estimator.get_params()) - known)


def _probe_data(classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(_PROBE_ROWS, 3))
    if classes is None:
        return features, features[:, 0] + rng.normal(scale=0.1, size=_PROBE_ROWS)
    return features, np.arange(_PROBE_ROWS) % classes


def check_params(estimator: Any, name: str, classes: int | None) -> None:
    """Refuse parameters the library does not know or rejects (``classes``: the number of
    classes the task has, None for regression), by fitting one tree on synthetic rows."""
    from sklearn.base import clone

    if name == "lightgbm":
        unknown = _lightgbm_unknown(estimator)
        if unknown:
            raise ConfigError(
                f"params.yaml: train.estimator_params: LightGBM has no parameter "
                f"{', '.join(map(repr, unknown))}"
            )
    probe = clone(estimator).set_params(n_estimators=1, n_jobs=1)
    if name == "lightgbm":
        probe.set_params(verbose=-1)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            probe.fit(*_probe_data(classes))
    except Exception as error:  # the libraries raise their own error types on bad values
        message = " ".join(str(error).split())
        # XGBoost prefixes "[hh:mm:ss] /path/file.cc:line: "; keep the message itself.
        message = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", message)[:300]
        raise ConfigError(f"params.yaml: train.estimator_params: {message}") from None
    for warning in caught:
        unused = _XGB_UNUSED.search(str(warning.message))
        if unused:
            raise ConfigError(
                f"params.yaml: train.estimator_params: XGBoost does not use {unused.group(1)}"
            )
