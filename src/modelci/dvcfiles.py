"""The typed ``dvc.yaml`` declarations and the typed ``dvc.lock``, read once per command.

What ``dvc.yaml`` declares: metrics files, plots, params files and outputs, any stage, any name.

The report, the gate and the lock check read these declarations instead of fixed paths, so a
user's own stage writing ``results/scores.json`` works like modelci's. ``dvc.yaml`` is read from
the same source as the rest of a state (the base from git, the head from the working tree), with
``${key}`` interpolated from its ``vars`` (default: ``params.yaml``). Without a ``dvc.yaml`` the
defaults of modelci's own pipeline apply. Parsing is lenient: what cannot be understood becomes a
problem line, never an exception, because a pull request's ``dvc.yaml`` is untrusted input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from modelci import layout
from modelci.errors import ModelCIError
from modelci.layout import DEFAULT_PATHS

DVC_YAML = layout.DVC_YAML.as_posix()
DEFAULT_METRICS = (DEFAULT_PATHS.metrics.as_posix(),)
DEFAULT_PLOTS_DIR = DEFAULT_PATHS.plots.as_posix()
PARAMS_FILE = layout.PARAMS.as_posix()
# DVC plot templates -> how the report draws them.
TEMPLATE_KINDS = {
    "linear": "curve",
    "simple": "curve",
    "smooth": "curve",
    "scatter": "scatter",
    "scatter_jitter": "scatter",
    "confusion": "confusion",
    "confusion_normalized": "confusion",
    "confusion_counts": "confusion",  # modelci's own (.dvc/plots): one line per pair, with a count
}
_VAR = re.compile(r"\$\{\s*([\w.-]+)\s*\}")


@dataclass(frozen=True)
class PlotDecl:
    """One declared plot: a data file (or a folder of them) and how to draw it, when declared."""

    path: str
    kind: str | None = None
    x: str | None = None
    y: str | None = None
    title: str | None = None
    x_label: str | None = None
    y_label: str | None = None


@dataclass(frozen=True)
class OutDecl:
    path: str
    stage: str
    cache: bool


@dataclass(frozen=True)
class Declared:
    """The declarations of one ``dvc.yaml`` (or modelci's defaults when there is none)."""

    found: bool
    metrics: list[str] = field(default_factory=list)
    plots: list[PlotDecl] = field(default_factory=list)
    # params file -> the keys tracked (None: the whole file)
    params: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    outs: list[OutDecl] = field(default_factory=list)

    @property
    def git_outputs(self) -> list[str]:
        """Outputs DVC leaves to git (``cache: false``), metrics and plot files included."""
        paths = [out.path for out in self.outs if not out.cache]
        return list(dict.fromkeys(paths))

    @property
    def cached_outputs(self) -> list[str]:
        """Outputs kept in DVC's cache (and git-ignored): git must not track them."""
        return list(dict.fromkeys(out.path for out in self.outs if out.cache))


def defaults() -> Declared:
    """modelci's own pipeline, for a repository state without ``dvc.yaml``."""
    return Declared(
        found=False,
        metrics=list(DEFAULT_METRICS),
        plots=[PlotDecl(DEFAULT_PLOTS_DIR)],
        params={PARAMS_FILE: None},
    )


def _lookup(variables: Mapping[str, Any], dotted: str) -> Any:
    value: Any = variables
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value


def interpolate(text: str, variables: Mapping[str, Any]) -> str:
    """``${a.b}`` replaced by its value; KeyError naming the variable when it is undefined."""

    def replace(match: re.Match[str]) -> str:
        value = _lookup(variables, match.group(1))
        if isinstance(value, Mapping | list):
            raise KeyError(match.group(1))
        return str(value)

    return _VAR.sub(replace, text)


def _entries(items: Any) -> list[tuple[str, dict[str, Any]]]:
    """``[path, {path: {options}}]`` lists as ``(path, options)`` pairs."""
    pairs: list[tuple[str, dict[str, Any]]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            pairs.append((item, {}))
        elif isinstance(item, Mapping):
            for key, options in item.items():
                pairs.append((str(key), dict(options) if isinstance(options, Mapping) else {}))
    return pairs


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int | float) else None


def _plot(path: str, options: Mapping[str, Any]) -> PlotDecl:
    template = _text(options.get("template")) or "linear"
    x, y = options.get("x"), options.get("y")
    if isinstance(x, Mapping):  # {file: column}
        x = x.get(path)
    if isinstance(y, Mapping):
        y = y.get(path)
    if isinstance(y, list):
        y = y[0] if y else None
    return PlotDecl(
        path=path,
        kind=TEMPLATE_KINDS.get(template, "curve"),
        x=_text(x),
        y=_text(y),
        title=_text(options.get("title")),
        x_label=_text(options.get("x_label")),
        y_label=_text(options.get("y_label")),
    )


def _top_level_plots(items: Any, resolve: Any) -> list[PlotDecl]:
    plots = []
    for key, options in _entries(items):
        y = options.get("y")
        if isinstance(y, Mapping):  # a plot id whose y names the data files
            for file in y:
                path = resolve(str(file))
                if path is not None:
                    plots.append(_plot(path, {**options, "y": y[file]}))
            continue
        path = resolve(key)
        if path is not None:
            plots.append(_plot(path, options) if options else PlotDecl(path))
    return plots


def parse_declared(
    raw: Mapping[str, Any], variables: Mapping[str, Any], problems: list[str], where: str
) -> Declared:
    """The declarations of a parsed ``dvc.yaml``; unreadable entries are named in ``problems``."""
    metrics: list[str] = []
    plots: list[PlotDecl] = []
    params_files: dict[str, tuple[str, ...] | None] = {}
    outs: list[OutDecl] = []

    def resolve(path: str) -> str | None:
        try:
            resolved = interpolate(path, variables)
        except KeyError as error:
            problems.append(f"{where}: {path!r}: undefined variable {error.args[0]!r}, skipped")
            return None
        return PurePosixPath(resolved).as_posix()

    stages = raw.get("stages")
    if stages is not None and not isinstance(stages, Mapping):
        problems.append(f"{where}: 'stages' is not a mapping")
        stages = {}
    for name, stage in (stages or {}).items():
        if not isinstance(stage, Mapping):
            continue
        if "foreach" in stage or "matrix" in stage:
            problems.append(f"{where}: stage {name}: foreach/matrix stages are not read")
            continue
        for kind in ("outs", "metrics", "plots"):
            for path, options in _entries(stage.get(kind)):
                resolved = resolve(path)
                if resolved is None:
                    continue
                cache = options.get("cache", True) is not False  # DVC caches all three by default
                outs.append(OutDecl(resolved, str(name), cache))
                if kind == "metrics":
                    metrics.append(resolved)
                elif kind == "plots":
                    plots.append(_plot(resolved, options) if options else PlotDecl(resolved))
        params = stage.get("params") or []
        if not isinstance(params, list):
            problems.append(f"{where}: stage {name}: 'params' is not a list, skipped")
            params = []
        for entry in params:
            if isinstance(entry, str):
                _track(params_files, PARAMS_FILE, (entry,))
            elif isinstance(entry, Mapping):
                for file, keys in entry.items():
                    tracked = tuple(str(k) for k in keys) if isinstance(keys, list) else None
                    _track(params_files, str(file), tracked or None)
    for path, _ in _entries(raw.get("metrics")):
        resolved = resolve(path)
        if resolved is not None:
            metrics.append(resolved)
    for path, _ in _entries(raw.get("params")):
        _track(params_files, path, None)
    top = _top_level_plots(raw.get("plots"), resolve)
    # A top-level definition says how to draw a file a stage declares: it replaces the bare entry.
    defined = {plot.path for plot in top}
    plots = [p for p in plots if p.path not in defined] + top
    return Declared(True, list(dict.fromkeys(metrics)), plots, params_files, outs)


def _track(
    params: dict[str, tuple[str, ...] | None], file: str, keys: tuple[str, ...] | None
) -> None:
    if file in params and params[file] is None:
        return
    if keys is None:
        params[file] = None
    else:
        params[file] = tuple(dict.fromkeys((*(params.get(file) or ()), *keys)))


def vars_of(raw: Mapping[str, Any], read_mapping: Any) -> dict[str, Any]:
    """The interpolation context: ``params.yaml`` (DVC's default), then ``vars`` entries in order
    (files read through ``read_mapping(path)``, inline mappings as they are)."""
    variables: dict[str, Any] = dict(read_mapping(PARAMS_FILE) or {})
    entries = raw.get("vars") or []
    for entry in entries if isinstance(entries, list) else []:  # DVC refuses any other form
        if isinstance(entry, Mapping):
            variables.update(entry)
        elif isinstance(entry, str):
            file = entry.split(":", 1)[0]
            variables.update(read_mapping(file) or {})
    return variables


# dvc.lock ----------------------------------------------------------------------------------------

LOCK = layout.DVC_LOCK.as_posix()
# The hash fields an entry may carry, in the order one is chosen: md5 for local files (every DVC
# version), then what a remote output records (etag: S3/GS/Azure/HTTP, checksum: HDFS/WebHDFS).
HASH_FIELDS = ("md5", "etag", "checksum")


class LockError(ModelCIError):
    """A ``dvc.lock`` that cannot be read as YAML."""


@dataclass(frozen=True)
class LockEntry:
    """One dependency or output of a locked stage, with the content hash DVC recorded for it.

    ``algorithm`` says what ``digest`` is: DVC 3 writes ``hash: md5`` next to ``md5``; an ``md5``
    without it is DVC 2's ``md5-dos2unix`` (the same bytes' md5 for binary files, computed over
    LF line endings for text files), which DVC 3 keeps for outputs it has not re-hashed.
    """

    path: str
    digest: str | None
    algorithm: str | None
    size: int | None = None
    nfiles: int | None = None

    @property
    def md5(self) -> str | None:
        """The md5 DVC recorded (either algorithm), None for a remote output's etag/checksum."""
        return self.digest if self.algorithm in ("md5", "md5-dos2unix") else None


@dataclass(frozen=True)
class LockStage:
    name: str
    cmd: str | tuple[str, ...] | None
    deps: tuple[LockEntry, ...] = ()
    outs: tuple[LockEntry, ...] = ()
    # params file -> the tracked values (as DVC wrote them; nested mappings)
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DvcLock:
    """A parsed ``dvc.lock`` (``schema: '2.0'``, written by DVC 2.x and 3.x)."""

    stages: Mapping[str, LockStage] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # what could not be read (the file is untrusted input)

    def out(self, path: str) -> LockEntry | None:
        """The first output recorded at ``path``, in stage order."""
        return next((o for s in self.stages.values() for o in s.outs if o.path == path), None)

    def out_digests(self) -> dict[str, str]:
        """``path -> digest`` of every stage output that records one."""
        return {
            out.path: out.digest
            for stage in self.stages.values()
            for out in stage.outs
            if out.digest is not None
        }

    def entry_digests(self) -> dict[tuple[str, str], str | None]:
        """``(stage, "dep PATH"|"out PATH") -> digest`` of every entry (None: none recorded)."""
        return {
            (stage.name, f"{kind} {entry.path}"): entry.digest
            for stage in self.stages.values()
            for kind, entries in (("dep", stage.deps), ("out", stage.outs))
            for entry in entries
        }


def _lock_entry(raw: Mapping[str, Any]) -> LockEntry:
    name = next((f for f in HASH_FIELDS if raw.get(f) is not None), None)
    algorithm = name
    if name == "md5":
        algorithm = str(raw.get("hash") or "md5-dos2unix")
    return LockEntry(
        path=str(raw["path"]),
        digest=str(raw[name]) if name is not None else None,
        algorithm=algorithm,
        size=raw["size"] if isinstance(raw.get("size"), int) else None,
        nfiles=raw["nfiles"] if isinstance(raw.get("nfiles"), int) else None,
    )


def _lock_entries(items: Any) -> tuple[LockEntry, ...]:
    entries = items if isinstance(items, list) else []
    return tuple(_lock_entry(e) for e in entries if isinstance(e, Mapping) and "path" in e)


def parse_lock(raw: Any) -> DvcLock:
    """The typed lock of a parsed ``dvc.lock``; lenient like DVC's reader of an untrusted file:
    entries without a path, and stages that are not mappings, are skipped."""
    if raw is not None and not isinstance(raw, Mapping):
        return DvcLock(problems=(f"{LOCK}: expected a mapping at the top level",))
    stages = raw.get("stages") if raw is not None else None
    if stages is not None and not isinstance(stages, Mapping):
        return DvcLock(problems=(f"{LOCK}: no 'stages' mapping",))
    parsed = {}
    for name, body in (stages or {}).items():
        if not isinstance(body, Mapping):
            continue
        cmd = body.get("cmd")
        params = body.get("params")
        parsed[str(name)] = LockStage(
            name=str(name),
            cmd=tuple(str(c) for c in cmd) if isinstance(cmd, list) else _text(cmd),
            deps=_lock_entries(body.get("deps")),
            outs=_lock_entries(body.get("outs")),
            params=params if isinstance(params, Mapping) else {},
        )
    return DvcLock(parsed)


def load_lock(data: bytes | None, where: str) -> DvcLock | None:
    """The lock in ``data`` (None when there is no file); ``where`` names it in the error."""
    if data is None:
        return None
    import yaml

    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise LockError(f"{where}: not valid YAML: {str(error).splitlines()[0]}") from None
    return parse_lock(raw)


def read_lock(path: Path) -> DvcLock | None:
    """``load_lock`` of a file (None when it does not exist)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise LockError(f"{path}: cannot read: {error.strerror}") from None
    return load_lock(data, str(path))


def lock_out_md5(lock: DvcLock | None, path: str) -> str | None:
    """The md5 ``dvc.lock`` records for an output path (e.g. the model file), if any."""
    out = lock.out(path) if lock is not None else None
    return out.md5 if out is not None else None


__all__ = [
    "LOCK",
    "Declared",
    "DvcLock",
    "LockEntry",
    "LockError",
    "LockStage",
    "OutDecl",
    "PlotDecl",
    "defaults",
    "load_lock",
    "lock_out_md5",
    "parse_declared",
    "parse_lock",
    "read_lock",
    "vars_of",
]
