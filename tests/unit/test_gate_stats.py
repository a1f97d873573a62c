"""The gate's statistical modes (significance, non-inferiority) and slice rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelci.config import MetricRule, SliceRule
from modelci.errors import ConfigError
from modelci.judge.gate import evaluate_gate, judge_slices, load_gate, parse_gate
from modelci.judge.stats import DeltaInterval, Scored, compare

pytestmark = pytest.mark.unit

BASE = {"accuracy": 0.80, "log_loss": 0.45}


def _interval(delta: float, low: float, high: float, metric: str = "accuracy") -> DeltaInterval:
    return DeltaInterval(
        metric=metric,
        base=BASE[metric],
        head=BASE[metric] + delta,
        delta=delta,
        low=low,
        high=high,
        level=0.95,
        method="paired bootstrap",
        rows=(442, 442),
        resamples=2000,
        significant=low > 0 or high < 0,
    )


def _gate(rule: MetricRule, delta: float, low: float, high: float, metric: str = "accuracy"):
    current = {metric: BASE[metric] + delta}
    return evaluate_gate(
        {metric: rule}, current, BASE, intervals={metric: _interval(delta, low, high, metric)}
    )


def test_tolerance_mode_fails_a_drop_within_noise_and_says_it_is_noise() -> None:
    """Today's rule: accuracy -0.004 beyond tolerance 0.002 fails; the message adds the CI."""
    verdict = _gate(MetricRule(tolerance=0.002), -0.004, -0.013, 0.005)
    assert not verdict.passed
    assert "(95% CI -0.0130 to 0.0050 of the change, within noise)" in verdict.failures[0]


def test_significance_mode_passes_noise_with_the_interval_in_the_headline() -> None:
    verdict = _gate(MetricRule(mode="significance"), -0.004, -0.013, 0.005)
    assert verdict.passed
    assert verdict.summary() == (
        "gate passed (1 metric checked): accuracy -0.0040 is within noise "
        "(95% CI -0.0130 to 0.0050)"
    )


def test_significance_mode_fails_a_significant_drop_naming_the_fall() -> None:
    verdict = _gate(MetricRule(mode="significance"), -0.041, -0.066, -0.018)
    assert verdict.summary() == (
        "gate FAILED: accuracy: fell 0.0410 (95% CI 0.0180 to 0.0660), significant"
    )


def test_significance_mode_for_lower_is_better_says_rose() -> None:
    rule = MetricRule(mode="significance", higher_is_better=False)
    verdict = _gate(rule, 0.03, 0.01, 0.05, metric="log_loss")
    assert verdict.failures == ["log_loss: rose 0.0300 (95% CI 0.0100 to 0.0500), significant"]
    improved = _gate(rule, -0.03, -0.05, -0.01, metric="log_loss")
    assert improved.passed


def test_non_inferiority_needs_the_whole_interval_above_minus_margin() -> None:
    rule = MetricRule(mode="non_inferiority", margin=0.02)
    assert _gate(rule, -0.004, -0.013, 0.005).passed
    wide = _gate(rule, -0.004, -0.031, 0.02)
    assert not wide.passed
    assert "a loss of 0.0310 is not ruled out" in wide.failures[0]
    # even an improvement fails when the interval is too wide to rule out the margin
    assert not _gate(rule, 0.001, -0.025, 0.027).passed


def test_statistical_modes_without_an_interval_fall_back_to_the_point() -> None:
    significance = MetricRule(mode="significance", tolerance=0.01)
    verdict = evaluate_gate({"accuracy": significance}, {"accuracy": 0.78}, BASE)
    metric = verdict.metric("accuracy")
    assert metric is not None
    assert not verdict.passed
    assert metric.notes[0] == (
        "no interval for mode significance: judged on the point estimate with the tolerance 0.0100"
    )
    margin = MetricRule(mode="non_inferiority", margin=0.03)
    assert evaluate_gate({"accuracy": margin}, {"accuracy": 0.78}, BASE).passed
    bare = evaluate_gate({"accuracy": MetricRule(mode="significance")}, {"accuracy": 0.7}, BASE)
    assert bare.passed
    assert any("not checked" in n for n in bare.metrics[0].notes)


def test_a_model_against_itself_passes_every_mode() -> None:
    rng = np.random.default_rng(0)
    actual = rng.integers(0, 2, 442)
    side = Scored(actual, rng.integers(0, 2, 442), None, ("0", "1"))
    interval = compare("accuracy", side, side, paired=True)
    value = {"accuracy": interval.head}
    for rule in (
        MetricRule(tolerance=0.0),
        MetricRule(mode="significance"),
        MetricRule(mode="non_inferiority", margin=0.1),
    ):
        verdict = evaluate_gate({"accuracy": rule}, value, value, intervals={"accuracy": interval})
        assert verdict.passed, rule


