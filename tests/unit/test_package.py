"""The distributions adopters install: contents, metadata, extras, and the release stamp."""

from __future__ import annotations

import json
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from modelci import __version__
from modelci.scaffold import stamp
from tests.conftest import REPO_ROOT, VENV_BIN, run

pytestmark = pytest.mark.unit


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def wheel_metadata(wheel: Path) -> list[tuple[str, str]]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode("utf-8"))
    return [(key, str(value)) for key, value in message.items()]


def test_twine_accepts_both_distributions(modelci_dists: dict[str, Path]) -> None:
    run(
        [str(VENV_BIN / "twine"), "check", "--strict", *map(str, modelci_dists.values())], REPO_ROOT
    )


def test_wheel_holds_what_adopters_need_and_nothing_else(modelci_dists: dict[str, Path]) -> None:
    names = wheel_names(modelci_dists["wheel"])
    templates = "modelci/scaffold/templates/"
    for needed in (
        "modelci/cli.py",
        "modelci/scaffold/release.json",
        f"{templates}dvc.yaml.tmpl",
        f"{templates}pyproject.toml.tmpl",
        f"{templates}dot-gitignore",
        f"{templates}dot-github/workflows/pr.yml",
        f"{templates}dot-github/workflows/pr-comment.yml",
        f"{templates}dot-github/workflows/release.yml",
    ):
        assert needed in names, needed
    tops = {name.split("/")[0] for name in names}
    assert tops == {"modelci", f"modelci-{__version__}.dist-info"}, tops
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_core_dependencies_leave_serving_and_demo_data_to_extras(
    modelci_dists: dict[str, Path],
) -> None:
    requires = [
        value for key, value in wheel_metadata(modelci_dists["wheel"]) if key == "Requires-Dist"
    ]
    core = [r for r in requires if "extra ==" not in r]
    for heavy in ("dalex", "uvicorn", "starlette", "onnxruntime", "skl2onnx"):
        assert not [r for r in core if r.startswith(heavy)], f"{heavy} is a core dependency"
    for extra, package in (("serve", "uvicorn"), ("demo", "dalex"), ("onnx", "onnxruntime")):
        assert [r for r in requires if r.startswith(package) and f"extra == '{extra}'" in r]


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
