"""The pull-request report: base vs PR as Markdown (for the comment) and JSON (for machines).

Everything shown comes from the pull request and is untrusted: each string is bounded, made one
line, HTML-escaped and Markdown-escaped (mentions and math defused) before it reaches the
Markdown. The Markdown always fits ``max_chars`` (GitHub's comment limit is 65,536): tables are cut
with an "N more rows omitted" note until it fits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelci.ci.data_diff import DataShift
from modelci.ci.diff import (
    MetricRow,
    ParamChange,
    ValueChange,
    data_changes,
    diff_param_files,
    metric_rows,
)
from modelci.ci.plots import Plot
from modelci.ci.slices import SliceRow, slice_rows
from modelci.ci.state import METRICS, MODEL, RepoState
from modelci.config import GateParams, MetricRule
from modelci.dvcfiles import lock_out_md5
from modelci.judge.comparison import Comparison
from modelci.judge.gate import (
    Verdict,
    as_gate,
    failed_verdict,
    fmt,
    fmt_delta,
    json_number,
    judge,
    task_changes,
)
from modelci.judge.markdown import escape
from modelci.judge.stats import DeltaInterval

GITHUB_COMMENT_LIMIT = 65_536
DEFAULT_MAX_CHARS = 60_000
MIN_MAX_CHARS = 1_000
MARKER = "<!-- modelci-report -->"
TITLE_LIMIT = 256
ROW_LIMITS = (500, 200, 100, 50, 25, 10, 5, 2, 0)
REPORT_VERSION = 1


@dataclass
class Report:
    """Everything the report shows; ``to_json`` and ``render_markdown`` are its two views."""

    base: RepoState
    head: RepoState
    params: list[ParamChange]
    metrics: list[MetricRow]
    verdict: Verdict
    data: dict[str, list[ValueChange]]
    model: dict[str, Any]
    title: str | None = None
    plots: list[Plot] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    task_changes: list[str] = field(default_factory=list)
    comparison: Comparison = field(default_factory=Comparison)
    slices: list[SliceRow] = field(default_factory=list)
    shift: DataShift = field(default_factory=DataShift)
    # compute.engine dask: where and how each stage ran (modelci.layout.COMPUTE_RUN)
    compute: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_report(
    base: RepoState,
    head: RepoState,
    gate: GateParams | Mapping[str, MetricRule],
    *,
    title: str | None = None,
    directions: Mapping[str, bool] | None = None,
    model_path: str = MODEL,
    allow_task_change: bool = False,
    comparison: Comparison | None = None,
    shift: DataShift | None = None,
) -> Report:
    """Compare two states and judge the head's metrics with the gate (pure: no IO).

    When the task or target changed, the base's metrics are not compared (see ``gate.judge``),
    nor are the intervals of ``comparison`` (``modelci.ci.predictions``) used.
    """
    gate = as_gate(gate)
    rules = gate.metrics
    changed_task = task_changes(base.params, head.params)
    comparison = Comparison() if changed_task or comparison is None else comparison
    base_metrics = None if changed_task else base.metrics
    if head.metrics is None:
        files = ", ".join(head.declared.metrics) or METRICS
        verdict = failed_verdict(rules, f"{files}: missing or unreadable in {head.label}")
    else:
        verdict = judge(
            gate,
            head.metrics,
            base.metrics,
            changed_task,
            allow_task_change,
            intervals=comparison.intervals,
            slices=head.slices,
        )
    params = diff_param_files(base, head)
    warnings = [f"base: {problem}" for problem in base.problems]
    warnings += [f"PR: {problem}" for problem in head.problems]
    if base.metrics is None:
        warnings.append("no baseline metrics: every metric is new and judged on bounds only")
    gate_changes = [change.key for change in params if change.key.startswith("gate.")]
    if gate_changes:
        warnings.append(
            "this PR changes the gate rules ("
            + ", ".join(gate_changes[:10])
            + "); the gate applied the PR's rules"
        )
    base_md5 = lock_out_md5(base.lock, model_path)
    head_md5 = lock_out_md5(head.lock, model_path)
    model = {
        "path": model_path,
        "sha256": head.model_sha256,
        "dvc_md5": head_md5,
        "base_dvc_md5": base_md5,
        "changed": None if base_md5 is None or head_md5 is None else base_md5 != head_md5,
    }
    return Report(
        base=base,
        head=head,
        params=params,
        metrics=metric_rows(base_metrics, head.metrics, verdict, directions or {}),
        verdict=verdict,
        data=data_changes(base, head),
        model=model,
        title=title,
        warnings=warnings,
        task_changes=changed_task,
        comparison=comparison,
        shift=shift or DataShift(),
        slices=slice_rows(
            None if changed_task else base.slices,
            head.slices,
            list(rules),
            {**(directions or {}), **{n: rule.higher_is_better for n, rule in rules.items()}},
        ),
    )


def to_json(report: Report, markdown: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The machine-readable report (strict JSON: NaN and infinities become strings)."""
    return {
        "version": REPORT_VERSION,
        "title": report.title,
        "base": report.base.describe(),
        "head": report.head.describe(),
        "model": report.model,
        "gate": report.verdict.to_dict(),
        "metrics": [row.to_dict() for row in report.metrics],
        "params": [change.to_dict() for change in report.params],
        "data": {key: [c.to_dict() for c in changes] for key, changes in report.data.items()},
        "plots": [plot.to_dict() for plot in report.plots],
        "warnings": report.warnings,
        "task_changes": report.task_changes,
        "statistics": report.comparison.to_dict(),
        "slices": [row.to_dict() for row in report.slices],
        "data_shift": report.shift.to_dict(),
        "compute": report.compute,
        "markdown": dict(markdown or {}),
    }


