"""``modelci init``: a complete, committed model repository from one data file.

The plan (every file and its content) is made in memory first, so ``--dry-run`` shows exactly
what would be written, and a refusal (an existing file, bad data, an unknown target) leaves the
disk untouched. Then ``uv lock`` runs in a scratch folder, the files are written, and git and
DVC take over: ``git init``, ``dvc init``, ``dvc add`` of the data, one commit of init's own
files only. A failure at any step leaves the target folder as it was (see ``write``).
"""

from __future__ import annotations

import configparser
import functools
import json
import os
import posixpath
import re
import shutil
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import yaml

from modelci import __version__, _proc, layout
from modelci.config import CLUSTER_SECRETS, Params, Task, parse_params
from modelci.data.schema import validate
from modelci.errors import ConfigError, ModelCIError
from modelci.pipeline.prepare import drop_null_target
from modelci.scaffold import baseline, params_file
from modelci.scaffold.estimators import KNOWN_ESTIMATORS
from modelci.scaffold.infer import Inferred, infer

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from modelci.projects import Project

NullTarget = Literal["error", "drop"]
Engine = Literal["local", "dask"]
_SHA = re.compile(r"^[0-9a-f]{40}$")
# git, DVC (hashing the data file) and uv lock (resolving against the index) each get this long.
TOOL_TIMEOUT_S = 1800.0
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The data file's name goes into .gitignore (`/data/<name>`), where `*?[!#\` and line breaks
# are syntax: only names without them are accepted.
_DATA_NAME = re.compile(r"\w[\w .+()-]*")


class ScaffoldError(ModelCIError):
    """``modelci init`` cannot create the repository as asked."""

    exit_code = 2


@dataclass(frozen=True)
class Options:
    """Everything ``modelci init`` was asked for."""

    directory: Path
    data: Path
    target: str
    task: Task | None = None
    modelci: str | None = None
    null_target: NullTarget = "error"
    repository: str | None = None
    workflows_ref: str | None = None
    force: bool = False
    lock: bool = True
    git: bool = True
    name: str | None = None
    estimator: str | None = None
    # compute.engine of the project: dask adds the compute section, the source stage, the dask
    # extra and the cluster's secrets in the workflow callers (docs/scale.md)
    engine: Engine = "local"
    # --add FOLDER: a project added in FOLDER (relative to ``directory``, an existing repository)
    add: str | None = None


@dataclass
class Plan:
    """The files init writes (relative path -> bytes), and what it inferred."""

    files: dict[str, bytes] = field(default_factory=dict)
    inferred: Inferred | None = None
    data_path: str = ""
    collisions: list[str] = field(default_factory=list)


def release_info() -> dict[str, str | None]:
    """The repository and commit this modelci was released from (stamped at release time)."""
    text = resources.files("modelci.scaffold").joinpath("release.json").read_text("utf-8")
    info: dict[str, str | None] = json.loads(text)
    return info


def package_name(directory: Path, name: str | None = None) -> tuple[str, str]:
    """(distribution name, import name) for the new repository: ``--name``, else the folder's."""
    raw = directory.resolve().name if name is None else name
    project = re.sub(r"[^A-Za-z0-9]+", "-", raw).strip("-").lower() or "model"
    module = project.replace("-", "_")
    if not module.isidentifier() or module[0].isdigit():
        module = f"model_{module}"
    return project, module


def _normal(name: str) -> str:
    """A distribution name as PyPI compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _dev_tools() -> list[str]:
    """The distributions of the generated repository's dev group (not installed with init)."""
    pyproject = tomllib.loads(_templates()["pyproject.toml"])
    found = (re.match(r"[A-Za-z0-9._-]+", r) for r in pyproject["dependency-groups"]["dev"])
    return [m.group(0) for m in found if m]


def owner_of(project: str, module: str) -> str | None:
    """Who already owns this distribution or import name: the standard library, or a
    distribution installed with modelci (its dependencies) or the new repository's dev tools.

    A package named like one of them cannot work: ``sklearn`` is shadowed by scikit-learn's
    (``No module named 'sklearn.features'``), ``pandas`` makes ``uv lock`` fail.
    """
    if module in sys.stdlib_module_names:
        return "the standard library"
    installed, importers_of = _installed()
    for distribution in [*installed, *_dev_tools()]:
        if _normal(distribution) in (_normal(project), _normal(module)):
            return str(distribution)
    importers = importers_of.get(module)
    return importers[0] if importers else None


