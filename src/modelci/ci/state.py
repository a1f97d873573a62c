"""A repository state (metrics, params, lock, data profile, plot data) read without retraining.

Which metrics, plots and params files a state has is what its own ``dvc.yaml`` declares
(``modelci.dvcfiles``); without one, modelci's defaults (``metrics.json``, ``plots/``).

The base of a pull request is read from git with ``git show REF:./path`` (paths relative to the
working directory, so a model repository may live in a subdirectory); the head is usually the
working tree after ``dvc repro``. Every file is optional: what is missing is recorded, and the
report and the gate decide what that means.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from modelci import layout
from modelci._proc import Completed, run
from modelci.dvcfiles import (
    LOCK,
    Declared,
    DvcLock,
    PlotDecl,
    defaults,
    parse_lock,
)
from modelci.layout import DEFAULT_PATHS
from modelci.statefiles import (
    MAX_FILE_BYTES,
    Source,
    StateError,
    WorkTreeSource,
    _load_json_object,
    flatten,
    load_yaml_mapping,
    merge_metrics,
    parse_metrics,
    read_declared,
)

METRICS = DEFAULT_PATHS.metrics.as_posix()
PARAMS = layout.PARAMS.as_posix()
PROFILE = DEFAULT_PATHS.profile.as_posix()
SLICES = DEFAULT_PATHS.slices.as_posix()
MODEL = DEFAULT_PATHS.model.as_posix()
MAX_PLOT_ROWS = 200_000  # rows of a plot table kept for drawing (evenly spread, see below)
MAX_DISTINCT_ROWS = 10_000  # distinct lines counted exactly (a confusion table has few)


def git(args: list[str], cwd: Path, check: bool = True) -> Completed:
    """Run git with a fixed argument list in ``cwd``; raise StateError on failure if ``check``."""
    return run(
        ["git", *args], f"git {' '.join(args)}", error=StateError, cwd=cwd, timeout=60, check=check
    )


def resolve_ref(ref: str, cwd: Path) -> str:
    """The full commit id of ``ref``; StateError naming the ref when it does not resolve."""
    if not ref or ref.startswith("-"):
        raise StateError(f"invalid git ref {ref!r}")
    done = git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        cwd,
        check=False,
    )
    if done.returncode != 0:
        inside = git(["rev-parse", "--is-inside-work-tree"], cwd, check=False)
        if inside.returncode != 0:
            raise StateError(f"cannot read base {ref!r}: {cwd} is not inside a git repository")
        raise StateError(
            f"cannot read base {ref!r}: unknown git ref (fetch it first, e.g. "
            f"`git fetch origin {ref}`, or check out with fetch-depth: 0)"
        )
    return done.stdout.decode().strip()


@dataclass
class GitSource:
    """Files as committed at ``ref``, relative to ``cwd`` inside the repository."""

    ref: str
    cwd: Path
    commit: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        self.commit = resolve_ref(self.ref, self.cwd)
        self.label = self.label or f"{self.ref} ({self.commit[:12]})"

    def read(self, path: str) -> bytes | None:
        spec = f"{self.commit}:./{path}"
        kind = git(["cat-file", "-t", spec], self.cwd, check=False)
        if kind.returncode != 0 or kind.stdout.strip() != b"blob":
            return None
        size = git(["cat-file", "-s", spec], self.cwd)
        if int(size.stdout.strip() or 0) > MAX_FILE_BYTES:
            raise StateError(f"{self.label}: {path}: larger than {MAX_FILE_BYTES} bytes")
        return git(["cat-file", "blob", spec], self.cwd).stdout

    def list_dir(self, path: str) -> list[str]:
        done = git(["ls-tree", "--name-only", self.commit, f"./{path}/"], self.cwd, check=False)
        if done.returncode != 0:
            return []
        names = done.stdout.decode("utf-8", "replace").splitlines()
        return sorted(Path(name).name for name in names if name)


@dataclass(frozen=True)
class PlotTable:
    """One plot data file: its columns and rows as strings (parsed by the renderer).

    ``rows`` is every row, or, above :data:`MAX_PLOT_ROWS`, an evenly spread sample of the whole
    file (never a prefix); ``total_rows`` counts them all. ``distinct`` holds every distinct row
    with its number of occurrences when the file has at most :data:`MAX_DISTINCT_ROWS` of them,
    so counts (a confusion matrix) are exact at any size.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    total_rows: int | None = None
    distinct: tuple[tuple[tuple[str, ...], int], ...] | None = None

    @property
    def row_count(self) -> int:
        return len(self.rows) if self.total_rows is None else self.total_rows

    @property
    def sampled(self) -> bool:
        """Whether ``rows`` holds fewer rows than the file."""
        return len(self.rows) < self.row_count

    def weighted_rows(self) -> list[tuple[tuple[str, ...], int]]:
        """Each row with how many rows of the file it stands for: exact when ``distinct`` is
        known or nothing was sampled, else each sampled row once."""
        if self.distinct is not None:
            return list(self.distinct)
        return [(row, 1) for row in self.rows]


