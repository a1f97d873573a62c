"""``model_tests:`` in params.yaml: validation naming the key, and the declared cases run
against small fitted models of each task."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from modelci.cli import main
from modelci.config import (
    DataParams,
    ModelTestsParams,
    TrainParams,
    checked_model_tests,
    parse_params,
)
from modelci.errors import ConfigError
from modelci.pipeline.train import fit
from modelci.testing import cases
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


@pytest.fixture
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    return copy.deepcopy(loaded)


def error_for(raw: dict[str, Any]) -> str:
    """The error of check-params: the schema of the section, then its cross-check."""

    def check() -> None:
        params = parse_params(raw, "params.yaml")
        checked_model_tests(params.model_tests, params.data, "params.yaml")

    with pytest.raises(ConfigError) as caught:
        check()
    return str(caught.value)


def test_repository_declares_every_kind_of_case(raw: dict[str, Any]) -> None:
    tests = parse_params(raw).model_tests
    assert tests.minimum_functionality
    assert tests.invariance
    assert tests.directional
    assert tests.directional[0].before == "male"
    assert tests.directional[0].after == "female"


def test_check_params_names_the_key_of_a_case(
    raw: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw["model_tests"]["directional"][0]["column"] = "sex"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert main(["check-params", "--params", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"modelci check-params: error: {path}: model_tests.directional.0.column: 'sex' is not a "
        "declared feature\n"
    )


def test_stages_do_not_cross_check_the_cases(raw: dict[str, Any]) -> None:
    """A case naming a column an experiment dropped fails check-params and the model tests, not
    the pipeline's stages (which read params through parse_params)."""
    raw["model_tests"]["directional"][0]["column"] = "sex"
    assert parse_params(raw).model_tests.directional[0].column == "sex"


def test_params_without_model_tests_are_valid(raw: dict[str, Any]) -> None:
    del raw["model_tests"]
    assert parse_params(raw).model_tests == ModelTestsParams()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t["directional"][0].update(column="sex"),
            "model_tests.directional.0.column: 'sex' is not a declared feature",
        ),
        (
            lambda t: t["directional"][0].update(column="survived"),
            "model_tests.directional.0.column: 'survived' is not a declared feature",
        ),
        (
            lambda t: t["minimum_functionality"][0]["row"].update(deck="B"),
            "model_tests.minimum_functionality.0.row: 'deck' is not a declared feature",
        ),
        (
            lambda t: t.pop("defaults"),
            "model_tests.minimum_functionality.0.row: no value for 'sibsp', 'parch'",
        ),
        (
            lambda t: t["invariance"][1].update(shift=1.0, values=None),
            "model_tests.invariance.1.shift: 'embarked' is not a numeric column",
        ),
        (
            lambda t: t["invariance"][0].update(values=[1.0]),
            "model_tests.invariance.0: give exactly one of values",
        ),
        (
            lambda t: t["invariance"][0].update(same_label=False),
            "model_tests.invariance.0: give max_change",
        ),
        (
            lambda t: t["minimum_functionality"][0].pop("predicts"),
            "model_tests.minimum_functionality.0: give predicts",
        ),
        (
            lambda t: t["directional"][0].update(direction="up"),
            "model_tests.directional.0.direction: Input should be 'increase' or 'decrease'",
        ),
        (
            lambda t: t["directional"][0].update(towards="x"),
            "model_tests.directional.0.towards: unknown key",
        ),
    ],
    ids=[
        "unknown column",
        "target as column",
        "unknown row key",
        "incomplete row",
        "shift of a category",
        "values and shift",
        "nothing to check",
        "no expectation",
        "bad direction",
        "unknown key",
    ],
)
def test_invalid_declarations_name_the_key(raw: dict[str, Any], edit: Any, expected: str) -> None:
    edit(raw["model_tests"])
    assert expected in error_for(raw)


def _data(task: str) -> DataParams:
    target = {"type": "float"} if task == "regression" else {"type": "int", "min": 0, "max": 2}
    return DataParams.model_validate(
        {
            "source": "synthetic.csv",
            "target": "y",
            "task": task,
            "columns": {
                "x": {"type": "float"},
                "c": {"type": "category", "categories": ["a", "b"]},
                "y": target,
            },
        }
    )


