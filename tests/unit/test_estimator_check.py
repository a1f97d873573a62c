"""Estimator settings are validated before any work: by check-params and by every stage reading
``train:`` (issue 8: check-params said ok for a misspelled path, ``os.system`` and ``alpah``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelci.cli import main
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def write_params(tmp_path: Path, **train: Any) -> Path:
    raw: dict[str, Any] = copy.deepcopy(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()))
    raw["train"].update(train)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


CASES = [
    (
        {"estimator": "sklearn.ensemble.HistGradientBoostingClasifier"},
        "train.estimator: cannot import 'sklearn.ensemble.HistGradientBoostingClasifier'",
    ),
    ({"estimator": "sklearn.nosuchmodule.Model"}, "train.estimator: cannot import"),
    ({"estimator": "os.system", "estimator_params": {}}, "'os.system' is not an estimator class"),
    (
        {"estimator": "sklearn.linear_model.Ridge", "estimator_params": {"alpha": 1.0}},
        "sklearn.linear_model.Ridge is not a classifier but data.task is 'binary'",
    ),
    (
        {"estimator": "sklearn.linear_model.LogisticRegression", "estimator_params": {"C": -1}},
        "train.estimator_params: The 'C' parameter of LogisticRegression must be",
    ),
    (
        {"estimator": "sklearn.linear_model.RidgeClassifier", "estimator_params": {"alpah": 1}},
        "train.estimator_params: ",
    ),
]


@pytest.mark.parametrize(("train", "message"), CASES)
def test_check_params_refuses_bad_estimator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], train: dict[str, Any], message: str
) -> None:
    params = write_params(tmp_path, **train)
    assert main(["check-params", "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("modelci check-params: error: params.yaml: train.estimator")


def test_wrong_keyword_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = write_params(
        tmp_path, estimator="sklearn.linear_model.RidgeClassifier", estimator_params={"alpah": 1}
    )
    assert main(["check-params", "--params", str(params)]) == 2
    assert "alpah" in capsys.readouterr().err


@pytest.mark.parametrize("stage", ["prepare", "train", "evaluate"])
def test_stages_reading_train_refuse_before_any_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stage: str,
) -> None:
    """No input files exist: the stage must fail on the estimator, not on a missing file."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, estimator="os.system", estimator_params={})
    assert main([stage]) == 2
    assert "'os.system' is not an estimator class" in capsys.readouterr().err


def test_valid_estimator_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    params = write_params(
        tmp_path, estimator="sklearn.linear_model.LogisticRegression", estimator_params={"C": 0.5}
    )
    assert main(["check-params", "--params", str(params)]) == 0
    assert ": ok (binary on " in capsys.readouterr().out


BOOSTING_CASES = [
    (
        {"estimator": "xgboost.XGBClassifier", "estimator_params": {"alpah": 1}},
        'train.estimator_params: XGBoost does not use "alpah"',
    ),
    (
        {"estimator": "xgboost.XGBClassifier", "estimator_params": {"max_depth": -3}},
        "train.estimator_params: value -3 for Parameter max_depth should be greater equal to 0",
    ),
    (
        {"estimator": "xgboost.XGBRegressor", "estimator_params": {}},
        "xgboost.XGBRegressor is not a classifier but data.task is 'binary'",
    ),
    (
        {"estimator": "lightgbm.LGBMClassifier", "estimator_params": {"alpah": 1}},
        "train.estimator_params: LightGBM has no parameter 'alpah'",
    ),
    (
        {"estimator": "lightgbm.LGBMClassifier", "estimator_params": {"num_leaves": 1}},
        "train.estimator_params: Check failed: (num_leaves) > (1)",
    ),
]


@pytest.mark.parametrize(("train", "message"), BOOSTING_CASES)
def test_check_params_refuses_bad_boosting_params(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], train: dict[str, Any], message: str
) -> None:
    """XGBoost and LightGBM take **kwargs and declare no constraints: their own checks run."""
    pytest.importorskip(train["estimator"].split(".")[0], reason="the boosting extra")
    params = write_params(tmp_path, **train)
    assert main(["check-params", "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("modelci check-params: error: params.yaml: train.estimator")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("estimator", "estimator_params"),
    [
        ("xgboost.XGBClassifier", {"n_estimators": 50, "reg_lambda": 1.0, "eta": 0.1}),
        ("lightgbm.LGBMClassifier", {"n_estimators": 50, "max_bin": 63, "verbose": -1}),
    ],
)
def test_boosting_params_pass(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    estimator: str,
    estimator_params: dict[str, Any],
) -> None:
    """Library parameters outside the scikit-learn API (XGBoost's eta, LightGBM's max_bin) pass."""
    pytest.importorskip(estimator.split(".")[0], reason="the boosting extra")
    params = write_params(tmp_path, estimator=estimator, estimator_params=estimator_params)
    assert main(["check-params", "--params", str(params)]) == 0
    assert ": ok (binary on " in capsys.readouterr().out


def test_xgboost_classifier_refuses_a_string_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("xgboost", reason="the boosting extra")
    path = write_params(tmp_path, estimator="xgboost.XGBClassifier", estimator_params={})
    raw = yaml.safe_load(path.read_text())
    raw["data"]["columns"]["survived"] = {"type": "category", "categories": ["no", "yes"]}
    raw["data"]["positive_label"] = "yes"
    path.write_text(yaml.safe_dump(raw))
    assert main(["check-params", "--params", str(path)]) == 2
    assert "needs integer class labels 0..n-1" in capsys.readouterr().err
