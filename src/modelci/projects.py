"""The model projects of a repository: every folder whose ``dvc.yaml`` runs modelci's stages.

A project is a folder holding a ``dvc.yaml`` with a stage that runs ``modelci`` (or declares
metrics, the outputs modelci's report reads). A repository with one project at its root is the
single-project case of every modelci command. DVC resolves a nested ``dvc.yaml`` from its own
folder: each stage runs in its ``wdir`` (default: the folder of the ``dvc.yaml``), and its
``deps``, ``outs`` and params files are relative to that ``wdir``; ``${...}`` is interpolated from
the folder's ``params.yaml``. Here every such path is made relative to the repository root, so a
changed file in ``git diff`` can be matched against it.

Each project's declared dependencies are what ``modelci affected`` matches a change against: its
``dvc.yaml``/``dvc.lock``, each stage's ``deps`` and params files, and the locked environment every
project shares (the root ``pyproject.toml`` and ``uv.lock``).
"""

from __future__ import annotations

import os
import posixpath
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modelci import _proc, layout
from modelci.dvcfiles import interpolate, vars_of
from modelci.errors import ConfigError

ROOT = "."
# What every project runs in: the repository's one locked Python environment.
ENVIRONMENT_FILES = ("pyproject.toml", "uv.lock")
DEFAULT_MODEL_NAME = "modelci-model"  # config.TrackingParams' default
_MODELCI_CMD = re.compile(r"(^|[\s;&|])(modelci|python3?\s+-m\s+modelci)(\s|$)")
# Folders never searched for projects (besides hidden ones): environments and tool caches.
_SKIPPED = frozenset({"node_modules", "__pycache__", "venv", "site-packages"})
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ProjectError(ConfigError):
    """A project's ``dvc.yaml`` or params cannot be read, or two projects clash."""


@dataclass(frozen=True)
class Stage:
    """One stage of a project; every path is relative to the repository root (POSIX)."""

    name: str
    cmds: tuple[str, ...]
    wdir: str
    deps: tuple[str, ...]
    params_files: tuple[str, ...]
    outs: tuple[str, ...]


@dataclass(frozen=True)
class Project:
    """One model project: its folder (``"."`` for the root), names and declared stages."""

    path: str
    name: str
    registered_model: str
    stages: tuple[Stage, ...]
    params: Mapping[str, Any]

    @property
    def pipeline_files(self) -> tuple[str, ...]:
        """The project's ``dvc.yaml`` and ``dvc.lock``: a change to either is a change to it."""
        return tuple(join(self.path, f.as_posix()) for f in (layout.DVC_YAML, layout.DVC_LOCK))

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(out for stage in self.stages for out in stage.outs))

    def dependencies(self) -> dict[str, list[str]]:
        """Every declared dependency -> how it is declared (``"dep of train"``,
        ``"params of prepare, evaluate"``), in declaration order; the environment files last."""
        found: dict[str, list[str]] = {}
        for stage in self.stages:
            for path in stage.deps:
                found.setdefault(path, []).append(f"dep of {stage.name}")
            for path in stage.params_files:
                found.setdefault(path, []).append(f"params of {stage.name}")
        for path in self.pipeline_files:
            found.setdefault(path, []).append("the pipeline")
        for path in ENVIRONMENT_FILES:
            found.setdefault(path, []).append("the environment of every project")
        return found


def join(folder: str, relative: str) -> str:
    """``relative`` (a path in ``folder``) relative to the repository root, normalised; a path
    that leaves the repository keeps its leading ``..``."""
    return posixpath.normpath(posixpath.join(folder, relative))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - safe
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ProjectError(f"{path}: cannot be read as YAML: {first}") from None


