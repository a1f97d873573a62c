"""check-params remembers a passing model check (the seconds of scikit-learn imports) under a key
of the params file's bytes, the installed distributions and the user's own code; any change to
one of them, a failure, or --no-cache runs the check again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from modelci import cli
from modelci.cli import main
from modelci.config import load_params
from modelci.pipeline import check_cache
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

SKIPPED = "(model check: passed before with the same params, distributions and code)"


@pytest.fixture
def params(tmp_path: Path) -> Path:
    path = tmp_path / "params.yaml"
    path.write_bytes((REPO_ROOT / "params.yaml").read_bytes())
    return path


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Records every model check that really ran (and still runs it)."""
    ran: list[object] = []
    real = cli._check_model

    def counted(params: object) -> None:
        ran.append(params)
        real(params)

    monkeypatch.setattr(cli, "_check_model", counted)
    return ran


def check(path: Path, *extra: str) -> int:
    return main(["check-params", "--params", str(path), *extra])


def test_a_passing_check_is_not_run_twice(
    params: Path, checks: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(params) == 0
    assert SKIPPED not in capsys.readouterr().out
    assert check(params) == 0
    assert len(checks) == 1
    assert SKIPPED in capsys.readouterr().out
    assert (params.parent / ".modelci" / "check-params.json").is_file()


def test_no_cache_runs_the_check(params: Path, checks: list[object]) -> None:
    assert check(params) == 0
    assert check(params, "--no-cache") == 0
    assert len(checks) == 2


def test_changed_params_are_checked_again(
    params: Path, checks: list[object], capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(params) == 0
    raw = yaml.safe_load(params.read_text())
    raw["train"]["estimator_params"]["learning_rate"] = -1.0
    params.write_text(yaml.safe_dump(raw))
    assert check(params) == 2
    assert check(params) == 2  # a failure is never remembered: the error every time
    assert len(checks) == 3
    assert "train.estimator_params: The 'learning_rate' parameter" in capsys.readouterr().err


def test_a_new_distribution_version_changes_the_key(
    params: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train = load_params(params).train
    before = check_cache.check_key(params, train)
    installed = check_cache._installed()
    assert any(name.startswith("scikit_learn-") for name in installed), installed
    monkeypatch.setattr(
        check_cache,
        "_installed",
        lambda: [n.replace("scikit_learn-", "scikit_learn-0.") for n in installed],
    )
    assert check_cache.check_key(params, train) != before


def test_the_users_own_factory_code_is_part_of_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[object]
) -> None:
    package = tmp_path / "src" / "own_model_code"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    factory = package / "features.py"
    factory.write_text(
        "from sklearn.linear_model import LogisticRegression\n"
        "def model():\n    return LogisticRegression()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "data: {source: d.csv, target: y, task: binary,\n"
        "  columns: {x: {type: float}, y: {type: int, min: 0, max: 1}}}\n"
        "train: {pipeline: 'own_model_code.features:model'}\n"
    )
    assert main(["check-params"]) == 0
    assert main(["check-params"]) == 0
    assert len(checks) == 1
    factory.write_text(
        "from sklearn.linear_model import LinearRegression\n"
        "def model():\n    return LinearRegression()\n"
    )
    for name in [m for m in sys.modules if m.startswith("own_model_code")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["check-params"]) == 2  # now a regressor for a binary task
    assert len(checks) == 2