@functools.cache
def _installed() -> tuple[tuple[str, ...], Mapping[str, list[str]]]:
    """The installed distributions' names and who provides each import name, read once per
    process: the scan parses every distribution's metadata (about a second on a full venv)."""
    from importlib import metadata

    names = tuple(d.name for d in metadata.distributions() if d.name)
    return names, metadata.packages_distributions()


def _refuse_taken_name(options: Options, project: str, module: str) -> None:
    owner = owner_of(project, module)
    if owner is None:
        return
    where, raw = (
        ("--name", options.name)
        if options.name is not None
        else ("DIRECTORY", options.directory.resolve().name)
    )
    raise ScaffoldError(
        f"{where}: {raw!r} would make the package {project!r} (import {module!r}), a name "
        f"{owner} already uses, so one would shadow the other: pass --name <another name>"
    )


def default_requirement() -> str:
    """The modelci this init runs, pinned, with the serving and ONNX extras: ``modelci serve``,
    and the export stage's ONNX model that serving scores with (without it every ``dvc repro``
    says the export was skipped, and serving falls back to scikit-learn)."""
    return f"modelci[serve,onnx]=={__version__}"


def requirement(options: Options) -> str:
    """The project's modelci dependency: ``--modelci`` or the default, plus the extra the
    chosen estimator's library comes with (``boosting`` for XGBoost and LightGBM)."""
    from packaging.requirements import InvalidRequirement, Requirement

    spec = options.modelci or default_requirement()
    extra = _extra(options)
    if extra is None:
        return spec
    try:
        parsed = Requirement(spec)
    except InvalidRequirement as error:
        raise ScaffoldError(f"--modelci: {spec!r} is not a requirement: {error}") from None
    parsed.extras.add(extra)
    return str(parsed)


def _extra(options: Options) -> str | None:
    """The modelci extra the project needs beyond the default: ``dask`` (which brings the
    boosting libraries) on the Dask engine, else the chosen estimator's."""
    if options.engine == "dask":
        return "dask"
    return KNOWN_ESTIMATORS[options.estimator].extra if options.estimator else None


def _check_estimator(options: Options, task: str) -> None:
    """The estimator init was asked for exists in its table and fits the task."""
    if options.estimator is None:
        return
    known = KNOWN_ESTIMATORS.get(options.estimator)
    if known is None:
        raise ScaffoldError(
            f"--estimator: {options.estimator!r} is not one init knows; choose one of "
            f"{', '.join(KNOWN_ESTIMATORS)} (or edit train.estimator afterwards)"
        )
    if known.classifier != (task != "regression"):
        kind = "a classifier" if known.classifier else "a regressor"
        raise ScaffoldError(f"--estimator: {options.estimator} is {kind} but the task is {task!r}")


def _workflow_pin(options: Options) -> tuple[str, str]:
    info = release_info()
    repository = options.repository or info.get("repository") or ""
    commit = options.workflows_ref or info.get("commit") or ""
    if not _REPO.match(repository):
        raise ScaffoldError(f"--repository: {repository!r} is not OWNER/NAME")
    if not commit:
        raise ScaffoldError(
            f"modelci {__version__} is not a release build, so it does not know the commit of "
            "its reusable workflows: pass --workflows-ref <40-hex commit of modelci>"
        )
    if not _SHA.match(commit):
        raise ScaffoldError(f"--workflows-ref: {commit!r} is not a full 40-hex commit SHA")
    return repository, commit


def _templates() -> dict[str, str]:
    """Template files by the path they get in the new repository.

    ``dot-x`` becomes ``.x`` and ``x.tmpl`` becomes ``x``: inside modelci's own repository a
    template must not act as what it will become (git and DVC would read a ``.gitignore`` or a
    ``dvc.yaml``, ruff and black a ``pyproject.toml``).
    """
    root = resources.files("modelci.scaffold").joinpath("templates")
    found: dict[str, str] = {}

    def walk(node: object, prefix: str) -> None:
        for child in node.iterdir():  # type: ignore[attr-defined]
            if child.name == "__pycache__":
                continue
            name = "." + child.name[4:] if child.name.startswith("dot-") else child.name
            name = name.removesuffix(".tmpl")
            if child.is_dir():
                walk(child, f"{prefix}{name}/")
            else:
                found[f"{prefix}{name}"] = child.read_text("utf-8")

    walk(root, "")
    return found


