"""``modelci projects`` and ``modelci affected``: the projects of a repository and which of them a
change affects, decided on hand-made repositories (the integration test builds one with init)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from modelci.ci.affected import NO_CHANGE, decide, plan, undeclared
from modelci.cli import main
from modelci.projects import ProjectError, covers, discover

pytestmark = pytest.mark.unit


def write_project(
    root: Path,
    folder: str,
    deps: tuple[str, ...] = (),
    cmd: str = "modelci train",
    model: str | None = None,
    outs: tuple[str, ...] = ("models/model.skops",),
) -> None:
    """A project in ``root/folder``: one params file and a two-stage dvc.yaml whose train stage
    has ``deps`` (relative to the folder) and runs ``cmd``."""
    where = root / folder
    where.mkdir(parents=True, exist_ok=True)
    name = model or f"{Path(folder).name if folder != '.' else 'root'}-model"
    params = {"data": {"source": "data/raw.csv"}, "tracking": {"model_name": name}}
    (where / "params.yaml").write_text(yaml.safe_dump(params))
    stages = {
        "prepare": {
            "cmd": "modelci prepare",
            "deps": ["${data.source}"],
            "params": [{"params.yaml": None}],
            "outs": ["data/prepared/train.parquet"],
        },
        "train": {
            "cmd": cmd,
            "deps": ["data/prepared/train.parquet", *deps],
            "params": ["train", {"../../pyproject.toml": ["project.dependencies"]}],
            "outs": list(outs),
        },
    }
    (where / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))


@pytest.fixture
def three(tmp_path: Path) -> Path:
    """churn and fraud share src/features (declared by both); forecast declares nothing shared."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "models"\n')
    (tmp_path / "uv.lock").write_text("version = 1\n")
    (tmp_path / "src/features").mkdir(parents=True)
    (tmp_path / "src/features/__init__.py").write_text("")
    write_project(tmp_path, "models/churn", deps=("../../src/features",))
    write_project(tmp_path, "models/fraud", deps=("../../src/features",))
    write_project(tmp_path, "models/forecast")
    # a dvc.yaml that runs no modelci stage and declares no metrics: not a project
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools/dvc.yaml").write_text("stages:\n  fetch:\n    cmd: curl x\n")
    return tmp_path


def affected(root: Path, *changed: str) -> dict[str, str]:
    """path -> reason of each affected project."""
    return {d.project.path: d.reason for d in decide(discover(root), changed) if d.affected}


def test_projects_are_found_with_names_and_registered_models(three: Path) -> None:
    projects = discover(three)
    assert [(p.path, p.name, p.registered_model) for p in projects] == [
        ("models/churn", "churn", "churn-model"),
        ("models/forecast", "forecast", "forecast-model"),
        ("models/fraud", "fraud", "fraud-model"),
    ]
    fraud = projects[2].dependencies()
    # paths relative to the repository, as DVC resolves them from the nested dvc.yaml
    assert fraud["models/fraud/data/raw.csv"] == ["dep of prepare"]
    assert fraud["models/fraud/params.yaml"] == ["params of prepare", "params of train"]
    assert fraud["src/features"] == ["dep of train"]
    assert fraud["pyproject.toml"] == ["params of train", "the environment of every project"]
    assert fraud["uv.lock"] == ["the environment of every project"]


def test_a_params_change_affects_that_project_only(three: Path) -> None:
    assert affected(three, "models/fraud/params.yaml") == {
        "models/fraud": "models/fraud/params.yaml changed (params of prepare, train)"
    }


def test_a_shared_package_declared_by_two_affects_both(three: Path) -> None:
    assert affected(three, "src/features/__init__.py") == {
        "models/churn": "src/features/__init__.py changed (dep of train)",
        "models/fraud": "src/features/__init__.py changed (dep of train)",
    }


def test_the_lock_file_affects_every_project(three: Path) -> None:
    reasons = affected(three, "uv.lock")
    assert sorted(reasons) == ["models/churn", "models/forecast", "models/fraud"]
    assert set(reasons.values()) == {"uv.lock changed: the environment of every project"}


def test_a_readme_affects_none_and_the_matrix_is_empty(three: Path) -> None:
    decisions = decide(discover(three), ["README.md", "docs/x.md", "tools/dvc.yaml"])
    assert {d.reason for d in decisions} == {NO_CHANGE}
    assert plan(decisions)["matrix"] == {"include": []}
    assert plan(decisions)["count"] == 0


def test_data_pointers_and_the_pipeline_files_count(three: Path) -> None:
    assert list(affected(three, "models/churn/data/raw.csv.dvc")) == ["models/churn"]
    assert list(affected(three, "models/churn/data.dvc")) == ["models/churn"]  # a tracked folder
    assert affected(three, "models/forecast/dvc.lock") == {
        "models/forecast": "models/forecast/dvc.lock changed (the pipeline)"
    }


def test_an_output_of_an_affected_project_affects_its_readers(three: Path) -> None:
    write_project(three, "models/ensemble", deps=("../fraud/models/model.skops",))
    reasons = affected(three, "models/fraud/params.yaml")
    assert reasons["models/ensemble"] == (
        "models/fraud/models/model.skops is an output of models/fraud, which is affected"
    )
    assert "models/churn" not in reasons


