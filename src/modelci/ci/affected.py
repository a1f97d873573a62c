"""Which projects a change affects: ``modelci affected``, the plan of a multi-model pull request.

A project is affected when a file ``git diff --name-only BASE...HEAD`` lists is one of its
declared dependencies (``modelci.projects``): a stage's dep (a file, or any file in a declared
folder, or its ``.dvc`` pointer), a params file, its ``dvc.yaml``/``dvc.lock``, or the locked
environment (root ``pyproject.toml``/``uv.lock``) every project shares; or when it depends on an
output of an affected project. The decision is only as true as the declarations: ``undeclared``
finds the local Python code a stage runs or imports that none of its deps covers.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelci._proc import run
from modelci.errors import ModelCIError
from modelci.projects import ROOT, Project, Stage, covers

NO_CHANGE = "no dependency changed"
_ENVIRONMENT = "the environment of every project"
_PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
_MODELCI_TRAIN = re.compile(r"(^|\s)modelci\s+train(\s|$)")
_SHOWN = 3


class AffectedError(ModelCIError):
    """The change cannot be computed (git), or the plan breaks ``--strict`` or the budget."""


@dataclass(frozen=True)
class Decision:
    project: Project
    affected: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.project.path,
            "name": self.project.name,
            "registered_model": self.project.registered_model,
            "affected": self.affected,
            "reason": self.reason,
        }


def changed_files(root: Path, base: str, head: str) -> list[str]:
    """``git diff --name-only --no-renames BASE...HEAD`` (both sides of a rename are listed)."""
    args = ["git", "diff", "--name-only", "--no-renames", "-z", f"{base}...{head}", "--"]
    done = run(args, "git diff", error=AffectedError, cwd=root, timeout=120, check=False)
    if not done.ok:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise AffectedError(
            f"git diff {base}...{head} failed in {root}: {lines[-1] if lines else 'no output'} "
            "(both refs must exist with their merge base: actions/checkout needs fetch-depth: 0)"
        )
    return [f for f in done.stdout.decode("utf-8").split("\0") if f]


def _how(declarations: list[str]) -> str:
    """``["params of prepare", "params of train", "dep of train"]`` as
    ``"params of prepare, train; dep of train"``."""
    kinds: dict[str, list[str]] = {}
    for declared in declarations:
        kind, _, stage = declared.partition(" of ")
        kinds.setdefault(kind, []).append(stage)
    return "; ".join(
        f"{kind} of {', '.join(dict.fromkeys(stages))}" if any(stages) else kind
        for kind, stages in kinds.items()
    )


def _reason(matches: dict[str, list[str]]) -> str:
    parts = []
    for path, how in matches.items():
        if how == [_ENVIRONMENT]:
            parts.append(f"{path} changed: {_ENVIRONMENT}")
        else:
            parts.append(f"{path} changed ({_how(how)})")
    more = len(parts) - _SHOWN
    return "; ".join(parts[:_SHOWN]) + (f"; and {more} more" if more > 0 else "")


def decide(projects: Sequence[Project], changed: Iterable[str]) -> list[Decision]:
    """One decision per project, in the given order, with the reason."""
    files = list(dict.fromkeys(changed))
    decisions: dict[str, Decision] = {}
    for project in projects:
        matches: dict[str, list[str]] = {}
        for declared, how in project.dependencies().items():
            for path in files:
                if covers(declared, path):
                    matches.setdefault(path, []).extend(how)
        if matches:
            decisions[project.path] = Decision(project, True, _reason(matches))
        else:
            decisions[project.path] = Decision(project, False, NO_CHANGE)
    # An output of an affected project is rebuilt: the projects that read it are affected too.
    for _ in projects:
        producers = {
            out: decision.project.path
            for decision in decisions.values()
            if decision.affected
            for out in decision.project.outputs
        }
        spread = False
        for decision in list(decisions.values()):
            if decision.affected:
                continue
            project = decision.project
            found = next(
                (
                    (dep, producer)
                    for dep in project.dependencies()
                    for out, producer in producers.items()
                    if producer != project.path and (covers(out, dep) or covers(dep, out))
                ),
                None,
            )
            if found is not None:
                reason = f"{found[0]} is an output of {found[1]}, which is affected"
                decisions[project.path] = Decision(project, True, reason)
                spread = True
        if not spread:
            break
    return [decisions[p.path] for p in projects]


def plan(decisions: Sequence[Decision]) -> dict[str, Any]:
    """The JSON ``modelci affected`` prints: every project, and the matrix of the affected."""
    include = [{"path": d.project.path, "name": d.project.name} for d in decisions if d.affected]
    return {
        "projects": [d.as_json() for d in decisions],
        "matrix": {"include": include},
        "count": len(include),
    }


def check_budget(decisions: Sequence[Decision], max_projects: int | None) -> None:
    """Refuse a plan that runs more projects than the budget, naming them."""
    running = [d.project.path for d in decisions if d.affected]
    if max_projects is not None and len(running) > max_projects:
        raise AffectedError(
            f"{len(running)} projects would run, more than --max-projects {max_projects}: "
            + ", ".join(running)
        )


# Undeclared local imports ------------------------------------------------------------------------


@dataclass
class _Sources:
    """Local Python modules found from a stage's search folders; files are parsed once."""

    root: Path
    parsed: dict[Path, list[tuple[str, int]]] = field(default_factory=dict)

    def imports(self, file: Path) -> list[tuple[str, int]]:
        """``(module, level)`` of every import in ``file`` (level > 0: relative)."""
        if file not in self.parsed:
            try:
                tree = ast.parse(file.read_bytes(), str(file))
            except (OSError, SyntaxError, ValueError):
                tree = ast.Module(body=[], type_ignores=[])
            found: list[tuple[str, int]] = []
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found += [(alias.name, 0) for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    found.append((base, node.level))
                    found += [
                        (f"{base}.{a.name}" if base else a.name, node.level) for a in node.names
                    ]
            self.parsed[file] = found
        return self.parsed[file]


def _module_file(folder: Path, dotted: str) -> Path | None:
    """The file of module ``dotted`` under ``folder`` (a package's ``__init__.py``)."""
    base = folder.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _script(cmd: str, wdir: Path, folders: Sequence[Path]) -> Path | None:
    """The Python file a stage command runs: ``python -m pkg.mod`` or ``python path.py``
    (also after ``uv run``); None for any other command."""
    try:
        words = shlex.split(cmd)
    except ValueError:
        return None
    for index, word in enumerate(words):
        if not _PYTHON.match(Path(word).name):
            continue
        rest = words[index + 1 :]
        if len(rest) >= 2 and rest[0] == "-m":
            for folder in folders:
                found = _module_file(folder, rest[1])
                main = folder.joinpath(*rest[1].split("."), "__main__.py")
                if main.is_file():
                    return main
                if found is not None:
                    return found
            return None
        script = next((w for w in rest if not w.startswith("-")), None)
        if script is not None and script.endswith(".py") and (wdir / script).is_file():
            return wdir / script
        return None
    return None


def _factory_module(project: Project, stage: Stage) -> str | None:
    """The module of ``train.pipeline`` (``pkg.features:build``) that ``modelci train`` imports."""
    if not any(_MODELCI_TRAIN.search(cmd) for cmd in stage.cmds):
        return None
    train = project.params.get("train")
    factory = train.get("pipeline") if isinstance(train, dict) else None
    return factory.split(":", 1)[0] if isinstance(factory, str) and factory else None


def _relative(root: Path, path: Path) -> str | None:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return None  # outside the repository: not local code


def undeclared(root: Path, project: Project, sources: _Sources | None = None) -> list[str]:
    """One line per local Python file a stage runs or imports (transitively) that none of its
    deps covers. Local means found under the stage's ``wdir``, the project folder, the
    repository root or its ``src/`` (namespace packages without ``__init__.py`` are not seen)."""
    sources = sources or _Sources(root)
    problems: list[str] = []
    for stage in project.stages:
        wdir = root / stage.wdir
        folders = list(dict.fromkeys([wdir, root / project.path, root, root / "src"]))
        queue: list[tuple[Path, str]] = []
        for cmd in stage.cmds:
            script = _script(cmd, wdir, folders)
            if script is not None:
                queue.append((script, "runs"))
        factory = _factory_module(project, stage)
        if factory is not None:
            found = next((f for d in folders if (f := _module_file(d, factory))), None)
            if found is not None:
                queue.append((found, "imports (train.pipeline)"))
        seen: set[Path] = set()
        while queue:
            file, how = queue.pop(0)
            if file in seen:
                continue
            seen.add(file)
            relative = _relative(root, file)
            if relative is None:
                continue
            if not any(covers(dep, relative) for dep in stage.deps):
                where = project.path if project.path != ROOT else "(root)"
                package = _package_of(root, file)
                problems.append(
                    f"{where}: stage {stage.name} {how} {relative}, which is not among its deps"
                    f" (declare {package} in the stage's deps)"
                )
            queue += [(f, "imports") for f in _local_imports(sources, file, folders)]
    return list(dict.fromkeys(problems))


def _package_of(root: Path, file: Path) -> str:
    """The folder of the top-level package holding ``file`` (the file itself outside one)."""
    top = file
    while (top.parent / "__init__.py").is_file() and top.parent != root:
        top = top.parent
    return _relative(root, top) or str(top)


def _local_imports(sources: _Sources, file: Path, folders: Sequence[Path]) -> list[Path]:
    """The local module files ``file`` imports (the deepest module of each dotted name)."""
    found: list[Path] = []
    for module, level in sources.imports(file):
        if level:
            package = file.parent
            for _ in range(level - 1):
                package = package.parent
            bases = [package]
        else:
            bases = list(folders)
        parts = module.split(".") if module else []
        for base in bases:
            hit = None
            for depth in range(len(parts), 0, -1):
                hit = _module_file(base, ".".join(parts[:depth]))
                if hit is not None:
                    break
            if hit is not None:
                found.append(hit)
                break
    return found