def test_a_constructed_regression_fails_the_significance_rule() -> None:
    actual = np.random.default_rng(1).integers(0, 2, 600)
    worse = actual.copy()
    worse[:60] = 1 - worse[:60]
    base = Scored(actual, actual.copy(), None, ("0", "1"))
    head = Scored(actual, worse, None, ("0", "1"))
    interval = compare("accuracy", base, head, paired=True, level=0.99)
    verdict = evaluate_gate(
        {"accuracy": MetricRule(mode="significance", level=0.99)},
        {"accuracy": 0.9},
        {"accuracy": 1.0},
        intervals={"accuracy": interval},
    )
    assert verdict.summary().startswith("gate FAILED: accuracy: fell 0.1000 (99% CI")


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"mode": "non_inferiority"}, "mode non_inferiority needs margin"),
        ({"margin": 0.1}, "margin applies only to mode non_inferiority"),
        ({"level": 0.9}, "level applies only to modes significance and non_inferiority"),
        ({"mode": "significance", "level": 1.2}, "level"),
        ({"mode": "bayes"}, "mode"),
    ],
)
def test_invalid_combinations_name_file_and_key(rule: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_gate({"gate": {"metrics": {"accuracy": rule}}}, "params.yaml")
    assert str(error.value).startswith("params.yaml: gate.metrics.accuracy")
    assert message in str(error.value)


def test_slice_rule_errors_name_the_key(tmp_path: Path) -> None:
    gate_file = tmp_path / "gate.yaml"
    gate_file.write_text("slices:\n  - {column: gender, metric: accuracy}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"gate.yaml: slices.0: .*needs min or max_gap"):
        load_gate(gate_file)
    gate_file.write_text(
        "slices: [{column: gender, metric: accuracy, min: 0.6}]\nbootstrap: {resamples: 500}\n",
        encoding="utf-8",
    )
    gate = load_gate(gate_file)
    assert gate.slices[0].min == 0.6
    assert gate.bootstrap.resamples == 500


SLICES = {
    "gender": {
        "female": {"rows": 114, "accuracy": 0.76},
        "male": {"rows": 438, "accuracy": 0.81},
        "other": {"rows": 3},
    }
}


def test_slice_min_fails_each_slice_below_and_marks_small_ones() -> None:
    verdict = judge_slices(SliceRule(column="gender", metric="accuracy", min=0.8), SLICES)
    assert verdict.status == "fail"
    assert verdict.failures == (
        "slice rule accuracy over gender: gender=female has 0.7600, below the minimum 0.8000",
    )
    assert verdict.notes == ("too small to judge (no accuracy): other",)


def test_slice_max_gap_compares_the_best_and_worst_slice() -> None:
    fails = judge_slices(SliceRule(column="gender", metric="accuracy", max_gap=0.03), SLICES)
    assert "gap 0.0500 between gender=male (0.8100) and gender=female (0.7600)" in (
        fails.failures[0]
    )
    ok = judge_slices(SliceRule(column="gender", metric="accuracy", max_gap=0.05), SLICES)
    assert ok.status == "pass"


def test_slice_rules_fail_without_slices_and_join_the_verdict() -> None:
    rule = SliceRule(column="class", metric="accuracy", min=0.5)
    assert "no slices of 'class'" in judge_slices(rule, SLICES).failures[0]
    verdict = evaluate_gate({}, {}, None, slice_rules=[rule], slices=None)
    assert not verdict.passed
    assert verdict.to_dict()["slices"][0]["status"] == "fail"


def test_gate_lines_show_the_interval_and_each_slice_rule() -> None:
    from modelci.judge.gate import verdict_lines

    rule = SliceRule(column="gender", metric="accuracy", min=0.8)
    verdict = evaluate_gate(
        {"accuracy": MetricRule(mode="significance")},
        {"accuracy": 0.796},
        BASE,
        intervals={"accuracy": _interval(-0.004, -0.013, 0.005)},
        slice_rules=[rule],
        slices=SLICES,
    )
    lines = verdict_lines(verdict)
    assert lines[0].startswith("PASS    accuracy: 0.7960 (base 0.8000, delta -0.0040, 95% CI")
    assert lines[1].startswith("FAIL    slices accuracy over gender - slice rule accuracy")
    assert lines[-1].startswith("gate FAILED: slice rule accuracy over gender: gender=female")
