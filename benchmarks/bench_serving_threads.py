"""Large batches with and without intra-op threads (``serve --batch-threads``), side by side.

In a fresh clone of the committed repository the pipeline runs once (`dvc repro`), then four
`modelci serve --model models/model.skops` servers (the build-time ONNX export) run at once on
127.0.0.1, each started and stopped by PID: 1 worker and one worker per CPU, each with
``--batch-threads 0`` (today's default: a batch of 1,000 rows or more scored with one intra-op
thread per CPU) and ``--batch-threads 1`` (one thread, as before). wrk POSTs `/invocations`
bodies (`dataframe_split`) of 1 and 100 rows at 64 connections (the cells that must not lose),
10,000 and 100,000 rows at 1 and 8; every round runs each cell on every server one
after the other, and the on/off ratios are taken within a round.

The limit is the model call alone, in process: the same ONNX bytes, a session with one intra-op
thread per CPU (and, for reference, one thread), the batch already validated, no HTTP; rows/s,
median of the runs after one warm-up call, measured in every round once the servers' processes
have stopped using CPU (requests wrk gave up on are still being scored when it ends). Load
average (1 min) is recorded before and after: on a shared machine the "idle cores" the threads
are for may not be idle.

    python benchmarks/bench_serving_threads.py [--quick] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import BIN, LUA, REPO, Server, env, process_tree, start, write_bodies, wrk
from report import cpu_seconds, median, round_options, table, write_section

SIZES = [1, 100, 10_000, 100_000]
CELLS = [(1, 64), (100, 64), (10_000, 1), (10_000, 8), (100_000, 1), (100_000, 8)]


def model_limit(repo: Path, body: Path, threads: int, runs: int) -> float:
    """Rows/s of the model call alone on ``body``'s rows: the served ONNX bytes in a session with
    ``threads`` intra-op threads."""
    from modelci.serving.app import loads
    from modelci.serving.payload import batch_from_invocation
    from modelci.serving.runtime import OnnxPredictor
    from modelci.serving.server import ServeConfig, load_served

    served = load_served(
        ServeConfig(model_uri=str(repo / "models/model.skops"), params_path=repo / "params.yaml")
    )
    predictor = served.predictor
    if not isinstance(predictor, OnnxPredictor):
        raise SystemExit("bench-serving-threads: the model is expected to be served with ONNX")
    batch = served.schema.validate(
        batch_from_invocation(loads(body.read_bytes()), served.schema, 10**9)
    )
    feed = predictor.feed(batch)
    session = predictor._session(threads)
    rows = len(next(iter(feed.values())))
    session.run(None, feed)  # a new session's first call sets up its thread pool and buffers
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        session.run(None, feed)
        samples.append(time.perf_counter() - began)
    return rows / median(samples)


def tree_cpu(server: Server) -> float:
    """CPU seconds so far of a server's process and its workers."""
    total = 0.0
    for pid in process_tree(server.process.pid):
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def children_cpu() -> float:
    """CPU seconds of this process's finished children (wrk: the servers are still running)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wait_idle(servers: list[Server], quiet: float = 1.0, timeout: float = 120.0) -> float:
    """Wait until the servers' processes (workers too) use no CPU for ``quiet`` seconds; returns
    the seconds waited. After a wrk cell of large bodies, requests wrk gave up on are still
    scored: a limit measured then shares the cores with them."""
    began = time.monotonic()

    def used() -> float:
        return sum(tree_cpu(server) for server in servers)

    before = used()
    while time.monotonic() - began < timeout:
        time.sleep(quiet)
        now = used()
        if now - before < 0.05 * quiet:
            break
        before = now
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = round_options(parser, 2, 3.0)
    rounds, seconds = args.rounds, args.seconds
    from modelci.serving.workers import cpu_quota

    cores = cpu_quota()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="bench-threads-"))
    servers: list[Server] = []
    try:
        repo = work / "repo"
        subprocess.run(  # noqa: S603
            ["git", "clone", "--quiet", str(REPO), str(repo)], check=True  # noqa: S607
        )
        print("bench-serving-threads: dvc repro in a fresh clone ...", flush=True)
        subprocess.run(  # noqa: S603
            [str(BIN / "dvc"), "repro", "--quiet"], cwd=repo, env=env(), check=True
        )
        bodies = write_bodies(repo, work, SIZES)
        lua = work / "post.lua"
        lua.write_text(LUA, encoding="utf-8")
        # on a loaded machine, 100,000-row bodies at 8 connections queue for a large-body slot
        # longer than the default 5 s (then 503): let them wait as long as wrk does
        ours = [
            *(str(BIN / "modelci"), "serve", "--model", "models/model.skops"),
            *("--large-body-wait", "120"),
        ]
        for workers in (1, cores):
            for threads, label in ((0, "on"), (1, "off")):
                servers.append(
                    Server(
                        f"{workers} worker(s), threads {label}",
                        [*ours, "--workers", str(workers), "--batch-threads", str(threads)],
                        "/ready",
                    )
                )
        for server in servers:
            start(server, repo, f"sqlite:///{repo / 'mlflow.db'}")
        round_limits: dict[tuple[int, int], list[float]] = {}
        # (server, cell) -> per round: (cores the server's processes used, cores wrk used)
        cores_used: dict[tuple[str, tuple[int, int]], list[tuple[float, float]]] = {}
        for index in range(rounds):
            print(f"bench-serving-threads: round {index + 1}/{rounds}", flush=True)
            for cell in CELLS:
                order = servers if index % 2 == 0 else servers[::-1]
                span = min(12.0, max(seconds, 3.0 * (cell[0] // 10_000)))
                for server in order:
                    server_before, wrk_before = tree_cpu(server), children_cpu()
                    began = time.monotonic()
                    rps, p50, _ = wrk(server.port, bodies[cell[0]], cell[1], span, lua)
                    elapsed = time.monotonic() - began
                    server.rps.setdefault(cell, []).append(rps)
                    server.p50.setdefault(cell, []).append(p50)
                    cores_used.setdefault((server.label, cell), []).append(
                        (
                            (tree_cpu(server) - server_before) / elapsed,
                            (children_cpu() - wrk_before) / elapsed,
                        )
                    )
            # the limit within each round, beside its cells: on a shared machine the load moves
            # between rounds, and a limit taken once at the end can be 4x off the cells' moment
            waited = wait_idle(servers)
            print(f"bench-serving-threads: servers idle after {waited:.1f} s", flush=True)
            for size in (10_000, 100_000):
                for threads in (cores, 1):
                    runs = 10 if size < 100_000 else 3
                    limit = model_limit(repo, bodies[size], threads, runs)
                    round_limits.setdefault((size, threads), []).append(limit)
        limits = {key: median(values) for key, values in round_limits.items()}
    finally:
        for server in servers:
            if server.process is not None:
                server.process.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]

    def ratio(on: Server, off: Server, cell: tuple[int, int]) -> float:
        return median([a / b for a, b in zip(on.rps[cell], off.rps[cell], strict=True)])

    rows_out = []
    for cell in CELLS:
        row = [f"{cell[0]:,}", str(cell[1])]
        for pair in (servers[0:2], servers[2:4]):
            on, off = pair
            row += [f"{median(s.rps[cell]) * cell[0]:,.0f}" for s in pair]
            row.append(f"{ratio(on, off, cell):.2f}x")
            if cell[0] >= 10_000:
                shares = [
                    rps * cell[0] / limit
                    for rps, limit in zip(on.rps[cell], round_limits[(cell[0], cores)], strict=True)
                ]
                row.append(f"{median(shares):.0%}")
            else:
                row.append("")
        rows_out.append(row)
    header = ["rows", "conns"]
    for workers in (1, cores):
        header += [
            f"rows/s {workers}w on",
            f"rows/s {workers}w off",
            f"{workers}w on/off",
            f"{workers}w on / limit",
        ]
    cpu_rows = []
    for cell in CELLS[2:]:
        row = [f"{cell[0]:,}", str(cell[1])]
        for on in (servers[0], servers[2]):
            used = cores_used[(on.label, cell)]
            row += [f"{median([u[0] for u in used]):.2f}", f"{median([u[1] for u in used]):.2f}"]
        cpu_rows.append(row)
    cpu_header = ["rows", "conns"]
    for workers in (1, cores):
        cpu_header += [f"{workers}w on: server cores", f"{workers}w on: wrk cores"]
    limit_rows = [
        [f"{size:,}", f"{limits[(size, cores)]:,.0f}", f"{limits[(size, 1)]:,.0f}"]
        for size in (10_000, 100_000)
    ]
    body = (
        f"`modelci serve` with `--batch-threads 0` (on: {cores} intra-op threads for a batch of "
        f"1,000 rows or more) and `--batch-threads 1` (off), wrk for {seconds:g} s per cell "
        f"(longer for large bodies), {rounds} alternating round(s); rows/s are medians over "
        f"rounds, on/off ratios medians of per-round ratios. {cores} CPUs, which wrk shares. "
        f"Load average (1 min) before and after: {load_before:.1f} and {load_after:.1f} "
        f"(above {cores}, other work holds the cores the threads are meant to use).\n\n"
        + table(header, rows_out)
        + "\n\nShares of the limit are medians of per-round shares (each round's rows/s over the "
        "limit measured in that round, after its cells, once the servers are idle, one "
        "warm-up call first). The limit, the model call alone in process (rows/s, median over "
        "rounds):\n\n"
        + table(["rows", f"{cores} threads (the limit)", "1 thread"], limit_rows)
        + "\n\nWhere the cores went during the large cells (CPU seconds per second of the wrk run, "
        "medians over rounds: the server's processes, and wrk itself, which builds and sends "
        f"the bodies on the same {cores} CPUs):\n\n" + table(cpu_header, cpu_rows) + "\n"
    )
    command = "python benchmarks/bench_serving_threads.py" + (" --quick" if args.quick else "")
    path = write_section(
        "serving-threads", "Serving: large batches on intra-op threads", body, command
    )
    print(body)
    print(f"bench-serving-threads: wrote {path}")


if __name__ == "__main__":
    main()
