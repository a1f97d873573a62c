"""What ``dvc.yaml`` declares: metrics files, plots, params files and outputs, any stage, any name.

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
from pathlib import PurePosixPath
from typing import Any

DVC_YAML = "dvc.yaml"
DEFAULT_METRICS = ("metrics.json",)
DEFAULT_PLOTS_DIR = "plots"
PARAMS_FILE = "params.yaml"
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


@dataclass
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
    declared = Declared(found=True)

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
                declared.outs.append(OutDecl(resolved, str(name), cache))
                if kind == "metrics":
                    declared.metrics.append(resolved)
                elif kind == "plots":
                    declared.plots.append(
                        _plot(resolved, options) if options else PlotDecl(resolved)
                    )
        params = stage.get("params") or []
        if not isinstance(params, list):
            problems.append(f"{where}: stage {name}: 'params' is not a list, skipped")
            params = []
        for entry in params:
            if isinstance(entry, str):
                _track(declared.params, PARAMS_FILE, (entry,))
            elif isinstance(entry, Mapping):
                for file, keys in entry.items():
                    tracked = tuple(str(k) for k in keys) if isinstance(keys, list) else None
                    _track(declared.params, str(file), tracked or None)
    for path, _ in _entries(raw.get("metrics")):
        resolved = resolve(path)
        if resolved is not None:
            declared.metrics.append(resolved)
    for path, _ in _entries(raw.get("params")):
        _track(declared.params, path, None)
    top = _top_level_plots(raw.get("plots"), resolve)
    # A top-level definition says how to draw a file a stage declares: it replaces the bare entry.
    defined = {plot.path for plot in top}
    declared.plots = [p for p in declared.plots if p.path not in defined] + top
    declared.metrics = list(dict.fromkeys(declared.metrics))
    return declared


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


__all__ = ["Declared", "OutDecl", "PlotDecl", "defaults", "parse_declared", "vars_of"]
