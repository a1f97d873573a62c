"""Write one benchmark's results into its own section of ``docs/benchmarks.md``.

Each script owns a section between ``<!-- bench:NAME -->`` markers, so scripts run separately
without overwriting each other's tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = (
    "# Benchmarks\n\n"
    "Written by the scripts in `benchmarks/` (`make bench`); never edited by hand. Medians of\n"
    "repeated runs, measured side by side in one run of each script.\n"
)


def machine() -> str:
    """The machine, and its 1-minute load average when the section is written: a number read on
    a busy machine says so, since only the side-by-side ratios survive load."""
    cpus = os.cpu_count()
    python = platform.python_version()
    load = os.getloadavg()[0]
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {cpus} CPUs, Python {python}, load {load:.1f}"


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_section(name: str, title: str, body: str, command: str) -> Path:
    """Replace (or append) the section ``name`` with ``body``, stamped with date and machine."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"{start}\n## {title}\n\nMeasured {stamp} on {machine()} with `{command}`.\n\n"
        f"{body.strip()}\n{end}"
    )
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS_MD.parent.mkdir(parents=True, exist_ok=True)
    BENCHMARKS_MD.write_text(text, encoding="utf-8")
    return BENCHMARKS_MD


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def run_count(parser: argparse.ArgumentParser, runs: int = 3) -> int:
    """Parse ``--runs`` and ``--quick`` (one run of each case) for the benchmarks that repeat
    whole workflow runs; returns the number of runs."""
    parser.add_argument(
        "--runs", type=int, default=runs, help=f"runs of each case (default {runs})"
    )
    parser.add_argument("--quick", action="store_true", help="one run of each case")
    args = parser.parse_args()
    return 1 if args.quick else int(args.runs)


def round_options(
    parser: argparse.ArgumentParser, rounds: int, seconds: float
) -> argparse.Namespace:
    """Parse ``--quick``, ``--rounds`` and ``--seconds`` (with the script's own options) for the
    benchmarks that alternate servers in rounds: ``--quick`` is one round of 1-second runs."""
    parser.add_argument("--quick", action="store_true", help="one short round, to check it runs")
    parser.add_argument(
        "--rounds", type=int, help=f"alternating rounds (default {rounds}, quick 1)"
    )
    parser.add_argument(
        "--seconds", type=float, help=f"seconds per run (default {seconds:g}, quick 1)"
    )
    args = parser.parse_args()
    args.rounds = args.rounds or (1 if args.quick else rounds)
    args.seconds = args.seconds or (1.0 if args.quick else seconds)
    return args
