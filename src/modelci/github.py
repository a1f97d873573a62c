"""The GitHub Actions runner's files: step outputs and the job summary."""

from __future__ import annotations

import json
import os
from typing import Any


def write_outputs(pairs: dict[str, str], summary: str | None = None) -> None:
    """Append ``key=value`` to ``$GITHUB_OUTPUT`` and Markdown to ``$GITHUB_STEP_SUMMARY``."""
    out = os.environ.get("GITHUB_OUTPUT")
    if out:
        with open(out, "a", encoding="utf-8") as handle:
            for key, value in pairs.items():
                handle.write(f"{key}={_one_line(value)}\n")
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step and summary:
        with open(step, "a", encoding="utf-8") as handle:
            handle.write(summary + "\n")


def matrix_outputs(matrix: dict[str, Any]) -> dict[str, str]:
    """A job matrix's step outputs: ``matrix`` (one-line JSON, for ``fromJSON``) and ``count``
    (its ``include`` entries), which the plan jobs' callers test before running the matrix."""
    return {
        "matrix": json.dumps(matrix, separators=(",", ":")),
        "count": str(len(matrix["include"])),
    }


def _one_line(value: str) -> str:
    return " ".join(value.split())
