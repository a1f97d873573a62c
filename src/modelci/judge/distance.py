"""Distribution distances between a reference sample and a current sample, vectorised.

Shared by the production drift check (``modelci monitor drift``) and the pull request's data
diff. Every
function is pure: arrays in, numbers out; missing values (NaN/None) never enter a distance, they
are reported as null rates instead.

PSI, the population stability index, over buckets ``i`` with reference share ``r_i`` and current
share ``c_i``, is ``sum((c_i - r_i) * ln(c_i / r_i))`` (the symmetrised Kullback-Leibler
divergence). Shares are smoothed so that an empty bucket gives a large, finite value instead of
infinity: ``share_i = (count_i + SMOOTHING) / (n + SMOOTHING * k)`` over ``k`` buckets. Common
reading: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a major shift.

The tests are scipy's: ``scipy.stats.ks_2samp`` (two-sample Kolmogorov-Smirnov, exact p-value for
small samples and the asymptotic one for large) and ``scipy.stats.chi2_contingency`` (Pearson's
chi-square test of homogeneity on the 2 x k table of counts, without Yates' correction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

SMOOTHING = 0.5
"""Pseudo-count added to every bucket of both samples before the PSI's shares are taken."""

UNSEEN = "<unseen>"
"""The PSI/chi-square bucket of current values whose category the reference never had."""

Kind = Literal["numeric", "categorical"]
KINDS: tuple[Kind, ...] = ("numeric", "categorical")


def _finite(values: np.ndarray, side: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    kept: np.ndarray = array[~np.isnan(array)]
    if kept.size == 0:
        raise ValueError(f"the {side} sample has no non-missing values")
    return kept


def _psi_from_counts(reference: np.ndarray, current: np.ndarray) -> float:
    k = reference.size
    ref_share = (reference + SMOOTHING) / (reference.sum() + SMOOTHING * k)
    cur_share = (current + SMOOTHING) / (current.sum() + SMOOTHING * k)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def quantile_edges(reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """The interior bin edges of ``psi_numeric``: the reference's ``1/bins ... (bins-1)/bins``
    quantiles, duplicates removed (a value repeated across quantiles makes fewer, wider bins)."""
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    ref = _finite(reference, "reference")
    return np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))


def numeric_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of ``values`` (NaN dropped) in the bins ``(-inf, e_0], (e_0, e_1], ..., (e_last,
    inf)`` of the sorted interior ``edges``: ``len(edges) + 1`` counts."""
    array = np.asarray(values, dtype=float).ravel()
    array = array[~np.isnan(array)]
    index = np.searchsorted(edges, array, side="left")
    return np.bincount(index, minlength=edges.size + 1)


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI of a numeric column over ``bins`` quantile bins of the reference.

    Edges are the reference's interior quantiles (``quantile_edges``); the outer bins are open,
    so current values outside the reference's range land in the first or last bin. NaN values are
    excluded from both samples. Shares are smoothed (``SMOOTHING``), so the result is finite
    and >= 0; identical samples give 0. Raises ``ValueError`` when either sample has no
    non-missing value or ``bins < 2``. O(n log bins) after one O(n) quantile pass.
    """
    edges = quantile_edges(reference, bins)
    cur = _finite(current, "current")
    return _psi_from_counts(numeric_counts(reference, edges), numeric_counts(cur, edges))


def _category_counts(values: pd.Series) -> pd.Series:
    counts = pd.Series(values).astype(object).value_counts(dropna=True)
    return counts[counts > 0]


