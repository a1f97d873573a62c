"""The quality gate: metrics against absolute bounds and against a baseline, as a pure function.

``evaluate_gate(rules, current, baseline)`` is shared by the pull-request gate (PR vs base
branch) and by the release (challenger vs champion). Rules, in order, for each gated metric:

- missing from ``current``: a failure when ``required`` (the default), otherwise skipped;
- NaN or infinite: a failure (a NaN never compares as "good enough");
- ``min``/``max``: a failure when the value is below ``min`` or above ``max``; equal passes;
- regression: with ``tolerance`` set and a finite baseline value, the regression is
  ``baseline - current`` (``higher_is_better``) or ``current - baseline`` (lower is better);
  a failure when it exceeds ``tolerance``; exactly ``tolerance`` passes (ties pass). That is
  ``mode: tolerance`` (the default). With the delta's interval (``intervals``, from
  ``modelci.judge.stats``), ``mode: significance`` fails only when the whole interval lies on the
  worse side of 0, and ``mode: non_inferiority`` fails when the interval's worse end reaches
  ``-margin``; without an interval both fall back to the point value (``tolerance``, or
  ``margin``), and the notes say so;
- slice rules (``slice_rules`` over ``slices``): ``min`` per slice value and ``max_gap``
  between the best and worst value (``judge_slices``);
- no baseline for the metric (none at all, absent, or not finite): the metric is "new" and
  judged on its absolute bounds only, and the verdict says so in ``notes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from modelci.config import (
    GateParams,
    MetricRule,
    SliceRule,
    read_yaml,
    validated,
)
from modelci.errors import ConfigError
from modelci.judge.stats import DeltaInterval

# Float noise (e.g. 0.80 - 0.78 = 0.020000000000000018) must not turn a tie into a failure.
EPSILON = 1e-9

Status = Literal["pass", "fail", "skipped"]


@dataclass(frozen=True)
class MetricVerdict:
    """The gate's judgement of one metric."""

    name: str
    status: Status
    current: float | None
    baseline: float | None
    delta: float | None
    higher_is_better: bool
    new: bool
    rule: dict[str, Any]
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    interval: DeltaInterval | None = None

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    @property
    def regression(self) -> float:
        """How much worse the PR is than the base (0 when better, unchanged or new)."""
        if self.delta is None:
            return 0.0
        return max(0.0, -self.delta if self.higher_is_better else self.delta)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("current", "baseline", "delta"):
            data[key] = json_number(data[key])
        data["failures"] = list(self.failures)
        data["notes"] = list(self.notes)
        data["interval"] = self.interval.to_dict() if self.interval is not None else None
        return data


@dataclass(frozen=True)
class SliceVerdict:
    """One slice rule's judgement: every failing slice value, or why it could not be judged."""

    rule: SliceRule
    status: Status
    values: dict[str, float | None]
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule.model_dump(),
            "status": self.status,
            "values": {key: json_number(value) for key, value in self.values.items()},
            "failures": list(self.failures),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class Verdict:
    """The gate's overall verdict: passed only when every metric passed and no error occurred."""

    metrics: tuple[MetricVerdict, ...]
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    slices: tuple[SliceVerdict, ...] = ()

    @property
    def passed(self) -> bool:
        return (
            not self.errors
            and all(metric.passed for metric in self.metrics)
            and all(rule.status != "fail" for rule in self.slices)
        )

    @property
    def failures(self) -> list[str]:
        """Every reason the gate failed, one line each, naming the metric or the file."""
        lines = list(self.errors)
        for metric in self.metrics:
            lines.extend(f"{metric.name}: {reason}" for reason in metric.failures)
        for rule in self.slices:
            lines.extend(rule.failures)
        return lines

    def metric(self, name: str) -> MetricVerdict | None:
        return next((metric for metric in self.metrics if metric.name == name), None)

    def summary(self) -> str:
        """One line: the decision and its reason (the worst regression, with its interval)."""
        if self.passed:
            gated = sum(metric.status == "pass" for metric in self.metrics)
            line = f"gate passed ({gated} metric{'s' if gated != 1 else ''} checked)"
            worst = max(self.metrics, key=lambda metric: metric.regression, default=None)
            if worst is not None and worst.regression > EPSILON and worst.interval is not None:
                line += f": {worst.name} {fmt_delta(worst.delta)} " + (
                    f"is significant but allowed ({ci_text(worst.interval)})"
                    if worst.interval.significant
                    else f"is within noise ({ci_text(worst.interval)})"
                )
            return line
        failures = self.failures
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        return f"gate FAILED: {failures[0]}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "status": "pass" if self.passed else "fail",
            "summary": self.summary(),
            "failures": self.failures,
            "errors": list(self.errors),
            "notes": list(self.notes),
            "metrics": [metric.to_dict() for metric in self.metrics],
            "slices": [rule.to_dict() for rule in self.slices],
        }


