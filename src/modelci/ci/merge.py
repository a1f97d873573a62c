"""Several models, one pull request: the merged comment and the combined gate.

The plan (``modelci affected``'s JSON) lists every project and whether the change affects it;
each affected project's model job leaves a report folder (``report.md``, ``verdict.json``, and
``stages.json`` from ``modelci pr repro``). This module reads them and writes

- one comment: a summary table of every model and one collapsible ``<details>`` section per
  model that ran, within the comment's budget. A section is kept whole or left out (a fenced
  chart is never cut); those left out are named in one line pointing to the job summary, which
  gets the full text (the same rendering with the job summary's own bound);
- one gate verdict over every model: failed when any affected model's gate failed or left no
  verdict; passed, and saying so, when no model is affected.

Everything read from a report folder was written by the PR's code: each string is escaped, and
each report's body goes into its section with its ``<details>``/``<summary>`` tags neutralised,
so no report can close another's section. The comment job's validator defuses the result again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelci.errors import ConfigError
from modelci.judge.gate import fmt, fmt_delta
from modelci.judge.markdown import escape

MARKER = "<!-- modelci-report -->"
# What the comment job's validator keeps (MAX_COMMENT_CHARS in .github/actions/comment), less
# what it appends: the footer line (run link, commit) and its note on dropped plot images.
COMMENT_LIMIT = 60_000
COMMENT_RESERVE = 600
# GitHub's bound on one step's job summary is 1 MiB.
SUMMARY_LIMIT = 1_000_000
REPORT_FILE = "report.md"
VERDICT_FILE = "verdict.json"
STAGES_FILE = "stages.json"
REPORT_JSON = "report.json"
NAMES_SHOWN = 30

_SECTION_TAG = re.compile(r"<(/?)(details|summary)\b", re.IGNORECASE)
# the characters after which the validator's ``defuse`` may insert a zero-width space
_DEFUSED = re.compile(r"\]|<|://|(?i:www)\.|#(?=\d)|@(?=[A-Za-z0-9])")


def comment_cost(text: str) -> int:
    """An upper bound on ``text``'s length once the comment validator has defused it (one
    zero-width space at most per ``]``, ``<``, ``://``, ``www.``, ``#1`` or ``@name``)."""
    return len(text) + len(_DEFUSED.findall(text))


@dataclass(frozen=True)
class PlannedProject:
    """One project of the plan, as ``modelci affected`` printed it."""

    path: str
    name: str
    affected: bool
    reason: str = ""
    registered_model: str = ""


@dataclass(frozen=True)
class ModelResult:
    """What one model job left in its report folder (any part may be missing)."""

    report: str | None = None
    verdict: Mapping[str, Any] | None = None
    stages: Sequence[Mapping[str, Any]] = ()

    @property
    def passed(self) -> bool | None:
        """The gate's verdict; None when the job left no readable verdict."""
        value = (self.verdict or {}).get("passed")
        return value if isinstance(value, bool) else None


@dataclass
class Merged:
    """The comment (within its budget) and the full text for the job summary."""

    comment: str
    summary: str
    omitted: list[str] = field(default_factory=list)


def load_plan(path: Path) -> list[PlannedProject]:
    """The projects of a plan file; a one-line error names the file and what is wrong."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: plan file not found (write it with modelci affected)") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ConfigError(f"{path}: not a readable JSON plan: {error}") from None
    projects = raw.get("projects") if isinstance(raw, Mapping) else None
    if not isinstance(projects, list):
        raise ConfigError(f"{path}: no 'projects' list (expected modelci affected's JSON)")
    planned = []
    for index, item in enumerate(projects):
        where = f"{path}: projects[{index}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: not an object")
        name, affected = item.get("name"), item.get("affected")
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ConfigError(f"{where}: 'name' must be a non-empty name without '/'")
        if not isinstance(affected, bool):
            raise ConfigError(f"{where}: 'affected' must be true or false")
        planned.append(
            PlannedProject(
                path=str(item.get("path", "")),
                name=name,
                affected=affected,
                reason=str(item.get("reason") or ""),
                registered_model=str(item.get("registered_model") or ""),
            )
        )
    names = [project.name for project in planned]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{path}: project name {duplicates[0]!r} appears twice")
    return planned


def matrix_outputs(path: Path) -> str:
    """The plan's GitHub Actions outputs: ``matrix`` (the affected projects' ``include`` list,
    read from the projects so it always agrees with them) and ``count``, one line each."""
    plan = load_plan(path)
    include = [{"path": p.path or ".", "name": p.name} for p in plan if p.affected]
    matrix = json.dumps({"include": include}, separators=(",", ":"))
    return f"matrix={matrix}\ncount={len(include)}\n"


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def read_result(folder: Path) -> ModelResult | None:
    """The report folder of one model job; None when the job left no folder at all."""
    if not folder.is_dir():
        return None
    try:
        report: str | None = (folder / REPORT_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        report = None
    verdict = _json(folder / VERDICT_FILE)
    stages = _json(folder / STAGES_FILE)
    stage_list = stages.get("stages") if isinstance(stages, Mapping) else None
    return ModelResult(
        report=report,
        verdict=verdict if isinstance(verdict, Mapping) else None,
        stages=[s for s in stage_list or [] if isinstance(s, Mapping)],
    )


def read_results(
    plan: Sequence[PlannedProject], reports: Path, prefix: str
) -> dict[str, ModelResult | None]:
    """Each affected project's result, from the folder ``reports/<prefix><name>``."""
    return {p.name: read_result(reports / f"{prefix}{p.name}") for p in plan if p.affected}


