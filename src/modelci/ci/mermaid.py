"""Plots as Mermaid ``xychart-beta`` charts, which GitHub renders in a comment without any upload.

Only syntax that Mermaid 10 renders (GitHub bundles a 10.x release; ``xychart-beta`` arrived in
10.6): a title, two numeric axes (``x-axis "label" MIN --> MAX``) and ``line [...]`` series.
A line has no x values: Mermaid spaces its points evenly over the x range, so every curve is
resampled onto a fixed grid. The chart has no legend either, so each chart's caption names its
lines in order (Mermaid colours them by position; in its default theme the first colour is
faint, which is why the first line is a reference: chance, no skill, or zero).

The comment job keeps a ``mermaid`` block only if every line matches a whitelist of exactly what
this module writes (``.github/actions/comment/modelci_comment.py``, ``mermaid_blocks``): change
both together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# x values of a resampled curve: 0, 0.02, ..., 1 of the x range
GRID_POINTS = 51
# residual quantiles drawn: 2 %, 4 %, ..., 98 % (the extremes would squash the rest)
QUANTILE_LEVELS = tuple(range(2, 99, 2))
TEXT_LIMIT = 60
# what a title or axis label may hold; anything else becomes a space (the comment job's
# whitelist allows exactly this set)
_UNSAFE_TEXT = re.compile(r"[^A-Za-z0-9 .,:()+-]")


def chart_text(text: str, limit: int = TEXT_LIMIT) -> str:
    """Untrusted text for a chart title or axis label: safe characters only, one line, bounded."""
    cleaned = " ".join(_UNSAFE_TEXT.sub(" ", str(text)).split())[:limit].strip()
    return cleaned or "-"


def number(value: float) -> str:
    """A number as the chart writes it: at most 3 decimals (finer than a chart's pixels), no
    exponent, no ``-0``."""
    text = f"{float(value):.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def xychart(
    title: str,
    x_axis: tuple[str, float, float],
    y_axis: tuple[str, float, float],
    lines: Sequence[Sequence[float]],
) -> str:
    """A fenced ``mermaid`` block: a titled chart with numeric axes and one ``line`` per series."""
    rows = ["```mermaid", "xychart-beta", f'    title "{chart_text(title)}"']
    for axis, (label, low, high) in (("x-axis", x_axis), ("y-axis", y_axis)):
        rows.append(f'    {axis} "{chart_text(label)}" {number(low)} --> {number(high)}')
    rows += ["    line [" + ", ".join(number(v) for v in line) + "]" for line in lines]
    return "\n".join([*rows, "```"])


def grid(low: float, high: float, points: int = GRID_POINTS) -> np.ndarray:
    return np.linspace(low, high, points)


def upper_envelope(xs: Sequence[float], ys: Sequence[float], at: np.ndarray) -> list[float]:
    """The highest y the polyline through (xs, ys), in file order, reaches at each x of ``at``.

    A ROC curve climbs vertically at some x: its value there is the top of the climb. A
    precision-recall curve is not monotonic: the envelope is its interpolated precision (the
    best precision reached at that recall). Outside the curve's x range, the nearest end's y.
    """
    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    if len(x) == 1:
        return [float(y[0])] * len(at)
    x0, x1, y0, y1 = x[:-1, None], x[1:, None], y[:-1, None], y[1:, None]
    low, high = np.minimum(x0, x1), np.maximum(x0, x1)
    inside = (at >= low) & (at <= high)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(x1 != x0, (at - x0) / (x1 - x0), 1.0)
    along = np.where(x1 != x0, y0 + share * (y1 - y0), np.maximum(y0, y1))
    best = np.where(inside, along, -np.inf).max(axis=0)
    first, last = np.argmin(x), np.argmax(x)
    best = np.where(at < x[first], y[first], best)
    envelope: list[float] = np.where(at > x[last], y[last], best).tolist()
    return envelope


def residual_quantiles(residuals: Sequence[float]) -> list[float]:
    """The residuals' quantiles at :data:`QUANTILE_LEVELS` (a sorted-residuals curve)."""
    levels = np.asarray(QUANTILE_LEVELS) / 100
    quantiles: list[float] = np.quantile(np.asarray(residuals, dtype=float), levels).tolist()
    return quantiles


def value_range(series: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Lowest and highest value over every series, widened when they are equal."""
    values = np.concatenate([np.asarray(s, dtype=float) for s in series])
    low, high = float(values.min()), float(values.max())
    return (low - 1, high + 1) if low == high else (low, high)
