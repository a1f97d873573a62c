"""``drift.md``, the console lines and the PNG plots of a drift check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelci.drift.engine import DriftResult, FeatureDrift, as_category
from modelci.drift.realized import Realized
from modelci.fileio import write_bytes
from modelci.judge.gate import fmt, verdict_lines
from modelci.judge.markdown import escape

MAX_PLOTS = 24
MAX_BARS = 20


def plot_name(column: str) -> str:
    """A file name for a column's plot: letters, digits, ``._-`` kept, anything else ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", column)[:80].lstrip(".") or "_"


def _p(feature: FeatureDrift) -> str:
    if feature.p_adjusted is not None:
        return f"{feature.p_adjusted:.2g}"
    return "-" if feature.shift is None else f"{feature.shift.p_value:.2g} (not used)"


def feature_line(feature: FeatureDrift) -> str:
    """One console line: verdict, PSI, test, adjusted p-value, null rates, and why."""
    status = "DRIFT" if feature.drifted else "ok"
    shift = feature.shift
    measured = (
        f"PSI {shift.psi:.3f}, {shift.test} {shift.statistic:.3g}, p {_p(feature)}"
        if shift is not None
        else "too few values"
    )
    nulls = f"nulls {feature.null_rate_reference:.1%} -> {feature.null_rate_current:.1%}"
    why = "; ".join(feature.reasons or feature.notes)
    return f"{status:5} {feature.column}: {measured}, {nulls}" + (f" - {why}" if why else "")


def console_lines(result: DriftResult, realized: Realized | None) -> list[str]:
    lines = [feature_line(feature) for feature in result.features]
    if result.prediction is not None:
        shift = result.prediction.shift
        status = "DRIFT" if result.prediction.drifted else "ok"
        threshold = result.prediction.threshold
        lines.append(
            f"{status:5} prediction: PSI {shift.psi:.3f} (threshold {threshold:g}), "
            f"{shift.test} p {shift.p_value:.2g}"
        )
    lines.extend(f"note: {note}" for note in result.notes)
    if realized is not None:
        lines.append(f"realized performance on {realized.rows} labelled rows:")
        lines.extend(f"  {line}" for line in verdict_lines(realized.verdict))
    lines.append(verdict(result, realized))
    return lines


def verdict(result: DriftResult, realized: Realized | None) -> str:
    text = result.summary()
    if realized is not None:
        text += "; performance " + ("DEGRADED" if realized.degraded else "holds")
    return text


def _cell(text: str) -> str:
    """Text that may hold production values (category names) as inert one-line Markdown."""
    return escape(text, limit=500)


def markdown(result: DriftResult, realized: Realized | None, plots: list[str], title: str) -> str:
    """The report: verdict first, one table row per feature, prediction drift, realized
    performance, then the plots (relative links, as written next to drift.md)."""
    lines = [f"## {_cell(title)}", "", f"**{_cell(verdict(result, realized))}**", ""]
    lines += [
        f"Reference {result.rows_reference} rows, current window {result.rows_current} rows.",
        "",
        "| feature | verdict | PSI | test | statistic | adjusted p | nulls (ref -> now) | why |",
        "|---|---|---:|---|---:|---:|---|---|",
    ]
    for feature in result.features:
        shift = feature.shift
        stats = (
            (f"{shift.psi:.3f}", shift.test, f"{shift.statistic:.3g}", _p(feature))
            if shift is not None
            else ("-", "-", "-", "-")
        )
        nulls = f"{feature.null_rate_reference:.1%} -> {feature.null_rate_current:.1%}"
        why = "; ".join(feature.reasons or feature.notes) or "-"
        lines.append(
            f"| {_cell(feature.column)} | {'**drift**' if feature.drifted else 'ok'} | "
            + " | ".join(stats)
            + f" | {nulls} | {_cell(why)} |"
        )
    if result.prediction is not None:
        shift = result.prediction.shift
        lines += [
            "",
            f"Predictions: PSI {shift.psi:.3f} (threshold {result.prediction.threshold:g}), "
            f"{shift.test} statistic {shift.statistic:.3g}, p-value {shift.p_value:.2g}: "
            + ("**drift**" if result.prediction.drifted else "ok"),
        ]
    lines += [""] + [f"- {_cell(note)}" for note in result.notes]
    if realized is not None:
        lines += ["", f"### Realized performance ({realized.rows} labelled rows)", ""]
        lines += ["| metric | realized | test set | verdict |", "|---|---:|---:|---|"]
        for metric in realized.verdict.metrics:
            reasons = "; ".join(metric.failures) or metric.status
            lines.append(
                f"| {metric.name} | {fmt(metric.current)} | {fmt(metric.baseline)} | "
                f"{_cell(reasons)} |"
            )
    if plots:
        lines += ["", "### Distributions, reference vs current", ""]
        lines += [f"![{_cell(name)}](plots/{name}.png)" for name in plots]
    return "\n".join(lines).rstrip() + "\n"


def _figure_bytes(figure: Any, plt: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    return buffer.getvalue()


def _plot_one(plt: Any, name: str, kind: str, reference: pd.Series, current: pd.Series) -> bytes:
    figure, axes = plt.subplots(figsize=(5, 3.2))
    if kind == "numeric":
        ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=float)
        cur = pd.to_numeric(current, errors="coerce").dropna().to_numpy(dtype=float)
        both = np.concatenate([ref, cur])
        edges = np.histogram_bin_edges(both if both.size else [0.0, 1.0], bins=30)
        axes.hist(ref, bins=edges, density=True, alpha=0.5, label="reference")
        axes.hist(cur, bins=edges, density=True, alpha=0.5, label="current")
    else:
        ref_share = as_category(reference).value_counts(normalize=True)
        cur_share = as_category(current).value_counts(normalize=True)
        order = list(ref_share.add(cur_share, fill_value=0).sort_values(ascending=False).index)
        order = order[:MAX_BARS]
        x = np.arange(len(order))
        axes.bar(x - 0.2, ref_share.reindex(order, fill_value=0), 0.4, label="reference")
        axes.bar(x + 0.2, cur_share.reindex(order, fill_value=0), 0.4, label="current")
        axes.set_xticks(x, [str(label)[:14] for label in order], rotation=45, ha="right")
    axes.set_title(name)
    axes.legend(loc="best")
    figure.tight_layout()
    return _figure_bytes(figure, plt)


def write_plots(
    out_dir: Path,
    result: DriftResult,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    predictions: tuple[pd.Series, pd.Series] | None,
) -> list[str]:
    """One PNG per feature (drifted first, at most ``MAX_PLOTS``) and one of the predictions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(result.features, key=lambda feature: not feature.drifted)[:MAX_PLOTS]
    names = []
    for feature in ordered:
        png = _plot_one(
            plt, feature.column, feature.kind, reference[feature.column], current[feature.column]
        )
        names.append(plot_name(feature.column))
        write_bytes(out_dir / "plots" / f"{names[-1]}.png", png)
    if predictions is not None and result.prediction is not None:
        png = _plot_one(plt, "prediction", result.prediction.shift.kind, *predictions)
        write_bytes(out_dir / "plots" / "prediction.png", png)
        names.append("prediction")
    return names
