"""The ``params.yaml`` that ``modelci init`` writes: inferred sections, with comments saying why.

Written as text (YAML emitters drop comments) and checked by parsing it back through
``modelci.config.parse_params``, so init can never write a file that modelci itself refuses.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from modelci.scaffold.estimators import KNOWN_ESTIMATORS
from modelci.scaffold.infer import Inferred

ESTIMATORS = {
    "binary": "sklearn.ensemble.HistGradientBoostingClassifier",
    "multiclass": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
# `init --engine dask`: XGBoost's Dask learner for the task.
DASK_ESTIMATORS = {
    "binary": "xgboost.dask.DaskXGBClassifier",
    "multiclass": "xgboost.dask.DaskXGBClassifier",
    "regression": "xgboost.dask.DaskXGBRegressor",
}
PARTITIONS = 8
TEST_SIZE = 0.25
SEED = 42


class _OneLineDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, but a string never spans lines.

    Column names come from the data file's header: PyYAML writes a name holding a line break
    as a multi-line quoted scalar, whose next lines land at column 0 of the text init puts it
    in (and a long name may be folded the same way). Such strings are written double-quoted,
    where a line break is the escape ``\\n``; with no width limit nothing is folded.
    """


_BREAKS = frozenset("\n\r\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if _BREAKS.intersection(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_OneLineDumper.add_representer(str, _represent_str)


def flow(value: Any) -> str:
    """One YAML value on one line (``{type: float, min: 0}``), whatever strings it holds.

    Every name from the data reaches params.yaml through here, comments included: the emitter
    quotes what YAML would read as syntax (``: ``, ``#``, ``{``, ``<<``, ``null``...).
    """
    text = yaml.dump(
        value,
        Dumper=_OneLineDumper,
        default_flow_style=True,
        sort_keys=False,
        allow_unicode=True,
        width=sys.maxsize,
    )
    line = str(text).removesuffix("\n").removesuffix("\n...")
    if "\n" in line:
        raise RuntimeError(f"YAML value written over several lines: {line!r}")
    return line


def data_section(inferred: Inferred, source: str) -> list[str]:
    lines = [
        "data:",
        f"  source: {flow(source)}",
        f"  target: {flow(inferred.target)}",
        f"  task: {inferred.task}            # binary | multiclass | regression",
        f"  # Refuse a much smaller file than the {inferred.rows} rows init saw.",
        f"  min_rows: {max(1, inferred.rows // 2)}",
        "  # Inferred from the data, the reason beside each: numeric ranges are the observed ones",
        "  # (widen them if production data may go further: serving refuses values outside them),",
        "  # categories the values seen.",
        "  columns:",
    ]
    lines += [
        f"    {flow(c.name)}: {flow(c.spec())}" + (f"  # {c.reason}" if c.reason else "")
        for c in inferred.columns
    ]
    if inferred.left_out:
        lines.append("  # In the file but left out of the model (prepare drops them). To use one,")
        lines.append("  # declare it under columns with its type and remove it here:")
        lines += [f"  #   {flow(c.name)}: {c.reason}" for c in inferred.left_out]
        lines.append(f"  drop_columns: {flow([c.name for c in inferred.left_out])}")
    return lines


def default_estimator(task: str, engine: str) -> str:
    """``train.estimator`` when ``--estimator`` is not given: scikit-learn's histogram gradient
    boosting on the local engine, XGBoost's Dask learner on ``dask``."""
    return (DASK_ESTIMATORS if engine == "dask" else ESTIMATORS)[task]


def compute_section() -> list[str]:
    return [
        "# Where the stages run (docs/scale.md): on the Dask scheduler whose address the",
        "# DASK_SCHEDULER_ADDRESS variable holds (a secret in CI). Point data.source at a URL the",
        "# workers can read (s3://bucket/folder/*.parquet) for a cluster of other machines.",
        "compute:",
        "  engine: dask",
        "  address: env:DASK_SCHEDULER_ADDRESS",
        "  # Fixed, like a seed: how the rows are cut is part of what produced the model.",
        f"  partitions: {PARTITIONS}",
    ]


def prepare_section(inferred: Inferred, null_target: str) -> list[str]:
    lines = ["prepare:", f"  test_size: {TEST_SIZE}", f"  seed: {SEED}"]
    if inferred.null_target_rows:
        lines.append(
            f"  # {inferred.null_target_rows} row(s) of the data have no {flow(inferred.target)}:"
            " 'drop' removes them, 'error' refuses the file."
        )
        lines.append(f"  null_target: {null_target}")
    return lines


def gate_section(
    rules: dict[str, dict[str, Any]],
    baseline: dict[str, float],
    chance: dict[str, float] | None = None,
) -> list[str]:
    lucky = {k: v for k, v in (chance or {}).items() if k in rules}
    lines = [
        "# Quality gate: absolute bounds and the regression tolerated against the base branch.",
        "# Measured on this data's test split at init: a dummy model (majority class or mean)",
        "# scores " + ", ".join(f"{name} {baseline[name]:.4f}" for name in rules) + ".",
    ]
    if lucky:
        lines += [
            "# A model that knows nothing reaches by luck, in 99 draws of 100, "
            + ", ".join(f"{name} {value:.4f}" for name, value in lucky.items())
            + ":",
            "# those minimums sit just above it, so the dummy model fails the gate. Losses sit",
            "# at the dummy's value: a model worse than knowing the class balance (or the mean)",
            "# fails. Raise the bounds as the model improves.",
        ]
    else:
        lines.append("# The bounds sit at the dummy's scores. Raise them as the model improves.")
    lines += ["gate:", "  metrics:" + ("" if rules else " {}")]
    lines += [f"    {name}: {flow(rule)}" for name, rule in rules.items()]
    return lines


def render(
    inferred: Inferred,
    source: str,
    null_target: str,
    rules: dict[str, dict[str, Any]],
    baseline: dict[str, float],
    model_name: str,
    estimator: str | None = None,
    chance: dict[str, float] | None = None,
    engine: str = "local",
) -> str:
    """The whole file; ``estimator``: one of :data:`KNOWN_ESTIMATORS` (default:
    :func:`default_estimator`); ``engine`` ``dask`` adds the ``compute:`` section."""
    name = estimator or default_estimator(inferred.task, engine)
    chosen = KNOWN_ESTIMATORS[name]
    sections = [
        [
            "# One section per stage; dvc.yaml lists, for each stage, only the keys it reads.",
            "# Written by `modelci init`; validate with `modelci check-params`.",
            "",
            *(compute_section() if engine == "dask" else []),
            *([""] if engine == "dask" else []),
            *data_section(inferred, source),
        ],
        prepare_section(inferred, null_target),
        [
            "train:",
            f"  estimator: {name}",
            f"  estimator_params: {chosen.params}",
            f"  seed: {SEED}",
            *(
                []
                if chosen.scale_numeric
                else [
                    "  # Trees need no scaling; unscaled inputs keep the ONNX export exact.",
                    "  scale_numeric: false",
                ]
            ),
        ],
        [
            "evaluate:",
            "  # Per-group metrics in the report and the model card.",
            f"  slices: {flow(inferred.slices)}",
        ],
        gate_section(rules, baseline, chance),
        ["tracking:", f"  experiment: {flow(model_name)}", f"  model_name: {flow(model_name)}"],
        [
            "# Release: the registry aliases `modelci registry promote` moves, and where "
            "`modelci release deploy`",
            "# ships the champion (none | registry | kubernetes | container | cloudrun | lambda).",
            "registry:",
            "  champion_alias: champion",
            "  previous_alias: previous",
            "  deploy_target: registry",
        ],
    ]
    return "\n\n".join("\n".join(part).rstrip("\n") for part in sections) + "\n"
