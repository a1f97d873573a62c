"""A Markdown model card: what the model is, what it was trained on, how well it does."""

from __future__ import annotations

from typing import Any

from modelci.config import Params


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _compute_line(compute: dict[str, Any] | None) -> list[str]:
    if not compute:
        return []
    return [
        f"- Trained on: Dask, {compute['workers']} worker(s), {compute['partitions']} partitions "
        "(both part of what gives the model its bytes)"
    ]


def render(
    params: Params,
    metrics: dict[str, float],
    slices: dict[str, dict[str, dict[str, float]]],
    profile: dict[str, Any],
    model_sha256: str,
    compute: dict[str, Any] | None = None,
) -> str:
    """Render the card from the stage's inputs only, so it is reproducible like every output.

    No git commit or date: the card is committed with the change that produced it, and the
    commit lives in the MLflow run's lineage tags and in the registry.
    """
    data = params.data
    lines = [
        f"# Model card: {params.tracking.model_name}",
        "",
        "## Model",
        "",
        f"- Model: `{params.train.model_spec}` with `{params.train.estimator_params}`",
        f"- Task: {data.task}, target `{data.target}`",
        "- Features: "
        + ", ".join(f"`{name}` ({data.columns[name].type})" for name in data.features),
        f"- Model file sha256: `{model_sha256}`",
        f"- Threads: {params.train.n_threads} (fixed for fitting and predicting, so the bytes do "
        "not depend on the machine's cores)",
        *_compute_line(compute),
        "",
        "## Data",
        "",
        f"- Source: `{data.source}`",
        f"- Rows: {profile['rows']['total']} (train {profile['rows']['train']}, "
        f"test {profile['rows']['test']}, split seed {params.prepare.seed})",
        "",
        "## Metrics on the test split",
        "",
        *_table(("metric", "value"), sorted(metrics.items())),
    ]
    for column, values in slices.items():
        names = sorted({key for entry in values.values() for key in entry if key != "rows"})
        rows = [
            (value, entry["rows"], *(entry.get(name, "n/a") for name in names))
            for value, entry in values.items()
        ]
        lines += ["", f"### By `{column}`", "", *_table((column, "rows", *names), rows)]
    lines += [
        "",
        "## Intended use and limitations",
        "",
        "Scores are measured on a held-out split of the same source; they say nothing about data",
        "drawn from another population or time. Slices with few rows have wide error bars.",
        "",
    ]
    return "\n".join(lines)