def _strings(items: Any) -> list[tuple[str, Any]]:
    """``[path, {path: options}]`` as ``(path, options)`` pairs (DVC's list forms)."""
    pairs: list[tuple[str, Any]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            pairs.append((item, None))
        elif isinstance(item, Mapping):
            pairs += [(str(key), value) for key, value in item.items()]
    return pairs


def _stage(name: str, body: Mapping[str, Any], folder: str, variables: Mapping[str, Any]) -> Stage:
    where = f"{join(folder, layout.DVC_YAML.as_posix())}: stage {name}"

    def resolve(text: str) -> str:
        try:
            return interpolate(text, variables)
        except KeyError as error:
            raise ProjectError(f"{where}: {text!r}: undefined variable {error.args[0]!r}") from None

    wdir = join(folder, resolve(str(body.get("wdir") or ".")))
    cmd = body.get("cmd")
    cmds = tuple(resolve(str(c)) for c in (cmd if isinstance(cmd, list) else [cmd] if cmd else []))
    deps = tuple(join(wdir, resolve(path)) for path, _ in _strings(body.get("deps")))
    params_files: list[str] = []
    for entry in body.get("params") or []:
        files = [layout.PARAMS.as_posix()] if isinstance(entry, str) else []
        files += [str(file) for file in entry] if isinstance(entry, Mapping) else []
        params_files += [join(wdir, resolve(file)) for file in files]
    outs = tuple(
        join(wdir, resolve(path))
        for kind in ("outs", "metrics", "plots")
        for path, _ in _strings(body.get(kind))
    )
    return Stage(name, cmds, wdir, deps, tuple(dict.fromkeys(params_files)), outs)


def _is_project(raw: Mapping[str, Any]) -> bool:
    """Whether a parsed ``dvc.yaml`` runs a modelci stage or declares metrics modelci reads."""
    if raw.get("metrics"):
        return True
    stages = raw.get("stages")
    for body in stages.values() if isinstance(stages, Mapping) else []:
        if not isinstance(body, Mapping):
            continue
        cmd = body.get("cmd")
        cmds = cmd if isinstance(cmd, list) else [cmd]
        if body.get("metrics") or any(_MODELCI_CMD.search(str(c)) for c in cmds if c):
            return True
    return False


def _pyproject_name(folder: Path) -> str | None:
    try:
        with (folder / "pyproject.toml").open("rb") as handle:
            name = tomllib.load(handle).get("project", {}).get("name")
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return None
    return str(name) if isinstance(name, str) and name else None


def load_project(root: Path, folder: str) -> Project | None:
    """The project in ``root/folder`` (None: no ``dvc.yaml``, or one that is not a project)."""
    directory = root / folder

    def read_mapping(file: str) -> Mapping[str, Any]:
        value = _read_yaml(directory / file)
        return value if isinstance(value, Mapping) else {}

    return build_project(root, folder, _read_yaml(directory / layout.DVC_YAML), read_mapping)


def build_project(
    root: Path, folder: str, raw: Any, read_mapping: Callable[[str], Mapping[str, Any]]
) -> Project | None:
    """The project of a parsed ``dvc.yaml`` in ``folder``; ``read_mapping(file)`` reads a YAML
    file of the folder (``params.yaml``, ``vars`` files). None: not a project."""
    if not isinstance(raw, Mapping) or not _is_project(raw):
        return None
    params = read_mapping(layout.PARAMS.as_posix())
    variables = vars_of(raw, read_mapping)
    stages = raw.get("stages")
    parsed = tuple(
        _stage(str(name), body, folder, variables)
        for name, body in (stages.items() if isinstance(stages, Mapping) else ())
        if isinstance(body, Mapping) and "foreach" not in body and "matrix" not in body
    )
    # A nested project shares the root's pyproject.toml: only a folder's own one names it.
    name = _pyproject_name(root / folder) or (
        root.resolve().name if folder == ROOT else posixpath.basename(folder)
    )
    tracking = params.get("tracking")
    model = tracking.get("model_name") if isinstance(tracking, Mapping) else None
    registered = str(model) if isinstance(model, str) and model else DEFAULT_MODEL_NAME
    return Project(folder, name, registered, parsed, params)


def _dvc_yaml_folders(root: Path) -> list[str]:
    """Folders (relative, POSIX, ``"."`` for the root) holding a ``dvc.yaml``: git's tracked and
    untracked-not-ignored files in a git repository, else a walk skipping hidden folders."""
    if (root / ".git").exists():
        done = _proc.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
             "dvc.yaml", "**/dvc.yaml"],
            cwd=root, timeout=120, check=False,
        )  # fmt: skip
        if done.ok:
            files = {f for f in done.stdout.decode("utf-8").split("\0") if f}
            return sorted({posixpath.dirname(f) or ROOT for f in files if (root / f).is_file()})
    found: list[str] = []
    for current, folders, names in os.walk(root):
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f not in _SKIPPED)
        if layout.DVC_YAML.name in names:
            found.append(Path(current).relative_to(root).as_posix())
    return found


def discover(root: Path) -> list[Project]:
    """Every project of the repository at ``root``, root first, then by path; refuses two
    projects with the same name or registered model name (their tags, runs and reports would
    mix)."""
    projects = [p for f in _dvc_yaml_folders(root) if (p := load_project(root, f)) is not None]
    projects.sort(key=lambda p: (p.path != ROOT, p.path))
    for field in ("name", "registered_model"):
        seen: dict[str, str] = {}
        for project in projects:
            value = getattr(project, field)
            if value in seen:
                raise ProjectError(
                    f"projects {seen[value]} and {project.path} have the same "
                    f"{field.replace('_', ' ')} {value!r}: rename one"
                )
            seen[value] = project.path
    return projects


def overlaps(one: str, other: str) -> bool:
    """Whether two paths are the same or one is inside the other (DVC refuses overlapping
    outputs)."""
    return one == other or one.startswith(f"{other}/") or other.startswith(f"{one}/")


def covers(declared: str, path: str) -> bool:
    """Whether a change to ``path`` is a change to the declared dependency ``declared``: the
    same file, a file inside a declared folder, or the ``.dvc`` pointer of either (or of a
    tracked folder holding it)."""
    if declared == ROOT:
        return True
    if path in (declared, f"{declared}.dvc") or path.startswith(f"{declared}/"):
        return True
    # the pointer of a tracked folder the dependency is in (`data.dvc` for `data/raw.csv`)
    return path.endswith(".dvc") and declared.startswith(f"{path.removesuffix('.dvc')}/")


__all__ = [
    "ENVIRONMENT_FILES",
    "ROOT",
    "Project",
    "ProjectError",
    "Stage",
    "build_project",
    "covers",
    "discover",
    "join",
    "load_project",
    "overlaps",
]
