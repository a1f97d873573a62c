"""The version's one source and the release stamp. (The built wheel and sdist are checked in
``tests/integration/test_distributions.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelci import __version__
from modelci.scaffold import stamp
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit


def test_version_has_one_source() -> None:
    assert stamp.project_version(REPO_ROOT / "pyproject.toml") == __version__


SHA = "0123456789abcdef0123456789abcdef01234567"


def test_stamp_records_the_release(tmp_path: Path) -> None:
    out = tmp_path / "release.json"
    args = ["--repository", "acme/modelci", "--commit", SHA, "--tag", f"v{__version__}"]
    assert (
        stamp.main([*args, "--pyproject", str(REPO_ROOT / "pyproject.toml"), "--out", str(out)])
        == 0
    )
    assert json.loads(out.read_text()) == {"repository": "acme/modelci", "commit": SHA}


@pytest.mark.parametrize(
    ("repository", "commit", "tag", "message"),
    [
        ("acme/modelci", SHA, "v0.0.1", "does not match"),
        ("acme/modelci", "abc123", f"v{__version__}", "not a full 40-hex"),
        ("not a repo", SHA, f"v{__version__}", "is not OWNER/NAME"),
    ],
)
def test_stamp_refuses_a_wrong_release(
    tmp_path: Path,
    repository: str,
    commit: str,
    tag: str,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "release.json"
    args = ["--repository", repository, "--commit", commit, "--tag", tag]
    assert (
        stamp.main([*args, "--pyproject", str(REPO_ROOT / "pyproject.toml"), "--out", str(out)])
        == 2
    )
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_the_repository_ships_an_unstamped_release_file() -> None:
    """Only the publish workflow stamps it; a committed commit would pin adopters to it."""
    info = json.loads((REPO_ROOT / "src/modelci/scaffold/release.json").read_text())
    assert info["commit"] is None
