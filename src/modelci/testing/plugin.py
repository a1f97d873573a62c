"""The pytest plugin (entry point ``modelci``): options and session fixtures for model checks.

Fixtures are named ``modelci_*``; a ``conftest.py`` overrides any of them (``modelci_root`` to
check a repository other than pytest's rootdir). Until the pipeline has produced its outputs,
the fixtures that need one skip the tests that use them, with the reason and a line in the
summary, or fail them with ``--modelci-missing-outputs=fail`` (for a CI job that runs the
pipeline first); checks of the params file run either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelci.config import DataParams, MetricRule, ModelTestsParams
from modelci.testing.repo import ModelRepo

MISSING_POLICIES = ("skip", "fail")
# ModelRepo fields settable with an ini option ``modelci_<field>`` (or ``-o modelci_<field>=``).
PATH_OPTIONS = {
    "params": "the params file, with the data: schema",
    "model": "the model file the pipeline writes",
    "train_split": "the train split (for the determinism check)",
    "test_split": "the test split the metrics are computed on",
    "metrics": "the metrics file the pipeline writes",
    "pipeline": "the DVC pipeline file (to tell modelci's own train stage from yours)",
}
_MISSING = pytest.StashKey[set[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("modelci", "modelci model checks (modelci.testing)")
    group.addoption(
        "--modelci-root",
        default=None,
        help="the model repository to check (default: ini modelci_root, else pytest's rootdir)",
    )
    group.addoption(
        "--modelci-missing-outputs",
        choices=MISSING_POLICIES,
        default=None,
        help="when a pipeline output is missing: skip the checks that need it, or fail them "
        "(default: ini modelci_missing_outputs, else skip)",
    )
    parser.addini("modelci_root", "the model repository, relative to the rootdir", default="")
    parser.addini(
        "modelci_missing_outputs",
        "skip or fail checks whose pipeline output is missing",
        default="skip",
    )
    defaults = ModelRepo(Path())
    for field, help_text in PATH_OPTIONS.items():
        default = str(getattr(defaults, field))
        parser.addini(f"modelci_{field}", f"{help_text} (default {default})", default=default)


def missing_policy(config: pytest.Config) -> str:
    policy = config.getoption("modelci_missing_outputs") or config.getini("modelci_missing_outputs")
    if policy not in MISSING_POLICIES:
        raise pytest.UsageError(
            f"modelci_missing_outputs: {policy!r} is not one of {', '.join(MISSING_POLICIES)}"
        )
    return str(policy)


def pytest_configure(config: pytest.Config) -> None:
    missing_policy(config)
    config.stash[_MISSING] = set()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    missing = config.stash.get(_MISSING, set())
    if missing:
        terminalreporter.write_sep("-", "modelci")
        terminalreporter.write_line(
            f"model checks skipped: {', '.join(sorted(missing))} not found. Run `dvc repro` "
            "first; --modelci-missing-outputs=fail makes this an error."
        )


def require_output(config: pytest.Config, repo: ModelRepo, field: str) -> Path:
    """The path of a pipeline output, or skip (or fail) the test that needs it."""
    path = repo.path(field)
    if path.is_file():
        return path
    shown = str(getattr(repo, field))
    reason = (
        f"{shown} not found in {repo.root}: run `dvc repro` first "
        f"(or set the ini option modelci_{field} if your pipeline writes it elsewhere)"
    )
    if missing_policy(config) == "fail":
        pytest.fail(reason, pytrace=False)
    config.stash[_MISSING].add(shown)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def modelci_root(pytestconfig: pytest.Config) -> Path:
    """The model repository's root directory."""
    given = pytestconfig.getoption("modelci_root") or pytestconfig.getini("modelci_root")
    return (pytestconfig.rootpath / given).resolve() if given else pytestconfig.rootpath


@pytest.fixture(scope="session")
def modelci_repo(modelci_root: Path, pytestconfig: pytest.Config) -> ModelRepo:
    """Where the params and the pipeline outputs are (ini options ``modelci_<name>``)."""
    paths = {field: Path(pytestconfig.getini(f"modelci_{field}")) for field in PATH_OPTIONS}
    return ModelRepo(modelci_root, **paths)


@pytest.fixture(scope="session")
def modelci_data(modelci_repo: ModelRepo) -> DataParams:
    """The ``data:`` schema: columns, target and task."""
    return modelci_repo.data()


@pytest.fixture(scope="session")
def modelci_gate(modelci_repo: ModelRepo) -> dict[str, MetricRule]:
    """The gate rules (``gate.metrics``), empty when the params file declares none."""
    return modelci_repo.gate()


@pytest.fixture(scope="session")
def modelci_model_tests(modelci_repo: ModelRepo) -> ModelTestsParams:
    """The declared model tests (``model_tests:``), checked against the schema."""
    return modelci_repo.model_tests()


@pytest.fixture(scope="session")
def modelci_trusted_types(modelci_repo: ModelRepo) -> tuple[str, ...]:
    """``train.trusted_types``: the types the safe loader accepts beyond its defaults."""
    return modelci_repo.trusted_types()


@pytest.fixture(scope="session")
def modelci_model_file(modelci_repo: ModelRepo, pytestconfig: pytest.Config) -> Path:
    return require_output(pytestconfig, modelci_repo, "model")


@pytest.fixture(scope="session")
def modelci_model(modelci_model_file: Path, modelci_trusted_types: tuple[str, ...]) -> Any:
    """The produced model, through the safe loader (no unpickling of untrusted types)."""
    from modelci.modelfile import load_model

    return load_model(modelci_model_file, modelci_trusted_types)


def _read_split(config: pytest.Config, repo: ModelRepo, field: str) -> Any:
    from modelci.data.sources import read_table

    return read_table(require_output(config, repo, field))


@pytest.fixture(scope="session")
def modelci_test_frame(modelci_repo: ModelRepo, pytestconfig: pytest.Config) -> Any:
    """The test split (a pandas DataFrame, features and target)."""
    return _read_split(pytestconfig, modelci_repo, "test_split")


@pytest.fixture(scope="session")
def modelci_train_frame(modelci_repo: ModelRepo, pytestconfig: pytest.Config) -> Any:
    """The train split (a pandas DataFrame, features and target)."""
    return _read_split(pytestconfig, modelci_repo, "train_split")


@pytest.fixture(scope="session")
def modelci_metrics(modelci_repo: ModelRepo, pytestconfig: pytest.Config) -> dict[str, Any]:
    """The metrics file the pipeline wrote (JSON)."""
    import json

    path = require_output(pytestconfig, modelci_repo, "metrics")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
