"""``train.pipeline``: the user's own factory builds the model, or its features, by import path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelci.cli import main
from modelci.config import parse_params
from modelci.errors import ConfigError
from modelci.pipeline.train import fit, make_model

pytestmark = pytest.mark.unit

FACTORIES = """
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler


def whole(data):
    assert data.target == "y"
    return make_pipeline(StandardScaler(), LogisticRegression())


def features():
    return make_pipeline(FunctionTransformer(lambda frame: frame[["x"]] * 2), StandardScaler())


def regressor():
    return LinearRegression()


def nothing():
    return 42


def broken(train):
    raise RuntimeError(f"no model for seed {train.seed}")


NOT_CALLABLE = 3
"""


@pytest.fixture
def factories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    package = tmp_path / "my_model"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_model.features"


def params(**train: Any) -> Any:
    return parse_params(
        {
            "data": {
                "source": "d.csv",
                "target": "y",
                "task": "binary",
                "columns": {"x": {"type": "float"}, "y": {"type": "int", "min": 0, "max": 1}},
            },
            "train": train,
        }
    )


def frame() -> pd.DataFrame:
    x = np.linspace(-1, 1, 40)
    return pd.DataFrame({"x": x, "y": (x > 0).astype(int)})


def test_a_factory_builds_the_whole_model(factories: str) -> None:
    p = params(pipeline=f"{factories}:whole")
    model = fit(frame(), p.data, p.train)
    assert type(model.steps[-1][1]).__name__ == "LogisticRegression"
    assert (model.predict(frame()[["x"]]) == frame()["y"]).mean() > 0.9


def test_a_factory_builds_the_features_and_the_estimator_follows(factories: str) -> None:
    p = params(
        pipeline=f"{factories}:features", estimator="sklearn.linear_model.LogisticRegression"
    )
    model = make_model(p.data, p.train)
    assert [name for name, _ in model.steps] == ["features", "model"]
    assert fit(frame(), p.data, p.train).predict(frame()[["x"]]).shape == (40,)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"pipeline": "my_model.missing:whole"}, "cannot import 'my_model.missing:whole'"),
        ({"pipeline": "my_model.features:absent"}, "has no attribute 'absent'"),
        ({"pipeline": "my_model.features:NOT_CALLABLE"}, "is not callable"),
        ({"pipeline": "my_model.features:nothing"}, "returned a int, not an estimator"),
        ({"pipeline": "my_model.features:regressor"}, "is not a classifier"),
        ({"pipeline": "my_model.features:broken"}, "raised RuntimeError: no model for seed 0"),
        (
            {"pipeline": "my_model.features:whole", "estimator": "sklearn.svm.SVC"},
            "must return a transformer",
        ),
    ],
)
def test_factory_mistakes_are_named(factories: str, train: dict[str, str], message: str) -> None:
    p = params(**train)
    with pytest.raises(ConfigError, match=message):
        make_model(p.data, p.train)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({}, "set estimator .* or pipeline"),
        ({"pipeline": "my_model.features:whole", "estimator_params": {"C": 1}}, "needs estimator"),
        ({"pipeline": "my_model.features.whole"}, "pipeline"),
    ],
)
def test_params_name_one_model(train: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        params(**train)


def test_check_params_runs_the_factory_before_any_work(
    factories: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "data: {source: d.csv, target: y, task: binary,\n"
        "  columns: {x: {type: float}, y: {type: int, min: 0, max: 1}}}\n"
        f"train: {{pipeline: '{factories}:regressor'}}\n"
    )
    assert main(["check-params"]) == 2
    assert (
        "train.pipeline: my_model.features:regressor() (LinearRegression) is not a classifier"
        in (capsys.readouterr().err)
    )


def test_the_docs_factory_example_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/adopting.md's factory and its params, verbatim, on a small houses table."""
    import re

    import yaml

    from tests.conftest import REPO_ROOT

    text = (REPO_ROOT / "docs" / "adopting.md").read_text(encoding="utf-8")
    block = re.compile(r"<!-- example:(?P<name>[\w-]+) -->\n```\w+\n(?P<body>.*?)```", re.DOTALL)
    found = {m["name"]: m["body"] for m in block.finditer(text)}
    package = tmp_path / "houses"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "features.py").write_text(found["factory"])
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = np.random.default_rng(0)
    houses = pd.DataFrame(
        {"size": rng.uniform(30, 200, 60), "district": rng.choice(["north", "south"], 60)}
    )
    houses["price"] = houses["size"] * 3000 + (houses["district"] == "north") * 50_000
    p = parse_params(
        {
            "data": {
                "source": "data/houses.csv",
                "target": "price",
                "task": "regression",
                "columns": {
                    "size": {"type": "float"},
                    "district": {"type": "category", "categories": ["north", "south"]},
                    "price": {"type": "float"},
                },
            },
            **yaml.safe_load(found["factory-params"]),
        }
    )
    model = fit(houses, p.data, p.train)
    assert [name for name, _ in model.steps] == ["features", "model"]
    assert model.score(houses[["size", "district"]], houses["price"]) > 0.95