# compute.engine: dask (docs/scale.md): the pipeline gains a `source` stage that prepare depends
# on instead of the data, and train records (and evaluate reads) how it ran.
_SOURCE_STAGE = """\
  # compute.engine: dask: lists the files data.source names and records each one's version
  # (ETag, generation, or size and md5); prepare depends on that record, so the workers read the
  # data where it lives and an unchanged source skips every later stage.
  source:
    cmd: modelci source
    always_changed: true
    params:
      - data.source
    outs:
      - data/source.json:
          cache: false

"""
_TRAIN_PARAMS = "      - train\n      - pyproject.toml:\n          - project.dependencies\n"
_TRAIN_OUTS = "    outs:\n      - models/model.skops\n"
_EVALUATE = "    cmd: modelci evaluate\n    deps:\n      - models/model.skops\n"
_DASK_EDITS = (
    ("  prepare:\n", _SOURCE_STAGE + "  prepare:\n"),
    ("      - ${data.source}\n", "      - data/source.json\n"),
    (
        _TRAIN_PARAMS + _TRAIN_OUTS,
        _TRAIN_PARAMS.replace("- train\n", "- train\n      - compute\n")
        + _TRAIN_OUTS
        + "      # engine, estimator, workers, partitions, threads: what trained the model\n"
        + "      - models/compute.json:\n          cache: false\n",
    ),
    (_EVALUATE, _EVALUATE + "      - models/compute.json\n"),
)


_DASK_NOTE = """
The stages run on a Dask cluster (`compute.engine: dask` in `params.yaml`): `dvc repro` needs
`DASK_SCHEDULER_ADDRESS` (`tcp://host:8786`). To try it on one machine, run
`uv run dask scheduler` and `uv run dask worker tcp://127.0.0.1:8786` in this folder (the workers
read `data.source` from here), then `DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:8786 uv run dvc
repro`. For a cluster of other machines, point `data.source` at a URL its workers can read
(`s3://bucket/folder/*.parquet`). In CI the workflows take the address, and S3 credentials for
`data.source`, from this repository's secrets of the same names (modelci's docs/scale.md,
"Credentials in CI").
"""


def pipeline_template(engine: str) -> str:
    """The ``dvc.yaml`` template for ``engine``: the local one, or with the Dask engine's
    stages and records (the same outputs otherwise, so the report and serving read them)."""
    template = _templates()["dvc.yaml"]
    if engine == "local":
        return template
    for old, new in _DASK_EDITS:
        if template.count(old) != 1:
            raise RuntimeError(f"the dvc.yaml template changed: update _DASK_EDITS ({old!r})")
        template = template.replace(old, new)
    return template


def cluster_secrets(engine: str) -> str:
    """The lines a workflow caller adds to its ``secrets:`` on the Dask engine: the cluster's
    address and data.source's credentials, which the reusable workflows give only to
    ``dvc repro``; none on the local engine."""
    if engine == "local":
        return ""
    lines = [
        "      # compute.engine: dask (docs/scale.md): the scheduler's address and read-only",
        "      # credentials for an s3:// data.source; only the dvc repro steps see them, and pull",
        "      # requests from forks get no secrets.",
        *(f"      {name}: ${{{{ secrets.{name} }}}}" for name in CLUSTER_SECRETS),
    ]
    return "\n".join(lines) + "\n"


def render(text: str, values: dict[str, str], where: str) -> str:
    """Replace ``<<name>>`` placeholders; a placeholder with no value is a bug, not output."""
    for key, value in values.items():
        text = text.replace(f"<<{key}>>", value)
    left = re.findall(r"<<(\w+)>>", text)
    if left:
        raise RuntimeError(f"template {where}: no value for {sorted(set(left))}")
    return text


def _read_data(path: Path) -> pd.DataFrame:
    from modelci.data.sources import read_table

    if not path.is_file():
        raise ScaffoldError(f"--data: {path}: no such file")
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ScaffoldError(f"--data: {path}: use a .csv or .parquet file")
    if not _DATA_NAME.fullmatch(path.name):
        raise ScaffoldError(
            f"--data: {path.name!r}: rename the file to letters, digits, spaces and . _ - + ( ) "
            "only: its name is written into .gitignore, where other characters are patterns"
        )
    return read_table(path)


