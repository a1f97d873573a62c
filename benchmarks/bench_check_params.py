"""`modelci check-params` against what it cannot avoid importing, side by side; writes
docs/benchmarks.md.

Each command runs in a fresh process in this repository (its params.yaml), the commands
interleaved within each round; wall time and CPU time (user + system of the child) are medians
over the rounds. On a loaded machine the wall time includes the wait for a core: CPU time is the
number to hold to the aim (under 1 s). The commands:

* ``check-params --no-cache``: the command with its model check (what a changed params file,
  distribution or own code costs);
* ``check-params``: the command when the same check passed before (the aim): it loads and
  validates params.yaml and skips the model check (docs/pipeline.md);
* ``import sklearn.base``: what validating estimator params with scikit-learn's own
  constraints costs at least (scikit-learn's base imports pandas and scipy.stats itself);
* ``import modelci.config``: loading and validating params.yaml alone;
* ``python -c pass``: the interpreter.

    python benchmarks/bench_check_params.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import median, table, write_section

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COMMANDS = {
    "check-params --no-cache": [str(BIN / "modelci"), "check-params", "--no-cache"],
    "check-params": [str(BIN / "modelci"), "check-params"],
    "import sklearn.base": [sys.executable, "-c", "import sklearn.base"],
    "import modelci.config": [sys.executable, "-c", "import modelci.config"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def run(command: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, capture_output=True)  # noqa: S603
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, command in COMMANDS.items():
            samples[name].append(run(command))
    load_after = os.getloadavg()[0]
    rows = [
        [
            name,
            f"{median([s[0] for s in values]):.2f}",
            f"{median([s[1] for s in values]):.2f}",
        ]
        for name, values in samples.items()
    ]
    cpu = median([s[1] for s in samples["check-params"]])
    full = median([s[1] for s in samples["check-params --no-cache"]])
    floor = median([s[1] for s in samples["import sklearn.base"]])
    body = (
        f"Fresh processes in this repository, interleaved, median of {args.repeat}; load "
        f"average (1 min) before and after: {load_before:.1f} and {load_after:.1f} on "
        f"{os.cpu_count()} CPUs.\n\n"
        + table(["command", "wall s", "CPU s"], rows)
        + f"\n\n- Aim: `check-params` under 1 s: {cpu:.2f} s CPU when the same check passed "
        f"before -> {'met' if cpu < 1 else 'NOT met'}; with the model check "
        f"(`--no-cache`, or anything in its key changed) {full:.2f} s, of which importing "
        f"scikit-learn's base alone is {floor:.2f} s ({floor / full:.0%}).\n"
    )
    path = write_section(
        "check-params", "check-params", body, "python benchmarks/bench_check_params.py"
    )
    print(body)
    print(f"bench-check-params: wrote {path}")


if __name__ == "__main__":
    main()