def single_report_json(plan: Sequence[PlannedProject], reports: Path, prefix: str) -> Path | None:
    """The ``report.json`` of a plan's only project (a repository with one model), which the
    merged artifact carries where ``modelci release reviewed`` reads it; None with several
    projects (release reads each one's from its model job's artifact: ``--project``)."""
    if len(plan) != 1 or not plan[0].affected:
        return None
    path = reports / f"{prefix}{plan[0].name}" / REPORT_JSON
    return path if path.is_file() and not path.is_symlink() else None


def _passed(projects: Sequence[PlannedProject], results: Mapping[str, ModelResult | None]) -> int:
    """How many of ``projects`` left a verdict that passed."""
    return sum(1 for p in projects if (results.get(p.name) or ModelResult()).passed is True)


# --- the summary table -------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def headline(verdict: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The metric the table shows: the first failing gated metric, else the first gated one."""
    metrics = [m for m in (verdict or {}).get("metrics") or [] if isinstance(m, Mapping)]
    failing = [m for m in metrics if m.get("status") == "fail"]
    candidates = failing or metrics
    return candidates[0] if candidates else None


def _interval_text(metric: Mapping[str, Any]) -> str:
    interval = metric.get("interval")
    if not isinstance(interval, Mapping):
        return "-"
    low, high, level = (_number(interval.get(key)) for key in ("low", "high", "level"))
    if low is None or high is None:
        return "-"
    shown = f"{fmt_delta(low)} to {fmt_delta(high)}"
    if level is not None:
        shown += f" ({level:.0%})"
    return shown + (", significant" if interval.get("significant") is True else "")


def saved_minutes(stages: Sequence[Mapping[str, Any]]) -> float:
    """Minutes saved by the stages restored from the run-cache (their recorded durations)."""
    seconds = sum(_number(s.get("saved_seconds")) or 0.0 for s in stages)
    return seconds / 60


def status_text(result: ModelResult) -> str:
    """ran / restored / unchanged, from the stages ``modelci pr repro`` recorded."""
    statuses = [str(stage.get("status")) for stage in result.stages]
    if not statuses or "ran" in statuses:
        return "ran"
    if "restored" in statuses:
        return f"restored from cache, {saved_minutes(result.stages):.1f} min saved"
    return "unchanged (outputs from the cache)"


def _gate_cell(result: ModelResult | None) -> str:
    if result is None:
        return "❌ no report"
    passed = result.passed
    if passed is None:
        return "❌ no verdict"
    return "🟢 pass" if passed else "🔴 fail"


def _row(project: PlannedProject, result: ModelResult | None) -> str:
    name = f"**{escape(project.name, 60)}**"
    reason = escape(project.reason or "-", 160)
    if not project.affected:
        cells = [name, "unchanged", reason, "not run", "-", "-", "-"]
    elif result is None:
        cells = [name, "⚠️ the job left no report", reason, _gate_cell(result), "-", "-", "-"]
    else:
        metric = headline(result.verdict)
        shown = ["-", "-", "-"]
        if metric is not None:
            value = fmt(_number(metric.get("current")))
            shown = [
                f"{escape(metric.get('name', '?'), 60)} {value}",
                fmt_delta(_number(metric.get("delta"))),
                _interval_text(metric),
            ]
        cells = [name, escape(status_text(result), 80), reason, _gate_cell(result), *shown]
    return "| " + " | ".join(cells) + " |"


_HEADER = [
    "| model | status | reason | gate | headline metric | delta | interval of delta |",
    "|---|---|---|---|---|---|---|",
]


def _order(
    plan: Sequence[PlannedProject], results: Mapping[str, ModelResult | None]
) -> list[PlannedProject]:
    """Failing (or missing) gates first, then the other models that ran, then the unchanged."""

    def rank(project: PlannedProject) -> int:
        if not project.affected:
            return 2
        result = results.get(project.name)
        return 1 if result is not None and result.passed is True else 0

    return sorted(plan, key=rank)


def _section(project: PlannedProject, result: ModelResult) -> str:
    body = (result.report or "").strip()
    if body.startswith(MARKER):
        body = body[len(MARKER) :].lstrip()
    # a report cannot open or close a section of the merged comment
    body = _SECTION_TAG.sub(lambda m: f"&lt;{m.group(1)}{m.group(2)}", body)
    stages = stage_lines(result.stages)
    summary = f"{escape(project.name, 60)}: {_gate_cell(result)}, {escape(status_text(result), 80)}"
    parts = ["<details>", f"<summary>{summary}</summary>", ""]
    if stages:
        parts += ["**Stages**", "", *stages, ""]
    return "\n".join([*parts, body, "", "</details>", ""])