def make_plan(options: Options) -> Plan:
    """Infer, measure the baseline, render every file; touches nothing on disk."""
    frame = _read_data(options.data)
    inferred = infer(frame, options.target, options.task)
    if inferred.null_target_rows and options.null_target != "drop":
        raise ScaffoldError(
            f"{options.data}: {inferred.null_target_rows} row(s) have no value for target "
            f"{options.target!r}: pass --null-target drop to drop them (written to params.yaml "
            "as prepare.null_target: drop)"
        )
    if options.add is not None:
        return add_plan(options, frame, inferred)
    name, module = package_name(options.directory, options.name)
    _refuse_taken_name(options, name, module)
    data_path = f"data/{options.data.name}"
    text = _params_text(options, frame, inferred, data_path, name)

    repository, commit = _workflow_pin(options)
    pipeline = pipeline_template(options.engine)
    values = {
        "name": name,
        "module": module,
        "modelci_requirement": requirement(options),
        "modelci_version": __version__,
        "repository": repository,
        "commit": commit,
        "release_tag": f"v{__version__}",
        "data_path": data_path,
        "data_ignore": f"/{data_path}",
        "cluster_secrets": cluster_secrets(options.engine),
        "stages": ", ".join(yaml.safe_load(pipeline)["stages"]),
        "engine_note": _DASK_NOTE if options.engine == "dask" else "",
    }
    plan = Plan(inferred=inferred, data_path=data_path)
    templates = {**_templates(), "dvc.yaml": pipeline}
    for path, template in templates.items():
        path = path.replace("__module__", module)
        plan.files[path] = render(template, values, path).encode("utf-8")
    plan.files["params.yaml"] = text.encode("utf-8")
    _place_data(plan, options)
    return plan


def _place_data(plan: Plan, options: Options) -> None:
    """The data file copied to ``plan.data_path`` (unless it is there), and the collisions."""
    if options.data.resolve() != (options.directory / plan.data_path).resolve():
        plan.files[plan.data_path] = options.data.read_bytes()
    plan.collisions = sorted(p for p in plan.files if (options.directory / p).exists())


def _params_text(
    options: Options, frame: pd.DataFrame, inferred: Inferred, data_path: str, name: str
) -> str:
    """params.yaml as init writes it: the inferred schema checked against the data as prepare
    will see it, and the gate measured on a dummy baseline."""
    from modelci.pipeline.cluster import check_estimator

    _check_estimator(options, inferred.task)
    draft = params_file.render(
        inferred,
        data_path,
        options.null_target,
        {},
        {},
        name,
        options.estimator,
        engine=options.engine,
    )
    params = _validated(draft)
    try:
        check_estimator(params)
    except ConfigError as error:
        raise ScaffoldError(f"--engine {options.engine}: {error}") from None
    target = params.data.columns[params.data.target]
    estimator = params.train.estimator or ""
    if estimator.startswith("xgboost.") and target.type == "category":
        lightgbm = (
            "lightgbm.DaskLGBMClassifier" if options.engine == "dask" else "lightgbm.LGBMClassifier"
        )
        raise ScaffoldError(
            f"--estimator: {estimator} needs integer class labels 0..n-1, but "
            f"{options.target!r} holds text labels; use --estimator {lightgbm}"
        )
    # What prepare will do with the data, so the inferred schema is checked against it here.
    kept, _ = drop_null_target(frame, params.data, params.prepare)
    usable = validate(kept, params.data, str(options.data))
    scores = baseline.dummy_scores(usable, params.data, params.prepare)
    chance = baseline.chance_scores(usable, params.data, params.prepare)
    rules = baseline.gate_rules(inferred.task, scores, chance)
    text = params_file.render(
        inferred,
        data_path,
        options.null_target,
        rules,
        scores,
        name,
        options.estimator,
        chance=chance,
        engine=options.engine,
    )
    _validated(text)
    return text


# --add: one more project in an existing repository -----------------------------------------------

