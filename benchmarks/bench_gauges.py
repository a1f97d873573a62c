"""What the live input gauges cost: `modelci serve` with and without them, side by side.

Both servers serve this checkout's `models/model.skops` (run `dvc repro` first; the script runs
it, a no-op when up to date) on 127.0.0.1 at the same time, one with the gauges (the shipped
server) and one through `benchmarks/serve_without_gauges.py`, whose `observe`/`reject` hooks do
nothing. wrk (Debian's `wrk`) sends `POST /predict` with a 1-row and a 100-row body, alternating
between the servers for several rounds; the table gives the medians of wrk's p50 latency and
throughput, and their ratio. Writes the `gauges` section of docs/benchmarks.md.

    python benchmarks/bench_gauges.py [--quick] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.process_support
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import cpu_seconds, median, round_options, table, write_section

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
HEADER = [
    "body", "p50 ms without", "p50 ms with", "req/s without", "req/s with", "req/s ratio",
    "CPU us/req without", "CPU us/req with", "CPU ratio",
]  # fmt: skip


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELCI_"))}
    out["PATH"] = f"{BIN}{os.pathsep}{out['PATH']}"
    out["OMP_NUM_THREADS"] = "1"
    return out


def bodies(count: int) -> bytes:
    import pandas as pd

    from modelci.config import load_params

    params = load_params(REPO / "params.yaml")
    frame = pd.read_parquet(REPO / "data/prepared/test.parquet")[params.data.features]
    rows = json.loads(frame.head(count).to_json(orient="records"))
    return json.dumps(rows[0] if count == 1 else rows).encode()


def wrk(
    port: int, script: Path, seconds: float, connections: int, pid: int
) -> tuple[float, float, float]:
    """(requests/s, p50 seconds, server CPU seconds per request) of one wrk run."""
    cpu_before = cpu_seconds(pid)
    done = subprocess.run(  # noqa: S603 - wrk with fixed arguments
        [shutil.which("wrk") or "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}/predict"],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    )  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", done.stdout)
    if rate is None or p50 is None or "Non-2xx or 3xx responses" in done.stdout:
        sys.exit(f"bench-gauges: unexpected wrk output:\n{done.stdout}")
    requests = re.search(r"(\d+) requests in", done.stdout)
    cpu = (cpu_seconds(pid) - cpu_before) / max(1, int(requests.group(1)) if requests else 1)
    return float(rate.group(1)), float(p50.group(1)) * UNITS[p50.group(2)], cpu


def timed(call: Callable[[], object], calls: int) -> float:
    """Median CPU seconds (of this thread: a busy machine does not count) per call over five
    runs of ``calls`` calls."""
    samples = []
    for _ in range(5):
        started = time.thread_time()
        for _ in range(calls):
            call()
        samples.append((time.thread_time() - started) / calls)
    return float(median(samples))


def in_process() -> list[list[str]]:
    """The gauges' cost per batch in process, beside the validation of the same rows."""
    import numpy as np
    import pandas as pd
    from prometheus_client import CollectorRegistry

    from modelci.config import load_params
    from modelci.serving.input_monitor import InputMonitor
    from modelci.serving.schema import InputSchema

    params = load_params(REPO / "params.yaml")
    schema = InputSchema.from_params(params.data)
    frame = pd.read_parquet(REPO / "data/prepared/test.parquet")[params.data.features]
    out = []
    for count, calls in ((1, 5000), (100, 500)):
        rows = json.loads(frame.head(count).to_json(orient="records"))
        columns = schema.columns_from_records(rows)
        monitor = InputMonitor(schema.fields, [0, 1], CollectorRegistry())
        scores = np.linspace(0, 1, count)
        labels = (scores > 0.5).astype("int64")

        observe = timed(partial(monitor.observe, columns, scores, labels), calls)
        validate = timed(partial(schema.columns_from_records, rows), calls)
        out.append([f"{count} row(s)", f"{observe * 1e6:.1f}", f"{validate * 1e6:.1f}",
                    f"{observe / validate:.2f}"])  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = round_options(parser, 7, 5.0)
    rounds, seconds = args.rounds, args.seconds
    if shutil.which("wrk") is None:
        sys.exit("bench-gauges: wrk not found (Debian package wrk; make system-deps)")
    dvc = [str(BIN / "dvc"), "repro", "--quiet"]
    subprocess.run(dvc, cwd=REPO, env=env(), check=True)  # noqa: S603 - the venv's dvc

    from tests.process_support import ServerProcess, free_port

    serve = ["--model", "models/model.skops", "--log-sample-rate", "0"]
    variants = {
        "with gauges": [str(BIN / "modelci"), "serve", *serve],
        "without gauges": [
            sys.executable,
            str(REPO / "benchmarks/serve_without_gauges.py"),
            *serve,
        ],
    }
    servers: dict[str, Any] = {}
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as work:
        scripts = {}
        for label, count in (("1 row", 1), ("100 rows", 100)):
            body = bodies(count)
            script = Path(work) / f"{count}.lua"
            script.write_text(
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(body.decode())}\n",
                encoding="utf-8",
            )
            scripts[label] = script
        try:
            for name, command in variants.items():
                port = free_port()
                servers[name] = ServerProcess(
                    [*command, "--port", str(port)], port, cwd=REPO, env=env()
                )
            for server in servers.values():
                server.wait_ready(timeout=180)
            for label, script in scripts.items():
                for server in servers.values():  # warm-up
                    wrk(server.port, script, 1.0, 4, server.pid)
                for round_ in range(rounds):  # the order alternates: load drifts cancel out
                    order = list(servers.items())
                    for name, server in order if round_ % 2 == 0 else order[::-1]:
                        results.setdefault((label, name), []).append(
                            wrk(server.port, script, seconds, 4, server.pid)
                        )
        finally:
            for server in servers.values():
                server.cleanup()

    rows = []
    verdicts = []
    for label in scripts:
        with_runs, without_runs = (
            results[(label, "with gauges")],
            results[(label, "without gauges")],
        )
        # Each round's pair ran back to back: the medians of the per-round ratios.
        pairs = list(zip(with_runs, without_runs, strict=True))
        ratio = median([w[0] / b[0] for w, b in pairs])
        cpu_ratio = median([b[2] / w[2] for w, b in pairs])
        rows.append(
            [
                label,
                f"{median([r[1] for r in without_runs]) * 1000:.3f}",
                f"{median([r[1] for r in with_runs]) * 1000:.3f}",
                f"{median([r[0] for r in without_runs]):.0f}",
                f"{median([r[0] for r in with_runs]):.0f}",
                f"{ratio:.3f}",
                f"{median([r[2] for r in without_runs]) * 1e6:.0f}",
                f"{median([r[2] for r in with_runs]) * 1e6:.0f}",
                f"{cpu_ratio:.3f}",
            ]
        )
        met = "met" if cpu_ratio >= 0.9 else "NOT met"
        verdicts.append(
            f"- {label}: server CPU per request without / with the gauges {cpu_ratio:.3f} (the "
            f"throughput one core sustains), wrk throughput ratio {ratio:.3f} -> {met}"
        )
    micro = in_process()
    body = (
        f"`POST /predict` on `models/model.skops`, wrk `-t1 -c4`, {rounds} rounds of {seconds:g} s "
        "per server and body, the two servers back to back in alternating order; medians, and the "
        "median of the per-round throughput ratios. Both servers run at once; the baseline is "
        "`benchmarks/serve_without_gauges.py` (the hooks are no-ops). Aim: the gauges cost under "
        "10% of throughput. On a shared machine wrk's numbers move with the load; the server "
        "processes' CPU time per request (from /proc) does not, and its ratio is the throughput "
        "ratio of a server with a core to itself.\n\n"
        + table(HEADER, rows)
        + "\n\n"
        + "\n".join(verdicts)
        + "\n\nIn process, the same rows (median CPU us per batch; the gauges' `observe`, "
        "flushes included, against the request validation of the same batch):\n\n"
        + table(["batch", "observe us", "validation us", "observe / validation"], micro)
    )
    invocation = "python benchmarks/bench_gauges.py" + (" --quick" if args.quick else "")
    path = write_section("gauges", "Live input gauges: serving overhead", body, invocation)
    print(body)
    print(f"bench-gauges: wrote {path}")


if __name__ == "__main__":
    main()
