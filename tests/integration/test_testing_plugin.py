"""The pytest plugin ``modelci.testing`` run by pytester as a model repository runs it: the
template test file of ``modelci init`` on repositories before and after ``dvc repro``, for the
three tasks, with declared cases that hold and one that does not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_diabetes, load_iris

from tests.conftest import REPO_ROOT, make_model_repo, run

pytest_plugins = ["pytester"]
# Each run is a subprocess: pytester restores sys.modules after a test, and numpy's C extensions
# cannot be imported twice in one process (hence also the sklearn.datasets import at the top).
pytestmark = [pytest.mark.integration, pytest.mark.slow]

TEMPLATE = REPO_ROOT / "src/modelci/scaffold/templates/tests/test_model.py"
# The checks of ModelChecks; all of them pass on a repository where modelci's pipeline has run.
CHECKS = 10


def _columns(frame: pd.DataFrame) -> dict[str, Any]:
    return {name: {"type": "float"} for name in frame.columns}


def user_repo(target: Path, frame: pd.DataFrame, params: dict[str, Any]) -> Path:
    """A model repository on the user's own CSV (``data/own.csv``), where ``dvc repro`` has run;
    ``params`` replaces the Titanic sections."""
    repo = make_model_repo(target)
    frame.to_csv(repo / "data/own.csv", index=False)
    run(["dvc", "add", "-q", "data/own.csv"], repo)
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw.update(params, evaluate={"slices": []})
    raw["data"]["source"] = "data/own.csv"
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    run(["dvc", "repro", "--quiet"], repo)
    return repo


@pytest.fixture(scope="session")
def iris_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Multiclass with a text target: the iris flowers."""
    iris = load_iris(as_frame=True)
    species = [str(name) for name in iris.target_names]
    frame = iris.frame.rename(columns=lambda name: name.removesuffix(" (cm)").replace(" ", "_"))
    frame["species"] = frame.pop("target").map(dict(enumerate(species)))
    columns = _columns(frame.drop(columns="species"))
    columns["species"] = {"type": "category", "categories": species}
    params = {
        "data": {"target": "species", "task": "multiclass", "columns": columns},
        "train": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "estimator_params": {"max_iter": 1000},
        },
        "gate": {"metrics": {"accuracy": {"min": 0.8}, "f1_macro": {"min": 0.8}}},
        "model_tests": {
            "defaults": {
                "sepal_length": 5.8,
                "sepal_width": 3.0,
                "petal_length": 4.3,
                "petal_width": 1.3,
            },
            "minimum_functionality": [
                {
                    "name": "small petals are setosa",
                    "predicts": "setosa",
                    "row": {
                        "sepal_length": 5.0,
                        "sepal_width": 3.4,
                        "petal_length": 1.4,
                        "petal_width": 0.2,
                    },
                },
                {
                    "name": "large petals are likely virginica",
                    "min": 0.5,
                    "score_of": "virginica",
                    "row": {"petal_length": 6.0, "petal_width": 2.2},
                },
            ],
            "invariance": [
                {
                    "name": "sepal width noise",
                    "column": "sepal_width",
                    "shift": 0.001,
                    "max_change": 0.01,
                },
            ],
            "directional": [
                {
                    "name": "longer petals, more virginica",
                    "column": "petal_length",
                    "from": 4.0,
                    "to": 6.0,
                    "direction": "increase",
                    "score_of": "virginica",
                },
            ],
        },
    }
    return user_repo(tmp_path_factory.mktemp("iris") / "repo", frame, params)