# What a nested project's dvc.yaml changes in the root template: the shared pyproject.toml is
# reached from the folder, and there is no package of its own (src/ belongs to the root's
# pyproject.toml: shared code is declared as a dep of the stages that use it).
_ROOT_PYPROJECT = "      - pyproject.toml:\n"
_OWN_CODE = re.compile(r"^ *- src/<<module>>.*\n", re.MULTILINE)
_OWN_CODE_NOTE = "(train does: src/<<module>>)"
_PROJECT_TEST = '''\
"""Model tests of the project in <<folder>>, from modelci's pytest plugin (``modelci.testing``).

The root project's checks, on this folder's params.yaml and pipeline outputs. The plugin's
fixtures are per session: test one project per pytest run, e.g. from the repository root
``uv run pytest <<folder>>/tests``.
"""

from pathlib import Path

import pytest

from modelci.testing import ModelChecks


@pytest.fixture(scope="session")
def modelci_root() -> Path:
    """This project's folder, whichever folder pytest starts from."""
    return Path(__file__).resolve().parents[1]


class TestModel(ModelChecks):
    """Every generic check of modelci; add this project's own tests below."""
'''
# As the root template's .gitignore: DVC's own per-folder entries disappear when a later stage
# of a first `dvc repro` fails, so the project lists its outputs (and local stores) itself.
_PROJECT_IGNORE = """\
# DVC outputs of this project's dvc.yaml: in the DVC cache, never in git
/data/prepared/train.parquet
/data/prepared/test.parquet
/models/model.skops
<<data_ignore>>
# MLflow's local store and modelci's PR outputs, written where the stages run
mlflow.db
mlruns/
mlartifacts/
.modelci/
"""


def _project_folder(options: Options) -> str:
    """``--add``'s folder as a normalised POSIX path inside the repository."""
    raw = options.add or ""
    folder = posixpath.normpath(raw.replace("\\", "/")) if raw else ""
    if not folder or folder == "." or posixpath.isabs(folder) or folder.split("/")[0] == "..":
        raise ScaffoldError(
            f"--add: {raw!r} is not a folder inside {options.directory} (e.g. models/fraud)"
        )
    if any(part.startswith(".") for part in folder.split("/")):
        raise ScaffoldError(f"--add: {raw!r}: hidden folders are not searched for projects")
    return folder


def _refuse_clash(root: Path, new: Project) -> None:
    """Refuse a project whose name, registered model name or outputs another project has."""
    from modelci.projects import ProjectError, discover, overlaps

    try:
        projects = discover(root)
    except ProjectError as error:
        raise ScaffoldError(f"--add: the repository's projects clash already: {error}") from None
    folder = new.path
    for project in projects:
        where = f"the project in {project.path}"
        if project.name == new.name:
            raise ScaffoldError(
                f"--add {folder}: {where} is named {new.name!r} already: use another folder name"
            )
        if project.registered_model == new.registered_model:
            raise ScaffoldError(
                f"--add {folder}: {where} registers the model {new.registered_model!r} "
                "already: pass --name <another name>"
            )
        for out in project.outputs:
            clash = next((o for o in (folder, *new.outputs) if overlaps(out, o)), None)
            if clash is not None:
                raise ScaffoldError(f"--add {folder}: {clash} overlaps {out}, an output of {where}")


def nested_pipeline(folder: str, engine: str = "local") -> str:
    """The root ``dvc.yaml`` template as a project in ``folder`` has it (``models/fraud``)."""
    template = pipeline_template(engine)
    rewritten = (_ROOT_PYPROJECT, _OWN_CODE_NOTE)
    if not all(text in template for text in rewritten) or not _OWN_CODE.search(template):
        raise RuntimeError("the dvc.yaml template changed: update --add's rewrite of it")
    up = "/".join([".."] * len(folder.split("/")))
    pipeline = (
        _OWN_CODE.sub("", template)
        .replace(_ROOT_PYPROJECT, f"      - {up}/pyproject.toml:\n")
        .replace(_OWN_CODE_NOTE, f"(a package shared by projects: {up}/src/<package>)")
    )
    return render(pipeline, {}, f"{folder}/dvc.yaml")


