"""The distributions adopters install, built once per session from this checkout
(``modelci_dists``): twine's checks, the wheel's contents and its metadata's extras."""

from __future__ import annotations

import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from modelci import __version__
from tests.conftest import REPO_ROOT, VENV_BIN, run

pytestmark = pytest.mark.integration


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