def dumps_json(payload: Any) -> str:
    def clean(value: Any) -> Any:
        if isinstance(value, float):
            return json_number(value)
        if isinstance(value, Mapping):
            return {str(key): clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [clean(item) for item in value]
        return value

    return json.dumps(clean(payload), indent=2, sort_keys=True, default=str, allow_nan=False)


# --- Markdown ---------------------------------------------------------------------------------

_ICON = {"pass": "✅ pass", "fail": "❌ fail", "skipped": "⏭️ skipped"}
_CHANGE = {
    "improved": "▲ improved",
    "regressed": "▼ regressed",
    "unchanged": "= unchanged",
    "new": "🆕 new",
    "removed": "🗑️ removed",
    "invalid": "⚠️ invalid",
}


def _table(header: list[str], rows: list[list[str]], total: int, what: str) -> list[str]:
    """A Markdown table of ``rows`` (already cut to the limit) out of ``total``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] if rows else []
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if total > len(rows):
        lines.append("")
        lines.append(f"_… {total - len(rows)} more {what} omitted (see report.json)._")
    return lines


# the verdict notes worth a reviewer's eye in the metrics table (the rest are in report.json)
_SHOWN_NOTES = ("new", "regressed", "baseline", "fell", "rose", "non-inferior", "no interval")


def _gate_cell(row: MetricRow) -> str:
    if row.gate is None:
        return "not gated"
    text = _ICON[row.gate.status]
    reasons = list(row.gate.failures) or [n for n in row.gate.notes if n.startswith(_SHOWN_NOTES)]
    if reasons:
        text += ": " + escape("; ".join(reasons), 200)
    return text


def _interval_cells(interval: DeltaInterval | None) -> list[str]:
    """The delta's interval and whether the change is significant (with McNemar's p-value)."""
    if interval is None:
        return ["-", "-"]
    ci = f"{fmt_delta(interval.low)} to {fmt_delta(interval.high)} ({interval.level:.0%})"
    verdict = "**yes**" if interval.significant else "no (noise)"
    if interval.p_value is not None:
        verdict += f", p={interval.p_value:.2g}"
    return [ci, verdict]


def _metric_lines(report: Report, limit: int) -> list[str]:
    rows = sorted(report.metrics, key=lambda r: (r.gate is None or r.gate.passed, r.name))
    intervals = report.comparison.intervals
    cells = []
    for row in rows[:limit]:
        base = "new" if row.change == "new" and row.base is None else fmt(row.base)
        head = "removed" if row.change == "removed" else fmt(row.head)
        cells.append(
            [
                f"**{escape(row.name, 60)}**",
                base,
                head,
                fmt_delta(row.delta),
                *_interval_cells(intervals.get(row.name)),
                _CHANGE[row.change],
                "higher is better" if row.higher_is_better else "lower is better",
                _gate_cell(row),
            ]
        )
    header = ["metric", "base", "PR", "delta", "CI of delta", "significant", "change"]
    header += ["direction", "gate"]
    if not rows:
        return ["No metrics on either side."]
    return _table(header, cells, len(rows), "metrics") + _statistics_lines(report, limit)


def _statistics_lines(report: Report, limit: int) -> list[str]:
    """How the intervals were made, in one line, and why any are missing."""
    comparison = report.comparison
    lines = []
    methods = sorted({i.method for i in comparison.intervals.values()})
    if comparison.intervals:
        first = next(iter(comparison.intervals.values()))
        base_rows, head_rows = first.rows
        rows = f"{head_rows}" if base_rows == head_rows else f"{base_rows} (base) and {head_rows}"
        resamples = f", {first.resamples} resamples" if first.resamples else ""
        mcnemar = " (accuracy: McNemar's exact p-value)" if comparison.paired else ""
        lines.append(
            f"_Intervals: {', '.join(methods)} over {rows} test rows{resamples}; "
            f"significant when the interval excludes 0{mcnemar}._"
        )
    notes = sorted({n for i in comparison.intervals.values() for n in i.notes})
    notes += comparison.notes
    lines += [f"- {escape(note, 300)}" for note in notes[: max(limit, 3)]]
    return ["", *lines] if lines else []


def _slice_lines(report: Report, limit: int) -> list[str]:
    rows = report.slices
    if not rows:
        return ["No slices (evaluate.slices in params.yaml declares them)."]
    metrics = list(dict.fromkeys(name for row in rows for name in row.values))
    cells = []
    for row in rows[:limit]:
        counts = f"{row.base_rows if row.base_rows is not None else '-'} → "
        counts += f"{row.head_rows if row.head_rows is not None else '-'}"
        cell = [f"{escape(row.column, 40)} = {escape(row.value, 40)}", counts]
        if row.too_small:
            cells.append(cell + ["_too small to judge_"] + ["-"] * (len(metrics) - 1))
            continue
        for metric in metrics:
            base, head = row.values.get(metric, (None, None))
            delta = row.delta(metric)
            cell.append(f"{fmt(base)} → {fmt(head)}" + (f" ({fmt_delta(delta)})" if delta else ""))
        cells.append(cell)
    header = ["slice", "rows"] + [f"{escape(m, 40)} base → PR" for m in metrics or ["metrics"]]
    lines = ["Largest regressions first; slices below evaluate.min_slice_rows are too small.", ""]
    lines += _table(header, cells, len(rows), "slices")
    for rule in report.verdict.slices:
        reasons = "; ".join(rule.failures + rule.notes) or "ok"
        lines.append("")
        lines.append(
            f"- slice rule {escape(rule.rule.metric, 40)} over {escape(rule.rule.column, 40)}: "
            f"{_ICON[rule.status]}: {escape(reasons, 300)}"
        )
    return lines


def _param_lines(report: Report, limit: int) -> list[str]:
    if not report.params:
        return ["No params changed."]
    cells = [
        [
            escape(change.key, 80),
            "_(absent)_" if change.change == "added" else escape(change.base),
            "_(removed)_" if change.change == "removed" else escape(change.head),
        ]
        for change in report.params[:limit]
    ]
    count = len(report.params)
    return [
        f"{count} param{'s' if count != 1 else ''} changed (old → new):",
        "",
        *_table(["param", "base", "PR"], cells, count, "params"),
    ]


def _short(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return escape(text[:12] if re.fullmatch(r"[0-9a-f]{16,}(\.dir)?", text) else text, 40)


def _data_lines(report: Report, limit: int) -> list[str]:
    lines = []
    rows = report.data.get("rows", [])
    if rows:
        cells = []
        for change in rows[:limit]:
            delta = "-"
            if isinstance(change.base, int) and isinstance(change.head, int):
                delta = f"{change.head - change.base:+d}"
            cells.append([escape(change.name, 40), _short(change.base), _short(change.head), delta])
        lines += ["**Rows per split** (data/prepared/profile.json)", ""]
        lines += _table(["split", "base", "PR", "delta"], cells, len(rows), "splits")
    else:
        lines.append("No row counts (data/prepared/profile.json missing).")
    columns = report.data.get("columns", [])
    lines.append("")
    if columns:
        cells = [
            [escape(c.name, 60), _short(c.base), _short(c.head), c.change] for c in columns[:limit]
        ]
        lines += ["**Schema changes**", ""]
        lines += _table(
            ["column", "base type", "PR type", "change"], cells, len(columns), "columns"
        )
    else:
        lines.append("Schema unchanged.")
    lines += ["", *_shift_lines(report, limit)]
    hashes = report.data.get("hashes", [])
    lines.append("")
    if hashes:
        cells = [
            [escape(h.group, 40), escape(h.name, 80), _short(h.base), _short(h.head), h.change]
            for h in hashes[:limit]
        ]
        lines += ["**Content hashes that changed** (dvc.lock, md5)", ""]
        lines += _table(["stage", "dep/out", "base", "PR", "change"], cells, len(hashes), "hashes")
    else:
        lines.append("No content hash changed in dvc.lock.")
    return lines


def _shift_lines(report: Report, limit: int) -> list[str]:
    """Per column of the training split: PSI, the test's p-value, null rates, categories."""
    shift = report.shift
    lines = [f"- {escape(note, 300)}" for note in shift.notes[: max(limit, 3)]]
    if not shift.columns:
        return lines
    cells = []
    for c in shift.columns[:limit]:
        level = "major" if c.psi > 0.25 else ("moderate" if c.psi > 0.1 else "stable")
        cells.append(
            [
                escape(c.column, 60),
                c.kind,
                f"{c.psi:.3f} ({level})",
                f"{c.test} p={c.p_value:.2g}",
                f"{c.null_rate_reference:.1%} → {c.null_rate_current:.1%}",
                escape(", ".join(c.new_categories), 80) or "-",
                escape(", ".join(c.removed_categories), 80) or "-",
            ]
        )
    header = ["column", "kind", "PSI", "test", "nulls (base → PR)", "new categories", "removed"]
    return [
        "**Distribution shift of the training split** (PSI: below 0.1 stable, 0.1-0.25 "
        "moderate, above 0.25 major; largest first)",
        "",
        *_table(header, cells, len(shift.columns), "columns"),
        *(["", *lines] if lines else []),
    ]