def _refuse_missing_extra(options: Options, root: Path) -> None:
    """--add shares the root's environment: an estimator whose library comes with an extra of
    modelci needs that extra in the root pyproject.toml already (init --add does not edit it)."""
    from packaging.requirements import InvalidRequirement, Requirement

    extra = _extra(options)
    if extra is None:
        return
    try:
        with (root / "pyproject.toml").open("rb") as handle:
            dependencies = tomllib.load(handle).get("project", {}).get("dependencies", [])
        found = [Requirement(d) for d in dependencies]
    except (tomllib.TOMLDecodeError, InvalidRequirement, TypeError) as error:
        raise ScaffoldError(f"--add: {root / 'pyproject.toml'}: cannot read: {error}") from None
    if not any(_normal(r.name) == "modelci" and extra in r.extras for r in found):
        asking = "--engine dask" if options.engine == "dask" else f"--estimator {options.estimator}"
        raise ScaffoldError(
            f"{asking} needs modelci's {extra!r} extra, which the shared "
            f"{root / 'pyproject.toml'} does not install: add it to the modelci dependency there "
            "and run `uv lock` first"
        )


def add_plan(options: Options, frame: pd.DataFrame, inferred: Inferred) -> Plan:
    """The files of one more project in ``options.add``: its dvc.yaml (paths relative to its
    folder, where DVC runs a nested dvc.yaml's stages), params.yaml, .gitignore, tests and data.
    Nothing outside the folder, but modelci's plot template when ``.dvc/plots`` lacks it."""
    from modelci.projects import build_project

    root = options.directory
    folder = _project_folder(options)
    if options.git and not (root / ".git").exists():
        raise ScaffoldError(f"--add: {root} is not a git repository: run `git init` there first")
    if not (root / "pyproject.toml").is_file():
        raise ScaffoldError(
            f"--add: {root} has no pyproject.toml for the projects to share: "
            f"run `modelci init {root}` first, then --add"
        )
    if (root / folder / layout.DVC_YAML).exists():
        raise ScaffoldError(f"--add {folder}: {folder}/dvc.yaml exists already")
    _refuse_missing_extra(options, root)
    registered, module = package_name(Path(posixpath.basename(folder)), options.name)
    data_path = f"data/{options.data.name}"
    text = _params_text(options, frame, inferred, data_path, registered)
    templates = _templates()
    pipeline = nested_pipeline(folder, options.engine)
    params = yaml.safe_load(text)
    project = build_project(
        root, folder, yaml.safe_load(pipeline), lambda f: params if f == "params.yaml" else {}
    )
    if project is None:
        raise RuntimeError("--add rendered a dvc.yaml that is not a project")
    _refuse_clash(root, project)
    values = {"folder": folder, "data_ignore": f"/{data_path}"}
    files = {
        "dvc.yaml": pipeline,
        "params.yaml": text,
        ".gitignore": render(_PROJECT_IGNORE, values, f"{folder}/.gitignore"),
        f"tests/test_{module}_model.py": render(_PROJECT_TEST, values, f"{folder}/tests"),
    }
    plan = Plan(inferred=inferred, data_path=f"{folder}/{data_path}")
    plan.files = {f"{folder}/{path}": content.encode("utf-8") for path, content in files.items()}
    for path, content in templates.items():
        if path.startswith(".dvc/") and not (root / path).exists():
            plan.files[path] = content.encode("utf-8")
    _place_data(plan, options)
    return plan


def _validated(text: str) -> Params:
    """The rendered file parsed back through modelci's own validation (a failure is a bug)."""
    try:
        return parse_params(yaml.safe_load(text), "params.yaml (as init would write it)")
    except ConfigError as error:
        raise RuntimeError(f"init rendered an invalid params.yaml: {error}") from None


def _run(args: list[str], cwd: Path, what: str) -> str:
    """Run a tool; its output, or a ScaffoldError with its last line (every line as details)."""
    done = _proc.run(args, what, error=ScaffoldError, cwd=cwd, timeout=TOOL_TIMEOUT_S, details=True)
    return done.text


def _uv() -> str:
    return _proc.tool("uv", "install uv, or pass --no-lock and run `uv lock`", ScaffoldError)


def _write_files(root: Path, files: dict[str, bytes]) -> None:
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _git_lines(args: list[str], root: Path) -> list[str]:
    return _run(["git", *args], root, f"git {args[0]}").splitlines()


def _shown(paths: list[str]) -> str:
    return ", ".join(paths[:8]) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")


