"""``modelci init`` in a folder that already holds things: it commits only what it wrote.

Real git and DVC (``--no-lock`` except where uv's failure is the point), init called through
``main(argv)`` as the CLI runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from configobj import ConfigObj

from modelci.cli import main
from modelci.scaffold.init import Options, make_plan
from tests.conftest import run, uv_binary
from tests.unit.test_scaffold import SHA, customers

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in (("NAME", "modelci tests"), ("EMAIL", "tests@modelci.invalid")):
        monkeypatch.setenv(f"GIT_AUTHOR_{key}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{key}", value)


@pytest.fixture
def app_repo(tmp_path: Path) -> Path:
    """An existing project: a committed app.py, then an edit, a secret and the raw data."""
    repo = tmp_path / "shop"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo)
    (repo / "app.py").write_text("print('v1')\n")
    run(["git", "add", "app.py"], repo)
    run(["git", "commit", "-q", "-m", "app"], repo)
    (repo / "app.py").write_text("print('v2, not ready')\n")
    (repo / ".env").write_text("AWS_SECRET=xyz\n")
    customers().to_csv(repo / "raw.csv", index=False)
    return repo


def init_args(repo: Path, *extra: str) -> list[str]:
    return [
        "init",
        str(repo),
        "--data",
        str(repo / "raw.csv"),
        "--target",
        "churned",
        "--workflows-ref",
        SHA,
        *extra,
    ]


def state(repo: Path) -> tuple[list[str], str, str]:
    """Every path under the folder (outside .git), git's status and the index's entries."""
    files = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if ".git" not in p.parts)
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout
    index = run(["git", "ls-files", "--stage"], repo).stdout
    return files, status, index


def test_init_refuses_a_dirty_tree_then_commits_only_its_own_files(
    app_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = state(app_repo)
    assert main(init_args(app_repo, "--no-lock")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "uncommitted changes" in err, err
    assert "app.py" in err, err
    assert state(app_repo) == before, "a refused init changed the folder"

    run(["git", "commit", "-q", "-am", "app v2"], app_repo)
    assert main(init_args(app_repo, "--no-lock")) == 0
    out = capsys.readouterr().out
    assert ".env" in out, out
    assert "untracked" in out, out

    plan = make_plan(
        Options(
            directory=app_repo,
            data=app_repo / "raw.csv",
            target="churned",
            workflows_ref=SHA,
            lock=False,
        )
    )
    expected = set(plan.files) - {"data/raw.csv"}
    expected |= {"data/raw.csv.dvc", ".dvc/config", ".dvc/.gitignore"}
    committed = run(["git", "show", "--name-only", "--format=", "HEAD"], app_repo).stdout.split()
    assert set(committed) == expected
    everything = run(["git", "log", "--all", "--name-only", "--format="], app_repo).stdout.split()
    assert not {".env", "raw.csv", "data/raw.csv"} & set(everything)
    status = run(["git", "status", "--porcelain", "--untracked-files=all"], app_repo).stdout
    assert status.splitlines() == ["?? .env", "?? raw.csv"], status
    ignored = run(["git", "check-ignore", "-q", "data/raw.csv"], app_repo, check=False)
    assert ignored.returncode == 0, "the data copy is not ignored by git"
    autostage = run(["git", "config", "-f", ".dvc/config", "core.autostage"], app_repo)
    assert autostage.stdout.strip() == "true"  # documented in docs/adopting.md


@pytest.fixture
def uv_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """init finds uv on PATH, as an adopter's shell would; offline: the failures are local."""
    monkeypatch.setenv("PATH", f"{Path(uv_binary()).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("UV_OFFLINE", "1")


def missing_wheel(tmp_path: Path) -> str:
    return f"modelci[serve] @ {(tmp_path / 'gone' / 'modelci-0.2.0-py3-none-any.whl').as_uri()}"


@pytest.mark.slow
def test_a_failed_uv_lock_leaves_an_existing_repository_as_it_was(
    app_repo: Path, tmp_path: Path, uv_on_path: None, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["git", "commit", "-q", "-am", "app v2"], app_repo)
    before = state(app_repo), run(["git", "rev-parse", "HEAD"], app_repo).stdout
    assert main(init_args(app_repo, "--modelci", missing_wheel(tmp_path))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "uv lock failed" in err, err
    assert "modelci-0.2.0-py3-none-any.whl" in err, err
    assert (state(app_repo), run(["git", "rev-parse", "HEAD"], app_repo).stdout) == before
    assert not [p for p in tmp_path.iterdir() if "modelci-init" in p.name], "temp folder left"


@pytest.mark.slow
def test_a_failed_uv_lock_of_the_default_pin_creates_nothing_and_names_the_cause(
    tmp_path: Path, uv_on_path: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """No release of this version on the index (here: offline) is the common first-run failure."""
    customers().to_csv(tmp_path / "raw.csv", index=False)
    repo = tmp_path / "new" / "churn"
    args = ["init", str(repo), "--data", str(tmp_path / "raw.csv"), "--target", "churned"]
    assert main([*args, "--workflows-ref", SHA]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "uv lock failed" in err, err
    assert "--modelci" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw.csv"]


def test_a_failed_commit_undoes_everything_init_did(
    app_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A step after the files are in place (here git's pre-commit hook) fails: all is undone."""
    run(["git", "commit", "-q", "-am", "app v2"], app_repo)
    (app_repo / "params.yaml").write_text("mine: true\n")  # overwritten with --force, then back
    run(["git", "add", "params.yaml"], app_repo)
    run(["git", "commit", "-q", "-m", "params"], app_repo)
    hook = app_repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'refused by the hook' >&2\nexit 1\n")
    hook.chmod(0o755)
    before = state(app_repo), run(["git", "rev-parse", "HEAD"], app_repo).stdout
    assert main(init_args(app_repo, "--no-lock", "--force")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "git commit failed" in err[0], err
    assert "left as it was" in err[0], err
    assert (state(app_repo), run(["git", "rev-parse", "HEAD"], app_repo).stdout) == before
    assert (app_repo / "params.yaml").read_text() == "mine: true\n"


def test_init_in_a_folder_that_already_holds_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`modelci init repo --data repo/data/x.csv`: the data stays where it is and is DVC-tracked."""
    for key, value in (("NAME", "modelci tests"), ("EMAIL", "tests@modelci.invalid")):
        monkeypatch.setenv(f"GIT_AUTHOR_{key}", value)
        monkeypatch.setenv(f"GIT_COMMITTER_{key}", value)
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    customers().to_csv(repo / "data" / "customers.csv", index=False)
    args = ["init", str(repo), "--data", str(repo / "data" / "customers.csv"), "--target"]
    assert main([*args, "churned", "--workflows-ref", SHA, "--no-lock"]) == 0, capsys.readouterr()
    assert (repo / "data" / "customers.csv.dvc").is_file()
    tracked = run(["git", "ls-files"], repo).stdout.split()
    assert "data/customers.csv.dvc" in tracked
    assert "data/customers.csv" not in tracked
    # written without `dvc config`: read as DVC reads its config file (configobj)
    core = ConfigObj(str(repo / ".dvc" / "config"))["core"]
    assert (core["analytics"], core["autostage"]) == ("false", "true")
