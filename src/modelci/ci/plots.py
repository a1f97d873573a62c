"""Base-vs-PR plots rendered locally to PNG with matplotlib's Agg backend (no browser, no CDN).

Classification: ROC and precision-recall curves of base and PR overlaid, confusion matrices side
by side. Regression: predicted-vs-actual and residuals, base and PR overlaid. Input tables come
from the pull request, so they are treated as untrusted: bounded, parsed as numbers, and labels
are escaped for matplotlib's mathtext.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelci.ci.state import PlotTable, RepoState

MAX_SCATTER_POINTS = 5000
MAX_CONFUSION_LABELS = 30
COUNT_COLUMN = "count"
DPI = 100


@dataclass(frozen=True)
class Plot:
    name: str
    file: str  # relative to the report directory: plots/NAME.png
    title: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PlotDataError(ValueError):
    """A plot table lacks the expected columns or holds non-numeric values."""


# name -> (kind, x column, y column, title, x label, y label)
SPECS: dict[str, tuple[str, str, str, str, str, str]] = {
    "roc": ("curve", "fpr", "tpr", "ROC curve", "False positive rate", "True positive rate"),
    "precision_recall": (
        "curve",
        "recall",
        "precision",
        "Precision-recall curve",
        "Recall",
        "Precision",
    ),
    "confusion": ("confusion", "actual", "predicted", "Confusion matrix", "Predicted", "Actual"),
    "predictions": ("scatter", "actual", "predicted", "Predicted vs actual", "Actual", "Predicted"),
    "residuals": ("scatter", "predicted", "residual", "Residuals", "Predicted", "Residual"),
}


def safe_label(text: str, limit: int = 40) -> str:
    """Untrusted text for a matplotlib label: one line, bounded, no mathtext."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("$", r"\$")


def _column(table: PlotTable, name: str) -> int:
    try:
        return table.columns.index(name)
    except ValueError:
        raise PlotDataError(f"missing column {name!r} (has {list(table.columns)[:10]})") from None


def numeric_xy(table: PlotTable, x: str, y: str) -> tuple[list[float], list[float]]:
    ix, iy = _column(table, x), _column(table, y)
    xs, ys = [], []
    for number, row in enumerate(table.rows, start=2):
        try:
            xs.append(float(row[ix]))
            ys.append(float(row[iy]))
        except (IndexError, ValueError):
            raise PlotDataError(f"line {number}: not a number in {x!r}/{y!r}") from None
    return xs, ys


def _count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise PlotDataError(f"{COUNT_COLUMN!r} is not a count: {text[:20]!r}")
    return count


def confusion_counts(table: PlotTable, actual: str, predicted: str) -> Counter[tuple[str, str]]:
    """Counts per (actual, predicted) pair: from the ``count`` column of a counts table (what
    evaluate writes), else one per line (a table with one line per test row)."""
    ia, ip = _column(table, actual), _column(table, predicted)
    ic = table.columns.index(COUNT_COLUMN) if COUNT_COLUMN in table.columns else None
    counts: Counter[tuple[str, str]] = Counter()
    for row, times in table.weighted_rows():
        if len(row) < len(table.columns):
            raise PlotDataError(f"a row has fewer than {len(table.columns)} values")
        count = 1 if ic is None else _count(row[ic])
        counts[(row[ia], row[ip])] += count * times
    return counts


def sample_note(kind: str, who: str, table: PlotTable) -> str:
    """What the reader must know when a table was too large to draw every row of it."""
    if not table.sampled:
        return ""
    if kind == "confusion" and table.distinct is not None:
        return ""  # counted exactly from every row
    what = "counted" if kind == "confusion" else "drawn"
    return f"{who}: {len(table.rows)} of {table.row_count} rows {what}, evenly spread"