@dataclass
class RepoState:
    """Everything the report and the gate need from one side of the comparison."""

    label: str
    ref: str | None = None
    commit: str | None = None
    metrics: dict[str, float] | None = None
    params: dict[str, Any] | None = None
    lock: DvcLock | None = None
    profile: dict[str, Any] | None = None
    plots: dict[str, PlotTable] = field(default_factory=dict)
    # how each plot of ``plots`` is drawn, as dvc.yaml declares it (absent: by its known name)
    plot_specs: dict[str, PlotDecl] = field(default_factory=dict)
    # params files dvc.yaml tracks other than ``params`` (the --params file), as tracked
    param_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    declared: Declared = field(default_factory=defaults)
    model_sha256: str | None = None
    # metrics per slice value (``reports/slices.json``), None when the state has none
    slices: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "ref": self.ref, "commit": self.commit}


def load_lock(data: bytes, where: str) -> DvcLock:
    """A state's ``dvc.lock``, typed (:mod:`modelci.dvcfiles`); StateError when not YAML."""
    return parse_lock(load_yaml_mapping(data, where))


def load_toml_mapping(data: bytes, where: str) -> dict[str, Any]:
    """A TOML document (DVC reads ``.toml`` params files, e.g. ``pyproject.toml``)."""
    import tomllib

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise StateError(f"{where}: not valid TOML: {error}") from None


def params_parser(path: str) -> Callable[[bytes, str], dict[str, Any]]:
    """How DVC reads a params file, by its suffix: TOML, JSON, else YAML."""
    if path.endswith(".toml"):
        return load_toml_mapping
    if path.endswith(".json"):
        return _load_json_object
    return load_yaml_mapping