@pytest.fixture(scope="session")
def diabetes_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Regression: disease progression of diabetes patients."""
    frame = load_diabetes(scaled=False, as_frame=True).frame.rename(
        columns={"target": "progression"}
    )
    means = frame.drop(columns="progression").mean().round(2).to_dict()
    params = {
        "data": {
            "source": "",
            "target": "progression",
            "task": "regression",
            "columns": _columns(frame),
        },
        "train": {"estimator": "sklearn.linear_model.Ridge"},
        "gate": {"metrics": {"r2": {"min": 0.3}, "rmse": {"max": 70.0}}},
        "model_tests": {
            "defaults": means,
            "minimum_functionality": [
                {
                    "name": "an average patient, an average progression",
                    "row": {},
                    "min": 100.0,
                    "max": 200.0,
                },
            ],
            "invariance": [
                {"name": "a few months of age", "column": "age", "shift": 0.5, "max_change": 1.0},
            ],
            "directional": [
                {
                    "name": "higher bmi, faster progression",
                    "column": "bmi",
                    "from": 22.0,
                    "to": 35.0,
                    "direction": "increase",
                },
            ],
        },
    }
    return user_repo(tmp_path_factory.mktemp("diabetes") / "repo", frame, params)


def with_template(pytester: pytest.Pytester) -> None:
    shutil.copy(TEMPLATE, pytester.path / "test_model.py")


def edited_params(repo: Path, target: Path, section: str, index: int, **changes: Any) -> Path:
    """A copy of ``repo``'s params.yaml with one declared case changed."""
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    raw["model_tests"][section][index].update(changes)
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    return target


def test_the_template_passes_where_the_pipeline_has_run(
    pytester: pytest.Pytester, pipeline_repo: Path
) -> None:
    with_template(pytester)
    result = pytester.runpytest_subprocess("--modelci-root", str(pipeline_repo))
    result.assert_outcomes(passed=CHECKS)
    assert "model checks skipped" not in result.stdout.str()


@pytest.mark.parametrize("repo_fixture", ["iris_repo", "diabetes_repo"])
def test_the_template_passes_for_other_tasks(
    pytester: pytest.Pytester, request: pytest.FixtureRequest, repo_fixture: str
) -> None:
    repo: Path = request.getfixturevalue(repo_fixture)
    with_template(pytester)
    result = pytester.runpytest_subprocess("--modelci-root", str(repo), "-rs")
    result.assert_outcomes(passed=CHECKS)


@pytest.mark.parametrize(
    ("repo_fixture", "section", "changes", "message"),
    [
        (
            "pipeline_repo",
            "directional",
            {"direction": "decrease"},
            "women first: row 0: score * when 'gender' goes 'male' -> 'female', expected it to "
            "decrease",
        ),
        (
            "iris_repo",
            "minimum_functionality",
            {"predicts": "virginica"},
            "small petals are setosa: predicts 'setosa', expected 'virginica'",
        ),
        (
            "diabetes_repo",
            "invariance",
            {"shift": 30.0},
            "a few months of age: score change <= 1.0 (largest *) for 0.0% of * row(s) when "
            "'age' changes, needs 100.0%",
        ),
    ],
    ids=["binary", "multiclass", "regression"],
)
def test_a_violated_case_fails_naming_it(
    pytester: pytest.Pytester,
    request: pytest.FixtureRequest,
    repo_fixture: str,
    section: str,
    changes: dict[str, Any],
    message: str,
) -> None:
    repo: Path = request.getfixturevalue(repo_fixture)
    params = edited_params(repo, pytester.path / "edited.yaml", section, 0, **changes)
    with_template(pytester)
    result = pytester.runpytest_subprocess(
        "--modelci-root", str(repo), "-o", f"modelci_params={params}"
    )
    result.assert_outcomes(passed=CHECKS - 1, failed=1)
    result.stdout.fnmatch_lines([f"*TestModel.test_{section}*", message])


def test_before_dvc_repro_only_the_params_are_checked(pytester: pytest.Pytester) -> None:
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(REPO_ROOT / name, pytester.path / name)
    with_template(pytester)
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(passed=1, skipped=CHECKS - 1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "model checks skipped: models/model.skops not found. Run `dvc repro` first;*",
            "*models/model.skops not found in *: run `dvc repro` first*",
        ]
    )

    failing = pytester.runpytest_subprocess("--modelci-missing-outputs=fail")
    failing.assert_outcomes(passed=1, errors=CHECKS - 1)
    failing.stdout.fnmatch_lines(["*models/model.skops not found in *: run `dvc repro` first*"])