def stage_lines(stages: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per stage: ran (with its time), restored (with the time saved) or unchanged."""
    lines = []
    for stage in stages:
        name = escape(stage.get("name", "?"), 80)
        status = stage.get("status")
        seconds = _number(stage.get("seconds"))
        saved = _number(stage.get("saved_seconds"))
        if status == "ran":
            took = f" ({seconds / 60:.1f} min)" if seconds is not None else ""
            lines.append(f"- `{name}`: ran{took}")
        elif status == "restored":
            minutes = "time saved unknown" if saved is None else f"{saved / 60:.1f} minutes saved"
            lines.append(f"- `{name}`: restored from cache, {minutes}")
        else:
            lines.append(f"- `{name}`: unchanged")
    return lines


def merge(
    plan: Sequence[PlannedProject],
    results: Mapping[str, ModelResult | None],
    *,
    limit: int = COMMENT_LIMIT - COMMENT_RESERVE,
    elsewhere: str = "this run's job summary",
) -> tuple[str, list[str]]:
    """The merged Markdown within ``limit`` (as ``comment_cost`` counts it) and the names of the
    models whose section (or table row) did not fit and is left to ``elsewhere``."""
    ran = [p for p in plan if p.affected]
    passed = _passed(ran, results)
    if not ran:
        heading = f"## 🟢 modelci: no model affected ({len(plan)} unchanged)"
    else:
        icon = "🟢" if passed == len(ran) else "🔴"
        heading = f"## {icon} modelci: {passed} of {len(ran)} affected models passed the gate"
        heading += f" ({len(plan) - len(ran)} unchanged)"
    head = [MARKER, heading, ""]
    # room kept for the closing line that names what did not fit
    closing_room = 200 + NAMES_SHOWN * 64
    budget = limit - closing_room
    used = comment_cost("\n".join([*head, *_HEADER])) + 2
    rows: list[str] = []
    left_out: list[str] = []
    for project in _order(plan, results):
        row = _row(project, results.get(project.name))
        if used + comment_cost(row) + 1 <= budget:
            rows.append(row)
            used += comment_cost(row) + 1
        else:
            left_out.append(project.name)
    sections = []
    for project in _order(ran, results):
        result = results.get(project.name)
        if result is None or result.report is None:
            continue
        section = _section(project, result)
        if used + comment_cost(section) + 1 <= budget:
            sections.append(section)
            used += comment_cost(section) + 1
        elif project.name not in left_out:
            left_out.append(project.name)
    text = [*head, *_HEADER, *rows, ""]
    if left_out:
        names = ", ".join(escape(name, 60) for name in left_out[:NAMES_SHOWN])
        more = len(left_out) - NAMES_SHOWN
        names += f" and {more} more" if more > 0 else ""
        text += [
            f"_Too long for this comment, in full in {elsewhere}: {names}._",
            "",
        ]
    text += sections
    return "\n".join(text).rstrip() + "\n", left_out


def merge_reports(
    plan: Sequence[PlannedProject],
    results: Mapping[str, ModelResult | None],
    limit: int = COMMENT_LIMIT - COMMENT_RESERVE,
) -> Merged:
    """The comment and the job summary's full text (bounded by GitHub's job summary size)."""
    comment, omitted = merge(plan, results, limit=limit)
    summary, _ = merge(plan, results, limit=SUMMARY_LIMIT, elsewhere="the report artifacts")
    return Merged(comment=comment, summary=summary, omitted=omitted)


# --- the combined gate -------------------------------------------------------------------------


def gate_lines(
    plan: Sequence[PlannedProject], results: Mapping[str, ModelResult | None]
) -> tuple[list[str], bool]:
    """One line per model and whether every affected model passed (True when none is)."""
    lines = []
    passed = True
    for project in plan:
        name = project.name
        if not project.affected:
            lines.append(f"{name}: not affected ({project.reason or 'no reason given'})")
            continue
        result = results.get(name)
        verdict = result.verdict if result is not None else None
        summary = str((verdict or {}).get("summary") or "")
        if result is None or result.passed is None:
            passed = False
            lines.append(f"{name}: FAILED: no gate verdict (its model job did not finish)")
        elif result.passed:
            lines.append(f"{name}: {summary or 'gate passed'}")
        else:
            passed = False
            lines.append(f"{name}: {summary or 'gate FAILED'}")
    affected = [p for p in plan if p.affected]
    if not affected:
        lines.append(f"no model affected ({len(plan)} projects unchanged): gate passed")
    else:
        failed = len(affected) - _passed(affected, results)
        lines.append(
            f"{len(affected) - failed} of {len(affected)} affected models passed the gate"
            + ("" if passed else f": {failed} FAILED")
        )
    return lines, passed