def _refuse_dirty(root: Path) -> None:
    """An existing repository must have no uncommitted change to a tracked file (staged or not).

    init commits its own files on top of HEAD: a change of the user's would otherwise be
    committed with them (if staged) or be mixed into init's commit by an overwrite (--force).
    """
    changed = [line[3:] for line in _git_lines(["status", "--porcelain", "-uno"], root)]
    if changed:
        raise ScaffoldError(
            f"{root}: uncommitted changes to tracked files ({_shown(changed)}): commit or stash "
            "them first; init commits only the files it writes, on a clean tree"
        )


def _data_ignore(plan: Plan) -> str:
    """The .gitignore that ``dvc add`` writes next to the data file."""
    return posixpath.join(posixpath.dirname(plan.data_path), ".gitignore")


def _own_files(plan: Plan, options: Options, dvc_initialised: bool) -> list[str]:
    """What init stages: the files it wrote, the .dvc pointer, and DVC's own files.

    Never the data (DVC tracks it and .gitignore lists it) and never a file that was in the
    folder before.
    """
    root = options.directory
    own = [p for p in plan.files if p != plan.data_path]
    own += [f"{plan.data_path}.dvc", _data_ignore(plan)]
    if options.lock and options.add is None:
        own.append("uv.lock")
    if dvc_initialised:
        own += [".dvc/config", ".dvc/.gitignore"]
    return sorted(p for p in set(own) if (root / p).is_file())


@dataclass
class _Undo:
    """Puts the target folder back as it was when a step of init fails.

    ``keep(path)`` is called before init, or a tool it runs, may create or change ``path``: an
    existing file's bytes are kept, a missing path is remembered by its first missing folder and
    removed on undo. What DVC adds to the cache of an existing ``.dvc/`` is left there (ignored
    by git, and reused by the next ``dvc add``).
    """

    root: Path
    created: list[Path] = field(default_factory=list)
    saved: dict[Path, bytes] = field(default_factory=dict)

    def keep(self, relative: str) -> None:
        path = self.root / relative if relative else self.root
        if path in self.saved or any(c == path or c in path.parents for c in self.created):
            return
        if path.is_file():
            self.saved[path] = path.read_bytes()
        elif not path.exists():
            while not path.parent.exists():
                path = path.parent
            self.created.append(path)

    def undo(self) -> None:
        for path in reversed(self.created):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        for path, content in self.saved.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def _uv_reason(output: str) -> str:
    """uv's reason on one line: its last ``cause``, re-joined (uv wraps its messages)."""
    text = " ".join(output.split())
    for marker in ("Caused by:", "cause:", "error:"):
        if marker in text:
            return text.rsplit(marker, 1)[1].strip()
    return text or "no output"


