"""The MLflow model logged for an XGBoost or LightGBM model names the distribution that provides
the library, so ``mlflow models serve`` of the run can install it."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from modelci.tracking import pip_requirements

pytestmark = pytest.mark.unit


def test_a_scikit_learn_model_needs_the_scikit_learn_stack_only() -> None:
    from sklearn.linear_model import LogisticRegression

    names = [line.split("==")[0] for line in pip_requirements(LogisticRegression())]
    assert names == ["scikit-learn", "skops", "pandas", "numpy"]


@pytest.mark.parametrize(
    ("module", "cls"), [("xgboost", "XGBClassifier"), ("lightgbm", "LGBMRegressor")]
)
def test_a_boosting_pipeline_adds_its_library(module: str, cls: str) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    library = pytest.importorskip(module, reason="the boosting extra")
    model = Pipeline([("scale", StandardScaler()), ("model", getattr(library, cls)())])
    added = pip_requirements(model)[4:]
    assert len(added) == 1
    name, pinned = added[0].split("==")
    assert name in (module, f"{module}-cpu")  # the boosting extra installs xgboost-cpu on Linux
    assert pinned == version(name)