def json_number(value: float | None) -> float | str | None:
    """Finite floats as numbers; NaN and infinities as strings (strict JSON has no NaN)."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def fmt(value: float | None) -> str:
    """A metric value for humans: 4 significant decimals, NaN spelled out."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if 0 < abs(value) < 5e-5:
        return f"{value:.2g}"
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.4g}"


def fmt_pair(first: float, second: float) -> tuple[str, str]:
    """Two numbers a message compares: more decimals when 4 would make them look equal."""
    a, b = fmt(first), fmt(second)
    if a == b and first != second:
        return f"{first:.8g}", f"{second:.8g}"
    return a, b


def fmt_delta(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return fmt(value)
    return f"{value:+.4f}" if abs(value) < 1e6 else f"{value:+.4g}"


def ci_text(interval: DeltaInterval, sign: float = 1.0) -> str:
    """``95% CI -0.013 to 0.005`` of the delta (times ``sign``: -1 gives the interval of a fall)."""
    ends = sorted((sign * interval.low, sign * interval.high))
    return f"{interval.level:.0%} CI {fmt(ends[0])} to {fmt(ends[1])}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _judge_tolerance(
    tolerance: float | None,
    regression: float,
    base_value: float,
    value: float,
    failures: list[str],
    notes: list[str],
) -> None:
    if tolerance is None:
        notes.append("no tolerance set: regression against the baseline not checked")
    elif regression > tolerance + EPSILON:
        amount, bound = fmt_pair(regression, tolerance)
        failures.append(
            f"regressed by {amount} against the baseline {fmt(base_value)} "
            f"({fmt(value)}), beyond the tolerance {bound}"
        )
    elif regression > EPSILON:
        notes.append(f"regressed by {fmt(regression)}, within the tolerance {fmt(tolerance)}")


def _judge_change(
    rule: MetricRule,
    delta: float,
    base_value: float,
    value: float,
    interval: DeltaInterval | None,
    failures: list[str],
    notes: list[str],
) -> None:
    """The regression rule of ``rule.mode`` (module docstring); intervals are of ``delta``."""
    regression = -delta if rule.higher_is_better else delta
    sign = -1.0 if rule.higher_is_better else 1.0  # a delta interval times sign: a regression's
    worsened = "fell" if rule.higher_is_better else "rose"
    if rule.mode == "tolerance" or interval is None:
        if rule.mode != "tolerance":
            fallback = rule.tolerance if rule.mode == "significance" else rule.margin
            notes.append(
                f"no interval for mode {rule.mode}: judged on the point estimate"
                + (f" with the tolerance {fmt(fallback)}" if fallback is not None else "")
            )
        else:
            fallback = rule.tolerance
        before = len(failures)
        _judge_tolerance(fallback, regression, base_value, value, failures, notes)
        if interval is not None and len(failures) > before:
            verdict = "significant" if interval.significant else "within noise"
            failures[-1] += f" ({ci_text(interval)} of the change, {verdict})"
        return
    best, worst = sorted((sign * interval.low, sign * interval.high))
    shown = ci_text(interval, sign)
    if rule.mode == "significance":
        if best > 0:
            failures.append(f"{worsened} {fmt(regression)} ({shown}), significant")
        elif regression > EPSILON:
            notes.append(f"{worsened} {fmt(regression)}, within noise ({shown})")
        return
    assert rule.margin is not None  # noqa: S101 - the config requires it for this mode
    if worst > rule.margin - EPSILON:
        failures.append(
            f"{worsened} {fmt(regression)} ({shown}): a loss of {fmt(worst)} is not ruled out, "
            f"beyond the non-inferiority margin {fmt(rule.margin)}"
        )
    else:
        notes.append(f"non-inferior: the loss is below {fmt(rule.margin)} ({shown})")


