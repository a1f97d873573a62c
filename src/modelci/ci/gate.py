"""The quality gate: metrics against absolute bounds and against a baseline, as a pure function.

``evaluate_gate(rules, current, baseline)`` is shared by the pull-request gate (PR vs base
branch) and by the release (challenger vs champion). Rules, in order, for each gated metric:

- missing from ``current``: a failure when ``required`` (the default), otherwise skipped;
- NaN or infinite: a failure (a NaN never compares as "good enough");
- ``min``/``max``: a failure when the value is below ``min`` or above ``max``; equal passes;
- regression: with ``tolerance`` set and a finite baseline value, the regression is
  ``baseline - current`` (``higher_is_better``) or ``current - baseline`` (lower is better);
  a failure when it exceeds ``tolerance``; exactly ``tolerance`` passes (ties pass);
- no baseline for the metric (none at all, absent, or not finite): the metric is "new" and
  judged on its absolute bounds only, and the verdict says so in ``notes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from modelci.config import GateParams, MetricRule, format_validation_error, read_yaml
from modelci.errors import ConfigError

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

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("current", "baseline", "delta"):
            data[key] = json_number(data[key])
        data["failures"] = list(self.failures)
        data["notes"] = list(self.notes)
        return data


@dataclass(frozen=True)
class Verdict:
    """The gate's overall verdict: passed only when every metric passed and no error occurred."""

    metrics: tuple[MetricVerdict, ...]
    errors: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.errors and all(metric.passed for metric in self.metrics)

    @property
    def failures(self) -> list[str]:
        """Every reason the gate failed, one line each, naming the metric or the file."""
        lines = list(self.errors)
        for metric in self.metrics:
            lines.extend(f"{metric.name}: {reason}" for reason in metric.failures)
        return lines

    def metric(self, name: str) -> MetricVerdict | None:
        return next((metric for metric in self.metrics if metric.name == name), None)

    def summary(self) -> str:
        if self.passed:
            gated = sum(metric.status == "pass" for metric in self.metrics)
            return f"gate passed ({gated} metric{'s' if gated != 1 else ''} checked)"
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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def judge_metric(
    name: str, rule: MetricRule, current: Any, baseline: Mapping[str, Any] | None
) -> MetricVerdict:
    """Apply one rule; see the module docstring for the order and the tie/NaN/missing rules."""
    failures: list[str] = []
    notes: list[str] = []
    higher = rule.higher_is_better
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
    if delta is not None:
        regression = -delta if higher else delta
        if rule.tolerance is None:
            notes.append("no tolerance set: regression against the baseline not checked")
        elif regression > rule.tolerance + EPSILON:
            amount, tolerance = fmt_pair(regression, rule.tolerance)
            failures.append(
                f"regressed by {amount} against the baseline {fmt(base_value)} "
                f"({fmt(value)}), beyond the tolerance {tolerance}"
            )
        elif regression > EPSILON:
            notes.append(
                f"regressed by {fmt(regression)}, within the tolerance {fmt(rule.tolerance)}"
            )
    return verdict("fail" if failures else "pass", value, delta)


def evaluate_gate(
    rules: Mapping[str, MetricRule],
    current: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
) -> Verdict:
    """Judge ``current`` metrics against ``rules`` and (when given) ``baseline`` metrics.

    ``baseline=None`` means there is no baseline at all (every metric is "new"). Pure: no IO.
    """
    verdicts = tuple(
        judge_metric(name, rule, current.get(name), baseline) for name, rule in rules.items()
    )
    notes: list[str] = []
    if not rules:
        notes.append("no gate rules declared: nothing to check")
    ungated = sorted(set(current) - set(rules))
    if ungated:
        notes.append("not gated: " + ", ".join(ungated))
    return Verdict(verdicts, (), tuple(notes))


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


def judge(
    rules: Mapping[str, MetricRule],
    current: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    changes: list[str],
    allow_task_change: bool = False,
) -> Verdict:
    """``evaluate_gate``, unless the task or target changed (``changes``, from ``task_changes``):
    then the base's metrics measure another problem, so they are no baseline; the gate judges
    absolute bounds only and fails unless ``allow_task_change``."""
    if not changes:
        return evaluate_gate(rules, current, baseline)
    verdict = evaluate_gate(rules, current, None)
    if allow_task_change:
        notes = tuple(f"{c}: allowed, judged on absolute bounds only" for c in changes)
        return Verdict(verdict.metrics, verdict.errors, notes + verdict.notes)
    errors = tuple(
        f"{c}: the base's metrics are not comparable (pass --allow-task-change to accept it)"
        for c in changes
    )
    return Verdict(verdict.metrics, errors + verdict.errors, verdict.notes)


def failed_verdict(rules: Mapping[str, MetricRule], error: str) -> Verdict:
    """A failing verdict when the inputs themselves cannot be read (missing metrics file...)."""
    return Verdict((), (error,), (f"gated metrics not evaluated: {', '.join(rules) or 'none'}",))


def parse_gate_rules(raw: Any, source: str) -> dict[str, MetricRule]:
    """Rules from a mapping: a params file (its ``gate:`` section) or a gate file (``metrics:``)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping, got {type(raw).__name__}")
    prefix = ""
    section = raw
    if "gate" in raw:
        section, prefix = raw["gate"] or {}, "gate."
    elif "metrics" not in raw and raw:
        section = {}  # a params file without a gate section
    try:
        gate = GateParams.model_validate(section)
    except ValidationError as error:
        lines = [
            line.replace(f"{source}: ", f"{source}: {prefix}", 1)
            for line in format_validation_error(source, error)
        ]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ConfigError(lines[0] + more, details=lines) from None
    return dict(gate.metrics)


def load_gate_rules(path: Path) -> dict[str, MetricRule]:
    """Read gate rules from ``params.yaml`` (``gate:`` section) or a gate file (``metrics:``)."""
    return parse_gate_rules(read_yaml(path, "gate file"), str(path))


def verdict_lines(verdict: Verdict) -> list[str]:
    """One human line per metric, then the overall result."""
    lines = [f"ERROR {error}" for error in verdict.errors]
    for metric in verdict.metrics:
        arrow = "higher is better" if metric.higher_is_better else "lower is better"
        if metric.new:
            base = "new, no baseline"
        else:
            base = f"base {fmt(metric.baseline)}, delta {fmt_delta(metric.delta)}"
        reasons = "; ".join(metric.failures) or "; ".join(metric.notes) or "ok"
        lines.append(
            f"{metric.status.upper():7} {metric.name}: {fmt(metric.current)} ({base}; {arrow})"
            f" - {reasons}"
        )
    lines.extend(f"note: {note}" for note in verdict.notes)
    lines.append(verdict.summary())
    return lines
