"""The drift verdict: thresholds, multiple testing, sample sizes, nulls, unseen categories."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelci.config import DataParams, MonitorParams, parse_params
from modelci.drift.engine import adjust_p_values, analyse
from modelci.errors import ConfigError, DataError

pytestmark = pytest.mark.unit

DATA = DataParams.model_validate(
    {
        "source": "data.csv",
        "target": "y",
        "task": "binary",
        "columns": {
            "x": {"type": "float", "nullable": True},
            "n": {"type": "int"},
            "c": {"type": "category", "categories": ["a", "b", "c"]},
            "y": {"type": "int"},
        },
    }
)


def population(rng: np.random.Generator, size: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": rng.normal(10.0, 2.0, size),
            "n": rng.poisson(3, size),
            "c": rng.choice(["a", "b", "c"], p=[0.5, 0.3, 0.2], size=size),
            "y": rng.integers(0, 2, size),
        }
    )


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    whole = population(np.random.default_rng(3), 8000)
    return whole.iloc[:6000].reset_index(drop=True), whole.iloc[6000:].reset_index(drop=True)


def test_held_out_sample_does_not_drift(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, held_out = frames
    result = analyse(reference, held_out, DATA, MonitorParams())
    assert not result.drifted, result.summary()
    assert result.drifted_features == []
    assert result.summary().startswith("no drift")


def test_shifted_sample_drifts_on_the_shifted_feature_only(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, held_out = frames
    current = held_out.assign(x=held_out["x"] + 3.0)
    result = analyse(reference, current, DATA, MonitorParams())
    assert result.drifted
    assert result.drifted_features == ["x"]
    (x,) = [f for f in result.features if f.column == "x"]
    assert x.p_adjusted is not None
    assert x.p_adjusted < 0.01
    assert "PSI" in x.reasons[0]
    assert "holm-adjusted" in x.reasons[0]


def test_unseen_categories_drift_and_are_named(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, held_out = frames
    current = held_out.copy()
    current.loc[current.index[::2], "c"] = "zzz"
    result = analyse(reference, current, DATA, MonitorParams())
    (c,) = [f for f in result.features if f.column == "c"]
    assert c.drifted
    assert c.shift is not None
    assert c.shift.new_categories == ("zzz",)


def test_overall_threshold_tolerates_a_share_of_drifted_features(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, held_out = frames
    current = held_out.assign(x=held_out["x"] + 3.0)
    tolerant = MonitorParams(max_drifted_share=0.5)
    result = analyse(reference, current, DATA, tolerant)
    assert result.drifted_features == ["x"]
    assert not result.drifted


def test_per_feature_threshold_and_ignore(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, held_out = frames
    current = held_out.assign(x=held_out["x"] + 3.0)
    lenient = MonitorParams.model_validate({"features": {"x": {"psi": 50.0}}})
    assert not analyse(reference, current, DATA, lenient).drifted
    ignored = MonitorParams.model_validate({"features": {"x": {"ignore": True}}})
    result = analyse(reference, current, DATA, ignored)
    assert [f.column for f in result.features] == ["n", "c"]


def test_a_large_psi_without_significance_is_a_fluctuation() -> None:
    rng = np.random.default_rng(5)
    reference, current = population(rng, 40), population(rng, 40)
    result = analyse(reference, current, DATA, MonitorParams(min_rows=10, psi=0.01))
    noted = [f for f in result.features if any("not significant" in n for n in f.notes)]
    assert noted, [f.notes for f in result.features]
    assert all(not f.drifted for f in noted)


def test_psi_alone_decides_when_the_test_is_none(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, held_out = frames
    current = held_out.assign(x=held_out["x"] + 3.0)
    result = analyse(reference, current, DATA, MonitorParams(numeric_test="none"))
    (x,) = [f for f in result.features if f.column == "x"]
    assert x.drifted
    assert x.p_adjusted is None


def test_too_small_samples_are_refused(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, held_out = frames
    with pytest.raises(DataError, match=r"current window: 50 rows, fewer than monitor.min_rows"):
        analyse(reference, held_out.iloc[:50], DATA, MonitorParams(min_rows=200))
    with pytest.raises(DataError, match=r"current window: 0 rows"):
        analyse(reference, held_out.iloc[:0], DATA, MonitorParams())


def test_missing_feature_columns_are_named(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, held_out = frames
    with pytest.raises(DataError, match=r"feature column\(s\) 'c' missing"):
        analyse(reference, held_out.drop(columns=["c"]), DATA, MonitorParams())


def test_nulls_rising_drift_and_all_null_skips_distances(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, held_out = frames
    some = held_out.copy()
    some.loc[some.index[: len(some) // 2], "x"] = np.nan
    (x,) = [f for f in analyse(reference, some, DATA, MonitorParams()).features if f.column == "x"]
    assert x.drifted
    assert "null rate rose" in x.reasons[0]
    assert x.shift is not None
    assert x.shift.n_current == len(some) - len(some) // 2
    every = held_out.assign(x=np.nan)
    (x,) = [f for f in analyse(reference, every, DATA, MonitorParams()).features if f.column == "x"]
    assert x.shift is None
    assert x.drifted
    assert x.null_rate_current == 1.0


def test_prediction_drift_counts_on_its_own(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, held_out = frames
    rng = np.random.default_rng(9)
    same = (pd.Series(rng.uniform(size=6000)), pd.Series(rng.uniform(size=2000)), "numeric")
    assert not analyse(reference, held_out, DATA, MonitorParams(), same).drifted  # type: ignore
    moved = (same[0], same[1] ** 4, "numeric")
    result = analyse(reference, held_out, DATA, MonitorParams(), moved)  # type: ignore[arg-type]
    assert result.drifted
    assert result.drifted_features == []
    assert "predictions drifted" in result.summary()


def test_p_value_adjustments() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_p_values(p, "none") == p
    assert adjust_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    # Holm: sorted 0.005*4, 0.01*3, 0.03*2, 0.04*1, made monotone.
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted p_(i) * m / i, made monotone from the top.
    assert adjust_p_values(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p_values([], "holm") == []


def test_monitor_params_are_validated_naming_the_key(params_raw: dict[str, object]) -> None:
    raw = dict(params_raw)
    raw["monitor"] = {"alpha": 2}
    with pytest.raises(ConfigError, match=r"params.yaml: monitor.alpha: Input should be less"):
        parse_params(raw, "params.yaml")
    raw["monitor"] = {"features": {"nope": {"psi": 0.3}}}
    with pytest.raises(ConfigError, match=r"monitor.features: 'nope' is not a declared feature"):
        parse_params(raw, "params.yaml")
    raw["monitor"] = {"correction": "fdr"}
    with pytest.raises(ConfigError, match=r"monitor.correction"):
        parse_params(raw, "params.yaml")


@pytest.fixture
def params_raw() -> dict[str, object]:
    import yaml

    from tests.conftest import REPO_ROOT

    loaded: dict[str, object] = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    return loaded


def test_report_renders_production_values_as_inert_markdown(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    from modelci.drift.render import markdown

    reference, held_out = frames
    current = held_out.copy()
    current.loc[current.index[::2], "c"] = "@boss [click](https://evil.invalid) <b>x</b>"
    result = analyse(reference, current, DATA, MonitorParams(psi=50.0))
    text = markdown(result, None, [], "window")
    assert (
        "unseen categories: @\u200bboss \\[click\\](https:\u200b//evil.invalid) &lt;b&gt;" in text
    )
    assert "<b>" not in text