# Mermaid 10's xychart draws no legend (modelci.ci.mermaid): the captions name the lines.
PLOT_LEGEND = (
    "_Charts are Mermaid, drawn by GitHub from the numbers in this comment (nothing uploaded);"
    " they have no legend, so each caption names the lines in order._"
)
# a confusion matrix with more classes than this is left to the PNG (``--plots png``)
TABLE_CLASSES = 12


def _confusion_lines(plot: Plot) -> list[str]:
    """Both sides' confusion matrices as one table: rows actual, columns predicted."""
    labels = plot.labels
    if len(labels) > TABLE_CLASSES:
        return [f"_{len(labels)} classes: too many for a table (`--plots png` draws them)._"]
    sides = dict(plot.matrices)
    header = ["actual ↓ predicted →", *(escape(label, 30) for label in labels)]
    cells = []
    for i, label in enumerate(labels):
        row = [f"**{escape(label, 30)}**"]
        for j in range(len(labels)):
            cell = " → ".join(str(matrix[i][j]) for matrix in sides.values())
            row.append(f"**{cell}**" if i == j else cell)
        cells.append(row)
    what = f"Counts {' → '.join(sides)}" if len(sides) > 1 else f"{''.join(sides)} counts"
    note = f"_{what}; the diagonal (bold) counts the right predictions._"
    return [note, "", *_table(header, cells, len(cells), "")]


