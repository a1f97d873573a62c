"""Several models in one repository (``tests/projects_support.py``: ``init`` and ``init --add``
twice from scikit-learn's own datasets), then ``modelci affected`` on real commits.

``--no-lock``: the projects share a committed stand-in ``uv.lock`` (the lock's content is not
what is tested; ``uv lock`` needs the package index). ``tests/workflows/test_act_projects.py``
runs the PR workflow under act on the same repository made with a real lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelci.cli import main
from tests.conftest import VENV_BIN, run
from tests.projects_support import PROJECTS, SHARING, build_clinic, commit, dataset_csv, git
from tests.unit.test_scaffold import SHA

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _init_root(data: Path, target: str) -> Path:
    repo = data.parent.parent / data.stem
    argv = ["init", str(repo), "--data", str(data), "--target", target]
    assert main([*argv, "--no-lock", "--workflows-ref", SHA]) == 0
    return repo


def _add(repo: Path, argv: list[str]) -> None:
    assert main(["init", str(repo), *argv]) == 0


@pytest.fixture(scope="session")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository: three projects and the shared feature package, committed on main."""
    root = tmp_path_factory.mktemp("projects")
    return build_clinic(root, _init_root, _add, {"uv.lock": "v1\n"})


def _affected(repo: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, str]:
    """path -> reason of the affected projects of HEAD against main (the base)."""
    capsys.readouterr()
    assert main(["affected", "--base", "main", "--root", str(repo), *extra]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["path"] for p in out["projects"]] == PROJECTS
    assert out["count"] == len(out["matrix"]["include"])
    return {p["path"]: p["reason"] for p in out["projects"] if p["affected"]}


@pytest.fixture
def branch(clinic: Path) -> Iterator[Path]:
    """A pull request's branch off main; main is checked out again after the test."""
    git(clinic, "checkout", "-q", "-b", "pr")
    yield clinic
    git(clinic, "checkout", "-q", "-f", "main")
    git(clinic, "branch", "-q", "-D", "pr")


def test_projects_lists_the_three_with_their_registered_models(
    clinic: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["projects", "--root", str(clinic), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    names = [(p["path"], p["name"], p["registered_model"]) for p in listed]
    assert names == [
        (".", "clinic", "clinic"),
        ("models/diabetes", "diabetes", "diabetes"),
        ("models/wine", "wine", "wine"),
    ]
    wine = listed[2]["dependencies"]
    assert {"models/wine/data/wine.csv", "models/wine/params.yaml", "src/features"} <= set(wine)


def test_dvc_reads_every_nested_pipeline(clinic: Path) -> None:
    status = json.loads(run(["dvc", "status", "--json"], clinic).stdout)
    stages = {key.rsplit(":", 1)[0] if ":" in key else "dvc.yaml" for key in status}
    assert stages == {"dvc.yaml", "models/wine/dvc.yaml", "models/diabetes/dvc.yaml"}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"models/wine/params.yaml": "changed"},
            {"models/wine": "models/wine/params.yaml changed (params of prepare, train, export,"
                            " evaluate)"},
        ),
        (
            {"src/features/scale.py": "def build(): return 1\n"},
            dict.fromkeys(SHARING, "src/features/scale.py changed (dep of train)"),
        ),
        (
            {"uv.lock": "v2\n"},
            dict.fromkeys(PROJECTS, "uv.lock changed: the environment of every project"),
        ),
        ({"README.md": "# the clinic's models\n"}, {}),
    ],
    ids=["params", "shared-package", "lock", "readme"],
)  # fmt: skip
def test_a_change_affects_what_declares_it(
    branch: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    expected: dict[str, str],
) -> None:
    if "models/wine/params.yaml" in files:  # a real edit of a key train does not read
        text = (branch / "models/wine/params.yaml").read_text()
        files = {"models/wine/params.yaml": text.replace("seed: 42", "seed: 7", 1)}
    commit(branch, "the pull request", files)
    assert _affected(branch, capsys) == expected


def test_an_undeclared_factory_package_is_flagged(
    branch: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The root project's train uses the shared package through train.pipeline without
    declaring it: a change there would leave it 'unchanged'."""
    params = (branch / "params.yaml").read_text()
    assert "train:\n" in params
    params = params.replace("train:\n", "train:\n  pipeline: features.scale:build\n", 1)
    commit(branch, "the root model uses the shared features", {"params.yaml": params})
    assert _affected(branch, capsys) == {
        ".": "params.yaml changed (params of prepare, train, export, evaluate)"
    }
    assert main(["affected", "--base", "main", "--root", str(branch), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "(root): stage train imports (train.pipeline) src/features/scale.py" in err, err
    assert "error: 1 undeclared local import(s) (--strict)" in err, err


def test_add_refuses_a_clash_and_leaves_the_repository_as_it_was(
    clinic: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = dataset_csv("load_wine", "cultivar", tmp_path / "wine.csv")
    head = git(clinic, "rev-parse", "HEAD")
    for folder, extra, message in (
        ("other/wine", [], "the project in models/wine is named 'wine' already"),
        ("models/wine2", ["--name", "diabetes"], "registers the model 'diabetes' already"),
        ("models/wine", [], "models/wine/dvc.yaml exists already"),
        ("models/wine/models", [], "overlaps"),
    ):
        argv = ["init", str(clinic), "--add", folder, "--data", str(data), "--target", "cultivar"]
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err, err
        assert len(err.splitlines()) == 1, err
    assert git(clinic, "rev-parse", "HEAD") == head
    assert git(clinic, "status", "--porcelain", "--untracked-files=all") == ""


def test_added_projects_pass_the_repositorys_own_lint(clinic: Path) -> None:
    """The lint job of ci.yml runs ruff and black on the whole repository, with the settings of
    the pyproject.toml init wrote: the files init --add writes pass them."""
    for tool in (["ruff", "check", "--no-cache", "models"], ["black", "--check", "models"]):
        done = run([str(VENV_BIN / tool[0]), *tool[1:]], clinic, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