def judge_metric(
    name: str,
    rule: MetricRule,
    current: Any,
    baseline: Mapping[str, Any] | None,
    interval: DeltaInterval | None = None,
) -> MetricVerdict:
    """Apply one rule; see the module docstring for the order and the tie/NaN/missing rules."""
    failures: list[str] = []
    notes: list[str] = []
    base_value = _number(baseline.get(name)) if baseline is not None else None
    has_base = base_value is not None and math.isfinite(base_value)
    if baseline is None:
        notes.append("new: no baseline, judged on absolute bounds only")
    elif name not in baseline:
        notes.append("new: no baseline value, judged on absolute bounds only")
    elif not has_base:
        notes.append(
            f"baseline value is {fmt(base_value) if base_value is not None else 'not a number'}: "
            "no usable baseline, judged on absolute bounds only"
        )

    def verdict(status: Status, value: float | None, delta: float | None = None) -> MetricVerdict:
        return MetricVerdict(
            name=name,
            status=status,
            current=value,
            baseline=base_value,
            delta=delta,
            higher_is_better=rule.higher_is_better,
            new=not has_base,
            rule=rule.model_dump(),
            failures=tuple(failures),
            notes=tuple(notes),
            interval=interval if has_base else None,
        )

    value = _number(current)
    if current is None:
        if rule.required:
            failures.append("required metric is missing from the metrics file")
            return verdict("fail", None)
        notes.append("not reported and not required: skipped")
        return verdict("skipped", None)
    if value is None:
        failures.append(f"value is not a number: {str(current)[:60]!r}")
        return verdict("fail", None)
    if not math.isfinite(value):
        failures.append(f"value is {fmt(value)}")
        return verdict("fail", value)

    if rule.min is not None and value < rule.min - EPSILON:
        shown, bound = fmt_pair(value, rule.min)
        failures.append(f"{shown} is below the minimum {bound} by {fmt(rule.min - value)}")
    if rule.max is not None and value > rule.max + EPSILON:
        shown, bound = fmt_pair(value, rule.max)
        failures.append(f"{shown} is above the maximum {bound} by {fmt(value - rule.max)}")
    delta = value - base_value if has_base and base_value is not None else None
    if delta is not None and base_value is not None:
        _judge_change(rule, delta, base_value, value, interval, failures, notes)
    return verdict("fail" if failures else "pass", value, delta)


def judge_slices(rule: SliceRule, slices: Mapping[str, Any] | None) -> SliceVerdict:
    """One slice rule over ``slices`` (``reports/slices.json``: column -> value -> metrics).

    Slice values too small to have metrics (below ``evaluate.min_slice_rows``) are named in the
    notes and not judged; a rule with no slice value to judge fails.
    """
    where = f"slice rule {rule.metric} over {rule.column}"
    failures: list[str] = []
    notes: list[str] = []
    column = (slices or {}).get(rule.column)
    if not isinstance(column, Mapping):
        failures.append(f"{where}: no slices of {rule.column!r} in the slices file")
        return SliceVerdict(rule, "fail", {}, tuple(failures))
    values: dict[str, float | None] = {}
    for name, entry in column.items():
        value = _number(entry.get(rule.metric)) if isinstance(entry, Mapping) else None
        values[str(name)] = value
    judged = {name: v for name, v in values.items() if v is not None and math.isfinite(v)}
    small = sorted(name for name, v in values.items() if v is None)
    if small:
        notes.append(f"too small to judge (no {rule.metric}): {', '.join(small)}")
    if not judged:
        failures.append(f"{where}: no slice value has {rule.metric!r}")
    if rule.min is not None:
        for name, value in sorted(judged.items(), key=lambda item: item[1]):
            if value < rule.min - EPSILON:
                failures.append(
                    f"{where}: {rule.column}={name} has {fmt(value)}, "
                    f"below the minimum {fmt(rule.min)}"
                )
    if rule.max_gap is not None and len(judged) >= 2:
        low = min(judged, key=lambda n: judged[n])
        high = max(judged, key=lambda n: judged[n])
        gap = judged[high] - judged[low]
        if gap > rule.max_gap + EPSILON:
            failures.append(
                f"{where}: gap {fmt(gap)} between {rule.column}={high} ({fmt(judged[high])}) and "
                f"{rule.column}={low} ({fmt(judged[low])}) is above max_gap {fmt(rule.max_gap)}"
            )
    return SliceVerdict(rule, "fail" if failures else "pass", values, tuple(failures), tuple(notes))


def evaluate_gate(
    rules: Mapping[str, MetricRule],
    current: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    *,
    intervals: Mapping[str, DeltaInterval] | None = None,
    slice_rules: Sequence[SliceRule] = (),
    slices: Mapping[str, Any] | None = None,
) -> Verdict:
    """Judge ``current`` metrics against ``rules`` and (when given) ``baseline`` metrics, with
    the ``intervals`` of their deltas where known, and the slice rules over ``slices``.

    ``baseline=None`` means there is no baseline at all (every metric is "new"). Pure: no IO.
    """
    intervals = intervals or {}
    verdicts = tuple(
        judge_metric(name, rule, current.get(name), baseline, intervals.get(name))
        for name, rule in rules.items()
    )
    notes: list[str] = []
    if not rules:
        notes.append("no gate rules declared: nothing to check")
    ungated = sorted(set(current) - set(rules))
    if ungated:
        notes.append("not gated: " + ", ".join(ungated))
    judged = tuple(judge_slices(rule, slices) for rule in slice_rules)
    return Verdict(verdicts, (), tuple(notes), judged)