def _aligned_category_counts(
    reference: pd.Series, current: pd.Series
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """Counts on the reference's categories plus, when any, one ``UNSEEN`` bucket; and the new
    and removed categories (as sorted strings)."""
    ref_counts = _category_counts(reference)
    cur_counts = _category_counts(current)
    if ref_counts.empty:
        raise ValueError("the reference sample has no non-missing values")
    if cur_counts.empty:
        raise ValueError("the current sample has no non-missing values")
    known = ref_counts.index
    unseen_mask = ~cur_counts.index.isin(known)
    new = tuple(sorted(str(value) for value in cur_counts.index[unseen_mask]))
    removed = tuple(sorted(str(value) for value in known[~known.isin(cur_counts.index)]))
    ref = ref_counts.to_numpy(dtype=float)
    cur = cur_counts.reindex(known, fill_value=0).to_numpy(dtype=float)
    if new:
        ref = np.append(ref, 0.0)
        cur = np.append(cur, float(cur_counts[unseen_mask].sum()))
    return ref, cur, new, removed


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """PSI of a categorical column, one bucket per category the reference has.

    Current values of a category the reference never had are counted together in one extra
    bucket (``UNSEEN``, reference count 0), so many distinct new values weigh as their total
    share, not once each. Missing values are excluded. Shares are smoothed (``SMOOTHING``), so
    the result is finite and >= 0. Categories compare by value: ``1`` and ``"1"`` differ.
    Raises ``ValueError`` when either sample has no non-missing value.
    """
    ref, cur, _, _ = _aligned_category_counts(reference, current)
    return _psi_from_counts(ref, cur)


@dataclass(frozen=True)
class ColumnShift:
    """How one column moved between the reference and the current sample.

    ``psi`` as ``psi_numeric`` (10 bins) or ``psi_categorical``; ``test`` names the two-sample
    test whose ``statistic`` and ``p_value`` are given ("ks": KS distance D in [0, 1]; "chi2":
    Pearson's chi-square). Null rates are shares of missing values among all rows of each
    sample; ``n_reference``/``n_current`` count the non-missing values the distances used.
    ``new_categories`` (in current only; counted in the ``UNSEEN`` bucket) and
    ``removed_categories`` (in reference only) are sorted strings, empty for numeric columns.
    """

    column: str
    kind: Kind
    psi: float
    test: Literal["ks", "chi2"]
    statistic: float
    p_value: float
    null_rate_reference: float
    null_rate_current: float
    new_categories: tuple[str, ...]
    removed_categories: tuple[str, ...]
    n_reference: int
    n_current: int


def _null_rate(values: pd.Series) -> float:
    return float(values.isna().mean()) if len(values) else 0.0


def column_shift(column: str, reference: pd.Series, current: pd.Series, kind: str) -> ColumnShift:
    """Compare one column of two samples; ``kind`` is "numeric" or "categorical".

    Numeric: PSI over the reference's deciles and the two-sample KS test on the non-missing
    values (cast to float). Categorical: PSI and the chi-square test of homogeneity on the
    counts per reference category plus one ``UNSEEN`` bucket for new categories; with a single
    bucket overall there is nothing to test and the statistic is 0 with p-value 1.
    Raises ``ValueError`` naming the column for an unknown kind, non-numeric values in a numeric
    column, or a sample without any non-missing value.
    """
    if kind not in KINDS:
        raise ValueError(f"column {column!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    try:
        if kind == "numeric":
            return _numeric_shift(column, reference, current)
        return _categorical_shift(column, reference, current)
    except ValueError as error:
        if str(error).startswith(f"column {column!r}"):
            raise
        raise ValueError(f"column {column!r}: {error}") from error


def _as_float(values: pd.Series, side: str) -> np.ndarray:
    try:
        return pd.to_numeric(values, errors="raise").to_numpy(dtype=float, na_value=np.nan)
    except (ValueError, TypeError) as error:
        raise ValueError(f"the {side} sample has non-numeric values ({error})") from error


def _numeric_shift(column: str, reference: pd.Series, current: pd.Series) -> ColumnShift:
    ref = _finite(_as_float(reference, "reference"), "reference")
    cur = _finite(_as_float(current, "current"), "current")
    result = stats.ks_2samp(ref, cur)
    return ColumnShift(
        column=column,
        kind="numeric",
        psi=psi_numeric(ref, cur),
        test="ks",
        statistic=float(result.statistic),
        p_value=float(result.pvalue),
        null_rate_reference=_null_rate(reference),
        null_rate_current=_null_rate(current),
        new_categories=(),
        removed_categories=(),
        n_reference=int(ref.size),
        n_current=int(cur.size),
    )


def _categorical_shift(column: str, reference: pd.Series, current: pd.Series) -> ColumnShift:
    ref, cur, new, removed = _aligned_category_counts(reference, current)
    if ref.size < 2:
        statistic, p_value = 0.0, 1.0
    else:
        result = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return ColumnShift(
        column=column,
        kind="categorical",
        psi=_psi_from_counts(ref, cur),
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        null_rate_reference=_null_rate(reference),
        null_rate_current=_null_rate(current),
        new_categories=new,
        removed_categories=removed,
        n_reference=int(ref.sum()),
        n_current=int(cur.sum()),
    )