def parse_plot_csv(data: bytes, where: str, delimiter: str = ",") -> PlotTable:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StateError(f"{where}: not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        return PlotTable((), ())
    return sample_table(tuple(header), reader)


def sample_table(header: tuple[str, ...], reader: Iterable[list[str]]) -> PlotTable:
    """The rows of a plot file, bounded as :class:`PlotTable` describes."""
    # Keep rows 0, stride, 2*stride, ...; when the sample overflows, keep every other one and
    # double the stride: bounded memory, and the sample spans the whole file.
    sample: list[tuple[str, ...]] = []
    stride, total = 1, 0
    distinct: Counter[tuple[str, ...]] | None = Counter()
    for values in reader:
        if not values:
            continue
        row = tuple(values)
        if total % stride == 0:
            sample.append(row)
            if len(sample) > MAX_PLOT_ROWS:
                sample, stride = sample[::2], stride * 2
        total += 1
        if distinct is not None:
            distinct[row] += 1
            if len(distinct) > MAX_DISTINCT_ROWS:
                distinct = None
    counted = tuple(distinct.items()) if distinct is not None else None
    return PlotTable(header, tuple(sample), total, counted)


def _tracked(mapping: Mapping[str, Any], keys: tuple[str, ...] | None) -> dict[str, Any]:
    """The part of a params file DVC tracks: all of it, or the listed (dotted) keys."""
    if keys is None:
        return dict(mapping)
    flat = flatten(mapping)
    return {
        key: value
        for key, value in flat.items()
        if any(key == k or key.startswith(f"{k}.") for k in keys)
    }


def plot_names(paths: list[str]) -> dict[str, str]:
    """A short name per plot file: its stem (``plots/roc.csv`` -> ``roc``) unless two files share
    one, then the path with separators replaced (``a/roc.csv`` -> ``a_roc``)."""
    stems = [PurePosixPath(path).stem for path in paths]
    names = {}
    for path, stem in zip(paths, stems, strict=True):
        unique = stems.count(stem) == 1
        names[path] = stem if unique else str(PurePosixPath(path).with_suffix("")).replace("/", "_")
    return names


PLOT_SUFFIXES = (".csv", ".tsv", ".json")


def read_state(
    source: Source,
    *,
    params_path: str = PARAMS,
    model_path: str | None = MODEL,
    strict_metrics: bool = False,
) -> RepoState:
    """Read every piece of a state from ``source``; unparsable files become ``problems``.

    With ``strict_metrics`` an unreadable (not missing) metrics file raises instead.
    """
    state = RepoState(label=source.label)
    state.commit = getattr(source, "commit", "") or None
    state.ref = getattr(source, "ref", None)

    def load(path: str, parse: Any, strict: bool = False) -> Any:
        try:
            data = source.read(path)
            if data is None:
                state.problems.append(f"{path}: not found in {source.label}")
                return None
            return parse(data, f"{source.label}: {path}")
        except StateError as error:
            if strict:
                raise
            state.problems.append(str(error))
            return None

    state.params = load(params_path, load_yaml_mapping)
    state.declared = declared = read_declared(source, state.problems)
    state.metrics = merge_metrics(
        {path: load(path, parse_metrics, strict_metrics) for path in declared.metrics},
        state.problems,
    )
    for file, keys in declared.params.items():
        if file != params_path:
            mapping = load(file, params_parser(file))
            if mapping is not None:
                state.param_files[file] = _tracked(mapping, keys)
    state.lock = load(LOCK, load_lock)
    state.profile = load(PROFILE, _load_json_object)
    try:
        slices = source.read(SLICES)
        state.slices = _load_json_object(slices, f"{source.label}: {SLICES}") if slices else None
    except StateError as error:
        state.problems.append(str(error))
    files: list[PlotDecl] = []
    for plot in declared.plots:
        if plot.path.endswith(PLOT_SUFFIXES):
            files.append(plot)
        else:  # a folder of plot files: each drawn as the folder's declaration says
            files += [
                replace(plot, path=f"{plot.path}/{name}", title=None)
                for name in source.list_dir(plot.path)
                if name.endswith(PLOT_SUFFIXES)
            ]
    names = plot_names([plot.path for plot in files])
    for plot in files:
        try:
            data = source.read(plot.path)
        except StateError as error:
            state.problems.append(str(error))
            continue
        if data is None:
            continue  # declared but not produced (e.g. the other task's plots)
        try:
            table = parse_plot(data, f"{source.label}: {plot.path}", plot.path)
        except StateError as error:
            state.problems.append(str(error))
            continue
        state.plots[names[plot.path]] = table
        if plot.kind is not None:
            state.plot_specs[names[plot.path]] = plot
    if model_path is not None and isinstance(source, WorkTreeSource):
        from modelci.fileio import file_digest

        model = source.root / model_path
        if model.is_file():
            state.model_sha256 = file_digest(model)
        else:
            state.problems.append(f"{model_path}: not found in {source.label}")
    return state


def parse_plot(data: bytes, where: str, path: str) -> PlotTable:
    """A plot data file as DVC accepts it: CSV, TSV, or JSON (a list of flat objects)."""
    if path.endswith(".json"):
        try:
            rows = json.loads(data.decode("utf-8")) if data.strip() else []
        except (UnicodeDecodeError, ValueError) as error:
            raise StateError(f"{where}: not valid JSON: {error}") from None
        if isinstance(rows, Mapping):  # {"key": [rows]}, as DVC allows
            rows = next((v for v in rows.values() if isinstance(v, list)), [])
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise StateError(f"{where}: expected a JSON list of objects")
        columns = tuple(dict.fromkeys(str(k) for row in rows for k in row))
        return sample_table(columns, ([str(row.get(c, "")) for c in columns] for row in rows))
    return parse_plot_csv(data, where, "\t" if path.endswith(".tsv") else ",")