def _plot_lines(report: Report, limit: int) -> list[str]:
    if not report.plots:
        return ["No plots.", ""]
    lines = [PLOT_LEGEND, ""] if any(plot.chart for plot in report.plots) else []
    for plot in report.plots[: max(limit, 1)]:
        note = f" ({escape(plot.note, 80)})" if plot.note else ""
        lines.append(f"**{escape(plot.title, 60)}**{note}")
        lines.append("")
        if plot.chart:
            lines += [plot.chart, "", f"_{escape(plot.caption, 400)}_", ""]
        if plot.matrices:
            lines += [*_confusion_lines(plot), ""]
        if plot.file:
            lines += [f"![{escape(plot.title, 60)}]({plot.file})", ""]
        if not (plot.chart or plot.matrices or plot.file):
            lines += ["_A scatter plot: not drawn in the comment (`--plots png` draws it)._", ""]
    return lines


def compute_runs(text: str) -> dict[str, dict[str, Any]]:
    """The stages' entries of a COMPUTE_RUN file; anything not shaped like one is dropped."""
    try:
        loaded = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(loaded, dict):
        return {}
    keys = ("engine", "workers", "partitions", "seconds", "dashboard")
    return {
        str(stage): {key: entry.get(key) for key in keys}
        for stage, entry in list(loaded.items())[:10]
        if isinstance(entry, dict)
    }