@pytest.mark.parametrize(("n_threads", "n_jobs"), [(1, None), (2, 2)])
def test_n_jobs_follows_n_threads_above_one(n_threads: int, n_jobs: int | None) -> None:
    """One thread is scikit-learn's default already: no n_jobs=1 (and no warning about it)."""
    import warnings

    from modelci.pipeline.train import make_estimator

    p = params(estimator="sklearn.linear_model.LogisticRegression", n_threads=n_threads)
    estimator = make_estimator(p.data, p.train)
    assert estimator.n_jobs == n_jobs
    if n_threads == 1:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            estimator.fit(frame()[["x"]], frame()["y"])


def test_the_documented_date_recipe_gives_declared_numeric_columns(tmp_path: Path) -> None:
    """docs/adopting.md's date recipe on a table with a sale date: init declares the derived
    numbers as whole-number columns and the date itself is gone (#23: how to use a date)."""
    import re
    import runpy

    import yaml

    from modelci.scaffold.init import Options, make_plan
    from tests.conftest import REPO_ROOT

    text = (REPO_ROOT / "docs" / "adopting.md").read_text(encoding="utf-8")
    block = re.compile(r"<!-- example:(?P<name>[\w-]+) -->\n```\w+\n(?P<body>.*?)```", re.DOTALL)
    found = {m["name"]: m["body"] for m in block.finditer(text)}
    assert "python -m houses.dates" in found["date-stage"]
    script = tmp_path / "dates.py"
    script.write_text(found["date-features"], encoding="utf-8")
    namespace = runpy.run_path(str(script))  # not as __main__: only defines derive()
    rng = np.random.default_rng(0)
    rows = 200
    raw = pd.DataFrame(
        {
            "size": rng.uniform(30, 200, rows).round(1),
            "sold_on": rng.choice(pd.date_range("2015-01-01", "2019-12-31", freq="D"), rows),
        }
    )
    raw["price"] = raw["size"] * 3000 + rng.normal(0, 5000, rows)
    raw.to_csv(tmp_path / "houses.csv", index=False)
    namespace["derive"](str(tmp_path / "houses.csv"), str(tmp_path / "derived.csv"), "sold_on")
    plan = make_plan(
        Options(
            directory=tmp_path / "repo",
            data=tmp_path / "derived.csv",
            target="price",
            workflows_ref="0" * 40,
            lock=False,
        )
    )
    columns = yaml.safe_load(plan.files["params.yaml"])["data"]["columns"]
    assert "sold_on" not in columns
    for derived in ("sold_on_year", "sold_on_month", "sold_on_dayofweek", "sold_on_days"):
        assert columns[derived]["type"] == "int", (derived, columns[derived])
