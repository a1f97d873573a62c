"""modelci.judge.stats: intervals of a metric's delta, against known answers and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn import metrics as skm

from modelci.judge import stats
from modelci.judge.stats import Scored, StatsError, compare, point

pytestmark = pytest.mark.unit


def _binary(rng: np.random.Generator, actual: np.ndarray, skill: float) -> Scored:
    """A noisy scorer of ``actual``: higher ``skill`` separates the classes more."""
    score = np.clip(actual * skill + rng.random(len(actual)) * (1 - skill), 0, 1)
    proba = np.stack([1 - score, score], axis=1)
    return Scored(actual, (score > 0.5).astype(int), proba, ("0", "1"), 1)


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture(scope="module")
def actual(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 2, 600)


@pytest.mark.parametrize("name", stats.SUPPORTED[:-3])
def test_points_match_scikit_learn(rng: np.random.Generator, actual: np.ndarray, name: str) -> None:
    side = _binary(rng, actual, 0.3)
    expected = {
        "accuracy": skm.accuracy_score(actual, side.predicted),
        "balanced_accuracy": skm.balanced_accuracy_score(actual, side.predicted),
        "precision": skm.precision_score(actual, side.predicted),
        "recall": skm.recall_score(actual, side.predicted),
        "f1": skm.f1_score(actual, side.predicted),
        "f1_macro": skm.f1_score(actual, side.predicted, average="macro"),
        "f1_weighted": skm.f1_score(actual, side.predicted, average="weighted"),
        "roc_auc": skm.roc_auc_score(actual, side.proba[:, 1]),  # type: ignore[index]
        "log_loss": skm.log_loss(actual, side.proba),
    }[name]
    assert point(name, side) == pytest.approx(expected, abs=1e-12)


def test_regression_and_multiclass_points_match_scikit_learn(rng: np.random.Generator) -> None:
    values = rng.normal(size=300)
    guess = values + rng.normal(size=300) * 0.5
    side = Scored(values, guess)
    assert point("r2", side) == pytest.approx(skm.r2_score(values, guess))
    assert point("mae", side) == pytest.approx(skm.mean_absolute_error(values, guess))
    assert point("rmse", side) == pytest.approx(np.sqrt(skm.mean_squared_error(values, guess)))
    labels = rng.integers(0, 3, 400)
    proba = rng.dirichlet([1, 1, 1], 400)
    proba[np.arange(400), labels] += 0.4
    proba /= proba.sum(axis=1, keepdims=True)
    multi = Scored(labels, proba.argmax(axis=1), proba, ("a", "b", "c"))
    assert point("roc_auc", multi) == pytest.approx(
        skm.roc_auc_score(labels, proba, multi_class="ovr")
    )


@pytest.mark.parametrize("name", ["accuracy", "f1", "roc_auc", "log_loss"])
def test_a_model_against_itself_is_no_change(
    rng: np.random.Generator, actual: np.ndarray, name: str
) -> None:
    side = _binary(rng, actual, 0.3)
    result = compare(name, side, side, paired=True)
    assert result.delta == 0
    assert result.low <= 0 <= result.high
    assert not result.significant


def test_a_constructed_regression_is_detected(actual: np.ndarray) -> None:
    """The PR model gets 60 more rows of 600 wrong (accuracy -0.10): significant, CI around it."""
    base = Scored(actual, actual.copy(), None, ("0", "1"))
    wrong = actual.copy()
    wrong[:60] = 1 - wrong[:60]
    head = Scored(actual, wrong, None, ("0", "1"))
    result = compare("accuracy", base, head, paired=True)
    assert result.delta == pytest.approx(-60 / 600)
    assert result.low < -60 / 600 < result.high < 0
    assert result.significant
    assert result.test == "McNemar exact"
    assert result.p_value == pytest.approx(2 * 0.5**60)


def test_mcnemar_is_the_binomial_test_of_the_discordant_rows(actual: np.ndarray) -> None:
    base_pred, head_pred = actual.copy(), actual.copy()
    head_pred[:12] = 1 - head_pred[:12]  # rows only the base gets right
    base_pred[20:25] = 1 - base_pred[20:25]  # rows only the PR gets right
    base = Scored(actual, base_pred, None, ("0", "1"))
    head = Scored(actual, head_pred, None, ("0", "1"))
    assert stats.mcnemar(base, head) == pytest.approx(sps.binomtest(5, 17, 0.5).pvalue)


def test_tiny_test_set_gives_a_wide_interval_and_says_so(rng: np.random.Generator) -> None:
    small = rng.integers(0, 2, 30)
    big = rng.integers(0, 2, 1500)
    wide = compare("roc_auc", _binary(rng, small, 0.3), _binary(rng, small, 0.3), paired=True)
    narrow = compare("roc_auc", _binary(rng, big, 0.3), _binary(rng, big, 0.3), paired=True)
    assert wide.high - wide.low > 3 * (narrow.high - narrow.low)
    assert any("tiny test set (30 rows)" in note for note in wide.notes)
    assert not any("tiny" in note for note in narrow.notes)


def test_changed_test_set_takes_the_unpaired_path(rng: np.random.Generator) -> None:
    first, second = rng.integers(0, 2, 500), rng.integers(0, 2, 520)
    base, head = _binary(rng, first, 0.3), _binary(rng, second, 0.3)
    with pytest.raises(StatsError, match="same test rows"):
        compare("accuracy", base, head, paired=True)
    result = compare("accuracy", base, head, paired=False)
    assert result.method == "unpaired bootstrap"
    assert result.rows == (500, 520)
    assert result.test is None
    assert any("unpaired" in note for note in result.notes)


def test_pairing_narrows_the_interval(rng: np.random.Generator, actual: np.ndarray) -> None:
    base = _binary(rng, actual, 0.4)
    flips = rng.random(len(actual)) < 0.05
    head = Scored(actual, np.where(flips, 1 - base.predicted, base.predicted), None, ("0", "1"))
    paired = compare("accuracy", base, head, paired=True)
    unpaired = compare("accuracy", base, head, paired=False)
    assert paired.high - paired.low < (unpaired.high - unpaired.low) / 2


def test_fixed_seed_is_deterministic_and_seeds_differ(
    rng: np.random.Generator, actual: np.ndarray
) -> None:
    base, head = _binary(rng, actual, 0.3), _binary(rng, actual, 0.35)
    runs = [compare("roc_auc", base, head, paired=True, seed=3) for _ in range(2)]
    assert runs[0] == runs[1]
    other = compare("roc_auc", base, head, paired=True, seed=4)
    assert (other.low, other.high) != (runs[0].low, runs[0].high)


@pytest.mark.parametrize("name", ["accuracy", "roc_auc"])
def test_paired_bootstrap_agrees_with_scipy(
    rng: np.random.Generator, actual: np.ndarray, name: str
) -> None:
    """scipy.stats.bootstrap (percentile, paired) resamples the same rows for both models."""
    base, head = _binary(rng, actual, 0.3), _binary(rng, actual, 0.4)
    ours = compare(name, base, head, paired=True, resamples=4000, seed=1)

    def delta(rows: np.ndarray) -> float:
        w = np.bincount(rows.astype(int), minlength=len(actual))[None, :].astype(float)
        return float(stats.metric_values(name, w, head)[0] - stats.metric_values(name, w, base)[0])

    reference = sps.bootstrap(
        (np.arange(len(actual)),),
        delta,
        vectorized=False,
        n_resamples=1500,
        method="percentile",
        confidence_level=0.95,
        random_state=np.random.default_rng(2),
    ).confidence_interval
    width = reference.high - reference.low
    assert ours.low == pytest.approx(reference.low, abs=0.15 * width)
    assert ours.high == pytest.approx(reference.high, abs=0.15 * width)


@pytest.mark.parametrize("name", ["roc_auc", "log_loss"])
def test_normal_limit_agrees_with_the_bootstrap(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator, name: str
) -> None:
    """Above EXACT_ROWS the influence-based interval stands in for the bootstrap: same size."""
    labels = rng.integers(0, 2, 2500)
    base, head = _binary(rng, labels, 0.3), _binary(rng, labels, 0.33)
    booted = compare(name, base, head, paired=True, resamples=1500)
    monkeypatch.setattr(stats, "EXACT_ROWS", 100)
    normal = compare(name, base, head, paired=True)
    assert normal.method == "paired normal"
    assert normal.delta == pytest.approx(booted.delta, abs=1e-12)
    width = booted.high - booted.low
    assert normal.high - normal.low == pytest.approx(width, rel=0.15)
    assert normal.low == pytest.approx(booted.low, abs=0.15 * width)


@pytest.mark.parametrize("name", ["rmse", "mae", "r2"])
def test_normal_limit_agrees_with_the_bootstrap_for_regression(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator, name: str
) -> None:
    values = rng.normal(size=2000)
    base = Scored(values, values + rng.normal(size=2000) * 0.5)
    head = Scored(values, values + rng.normal(size=2000) * 0.55)
    booted = compare(name, base, head, paired=True, resamples=1500)
    monkeypatch.setattr(stats, "EXACT_ROWS", 100)
    normal = compare(name, base, head, paired=True)
    assert normal.method == "paired normal"
    assert normal.delta == pytest.approx(booted.delta, abs=1e-12)
    width = booted.high - booted.low
    assert normal.high - normal.low == pytest.approx(width, rel=0.15)


def test_unsupported_metric_and_mismatched_classes_are_errors(
    rng: np.random.Generator, actual: np.ndarray
) -> None:
    side = _binary(rng, actual, 0.3)
    with pytest.raises(StatsError, match="'average_precision'"):
        compare("average_precision", side, side, paired=True)
    other = Scored(side.actual, side.predicted, side.proba, ("no", "yes"))
    with pytest.raises(StatsError, match="classes differ"):
        compare("accuracy", side, other, paired=False)
