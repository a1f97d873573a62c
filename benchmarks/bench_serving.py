"""Serving latency and throughput, side by side on one registered model; writes docs/benchmarks.md.

In a fresh clone of the committed repository the pipeline runs once (`dvc repro`), its MLflow run
is registered as `models:/bench-serving@champion`, and in one run of this script:

* the in-process floor: the loaded model's `predict` on a one-row DataFrame (scikit-learn), and
  the ONNX Runtime predictor `modelci serve` uses when the model converts;
* `modelci serve --model models:/bench-serving@champion` (`/predict` and `/invocations`), and
  with `--runtime sklearn` (the same HTTP stack on the scikit-learn runtime);
* `mlflow models serve -m models:/bench-serving@champion --env-manager local`;

each measured for single-row latency (p50/p99 over sequential requests on one keep-alive
connection) and throughput with 1 and 8 concurrent connections (a bounded Python client, threads
with one keep-alive connection each, for a fixed duration). Client and servers share the machine.
All servers listen on 127.0.0.1 and are started and stopped by PID.

    python benchmarks/bench_serving.py [--quick] [--requests N] [--seconds S]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import median, percentile, table, write_section

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAME = "bench-serving"
URI = f"models:/{NAME}@champion"


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MODELCI_"))}
    out["PATH"] = f"{BIN}{os.pathsep}{out['PATH']}"
    # One OpenMP thread for everyone: single-row predictions are slower with a spinning pool.
    out["OMP_NUM_THREADS"] = "1"
    out.update(extra)
    return out


def prepare(work: Path) -> tuple[Path, str]:
    """Clone, run the pipeline, register its run as NAME@champion; returns (repo, tracking URI)."""
    repo = work / "repo"
    subprocess.run(  # noqa: S603
        ["git", "clone", "--quiet", str(REPO), str(repo)], check=True  # noqa: S607
    )
    (repo / "mlflow.db").unlink(missing_ok=True)
    print("bench-serving: dvc repro in a fresh clone ...", flush=True)
    subprocess.run(  # noqa: S603
        [str(BIN / "dvc"), "repro", "--quiet"], cwd=repo, env=env(), check=True
    )
    tracking = f"sqlite:///{repo / 'mlflow.db'}"
    import mlflow
    from mlflow import MlflowClient

    from modelci.fileio import file_digest

    mlflow.set_tracking_uri(tracking)
    client = MlflowClient(tracking)
    sha256 = file_digest(repo / "models/model.skops")
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`modelci.model_sha256` = '{sha256}'",
        output_format="list",
    )
    run_id = runs[0].info.run_id
    version = mlflow.register_model(f"runs:/{run_id}/model", NAME)
    client.set_model_version_tag(NAME, version.version, "modelci.model_sha256", sha256)
    client.set_registered_model_alias(NAME, "champion", version.version)
    return repo, tracking


def sample_rows(repo: Path, count: int) -> list[dict[str, Any]]:
    import pandas as pd

    from modelci.config import load_params

    params = load_params(repo / "params.yaml")
    frame = pd.read_parquet(repo / "data/prepared/test.parquet")[params.data.features]
    return list(frame.head(count).to_dict(orient="records"))


# -- in process ----------------------------------------------------------------------------


def time_calls(call: Callable[[int], object], count: int, warmup: int) -> list[float]:
    for index in range(warmup):
        call(index)
    samples = []
    for index in range(count):
        start = time.perf_counter()
        call(index)
        samples.append(time.perf_counter() - start)
    return samples


def in_process(repo: Path, tracking: str, rows: list[dict[str, Any]], count: int) -> dict[str, Any]:
    import mlflow.pyfunc
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from modelci import model_source
    from modelci.config import load_params
    from modelci.serving.runtime import build_predictor
    from modelci.serving.schema import InputSchema

    params = load_params(repo / "params.yaml")
    loaded = model_source.load(URI, extra_trusted=params.train.trusted_types, tracking_uri=tracking)
    threadpool_limits(limits=1)  # after loading: it limits only the libraries already loaded
    frames = [pd.DataFrame([row]) for row in rows]
    n = len(frames)
    results = {
        "sklearn predict, 1-row DataFrame": time_calls(
            lambda i: loaded.model.predict(frames[i % n]), count, 50
        )
    }
    schema = InputSchema.from_params(params.data)
    predictor, note = build_predictor(loaded.model, schema, "auto")
    columns = [schema.columns_from_records([row]) for row in rows]
    if predictor.runtime == "onnx":
        results["ONNX Runtime predictor (validated row)"] = time_calls(
            lambda i: predictor.predict(columns[i % n]), count, 50
        )
    mlflow.set_tracking_uri(tracking)
    pyfunc = mlflow.pyfunc.load_model(URI)
    results["MLflow pyfunc predict, 1-row DataFrame"] = time_calls(
        lambda i: pyfunc.predict(frames[i % n]), count, 50
    )
    return {"samples": results, "runtime_note": note}


# -- over HTTP ------------------------------------------------------------------------------


class Client:
    def __init__(self, port: int, path: str, bodies: list[bytes]) -> None:
        self.port, self.path, self.bodies = port, path, bodies
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.headers = {"Content-Type": "application/json"}

    def call(self, index: int) -> None:
        self.connection.request(
            "POST", self.path, self.bodies[index % len(self.bodies)], self.headers
        )
        response = self.connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{self.path}: HTTP {response.status}")

    def close(self) -> None:
        self.connection.close()


def throughput(
    port: int, path: str, bodies: list[bytes], connections: int, seconds: float
) -> float:
    counts = [0] * connections
    errors: list[BaseException] = []
    stop = threading.Event()

    def worker(slot: int) -> None:
        client = Client(port, path, bodies)
        try:
            index = slot
            while not stop.is_set():
                client.call(index)
                counts[slot] += 1
                index += connections
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(connections)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(60)
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{path}: {errors[0]!r}")
    return sum(counts) / elapsed


def measure_server(
    label: str, port: int, path: str, bodies: list[bytes], count: int, seconds: float
) -> dict[str, Any]:
    client = Client(port, path, bodies)
    try:
        latencies = time_calls(client.call, count, min(100, count))
    finally:
        client.close()
    return {
        "label": label,
        "latencies": latencies,
        "rps": {c: throughput(port, path, bodies, c, seconds) for c in (1, 8)},
    }


def start_server(args: list[str], port: int, repo: Path, tracking: str, ready: str) -> Any:
    from modelci.serving.process import ServerProcess

    server = ServerProcess(args, port, cwd=repo, env=env(MLFLOW_TRACKING_URI=tracking))
    try:
        server.wait_ready(ready, timeout=180)
    except BaseException:
        server.cleanup()
        raise
    return server


def ms(value: float) -> str:
    return f"{value * 1000:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, to check it runs")
    parser.add_argument("--requests", type=int, help="sequential requests per server")
    parser.add_argument("--seconds", type=float, help="duration of each throughput run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args()
    count = args.requests or (200 if args.quick else 2000)
    seconds = args.seconds or (1.0 if args.quick else 10.0)

    from modelci.serving.process import free_port, http_get

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        repo, tracking = prepare(work)
        rows = sample_rows(repo, 100)
        floor = in_process(repo, tracking, rows, count)
        names = list(rows[0])
        split = [
            json.dumps({"dataframe_split": {"columns": names, "data": [list(r.values())]}}).encode()
            for r in rows
        ]
        records = [json.dumps(row).encode() for row in rows]

        measured = []
        port = free_port()
        modelci = [str(BIN / "modelci"), "serve", "--model", URI, "--port", str(port)]
        print("bench-serving: modelci serve ...", flush=True)
        server = start_server(modelci, port, repo, tracking, "/ready")
        try:
            measured.append(
                measure_server("`modelci serve` POST /predict", port, "/predict", records, count,
                               seconds)
            )  # fmt: skip
            measured.append(
                measure_server("`modelci serve` POST /invocations", port, "/invocations", split,
                               count, seconds)
            )  # fmt: skip
            runtime = json.loads(http_get(port, "/model")[1])["runtime"]
        finally:
            server.cleanup()

        port = free_port()
        sklearn_cmd = [*modelci[:-1], str(port), "--runtime", "sklearn"]
        print("bench-serving: modelci serve --runtime sklearn ...", flush=True)
        server = start_server(sklearn_cmd, port, repo, tracking, "/ready")
        try:
            measured.append(
                measure_server("`modelci serve --runtime sklearn` POST /invocations", port,
                               "/invocations", split, count, seconds)
            )  # fmt: skip
        finally:
            server.cleanup()

        port = free_port()
        mlflow_cmd = [str(BIN / "mlflow"), "models", "serve", "-m", URI, "--env-manager",
                      "local", "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        print("bench-serving: mlflow models serve ...", flush=True)
        server = start_server(mlflow_cmd, port, repo, tracking, "/ping")
        try:
            measured.append(
                measure_server("`mlflow models serve` POST /invocations", port, "/invocations",
                               split, count, seconds)
            )  # fmt: skip
        finally:
            server.cleanup()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    rows_out = []
    for label, samples in floor["samples"].items():
        rows_out.append(
            [f"in process: {label}", ms(median(samples)), ms(percentile(samples, 99)), "-", "-"]
        )
    for item in measured:
        lat = item["latencies"]
        rows_out.append(
            [item["label"], ms(median(lat)), ms(percentile(lat, 99)),
             f"{item['rps'][1]:.0f}", f"{item['rps'][8]:.0f}"]
        )  # fmt: skip
    sk_floor = median(floor["samples"]["sklearn predict, 1-row DataFrame"])
    ours = median(measured[1]["latencies"])
    ours_predict = median(measured[0]["latencies"])
    theirs = measured[-1]
    onnx_floor = floor["samples"].get("ONNX Runtime predictor (validated row)")
    aim_latency = 1.5 * sk_floor + 0.001
    ratio_8 = measured[1]["rps"][8] / theirs["rps"][8]
    ratio_1 = measured[1]["rps"][1] / theirs["rps"][1]
    body = (
        f"Single-row requests, {count} sequential per server (p50/p99 in ms), then throughput "
        f"for {seconds:g} s with 1 and 8 concurrent keep-alive connections (requests/s). The "
        "same registered model (`models:/bench-serving@champion`, the pipeline's "
        f"HistGradientBoosting on Titanic) everywhere; `modelci serve` runtime: {runtime} "
        f"({floor['runtime_note']}). OMP_NUM_THREADS=1 for all; one server process each "
        "(MLflow's default of 1 uvicorn worker); the Python client shares the 2 cores.\n\n"
        + table(["", "p50 ms", "p99 ms", "req/s, 1 conn", "req/s, 8 conns"], rows_out)
        + "\n\n"
        f"- Aim 1, single-row p50 within 1.5x the scikit-learn floor + 1 ms "
        f"({ms(aim_latency)} ms): `/invocations` {ms(ours)} ms, `/predict` {ms(ours_predict)} ms "
        f"-> {'met' if max(ours, ours_predict) <= aim_latency else 'NOT met'}"
        + (
            f"; against the ONNX Runtime floor ({ms(1.5 * median(onnx_floor) + 0.001)} ms): "
            f"{'met' if max(ours, ours_predict) <= 1.5 * median(onnx_floor) + 0.001 else 'NOT met'}"
            if onnx_floor
            else ""
        )
        + ".\n"
        f"- Aim 2, at least 5x the throughput of `mlflow models serve`: {ratio_1:.1f}x with 1 "
        f"connection, {ratio_8:.1f}x with 8 -> "
        f"{'met' if min(ratio_1, ratio_8) >= 5 else 'NOT met'}.\n"
    )
    command = "python benchmarks/bench_serving.py" + (" --quick" if args.quick else "")
    path = write_section("serving", "Serving: latency and throughput", body, command)
    print(body)
    print(f"bench-serving: wrote {path}")


if __name__ == "__main__":
    main()
