"""Base-vs-PR plots: Mermaid charts and Markdown tables for the comment, PNGs on request.

Classification: ROC and precision-recall curves of base and PR overlaid, confusion matrices side
by side. Regression: predicted-vs-actual and residuals, base and PR overlaid. Two forms, chosen by
``modelci pr report --plots``:

- ``mermaid`` (the default): curves and residuals as Mermaid ``xychart-beta`` charts
  (``modelci.ci.mermaid``) and the confusion matrix as a table, all inside the Markdown, so the
  comment carries its plots without uploading anything;
- ``png``: images drawn locally with matplotlib's Agg backend (no browser, no CDN), which the
  comment job uploads to an image host only when told to.

Input tables come from the pull request, so they are treated as untrusted: bounded, parsed as
numbers, and labels are escaped for matplotlib's mathtext or cut to a safe character set.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelci.ci.state import PlotTable, RepoState
from modelci.errors import ModelCIError

MAX_SCATTER_POINTS = 5000
MAX_CONFUSION_LABELS = 30
COUNT_COLUMN = "count"
DPI = 100


# (who, rows of counts: actual x predicted, in the order of ``Plot.labels``)
Matrix = tuple[str, tuple[tuple[int, ...], ...]]
PLOT_FORMATS = ("mermaid", "png")


@dataclass(frozen=True)
class Plot:
    name: str
    file: str  # relative to the report directory: plots/NAME.png; "" when no PNG was drawn
    title: str
    note: str = ""
    chart: str = ""  # a fenced Mermaid block (modelci.ci.mermaid); "" when none
    caption: str = ""  # the chart's lines in order, and the curves' areas
    labels: tuple[str, ...] = ()  # a confusion matrix's classes
    matrices: tuple[Matrix, ...] = ()  # a confusion matrix's counts per side

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PlotDataError(ModelCIError, ValueError):
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


def render_plots(
    base: RepoState,
    head: RepoState,
    out_dir: Path,
    formats: Collection[str] = ("png",),
) -> tuple[list[Plot], list[str]]:
    """Each plot table of either state that can be drawn, in the ``formats`` asked for
    (:data:`PLOT_FORMATS`): ``out_dir/NAME.png`` for "png", a chart or table in the Markdown for
    "mermaid".

    Returns the plots and warnings for tables that could not be rendered.
    """
    plt: Any = None
    if "png" in formats:
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
            inline = (
                _inline(present, kind, x, y, title, xlabel, ylabel) if "mermaid" in formats else {}
            )
            if kind == "confusion" and plt is not None:
                figure = confusion_figure(plt, present, x, y, title)
            elif plt is not None:
                figure = _xy_figure(plt, present, kind, x, y, title, xlabel, ylabel)
        except PlotDataError as error:
            warnings.append(f"plot {name}: not rendered: {error}")
            continue
        file = ""
        if plt is not None:
            try:
                figure.savefig(out_dir / f"{name}.png", dpi=DPI, metadata={"Software": None})
            finally:
                plt.close(figure)
            file = f"plots/{name}.png"
        plots.append(Plot(name, file, title, note, **inline))
    warnings.extend(
        f"plot {name}: no renderer (declare its x, y and template in dvc.yaml), skipped"
        for name in unknown
    )
    return plots, warnings


def _finite(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """The points whose coordinates are both finite numbers (a chart cannot write nan)."""
    pairs = [(a, b) for a, b in zip(xs, ys, strict=True) if math.isfinite(a + b)]
    return [a for a, _ in pairs], [b for _, b in pairs]


def _inline(
    present: list[tuple[str, PlotTable]],
    kind: str,
    x: str,
    y: str,
    title: str,
    xlabel: str,
    ylabel: str,
) -> dict[str, Any]:
    """The fields of a :class:`Plot` that the Markdown shows: a chart and its caption, or the
    confusion matrices; none for a scatter plot other than residuals (only a PNG draws it)."""
    from modelci.ci import mermaid

    if kind == "confusion":
        labels, matrices = confusion_matrices(present, x, y)
        return {"labels": tuple(labels), "matrices": matrices}
    if kind == "scatter" and y != "residual":
        return {}
    sides = [(who, *_finite(*numeric_xy(table, x, y))) for who, table in present]
    sides = [side for side in sides if side[1]]
    if not sides:
        raise PlotDataError(f"no finite values in {x!r}/{y!r}")
    names: list[str] = []
    lines: list[Any] = []
    if kind == "scatter":  # residuals: sorted, as quantiles, against a perfect model's zero
        names.append("zero (a perfect model)")
        lines.append([0.0] * len(mermaid.QUANTILE_LEVELS))
        for who, _, residuals in sides:
            names.append(who)
            lines.append(mermaid.residual_quantiles(residuals))
        levels = mermaid.QUANTILE_LEVELS
        chart = mermaid.xychart(
            f"{title}: sorted",
            ("Share of test rows below (percent)", levels[0], levels[-1]),
            (ylabel, *mermaid.value_range(lines)),
            lines,
        )
        caption = (
            f"Lines in order: {', '.join(names)}. Each line gives the residual below which that "
            f"share of the test rows lies ({levels[0]} % to {levels[-1]} %); flatter and closer "
            "to zero is better."
        )
        return {"chart": chart, "caption": caption}
    unit = x in AREA_CURVES  # ROC and precision-recall live in the unit square
    x_range = (0.0, 1.0) if unit else mermaid.value_range([xs for _, xs, _ in sides])
    y_range = (0.0, 1.0) if unit else mermaid.value_range([ys for _, _, ys in sides])
    at = mermaid.grid(*x_range)
    if x == "fpr":
        names.append("chance")
        lines.append(at)
    elif x == "recall":  # no skill: the precision of predicting every row positive
        _, xs, ys = sides[-1]
        names.append("no skill")
        lines.append([min(b for a, b in zip(xs, ys, strict=True) if a == max(xs))] * len(at))
    for who, xs, ys in sides:
        names.append(who)
        lines.append(mermaid.upper_envelope(xs, ys, at))
    caption = f"Lines in order: {', '.join(names)}"
    if unit:
        areas = ", ".join(f"{who} {curve_area(xs, ys):.3f}" for who, xs, ys in sides)
        caption += f". Area under the curve: {areas}"
    chart = mermaid.xychart(title, (xlabel, *x_range), (ylabel, *y_range), lines)
    return {"chart": chart, "caption": caption + "."}


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


def confusion_matrices(
    present: list[tuple[str, PlotTable]], actual: str, predicted: str
) -> tuple[list[str], tuple[Matrix, ...]]:
    """The classes of either side, sorted, and each side's counts (rows actual, columns
    predicted)."""
    counts = [(who, confusion_counts(table, actual, predicted)) for who, table in present]
    labels = sorted({label for _, c in counts for pair in c for label in pair})
    if len(labels) > MAX_CONFUSION_LABELS:
        raise PlotDataError(f"{len(labels)} classes, more than {MAX_CONFUSION_LABELS}")
    matrices = tuple(
        (who, tuple(tuple(count[(truth, guess)] for guess in labels) for truth in labels))
        for who, count in counts
    )
    return labels, matrices


def confusion_figure(
    plt: Any, present: list[tuple[str, PlotTable]], actual: str, predicted: str, title: str
) -> Any:
    labels, matrices = confusion_matrices(present, actual, predicted)
    figure, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 4.6), squeeze=False)
    for axis, (who, matrix) in zip(axes[0], matrices, strict=True):
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
        axis.set_title(f"{who} ({sum(map(sum, matrix))} rows)")
    figure.suptitle(f"{title}: base vs PR")
    figure.tight_layout()
    return figure
