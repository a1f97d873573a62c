"""The gate as a pure function: bounds, regression vs baseline, ties, NaN, missing, new metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from modelci.config import MetricRule
from modelci.errors import ConfigError
from modelci.judge.gate import (
    Verdict,
    evaluate_gate,
    failed_verdict,
    load_gate_rules,
    parse_gate_rules,
    verdict_lines,
)

pytestmark = pytest.mark.unit

RULES = {
    "accuracy": MetricRule(min=0.75, tolerance=0.02),
    "log_loss": MetricRule(max=0.55, tolerance=0.03, higher_is_better=False),
}
BASE = {"accuracy": 0.80, "log_loss": 0.45}


def test_improvement_passes_with_positive_delta() -> None:
    verdict = evaluate_gate(RULES, {"accuracy": 0.83, "log_loss": 0.40}, BASE)
    assert verdict.passed
    accuracy = verdict.metric("accuracy")
    assert accuracy is not None
    assert accuracy.status == "pass"
    assert accuracy.delta == pytest.approx(0.03)
    assert not accuracy.new
    assert verdict.summary() == "gate passed (2 metrics checked)"


def test_regression_within_tolerance_passes_and_says_so() -> None:
    verdict = evaluate_gate(RULES, {"accuracy": 0.79, "log_loss": 0.47}, BASE)
    assert verdict.passed
    accuracy = verdict.metric("accuracy")
    assert accuracy is not None
    assert any("within the tolerance" in note for note in accuracy.notes)


def test_regression_beyond_tolerance_fails_naming_metric_and_amount() -> None:
    verdict = evaluate_gate(RULES, {"accuracy": 0.76, "log_loss": 0.45}, BASE)
    assert not verdict.passed
    assert verdict.failures == [
        "accuracy: regressed by 0.0400 against the baseline 0.8000 (0.7600), "
        "beyond the tolerance 0.0200"
    ]
    assert verdict.summary().startswith("gate FAILED: accuracy: regressed by 0.0400")


def test_regression_exactly_at_tolerance_passes() -> None:
    # 0.80 - 0.78 is 0.020000000000000018 in floating point: still a tie, still a pass.
    verdict = evaluate_gate(RULES, {"accuracy": 0.78, "log_loss": 0.48}, BASE)
    assert verdict.passed, verdict.failures


def test_messages_show_enough_decimals_to_tell_values_apart() -> None:
    verdict = evaluate_gate(RULES, {"accuracy": 0.77998, "log_loss": 0.45}, BASE)
    assert verdict.failures == [
        "accuracy: regressed by 0.02002 against the baseline 0.8000 (0.7800), "
        "beyond the tolerance 0.02"
    ]
    below = evaluate_gate(RULES, {"accuracy": 0.74996, "log_loss": 0.45}, None)
    assert below.failures == ["accuracy: 0.74996 is below the minimum 0.75 by 4e-05"]


def test_lower_is_better_direction() -> None:
    worse = evaluate_gate(RULES, {"accuracy": 0.80, "log_loss": 0.50}, BASE)
    assert worse.failures == [
        "log_loss: regressed by 0.0500 against the baseline 0.4500 (0.5000), "
        "beyond the tolerance 0.0300"
    ]
    better = evaluate_gate(RULES, {"accuracy": 0.80, "log_loss": 0.30}, BASE)
    assert better.passed


def test_absolute_bounds_with_ties_passing() -> None:
    at_bounds = evaluate_gate(RULES, {"accuracy": 0.75, "log_loss": 0.55}, None)
    assert at_bounds.passed
    outside = evaluate_gate(RULES, {"accuracy": 0.70, "log_loss": 0.60}, None)
    assert outside.failures == [
        "accuracy: 0.7000 is below the minimum 0.7500 by 0.0500",
        "log_loss: 0.6000 is above the maximum 0.5500 by 0.0500",
    ]


def test_no_baseline_means_new_and_bounds_only_never_silent() -> None:
    verdict = evaluate_gate(RULES, {"accuracy": 0.76, "log_loss": 0.5}, None)
    assert verdict.passed
    for metric in verdict.metrics:
        assert metric.new
        assert metric.delta is None
        assert "new: no baseline, judged on absolute bounds only" in metric.notes


def test_metric_absent_from_baseline_is_new_but_still_bounded() -> None:
    rules = {**RULES, "f1": MetricRule(min=0.6, tolerance=0.01)}
    verdict = evaluate_gate(rules, {"accuracy": 0.8, "log_loss": 0.45, "f1": 0.5}, BASE)
    f1 = verdict.metric("f1")
    assert f1 is not None
    assert f1.new
    assert "new: no baseline value, judged on absolute bounds only" in f1.notes
    assert f1.failures == ("0.5000 is below the minimum 0.6000 by 0.1000",)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_current_value_fails(value: float) -> None:
    verdict = evaluate_gate(RULES, {"accuracy": value, "log_loss": 0.4}, BASE)
    assert not verdict.passed
    assert verdict.failures[0].startswith("accuracy: value is ")
    json.dumps(verdict.to_dict(), allow_nan=False)  # strict JSON even with NaN inside


def test_nan_baseline_is_no_usable_baseline() -> None:
    verdict = evaluate_gate(RULES, {"accuracy": 0.5, "log_loss": 0.4}, {"accuracy": math.nan})
    accuracy = verdict.metric("accuracy")
    assert accuracy is not None
    assert accuracy.new
    assert any("baseline value is NaN" in note for note in accuracy.notes)
    assert accuracy.failures == ("0.5000 is below the minimum 0.7500 by 0.2500",)


def test_missing_required_metric_fails_and_optional_is_skipped() -> None:
    rules = {**RULES, "recall": MetricRule(min=0.1, required=False)}
    verdict = evaluate_gate(rules, {"log_loss": 0.4}, BASE)
    assert verdict.failures == ["accuracy: required metric is missing from the metrics file"]
    recall = verdict.metric("recall")
    assert recall is not None
    assert recall.status == "skipped"
    assert recall.passed


def test_non_numeric_value_fails() -> None:
    verdict = evaluate_gate(RULES, {"accuracy": "0.9", "log_loss": True}, BASE)
    assert verdict.failures == [
        "accuracy: value is not a number: '0.9'",
        "log_loss: value is not a number: 'True'",
    ]


def test_no_tolerance_skips_regression_rule_with_note() -> None:
    verdict = evaluate_gate({"accuracy": MetricRule(min=0.1)}, {"accuracy": 0.2}, BASE)
    assert verdict.passed
    metric = verdict.metric("accuracy")
    assert metric is not None
    assert "no tolerance set: regression against the baseline not checked" in metric.notes


def test_no_rules_passes_with_note_and_ungated_metrics_are_listed() -> None:
    verdict = evaluate_gate({}, {"b": 1.0, "a": 2.0}, None)
    assert verdict.passed
    assert verdict.notes == ("no gate rules declared: nothing to check", "not gated: a, b")


def test_failed_verdict_for_unreadable_inputs() -> None:
    verdict = failed_verdict(RULES, "metrics.json: metrics file not found")
    assert not verdict.passed
    assert verdict.summary() == "gate FAILED: metrics.json: metrics file not found"
    assert verdict.to_dict()["status"] == "fail"


def test_verdict_lines_one_per_metric_then_summary() -> None:
    verdict = evaluate_gate(RULES, {"accuracy": 0.70, "log_loss": 0.45, "x": 1.0}, BASE)
    lines = verdict_lines(verdict)
    assert lines[0].startswith("FAIL    accuracy: 0.7000 (base 0.8000, delta -0.1000;")
    assert lines[1].startswith("PASS    log_loss: 0.4500")
    assert lines[-2] == "note: not gated: x"
    assert lines[-1].startswith("gate FAILED: accuracy: 0.7000 is below the minimum")
    assert "(and 1 more)" in lines[-1]


def test_verdict_is_typed_and_serialisable() -> None:
    verdict = evaluate_gate(RULES, {"accuracy": 0.8, "log_loss": 0.45}, BASE)
    assert isinstance(verdict, Verdict)
    payload = verdict.to_dict()
    assert payload["passed"] is True
    assert payload["metrics"][0]["rule"]["tolerance"] == 0.02
    json.dumps(payload, allow_nan=False)


def test_gate_rules_from_params_section_or_gate_file(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train: {seed: 1}\ngate:\n  metrics:\n    accuracy: {min: 0.7}\n")
    assert load_gate_rules(params) == {"accuracy": MetricRule(min=0.7)}
    gate_file = tmp_path / "gate.yaml"
    gate_file.write_text("metrics:\n  rmse: {max: 3, higher_is_better: false}\n")
    assert load_gate_rules(gate_file)["rmse"].higher_is_better is False
    assert parse_gate_rules({"train": {}}, "params.yaml") == {}


def test_gate_rule_errors_name_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^missing\.yaml: gate file not found$"):
        load_gate_rules(Path("missing.yaml"))
    bad = tmp_path / "params.yaml"
    bad.write_text("gate:\n  metrics:\n    accuracy: {min: 0.9, max: 0.1}\n")
    with pytest.raises(ConfigError, match=r"params\.yaml: gate\.metrics\.accuracy: min \(0\.9\)"):
        load_gate_rules(bad)
    bad.write_text("gate:\n  metrics:\n    accuracy: {minimum: 0.9}\n")
    with pytest.raises(ConfigError, match=r"gate\.metrics\.accuracy\.minimum: unknown key"):
        load_gate_rules(bad)
    bad.write_text("gate: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_gate_rules(bad)
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_gate_rules([1, 2], "gate.yaml")


def test_a_changed_task_or_target_is_not_compared_and_fails_unless_allowed() -> None:
    from modelci.judge.gate import judge, task_changes

    base = {"data": {"task": "binary", "target": "survived"}}
    head = {"data": {"task": "multiclass", "target": "class"}}
    changes = task_changes(base, head)
    assert changes == [
        "data.task changed from 'binary' to 'multiclass'",
        "data.target changed from 'survived' to 'class'",
    ]
    rules = {"accuracy": MetricRule(min=0.5, tolerance=0.01)}
    failed = judge(rules, {"accuracy": 0.6}, {"accuracy": 0.9}, changes)
    assert not failed.passed
    assert failed.failures[0].startswith("data.task changed from 'binary' to 'multiclass': ")
    assert failed.metrics[0].new  # the base's 0.9 is no baseline for another task
    allowed = judge(rules, {"accuracy": 0.6}, {"accuracy": 0.9}, changes, allow_task_change=True)
    assert allowed.passed
    assert any("allowed" in note for note in allowed.notes)
    assert task_changes(base, {"data": {"task": "binary"}}) == []
    assert task_changes(None, head) == []
