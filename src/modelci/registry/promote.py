"""``modelci registry promote``: challenger vs champion on the current test set, then move
``@champion``.

Both models are downloaded from the registry, verified against their registered sha256, loaded
safely and scored on the *same* current test set (``data/prepared/test.parquet``), so a change
of test data never favours either side. The gate is :func:`modelci.judge.gate.evaluate_gate`, the
same rules as the pull-request gate with the champion as the baseline, and the same paired
intervals (``modelci.judge.comparison.compare_predicted``), so a ``significance`` or
``non_inferiority`` rule ("promote only if not significantly worse") means the same in both;
with no champion the challenger is judged on the absolute bounds only. The verdict is tagged on
the challenger (``modelci.gate`` = passed/rejected) and the aliases are then settled from the
tags (:meth:`Registry.settle`), which is what makes concurrent promotions converge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelci.config import ReleaseParams
from modelci.judge.metrics import Predictions
from modelci.layout import DEFAULT_PATHS
from modelci.lineage import UNKNOWN, git_commit
from modelci.model_version import Version
from modelci.registry.core import Registry, RegistryError, format_version, open_registry
from modelci.tags import (
    EVAL_PREFIX,
    PASSED,
    REJECTED,
    TAG_COMMIT,
    TAG_GATE,
    TAG_GATE_AGAINST,
    TAG_GATE_DETAIL,
)


@dataclass(frozen=True)
class Promotion:
    challenger: Version
    champion_before: Version | None
    champion_after: Version | None
    previous_after: Version | None
    passed: bool
    verdict_lines: tuple[str, ...]
    challenger_scores: dict[str, float]
    champion_scores: dict[str, float] | None

    @property
    def promoted(self) -> bool:
        after = self.champion_after
        return after is not None and after.version == self.challenger.version

    def to_dict(self) -> dict[str, Any]:
        def num(version: Version | None) -> int | None:
            return None if version is None else version.version

        return {
            "version": self.challenger.version,
            "commit": self.challenger.commit,
            "sha256": self.challenger.sha256,
            "gate_passed": self.passed,
            "promoted": self.promoted,
            "champion_before": num(self.champion_before),
            "champion": num(self.champion_after),
            "previous": num(self.previous_after),
            "challenger_metrics": self.challenger_scores,
            "champion_metrics": self.champion_scores,
            "verdict": list(self.verdict_lines),
        }


def score(params: ReleaseParams, data: bytes, source: str, test_path: Path) -> Predictions:
    """Predictions of verified model bytes on the test set (safe load: trusted types only)."""
    import pandas as pd

    from modelci.errors import DataError
    from modelci.judge import metrics as m
    from modelci.modelfile import load_model_bytes

    model = load_model_bytes(data, source, params.trusted_types)
    try:
        test = pd.read_parquet(test_path)
    except (OSError, ValueError) as error:
        raise DataError(
            f"{test_path}: cannot read the current test set ({error}); run `dvc repro` or "
            "`dvc pull` first"
        ) from None
    missing = [c for c in [*params.data.features, params.data.target] if c not in test.columns]
    if missing:
        raise DataError(f"{test_path}: missing columns {missing}")
    return m.predict(model, test[params.data.features], test[params.data.target])


def challenger_version(reg: Registry, version: int | None) -> Version:
    if version is not None:
        return reg.get(version)
    commit = git_commit()
    found = reg.versions(**{TAG_COMMIT: commit}) if commit != UNKNOWN else []
    if not found:
        raise RegistryError(
            f"no version of {reg.name!r} is registered for commit {commit[:12]}; run "
            "`modelci registry register` first or pass --version"
        )
    return found[0]


def promote(
    params: ReleaseParams,
    version: int | None = None,
    test_path: Path = DEFAULT_PATHS.test,
    expect_sha256: str | None = None,
    registry: Registry | None = None,
) -> Promotion:
    from modelci.judge.comparison import compare_predicted
    from modelci.judge.gate import evaluate_gate, verdict_lines
    from modelci.judge.metrics import compute_metrics

    reg = registry or open_registry(params)
    challenger = challenger_version(reg, version)
    champion = reg.alias(reg.champion_alias)
    # Verify (and score) before any alias moves: a tampered artifact stops here.
    data = reg.model_bytes(challenger, expect_sha256)
    if champion is not None and champion.version == challenger.version:
        after, previous = reg.aliases().champion, reg.aliases().previous
        already = (f"{format_version(challenger)} is already @{reg.champion_alias}",)
        return Promotion(challenger, champion, after, previous, True, already, {}, None)

    source = f"{reg.name} version {challenger.version}"
    predicted = score(params, data, source, test_path)
    current = compute_metrics(predicted, params.data)
    baseline: dict[str, float] | None = None
    intervals = None
    if champion is not None:
        champion_data = reg.model_bytes(champion)
        champion_source = f"{reg.name} version {champion.version}"
        champion_predicted = score(params, champion_data, champion_source, test_path)
        baseline = compute_metrics(champion_predicted, params.data)
        # the PR gate's statistics, paired on the same current test rows
        comparison = compare_predicted(params.gate, champion_predicted, predicted, params.data)
        intervals = comparison.intervals
    verdict = evaluate_gate(params.gate.metrics, current, baseline, intervals=intervals)
    lines = tuple(verdict_lines(verdict))
    detail = json.dumps(verdict.failures or [verdict.summary()])[:4900]
    tags = {
        TAG_GATE: PASSED if verdict.passed else REJECTED,
        TAG_GATE_AGAINST: str(champion.version) if champion else "none",
        TAG_GATE_DETAIL: detail,
    }
    tags.update({EVAL_PREFIX + k: repr(v) for k, v in sorted(current.items())})
    reg.set_tags(challenger.version, tags)
    if verdict.passed:
        after, previous = reg.settle()
    else:
        aliases = reg.aliases()
        after, previous = aliases.champion, aliases.previous
    return Promotion(
        reg.get(challenger.version),
        champion,
        after,
        previous,
        verdict.passed,
        lines,
        current,
        baseline,
    )


def summary_markdown(result: Promotion, alias: str) -> str:
    """The job summary: what was compared, the verdict per metric, and where the alias is."""
    c = result.challenger
    lines = [f"## Promotion of version {c.version}", ""]
    lines.append(f"- Challenger: {format_version(c)}, sha256 `{c.sha256[:16]}...`")
    lines.append(f"- Champion before: {format_version(result.champion_before)}")
    if result.promoted:
        lines.append(f"- **Promoted**: @{alias} -> version {c.version}")
    elif result.passed:
        lines.append(
            f"- Gate passed but a newer version holds @{alias}: "
            f"{format_version(result.champion_after)}"
        )
    else:
        lines.append(
            f"- **Not promoted**: the gate rejected it; @{alias} stays at "
            f"{format_version(result.champion_after)}"
        )
    lines.append(f"- Previous (rollback target): {format_version(result.previous_after)}")
    lines += ["", "```", *result.verdict_lines, "```", ""]
    return "\n".join(lines)
