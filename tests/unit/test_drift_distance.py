"""The distribution primitives: PSI (numeric, categorical), KS and chi-square per column."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from modelci.judge.distance import (
    SMOOTHING,
    UNSEEN,
    ColumnShift,
    column_shift,
    numeric_counts,
    psi_categorical,
    psi_numeric,
    quantile_edges,
)

pytestmark = pytest.mark.unit


def naive_psi(ref_counts: list[float], cur_counts: list[float]) -> float:
    """The PSI formula written out term by term, as the module docstring states it."""
    k = len(ref_counts)
    total_ref, total_cur = sum(ref_counts), sum(cur_counts)
    psi = 0.0
    for r, c in zip(ref_counts, cur_counts, strict=True):
        r_share = (r + SMOOTHING) / (total_ref + SMOOTHING * k)
        c_share = (c + SMOOTHING) / (total_cur + SMOOTHING * k)
        psi += (c_share - r_share) * math.log(c_share / r_share)
    return psi


@pytest.fixture(scope="module")
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_identical_samples_have_zero_psi(rng: np.random.Generator) -> None:
    values = rng.normal(size=2000)
    assert psi_numeric(values, values.copy()) == 0.0
    categories = pd.Series(rng.choice(["a", "b", "c"], size=500))
    assert psi_categorical(categories, categories.copy()) == 0.0


def test_numeric_psi_matches_the_formula_on_quantile_bins() -> None:
    reference = np.arange(100, dtype=float)
    current = np.array([-5.0, 0.0, 3.0, 50.0, 50.5, 98.0, 99.0, 150.0])
    edges = quantile_edges(reference, bins=4)
    assert list(edges) == list(np.quantile(reference, [0.25, 0.5, 0.75]))

    def count(values: np.ndarray) -> list[float]:
        bounds = [-math.inf, *edges, math.inf]
        return [
            float(sum(1 for v in values if low < v <= high))
            for low, high in itertools.pairwise(bounds)
        ]

    assert list(numeric_counts(current, edges)) == count(current)
    assert psi_numeric(reference, current, bins=4) == pytest.approx(
        naive_psi(count(reference), count(current))
    )


def test_empty_bins_give_a_finite_psi() -> None:
    reference = np.linspace(0, 1, 1000)
    current = np.full(1000, 0.05)  # every current value in the first decile
    psi = psi_numeric(reference, current)
    assert math.isfinite(psi)
    assert psi > 1.0


def test_held_out_sample_of_the_same_distribution_does_not_drift(rng: np.random.Generator) -> None:
    population = pd.Series(rng.gamma(2.0, 10.0, size=20_000))
    shift = column_shift("fare", population[:10_000], population[10_000:], "numeric")
    assert shift.psi < 0.1
    assert shift.p_value > 0.01


def test_shifted_sample_drifts(rng: np.random.Generator) -> None:
    reference = pd.Series(rng.normal(30.0, 10.0, size=5000))
    current = pd.Series(rng.normal(40.0, 10.0, size=5000))
    shift = column_shift("age", reference, current, "numeric")
    assert shift.test == "ks"
    assert shift.psi > 0.25
    assert shift.p_value < 1e-6
    assert 0.0 < shift.statistic <= 1.0


def test_nan_is_excluded_and_reported_as_null_rate(rng: np.random.Generator) -> None:
    reference = rng.normal(size=1000)
    current = rng.normal(size=1000)
    with_nan = np.concatenate([current, np.full(250, np.nan)])
    assert psi_numeric(reference, with_nan) == psi_numeric(reference, current)
    shift = column_shift("x", pd.Series(reference), pd.Series(with_nan), "numeric")
    assert shift.n_current == 1000
    assert shift.null_rate_current == pytest.approx(250 / 1250)
    assert shift.null_rate_reference == 0.0


def test_constant_reference_makes_two_bins() -> None:
    reference = np.full(100, 3.0)
    assert list(quantile_edges(reference)) == [3.0]
    assert psi_numeric(reference, reference.copy()) == 0.0
    assert psi_numeric(reference, np.full(100, 4.0)) > 1.0


@pytest.mark.parametrize(
    ("reference", "current", "side"),
    [([], [1.0], "reference"), ([1.0], [np.nan, np.nan], "current")],
)
def test_empty_samples_are_refused(reference: list[float], current: list[float], side: str) -> None:
    with pytest.raises(ValueError, match=f"the {side} sample has no non-missing values"):
        psi_numeric(np.array(reference), np.array(current))
    with pytest.raises(ValueError, match=f"column 'c': the {side} sample has no non-missing"):
        column_shift("c", pd.Series(reference, dtype=float), pd.Series(current), "numeric")
    with pytest.raises(ValueError, match=f"column 'k': the {side} sample has no non-missing"):
        column_shift("k", pd.Series(reference, dtype=object), pd.Series(current), "categorical")


def test_unseen_categories_share_one_bucket() -> None:
    reference = pd.Series(["a"] * 50 + ["b"] * 50)
    current = pd.Series(["a"] * 40 + ["b"] * 40 + ["x"] * 10 + ["y"] * 10)
    one_new = pd.Series(["a"] * 40 + ["b"] * 40 + ["z"] * 20)
    expected = naive_psi([50, 50, 0], [40, 40, 20])
    assert psi_categorical(reference, current) == pytest.approx(expected)
    assert psi_categorical(reference, current) == pytest.approx(psi_categorical(reference, one_new))
    shift = column_shift("port", reference, current, "categorical")
    assert shift.new_categories == ("x", "y")
    assert shift.removed_categories == ()
    assert shift.test == "chi2"
    assert shift.p_value < 1e-3
    assert UNSEEN not in shift.new_categories


def test_removed_categories_and_missing_values() -> None:
    reference = pd.Series(["a", "b", "c", None] * 25)
    current = pd.Series(["a", "b", None, None] * 25)
    shift = column_shift("class", reference, current, "categorical")
    assert shift.removed_categories == ("c",)
    assert shift.new_categories == ()
    assert shift.null_rate_reference == pytest.approx(0.25)
    assert shift.null_rate_current == pytest.approx(0.5)
    assert (shift.n_reference, shift.n_current) == (75, 50)
    assert shift.psi == pytest.approx(naive_psi([25, 25, 25], [25, 25, 0]))


def test_categorical_same_distribution_does_not_drift(rng: np.random.Generator) -> None:
    population = pd.Series(rng.choice(["S", "C", "Q"], p=[0.7, 0.2, 0.1], size=10_000))
    shift = column_shift("embarked", population[:5000], population[5000:], "categorical")
    assert shift.psi < 0.1
    assert shift.p_value > 0.01


def test_single_category_has_nothing_to_test() -> None:
    shift = column_shift("g", pd.Series(["m"] * 10), pd.Series(["m"] * 20), "categorical")
    assert (shift.statistic, shift.p_value, shift.psi) == (0.0, 1.0, 0.0)


def test_categorical_pandas_dtype_ignores_unobserved_declared_categories() -> None:
    declared = pd.CategoricalDtype(["a", "b", "never"])
    reference = pd.Series(["a", "b"] * 10, dtype=declared)
    shift = column_shift("c", reference, pd.Series(["a", "b"] * 5), "categorical")
    assert shift.psi == 0.0
    assert shift.removed_categories == ()


def test_unknown_kind_and_non_numeric_values_name_the_column() -> None:
    with pytest.raises(ValueError, match="column 'c': kind must be one of numeric, categorical"):
        column_shift("c", pd.Series([1.0]), pd.Series([1.0]), "ordinal")
    with pytest.raises(ValueError, match="column 'age': the current sample has non-numeric"):
        column_shift("age", pd.Series([1.0, 2.0]), pd.Series(["old", "young"]), "numeric")


def test_bins_below_two_are_refused() -> None:
    with pytest.raises(ValueError, match="bins must be at least 2"):
        psi_numeric(np.arange(10.0), np.arange(10.0), bins=1)


def test_column_shift_is_frozen() -> None:
    shift = column_shift("x", pd.Series([1.0, 2.0]), pd.Series([1.0, 2.0]), "numeric")
    assert isinstance(shift, ColumnShift)
    with pytest.raises(AttributeError):
        shift.psi = 1.0  # type: ignore[misc]