def _compute_lines(report: Report) -> list[str]:
    """Where the PR's pipeline ran, when it ran on a cluster."""
    if not report.compute:
        return []
    rows = [
        [
            escape(stage, 40),
            escape(str(entry.get("engine")), 20),
            escape(str(entry.get("workers")), 10),
            escape(str(entry.get("partitions")), 10),
            escape(f"{entry.get('seconds')} s", 20),
            escape(str(entry.get("dashboard")), 200),
        ]
        for stage, entry in report.compute.items()
    ]
    header = ["stage", "engine", "workers", "partitions", "wall time", "dashboard"]
    return ["### Compute", "", *_table(header, rows, len(rows), "stages"), ""]


def _render(report: Report, limit: int) -> str:
    verdict = report.verdict
    icon = "🟢" if verdict.passed else "🔴"
    lines = [MARKER, f"## {icon} modelci report: {escape(verdict.summary(), 300)}", ""]
    if report.title:
        lines += [f"**PR:** {escape(report.title, TITLE_LIMIT)}", ""]
    lines += [
        f"**Base:** {escape(report.base.label, 80)} → **PR:** {escape(report.head.label, 80)}",
        "",
    ]
    sha = report.model.get("sha256")
    model_line = f"**Model evaluated:** {escape(report.model['path'], 80)}"
    model_line += f" sha256 `{sha}`" if isinstance(sha, str) and sha.isalnum() else " (not found)"
    changed = report.model.get("changed")
    if changed is not None:
        model_line += " (changed)" if changed else " (unchanged)"
    lines += [model_line, ""]
    if report.task_changes:
        lines += ["**⚠️ The task or target changed; metrics are not compared with the base:**", ""]
        lines += [f"- {escape(change, 200)}" for change in report.task_changes]
        lines.append("")
    failures = verdict.failures
    if failures:
        lines += ["**Gate failures:**", ""]
        lines += [f"- {escape(line, 300)}" for line in failures[: max(limit, 3)]]
        if len(failures) > max(limit, 3):
            lines.append(f"- _… {len(failures) - max(limit, 3)} more failures omitted._")
        lines.append("")
    lines += _compute_lines(report)
    lines += ["### Metrics", "", *_metric_lines(report, limit), ""]
    lines += ["### Slices", "", *_slice_lines(report, limit), ""]
    lines += ["### Params", "", *_param_lines(report, limit), ""]
    lines += ["### Data", "", *_data_lines(report, limit), ""]
    lines += ["### Plots", "", *_plot_lines(report, limit)]
    if report.warnings:
        lines += ["### Warnings", ""]
        lines += [f"- {escape(w, 300)}" for w in report.warnings[: max(limit, 1)]]
        if len(report.warnings) > max(limit, 1):
            lines.append(f"- _… {len(report.warnings) - max(limit, 1)} more warnings omitted._")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_markdown(report: Report, max_chars: int = DEFAULT_MAX_CHARS) -> tuple[str, bool]:
    """The Markdown, at most ``max_chars`` characters, and whether anything was cut."""
    max_chars = max(MIN_MAX_CHARS, min(max_chars, GITHUB_COMMENT_LIMIT))
    text = ""
    for limit in ROW_LIMITS:
        text = _render(report, limit)
        if len(text) <= max_chars:
            return text, _truncated(report, limit)
    note = "\n\n_… report truncated to fit the comment size limit; see report.json._\n"
    cut = text[: max_chars - len(note)]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return cut + note, True


def _truncated(report: Report, limit: int) -> bool:
    """Whether rendering with ``limit`` rows per table left anything out."""
    tables = [len(report.metrics), len(report.params), len(report.slices)]
    tables.append(len(report.shift.columns))
    tables += [len(v) for v in report.data.values()]
    return (
        any(size > limit for size in tables)
        or len(report.warnings) > max(limit, 1)
        or len(report.plots) > max(limit, 1)
        or len(report.verdict.failures) > max(limit, 3)
    )