def _lock(pyproject: bytes, options: Options) -> bytes:
    """``uv lock`` of the new pyproject.toml in a scratch folder: the target is not touched.

    The scratch folder is a sibling of the target, so uv finds the same parent configuration
    and a relative path in ``--modelci`` means the same file.
    """
    uv = _uv()
    base = options.directory.parent
    while not base.exists():
        base = base.parent
    if not os.access(base, os.W_OK):
        base = Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(prefix=".modelci-init-", dir=base) as scratch:
        (Path(scratch) / "pyproject.toml").write_bytes(pyproject)
        done = _proc.run(
            [uv, "lock", "--quiet"],
            error=ScaffoldError,
            cwd=Path(scratch),
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
        if done.ok:
            return (Path(scratch) / "uv.lock").read_bytes()
    hint = ""
    if options.modelci is None:
        hint = (
            f" (the default dependency {default_requirement()} must be published on your "
            "package index; for an unreleased build pass --modelci 'modelci[serve,onnx] @ "
            f"file:///ABSOLUTE/PATH/modelci-{__version__}-py3-none-any.whl')"
        )
    raise ScaffoldError(
        f"uv lock failed, nothing written to {options.directory}: "
        f"{_uv_reason((done.stderr or done.stdout).decode('utf-8', 'replace'))}{hint}"
    )


def write(plan: Plan, options: Options) -> list[str]:
    """Write the plan, then git/DVC/uv: the repository is committed when this returns.

    All or nothing: ``uv lock`` (the step that fails for reasons outside init: the index, the
    ``--modelci`` line) runs first in a scratch folder; then the files go in, and a failure of
    any later step (DVC, git, a commit hook) undoes everything init did in the target.
    Returns notes for the user: the files already in the folder that init left untracked.
    """
    if plan.collisions and not options.force:
        raise ScaffoldError(
            f"{options.directory}: would overwrite {len(plan.collisions)} existing file(s) "
            f"({_shown(plan.collisions)}); pass --force to overwrite, or --dry-run to see the plan"
        )
    root = options.directory
    if options.git and (root / ".git").exists():
        _refuse_dirty(root)
    # --add shares the repository's pyproject.toml and uv.lock: nothing to lock.
    new_lock = options.lock and options.add is None
    lock = _lock(plan.files["pyproject.toml"], options) if new_lock else None
    undo = _Undo(root)
    for path in ("", *plan.files, "uv.lock", f"{plan.data_path}.dvc", _data_ignore(plan)):
        undo.keep(path)
    for path in (".git", ".git/index", ".dvc", ".dvc/config"):
        undo.keep(path)
    try:
        return _install(plan, options, lock)
    except ScaffoldError as error:
        undo.undo()
        raise ScaffoldError(f"{error}; {root} was left as it was", error.details) from None
    except BaseException:
        undo.undo()
        raise


def _configure_dvc(path: Path) -> None:
    """No usage analytics, and ``dvc add`` stages its pointers in git, in the ``.dvc/config``
    ``dvc init`` just wrote. Written as INI text (DVC reads it with configobj) rather than by one
    ``dvc config`` per key: each would start DVC again, about 0.6 s of CPU."""
    config = configparser.ConfigParser()
    config.read(path, encoding="utf-8")
    if not config.has_section("core"):
        config.add_section("core")
    config.set("core", "analytics", "false")
    config.set("core", "autostage", "true")
    with path.open("w", encoding="utf-8") as out:
        config.write(out)


def _install(plan: Plan, options: Options, lock: bytes | None) -> list[str]:
    root = options.directory
    # Files inside .dvc/ (plot templates) go in after `dvc init`, which refuses an existing .dvc.
    in_dvc = {p: c for p, c in plan.files.items() if p.startswith(".dvc/")}
    _write_files(root, {p: c for p, c in plan.files.items() if p not in in_dvc})
    if lock is not None:
        _write_files(root, {"uv.lock": lock})
    dvc = [sys.executable, "-m", "dvc"]
    if options.git and not (root / ".git").exists():
        _run(["git", "init", "-q", "-b", "main"], root, "git init")
    dvc_initialised = not (root / ".dvc").exists()
    if dvc_initialised:
        _run([*dvc, "init", "-q", *([] if options.git else ["--no-scm"])], root, "dvc init")
        _configure_dvc(root / ".dvc" / "config")
    _write_files(root, in_dvc)
    _run([*dvc, "add", "-q", plan.data_path], root, "dvc add")
    if not options.git:
        return []
    _run(["git", "add", "--", *_own_files(plan, options, dvc_initialised)], root, "git add")
    command = "modelci init" if options.add is None else f"modelci init --add {options.add}"
    _run(["git", "commit", "-q", "-m", f"{command} (modelci {__version__})"], root, "git commit")
    untracked = _git_lines(["ls-files", "--others", "--exclude-standard"], root)
    if not untracked:
        return []
    return [
        f"init: left untracked, as they were: {_shown(untracked)} "
        "(init commits only the files it writes)"
    ]


def describe(plan: Plan, options: Options) -> list[str]:
    """What init did (or, with --dry-run, would do), one line each."""
    inferred = plan.inferred
    if inferred is None:
        raise RuntimeError("describe() needs a plan made by make_plan()")
    lines = [
        f"{options.data}: {inferred.rows} rows, target {inferred.target!r}: task {inferred.task}",
        f"  columns: {len(inferred.columns) - 1} feature(s) declared; slices: {inferred.slices}",
    ]
    lines += [f"  left out: {c.name}: {c.reason}" for c in inferred.left_out]
    if inferred.null_target_rows:
        lines.append(f"  {inferred.null_target_rows} row(s) without a target: dropped by prepare")
    for path in sorted(plan.files):
        state = "overwrite" if path in plan.collisions else "create"
        lines.append(f"  {state} {path}")
    return lines