def test_a_single_project_at_the_root(tmp_path: Path) -> None:
    write_project(tmp_path, ".", deps=("src/mine",), model="titanic")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "survival"\n')
    [project] = discover(tmp_path)
    assert (project.path, project.name, project.registered_model) == (".", "survival", "titanic")
    assert affected(tmp_path, "src/mine/features.py") == {
        ".": "src/mine/features.py changed (dep of train)"
    }


def test_two_projects_with_one_registered_model_are_refused(three: Path) -> None:
    write_project(three, "models/fraud2", model="fraud-model")
    with pytest.raises(ProjectError, match=r"models/fraud and models/fraud2 .* 'fraud-model'"):
        discover(three)


def test_covers() -> None:
    assert covers("src/features", "src/features/a/b.py")
    assert not covers("src/features", "src/features_old.py")
    assert covers("data/raw.csv", "data/raw.csv.dvc")
    assert covers("data/raw.csv", "data.dvc")
    assert not covers("data/raw.csv", "dat.dvc")


def _write_code(root: Path) -> None:
    for path, text in {
        "src/features/__init__.py": "from .encode import onehot\n",
        "src/features/encode.py": "import numpy\n",
        "src/train_fraud.py": "import os\nfrom features import encode\nimport pandas\n",
        "src/helpers.py": "",
        "models/churn/train.py": "import helpers\n",
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


def test_an_undeclared_local_import_is_flagged(tmp_path: Path) -> None:
    _write_code(tmp_path)
    write_project(
        tmp_path, "models/fraud", cmd="python -m train_fraud", deps=("../../src/train_fraud.py",)
    )
    write_project(
        tmp_path,
        "models/churn",
        cmd="uv run python train.py",
        deps=("train.py", "../../src/helpers.py"),
    )
    write_project(tmp_path, "models/ok", cmd="python ../../src/train_fraud.py", deps=("../../src",))
    found = {p.path: undeclared(tmp_path, p) for p in discover(tmp_path)}
    assert found["models/fraud"] == [
        "models/fraud: stage train imports src/features/__init__.py, which is not among its deps "
        "(declare src/features in the stage's deps)",
        "models/fraud: stage train imports src/features/encode.py, which is not among its deps "
        "(declare src/features in the stage's deps)",
    ]
    assert found["models/churn"] == []
    assert found["models/ok"] == []


def test_the_train_pipeline_factory_is_local_code_too(tmp_path: Path) -> None:
    _write_code(tmp_path)
    write_project(tmp_path, "models/fraud")
    params = tmp_path / "models/fraud/params.yaml"
    params.write_text(params.read_text() + "train: {pipeline: 'features.encode:build'}\n")
    [problem, *_] = undeclared(tmp_path, discover(tmp_path)[0])
    assert problem.startswith(
        "models/fraud: stage train imports (train.pipeline) src/features/encode.py"
    )


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


@pytest.fixture
def committed(three: Path) -> Path:
    git(three, "init", "-q", "-b", "main")
    git(three, "add", "-A")
    git(three, "commit", "-q", "-m", "three projects")
    return three


def _commit(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"change {path}")


def test_the_cli_prints_the_matrix_of_a_real_diff(
    committed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _commit(committed, "models/churn/params.yaml", "data: {source: data/raw.csv}\n"
            "tracking: {model_name: churn-model}\ntrain: {seed: 2}\n")  # fmt: skip
    assert main(["affected", "--base", "HEAD~1", "--root", str(committed)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["matrix"] == {"include": [{"path": "models/churn", "name": "churn"}]}
    assert out["count"] == 1
    assert [p["affected"] for p in out["projects"]] == [True, False, False]
    assert set(out["projects"][0]) == {"path", "name", "registered_model", "affected", "reason"}


def test_the_budget_names_what_would_run(
    committed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _commit(committed, "uv.lock", "version = 2\n")
    argv = ["affected", "--base", "HEAD~1", "--root", str(committed), "--max-projects", "2"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        "modelci affected: error: 3 projects would run, more than --max-projects 2: "
        "models/churn, models/forecast, models/fraud"
    )
    assert main([*argv[:-1], "3"]) == 0


def test_strict_fails_on_an_undeclared_import_that_is_only_a_warning_otherwise(
    committed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_code(committed)
    write_project(committed, "models/fraud", cmd="python -m train_fraud")
    git(committed, "add", "-A")
    git(committed, "commit", "-q", "-m", "fraud runs its own code")
    argv = ["affected", "--base", "HEAD~1", "--root", str(committed)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "warning: models/fraud: stage train runs src/train_fraud.py" in captured.err
    assert json.loads(captured.out)["count"] == 2  # src/features changed too: churn, fraud
    assert main([*argv, "--strict"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: 3 undeclared local import(s) (--strict): models/fraud" in captured.err


def test_an_unknown_base_is_one_line(committed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["affected", "--base", "nope", "--root", str(committed)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("modelci affected: error: git diff nope...HEAD failed in ")


def test_projects_lists_a_table_and_json(three: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["projects", "--root", str(three)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PATH", "NAME", "REGISTERED", "MODEL", "STAGES"]
    assert lines[1].split() == ["models/churn", "churn", "churn-model", "prepare,train"]
    assert main(["projects", "--root", str(three), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in listed] == ["churn", "forecast", "fraud"]
    assert "src/features" in listed[0]["dependencies"]
