"""Several models in one repository, built as a user builds it: ``modelci init`` (breast cancer,
at the root), then ``modelci init --add`` twice (wine, diabetes) from scikit-learn's own datasets
written to CSV (no network), real git and DVC.

wine and diabetes share a feature package (``src/features``, declared as a dep of their train
stages). Shared by the integration test of ``modelci affected`` (init run in process, a stand-in
``uv.lock``) and the act test of the PR workflow (init run from the built wheel, a real
``uv.lock``): the two differ only in how ``init`` runs, given as callables.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.conftest import run

PROJECTS = [".", "models/diabetes", "models/wine"]
SHARING = ("models/diabetes", "models/wine")
_TRAIN_DEPS = "    cmd: modelci train\n    deps:\n      - data/prepared/train.parquet\n"
# The shared package: lint-clean, since the act test's lint job checks the repository.
FEATURES = {
    "src/features/__init__.py": '"""Feature code shared by the wine and diabetes models."""\n',
    "src/features/scale.py": '"""Scaling of the measurements."""\n\n\n'
    "def build() -> None:\n"
    '    """A pipeline factory (declared as a dep of the train stages that use it)."""\n',
}
# The root project is named after its folder; the data file's stem names that folder in
# ``adoption_support.init_repository``, so the two builds give the same project names.
ROOT_NAME = "clinic"

# init_root(data, target) -> the new repository; add(repository, argv after "init REPOSITORY")
InitRoot = Callable[[Path, str], Path]
Add = Callable[[Path, list[str]], None]


def dataset_csv(loader: str, target: str, out: Path) -> Path:
    """One of scikit-learn's bundled datasets as a CSV file, the target column renamed."""
    import sklearn.datasets

    frame = getattr(sklearn.datasets, loader)(as_frame=True).frame
    frame.columns = [re.sub(r"\W+", "_", str(c)).strip("_") for c in frame.columns]
    frame.rename(columns={"target": target}).to_csv(out, index=False)
    return out


IDENTITY = {
    f"GIT_{who}_{key}": value
    for who in ("AUTHOR", "COMMITTER")
    for key, value in (("NAME", "modelci tests"), ("EMAIL", "tests@modelci.invalid"))
}


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo, **IDENTITY).stdout


def commit(repo: Path, message: str, files: Mapping[str, str]) -> str:
    """Write ``files`` (path -> text), commit everything; returns the commit."""
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def build_clinic(
    root: Path, init_root: InitRoot, add: Add, shared: Mapping[str, str] | None = None
) -> Path:
    """The repository, committed on main: three projects and the shared feature package
    (committed with ``shared``'s extra files, e.g. a stand-in uv.lock)."""
    with pytest.MonkeyPatch.context() as monkeypatch:  # for init's own commits
        for name, value in IDENTITY.items():
            monkeypatch.setenv(name, value)
        data = root / "data"
        data.mkdir()
        cancer = dataset_csv("load_breast_cancer", "malignant", data / f"{ROOT_NAME}.csv")
        wine = dataset_csv("load_wine", "cultivar", data / "wine.csv")
        diabetes = dataset_csv("load_diabetes", "progression", data / "diabetes.csv")
        repo = init_root(cancer, "malignant")
        assert repo.name == ROOT_NAME, repo
        for folder, csv, target in (("models/wine", wine, "cultivar"),
                                    ("models/diabetes", diabetes, "progression")):  # fmt: skip
            add(repo, ["--add", folder, "--data", str(csv), "--target", target])
            added = git(repo, "show", "--name-only", "--format=", "HEAD").split()
            assert added, "init --add committed nothing"
            assert all(p.startswith(f"{folder}/") for p in added), added  # no other project's file
        files = {**FEATURES, **(shared or {})}
        for folder in SHARING:
            pipeline = (repo / folder / "dvc.yaml").read_text()
            assert pipeline.count(_TRAIN_DEPS) == 1
            files[f"{folder}/dvc.yaml"] = pipeline.replace(
                _TRAIN_DEPS, f"{_TRAIN_DEPS}      - ../../src/features\n"
            )
        commit(repo, "a feature package shared by wine and diabetes", files)
    return repo