def test_an_invalid_declaration_fails_the_params_check_before_dvc_repro(
    pytester: pytest.Pytester,
) -> None:
    edited_params(REPO_ROOT, pytester.path / "params.yaml", "directional", 0, column="sex")
    with_template(pytester)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1, skipped=CHECKS - 1)
    result.stdout.fnmatch_lines(
        ["*params.yaml: model_tests.directional.0.column: 'sex' is not a declared feature"]
    )


def test_a_check_is_overridden_or_turned_off_one_by_one(
    pytester: pytest.Pytester, pipeline_repo: Path
) -> None:
    pytester.makepyfile(test_model="""
        from modelci.testing import ModelChecks

        class TestModel(ModelChecks):
            test_retraining_gives_the_same_bytes = None

            def test_gate_thresholds_hold_on_the_test_split(self, modelci_metrics):
                assert modelci_metrics["accuracy"] > 0.99, "stricter than params.yaml"
        """)
    result = pytester.runpytest_subprocess("--modelci-root", str(pipeline_repo))
    result.assert_outcomes(passed=CHECKS - 2, failed=1)
    result.stdout.fnmatch_lines(["*stricter than params.yaml*"])
    assert "test_retraining_gives_the_same_bytes" not in result.stdout.str()


def test_determinism_is_skipped_for_the_users_own_train_stage(
    pytester: pytest.Pytester, pipeline_repo: Path
) -> None:
    pipeline = yaml.safe_load((pipeline_repo / "dvc.yaml").read_text())
    pipeline["stages"]["train"]["cmd"] = "python my_train.py"
    (pytester.path / "own.yaml").write_text(yaml.safe_dump(pipeline))
    with_template(pytester)
    result = pytester.runpytest_subprocess(
        "--modelci-root",
        str(pipeline_repo),
        "-o",
        f"modelci_pipeline={pytester.path}/own.yaml",
        "-rs",
    )
    result.assert_outcomes(passed=CHECKS - 1, skipped=1)
    result.stdout.fnmatch_lines(["*own.yaml has no `modelci train` stage to retrain with*"])


def test_a_missed_gate_and_a_stale_metrics_file_fail(
    pytester: pytest.Pytester, pipeline_repo: Path
) -> None:
    raw = yaml.safe_load((pipeline_repo / "params.yaml").read_text())
    raw["gate"]["metrics"]["accuracy"]["min"] = 0.99
    (pytester.path / "strict.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    metrics = json.loads((pipeline_repo / "metrics.json").read_text())
    metrics["roc_auc"] += 0.01
    (pytester.path / "stale.json").write_text(json.dumps(metrics))
    with_template(pytester)
    result = pytester.runpytest_subprocess(
        "--modelci-root",
        str(pipeline_repo),
        "-o",
        f"modelci_params={pytester.path}/strict.yaml",
        "-o",
        f"modelci_metrics={pytester.path}/stale.json",
    )
    result.assert_outcomes(passed=CHECKS - 2, failed=2)
    result.stdout.fnmatch_lines(
        ["1 gate threshold(s) failed:", "accuracy: * is below the minimum 0.99* by *"]
    )
    result.stdout.fnmatch_lines(["*the metrics file does not match the model: run `dvc repro`*"])


def test_this_repositorys_model_tests_do_not_assume_titanic(
    pytester: pytest.Pytester, diabetes_repo: Path
) -> None:
    """``tests/model/test_model.py`` on a user's own regression data (with its own cases; with no
    category column the unseen-category test skips, and a regressor has no probabilities to take
    labels from)."""
    shutil.copy(REPO_ROOT / "tests/model/test_model.py", pytester.path / "test_model.py")
    result = pytester.runpytest_subprocess(
        "--modelci-root", str(diabetes_repo), "-o", "markers=model: model checks"
    )
    result.assert_outcomes(passed=CHECKS, skipped=2)