def _model(task: str) -> tuple[Any, DataParams]:
    """y grows with x and does not depend on c."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.uniform(0, 9, 300), "c": rng.choice(["a", "b"], 300)})
    if task == "regression":
        frame["y"] = 2.0 * frame["x"] + rng.normal(0, 0.1, 300)
        estimator = "sklearn.linear_model.Ridge"
    else:
        bins = 2 if task == "binary" else 3
        frame["y"] = pd.cut(frame["x"], bins, labels=False).astype("int64")
        estimator = "sklearn.linear_model.LogisticRegression"
    data = _data(task)
    return fit(frame, data, TrainParams(estimator=estimator)), data


def _tests(**sections: Any) -> ModelTestsParams:
    return ModelTestsParams.model_validate({"defaults": {"x": 4.5, "c": "a"}, **sections})


def up(name: str, before: float = 1.0, after: float = 8.0) -> dict[str, Any]:
    return {"name": name, "column": "x", "from": before, "to": after, "direction": "increase"}


@pytest.mark.parametrize(
    ("task", "extra"),
    [("binary", {}), ("multiclass", {"score_of": 2}), ("regression", {})],
)
def test_directional_cases_pass_and_fail_by_name(task: str, extra: dict[str, Any]) -> None:
    model, data = _model(task)
    tests = _tests(
        directional=[
            {**up("x raises the score"), **extra},
            {**up("x lowers the score"), "direction": "decrease", **extra},
        ]
    )
    failures = cases.run_directional(model, tests, data)
    assert len(failures) == 1
    assert failures[0].startswith("x lowers the score: row 0: score ")
    assert failures[0].endswith("when 'x' goes 1.0 -> 8.0, expected it to decrease")


def test_min_change_makes_a_small_move_fail() -> None:
    model, data = _model("regression")
    tests = _tests(directional=[{**up("big move", 4.0, 4.1), "min_change": 1.0}])
    [failure] = cases.run_directional(model, tests, data)
    assert failure.endswith("expected it to increase by more than 1.0")


def test_minimum_functionality_labels_and_bounds() -> None:
    model, data = _model("multiclass")
    tests = _tests(
        minimum_functionality=[
            {"name": "low x", "row": {"x": 0.5}, "predicts": 0},
            {"name": "high x", "row": {"x": 8.5}, "predicts": 0},
            {"name": "sure of class 2", "row": {"x": 8.5}, "min": 0.6, "score_of": 2},
            {"name": "unsure of class 0", "row": {"x": 8.5}, "min": 0.6, "score_of": 0},
        ]
    )
    failures = cases.run_minimum_functionality(model, tests, data)
    assert [line.split(":")[0] for line in failures] == ["high x", "unsure of class 0"]
    assert failures[0] == "high x: predicts 2, expected 0"


def test_regression_bounds_on_the_predicted_value() -> None:
    model, data = _model("regression")
    tests = _tests(
        minimum_functionality=[
            {"name": "about ten", "row": {"x": 5.0}, "min": 9.0, "max": 11.0},
            {"name": "too high", "row": {"x": 5.0}, "max": 5.0},
        ]
    )
    [failure] = cases.run_minimum_functionality(model, tests, data)
    assert failure.startswith("too high: score 10")
    assert "above the maximum 5.0" in failure


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_invariance_share_and_score_change(task: str) -> None:
    model, data = _model(task)
    rows = pd.DataFrame({"x": [2.0] * 25 + [7.0] * 25, "c": "a"})
    to_two = {"column": "x", "values": [2.0], "max_change": 0.01}
    tests = _tests(
        invariance=[
            {"name": "c does not matter", "column": "c", "values": ["b"], "max_change": 0.5},
            {"name": "x matters", "column": "x", "shift": 5.0, "max_change": 0.01},
            {"name": "half the rows keep x", **to_two, "min_share": 0.5},
            {"name": "more than half keep x", **to_two, "min_share": 0.6},
        ]
    )
    failures = cases.run_invariance(model, tests, data, rows.assign(y=0))
    assert [line.split(":")[0] for line in failures] == ["x matters", "more than half keep x"]
    assert failures[0].startswith("x matters: score change <= 0.01 (largest ")
    assert failures[0].endswith("of 50 row(s) when 'x' changes, needs 100.0%")
    assert "for 50.0% of 50 row(s) when 'x' changes, needs 60.0%" in failures[1]


def test_invariance_with_declared_rows_needs_no_split() -> None:
    model, data = _model("binary")
    tests = _tests(
        invariance=[
            {
                "name": "c",
                "column": "c",
                "values": ["b"],
                "same_label": True,
                "rows": [{"x": 1.0}, {"x": 8.0}],
            }
        ]
    )
    assert cases.run_invariance(model, tests, data, None) == []
    without_rows = _tests(
        invariance=[{"name": "c", "column": "c", "values": ["b"], "same_label": True}]
    )
    with pytest.raises(ConfigError, match=r"model_tests\.invariance\.0\.rows: no rows given"):
        cases.run_invariance(model, without_rows, data, None)


def test_score_of_an_unknown_class_is_named() -> None:
    model, data = _model("multiclass")
    tests = _tests(directional=[{**up("x"), "score_of": 7}])
    with pytest.raises(ConfigError, match=r"directional\.0\.score_of: 7 is not a class"):
        cases.run_directional(model, tests, data)