def task_changes(base_params: Any, head_params: Any) -> list[str]:
    """``data.task`` and ``data.target`` that differ between two params mappings (a side that does
    not declare them changes nothing)."""

    def data(params: Any) -> Mapping[str, Any]:
        section = params.get("data") if isinstance(params, Mapping) else None
        return section if isinstance(section, Mapping) else {}

    lines = []
    for key in ("task", "target"):
        old, new = data(base_params).get(key), data(head_params).get(key)
        if old is not None and new is not None and old != new:
            lines.append(f"data.{key} changed from {str(old)[:60]!r} to {str(new)[:60]!r}")
    return lines


def as_gate(rules: GateParams | Mapping[str, MetricRule]) -> GateParams:
    """A gate section from metric rules alone (no slice rules, default bootstrap)."""
    return rules if isinstance(rules, GateParams) else GateParams(metrics=dict(rules))


def judge(
    gate: GateParams | Mapping[str, MetricRule],
    current: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    changes: list[str],
    allow_task_change: bool = False,
    *,
    intervals: Mapping[str, DeltaInterval] | None = None,
    slices: Mapping[str, Any] | None = None,
) -> Verdict:
    """``evaluate_gate``, unless the task or target changed (``changes``, from ``task_changes``):
    then the base's metrics measure another problem, so they are no baseline; the gate judges
    absolute bounds only and fails unless ``allow_task_change``."""
    gate = as_gate(gate)
    rules, slice_rules = gate.metrics, gate.slices
    if not changes:
        return evaluate_gate(
            rules, current, baseline, intervals=intervals, slice_rules=slice_rules, slices=slices
        )
    verdict = evaluate_gate(rules, current, None, slice_rules=slice_rules, slices=slices)
    if allow_task_change:
        notes = tuple(f"{c}: allowed, judged on absolute bounds only" for c in changes)
        return Verdict(verdict.metrics, verdict.errors, notes + verdict.notes, verdict.slices)
    errors = tuple(
        f"{c}: the base's metrics are not comparable (pass --allow-task-change to accept it)"
        for c in changes
    )
    return Verdict(verdict.metrics, errors + verdict.errors, verdict.notes, verdict.slices)


def failed_verdict(rules: Mapping[str, MetricRule], error: str) -> Verdict:
    """A failing verdict when the inputs themselves cannot be read (missing metrics file...)."""
    return Verdict((), (error,), (f"gated metrics not evaluated: {', '.join(rules) or 'none'}",))


def parse_gate_rules(raw: Any, source: str) -> dict[str, MetricRule]:
    """Metric rules from a mapping: a params file (its ``gate:`` section) or a gate file."""
    return dict(parse_gate(raw, source).metrics)


def parse_gate(raw: Any, source: str) -> GateParams:
    """The gate section from a mapping: a params file (``gate:``) or a gate file (``metrics:``)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(raw).__name__}")
    key = ""
    section = raw
    if "gate" in raw:
        section, key = raw["gate"] or {}, "gate"
    elif raw and not {"metrics", "slices", "bootstrap"} & set(raw):
        section = {}  # a params file without a gate section
    return validated(GateParams, section, source, key)


def load_gate_rules(path: Path) -> dict[str, MetricRule]:
    """Read gate rules from ``params.yaml`` (``gate:`` section) or a gate file (``metrics:``)."""
    return dict(load_gate(path).metrics)


def load_gate(path: Path) -> GateParams:
    """The whole gate section (metric rules, slice rules, bootstrap) of a params or gate file."""
    return parse_gate(read_yaml(path, "gate file"), str(path))


def verdict_lines(verdict: Verdict) -> list[str]:
    """One human line per metric, then the overall result."""
    lines = [f"ERROR {error}" for error in verdict.errors]
    for metric in verdict.metrics:
        arrow = "higher is better" if metric.higher_is_better else "lower is better"
        if metric.new:
            base = "new, no baseline"
        else:
            base = f"base {fmt(metric.baseline)}, delta {fmt_delta(metric.delta)}"
            if metric.interval is not None:
                base += f", {ci_text(metric.interval)}"
        reasons = "; ".join(metric.failures) or "; ".join(metric.notes) or "ok"
        lines.append(
            f"{metric.status.upper():7} {metric.name}: {fmt(metric.current)} ({base}; {arrow})"
            f" - {reasons}"
        )
    for rule in verdict.slices:
        reasons = "; ".join(rule.failures + rule.notes) or "ok"
        lines.append(
            f"{rule.status.upper():7} slices {rule.rule.metric} over {rule.rule.column} - {reasons}"
        )
    lines.extend(f"note: {note}" for note in verdict.notes)
    lines.append(verdict.summary())
    return lines
