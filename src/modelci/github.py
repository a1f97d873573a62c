"""The GitHub Actions runner's files: step outputs and the job summary."""

from __future__ import annotations

import os


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


def _one_line(value: str) -> str:
    return " ".join(value.split())