def _thin(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    step = max(1, len(xs) // MAX_SCATTER_POINTS)
    return xs[::step], ys[::step]


Spec = tuple[str, str, str, str, str, str]


def plot_specs(base: RepoState, head: RepoState) -> tuple[dict[str, Spec], list[str]]:
    """How to draw each plot of either state: as its ``dvc.yaml`` declares it (template, x, y,
    title; the PR's declaration first), else by its known name (``SPECS``), in declared order.
    Also the names that have neither."""
    specs: dict[str, Spec] = {}
    unknown = []
    names = list(dict.fromkeys([*head.plots, *base.plots]))
    names.sort(key=lambda name: list(SPECS).index(name) if name in SPECS else len(SPECS))
    for name in names:
        declared = head.plot_specs.get(name) or base.plot_specs.get(name)
        known = SPECS.get(name)
        if declared is not None and declared.x and declared.y and declared.kind:
            same = known is not None and known[1:3] == (declared.x, declared.y)
            specs[name] = (
                declared.kind,
                declared.x,
                declared.y,
                declared.title or (known[3] if known else declared.path),
                declared.x_label or (known[4] if known and same else declared.x),
                declared.y_label or (known[5] if known and same else declared.y),
            )
        elif known is not None:
            specs[name] = known
        else:
            unknown.append(name)
    return specs, unknown


def render_plots(base: RepoState, head: RepoState, out_dir: Path) -> tuple[list[Plot], list[str]]:
    """Write ``out_dir/NAME.png`` for each plot table of either state that can be drawn.

    Returns the plots written and warnings for tables that could not be rendered.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    plots: list[Plot] = []
    warnings: list[str] = []
    sides = (("base", base), ("PR", head))
    specs, unknown = plot_specs(base, head)
    for name, (kind, x, y, title, xlabel, ylabel) in specs.items():
        present = [(who, state.plots[name]) for who, state in sides if name in state.plots]
        if not present:
            continue
        missing = [who for who, state in sides if name not in state.plots]
        note = f"no {missing[0]} data" if missing else ""
        for who, table in present:
            sampled = sample_note(kind, who, table)
            note = "; ".join(part for part in (note, sampled) if part)
        if kind == "curve" and x in AREA_CURVES and _task(head) == "multiclass":
            title = f"{title} (micro-average, one-vs-rest)"
        try:
            if kind == "confusion":
                figure = confusion_figure(plt, present, x, y, title)
            else:
                figure = _xy_figure(plt, present, kind, x, y, title, xlabel, ylabel)
        except PlotDataError as error:
            warnings.append(f"plot {name}: not rendered: {error}")
            continue
        file = out_dir / f"{name}.png"
        try:
            figure.savefig(file, dpi=DPI, metadata={"Software": None})
        finally:
            plt.close(figure)
        plots.append(Plot(name, f"plots/{name}.png", title, note))
    warnings.extend(
        f"plot {name}: no renderer (declare its x, y and template in dvc.yaml), skipped"
        for name in unknown
    )
    return plots, warnings


# x columns of the curves whose legend carries the area under them (ROC AUC, PR AUC)
AREA_CURVES = ("fpr", "recall")


def _task(state: RepoState) -> Any:
    data = (state.params or {}).get("data")
    return data.get("task") if isinstance(data, dict) else None


def curve_area(xs: list[float], ys: list[float]) -> float:
    """The area under a curve given by its points (trapezoids, in order of x)."""
    import numpy as np

    order = np.argsort(np.asarray(xs), kind="stable")
    return float(np.trapezoid(np.asarray(ys)[order], np.asarray(xs)[order]))


def _xy_figure(
    plt: Any,
    present: list[tuple[str, PlotTable]],
    kind: str,
    x: str,
    y: str,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Any:
    figure, axes = plt.subplots(figsize=(6, 4.5))
    # base dashed and drawn on top, so it stays visible where the curves coincide
    styles: dict[str, dict[str, Any]] = {
        "base": {"color": "dimgray", "linestyle": "--", "zorder": 3},
        "PR": {"color": "tab:blue", "zorder": 2},
    }
    for who, table in present:
        xs, ys = numeric_xy(table, x, y)
        if kind == "curve":
            label = f"{who} (AUC {curve_area(xs, ys):.3f})" if x in AREA_CURVES and xs else who
            axes.plot(xs, ys, label=label, linewidth=1.8, **styles[who])
        else:
            xs, ys = _thin(xs, ys)
            axes.scatter(
                xs,
                ys,
                s=6,
                alpha=0.5,
                label=who,
                color=styles[who]["color"],
                marker="o" if who == "PR" else "x",
            )
    if kind == "curve" and x == "fpr":
        axes.plot([0, 1], [0, 1], color="lightgray", linewidth=0.8)
    if kind == "scatter" and y == "predicted":
        low, high = axes.get_xlim()
        axes.plot([low, high], [low, high], color="lightgray", linewidth=0.8)
    if kind == "scatter" and y == "residual":
        axes.axhline(0, color="lightgray", linewidth=0.8)
    axes.set_title(f"{title}: base vs PR")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend(loc="best")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def confusion_figure(
    plt: Any, present: list[tuple[str, PlotTable]], actual: str, predicted: str, title: str
) -> Any:
    counts = [(who, confusion_counts(table, actual, predicted)) for who, table in present]
    labels = sorted({label for _, c in counts for pair in c for label in pair})
    if len(labels) > MAX_CONFUSION_LABELS:
        raise PlotDataError(f"{len(labels)} classes, more than {MAX_CONFUSION_LABELS}")
    index = {label: position for position, label in enumerate(labels)}
    figure, axes = plt.subplots(1, len(counts), figsize=(5.2 * len(counts), 4.6), squeeze=False)
    for axis, (who, count) in zip(axes[0], counts, strict=True):
        matrix = [[0] * len(labels) for _ in labels]
        for (truth, guess), number in count.items():
            matrix[index[truth]][index[guess]] = number
        axis.imshow(matrix, cmap="Blues")
        if len(labels) <= 12:
            peak = max((max(row) for row in matrix), default=0)
            for i, row in enumerate(matrix):
                for j, number in enumerate(row):
                    color = "white" if peak and number > peak / 2 else "black"
                    axis.text(j, i, str(number), ha="center", va="center", color=color)
        ticks = [safe_label(label, 16) for label in labels]
        axis.set_xticks(range(len(labels)), ticks, rotation=45 if len(labels) > 4 else 0)
        axis.set_yticks(range(len(labels)), ticks)
        axis.set_xlabel("Predicted")
        axis.set_ylabel("Actual")
        axis.set_title(f"{who} ({sum(count.values())} rows)")
    figure.suptitle(f"{title}: base vs PR")
    figure.tight_layout()
    return figure
