"""Every step of one large ``/invocations`` request, timed in process; writes docs/benchmarks.md.

In a fresh clone of the committed repository the pipeline runs once (`dvc repro`), then the
served model (`models/model.skops` with its build-time ONNX export) handles one
``dataframe_split`` body of each size through the same functions the request path calls, each
timed on its own: JSON parse, columns, validation (and, as the reference, the type-code check
that a column of one plain type now skips), the model call, the response body, the prediction
metrics, the input monitor and the prediction log's hand-off to its writer thread.
The prediction metrics are timed in one process and in prometheus_client's multiprocess mode
(several workers), each both per batch (``_Metrics.observe_prediction``) and per row (the loop
it replaced, kept here as the reference), side by side and interleaved in one run. The writer
thread's JSON lines for the batch (off the request path, but holding the GIL beside it) are timed
per batch (today) and per row (the reference in tests/predlog_reference.py) as well.

    python benchmarks/bench_serving_stages.py [--quick] [--repeat N] [--rows N ...]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import BIN, REPO, env, write_bodies
from report import median, table, write_section

sys.path.insert(0, str(REPO))
from tests.predlog_reference import per_row_lines


def per_row_observe(metrics: Any, prediction: Any) -> None:
    """The per-row metrics of the serving path (a classifier's) before they became per-batch,
    kept as the reference."""
    metrics.rows.inc(len(prediction.labels))
    for label in prediction.labels.tolist():
        metrics.labels.labels(str(label)).inc()
    for score in prediction.scores.tolist():
        metrics.scores.observe(score)


def by_type_codes(schema: Any, raw: Any) -> None:
    """The vectorised validation before a column of one plain type skipped the type codes,
    kept as the reference (the same checks of every column of a valid batch)."""
    from modelci.serving.colcheck import check_by_type_codes

    for spec in schema.fields:
        check_by_type_codes(spec, raw.columns[spec.name])


def parse_and_columns_before(body: bytes, schema: Any, rows: int) -> Any:
    """JSON parse and columns as before the collector was paused for large bodies (the
    reference): the structure counted in three passes whatever the body's size, rows
    transposed with ``zip``."""
    from modelci.serving.app import _parse_json
    from modelci.serving.schema import RawBatch

    body.count(b",") + body.count(b"[") + body.count(b"{")  # then one pass per byte kind
    split = _parse_json(body)["dataframe_split"]
    data = split["data"]
    set(map(type, data)), set(map(len, data))
    transposed = [list(values) for values in zip(*data, strict=True)]
    columns = dict(zip(split["columns"], transposed, strict=True))
    return RawBatch.from_columns(len(data), columns, schema)


def stages(repo: Path, body: bytes, size: int, repeat: int, work: Path) -> dict[str, list[float]]:
    """Seconds per step over ``repeat`` rounds, the steps interleaved within each round."""
    from prometheus_client import values

    from modelci.serving import defaults
    from modelci.serving.app import _invocations_payload, _Metrics, _parse_json, dumps
    from modelci.serving.input_monitor import InputMonitor
    from modelci.serving.payload import batch_from_invocation, bound_json_structure, gc_paused
    from modelci.serving.predlog import PredictionLog
    from modelci.serving.server import ServeConfig, load_served

    served = load_served(
        ServeConfig(model_uri=str(repo / "models/model.skops"), params_path=repo / "params.yaml")
    )
    schema, predictor = served.schema, served.predictor
    if predictor.classes is None:
        raise SystemExit(
            "bench-serving-stages: the pipeline's model is expected to be a classifier"
        )
    one = _Metrics()
    monitor = InputMonitor(schema.fields, predictor.classes, one.registry)
    log = PredictionLog(work / "log", sample_rate=1.0, queue_size=repeat + 1)
    # Multiprocess mode swaps prometheus_client's value class for the whole process: last.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")
    (work / "metrics").mkdir(parents=True)
    single_value = values.ValueClass
    many = _Metrics(str(work / "metrics"))
    values.ValueClass = single_value
    out: dict[str, list[float]] = {}

    def timed(name: str, step: Callable[..., Any], *args: Any) -> Any:
        began = time.perf_counter()
        result = step(*args)
        out.setdefault(name, []).append(time.perf_counter() - began)
        return result

    def parse(body: bytes) -> Any:
        bound_json_structure(body, len(schema.fields), rows)
        return _parse_json(body)

    rows = max(defaults.MAX_ROWS, size)  # the server's default limit, as it serves
    fields = served.log_fields

    def columns(box: list[Any]) -> Any:
        # the parsed body is freed here, as on the request path (its deallocation counts)
        return batch_from_invocation(box.pop(), schema, rows)

    for _ in range(repeat):
        timed(
            "JSON parse and columns, collector on, zip (before)",
            parse_and_columns_before, body, schema, rows,
        )  # fmt: skip
        with gc_paused():  # as the request path: parse and columns, collector paused
            box = [timed("JSON parse", parse, body)]
            raw = timed("columns", columns, box)
        timed("validation, type codes per value (before)", by_type_codes, schema, raw)
        batch = timed("validation", schema.validate, raw)
        prediction = timed(f"model call ({predictor.runtime})", predictor.predict, batch)
        timed("response body", lambda p: dumps(_invocations_payload(served, p, "p")), prediction)
        for label, metrics in (("1 process", one), ("multiprocess", many)):
            timed(f"metrics, {label}, per row (before)", per_row_observe, metrics, prediction)
            timed(f"metrics, {label}, per batch", metrics.observe_prediction, prediction, True)
        timed("input monitor", monitor.observe, batch, prediction.scores, prediction.labels)
        timed("prediction log hand-off", log.submit, fields, batch, prediction, "r", "p")
        item = (time.time(), fields, batch, prediction, ("r", "p", False))
        timed("prediction log lines, per row (before; writer thread)", per_row_lines, item)
        timed("prediction log lines, per batch (writer thread)", log._lines, item)
    log.close()
    return out


# The steps a worker runs for a request besides the model call (metrics: one process, per batch).
REQUEST_PATH = [
    "JSON parse",
    "columns",
    "validation",
    "response body",
    "metrics, 1 process, per batch",
    "input monitor",
    "prediction log hand-off",
]


def request_path_share(results: dict[int, dict[str, list[float]]], sizes: list[int]) -> str:
    """A sentence per size: the request path's steps other than the model call, in ms and as a
    share of the model call, and the most any server can reach on the same cores when those
    steps run on one of them and the model call on all."""
    lines = []
    for size in sizes:
        steps = sum(median(results[size][name]) for name in REQUEST_PATH)
        model = next(median(v) for k, v in results[size].items() if k.startswith("model call"))
        lines.append(
            f"At {size:,} rows the steps besides the model call take {steps * 1000:.1f} ms, "
            f"{steps / model:.2f}x the model call: CPU time per request is "
            f"{(steps + model) / model:.2f}x the model's alone, so a server that keeps every "
            f"core busy reaches at most {model / (steps + model):.0%} of the model limit."
        )
    return " ".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few repeats, to check it runs")
    parser.add_argument("--repeat", type=int, help="rounds per size (default 30, quick 3)")
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000], help="body sizes")
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 30)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        work = Path(tmp)
        repo = work / "repo"
        subprocess.run(  # noqa: S603
            ["git", "clone", "--quiet", str(REPO), str(repo)], check=True  # noqa: S607
        )
        print("bench-serving-stages: dvc repro in a fresh clone ...", flush=True)
        subprocess.run(  # noqa: S603
            [str(BIN / "dvc"), "repro", "--quiet"], cwd=repo, env=env(), check=True
        )
        os.environ["OMP_NUM_THREADS"] = "1"  # as each serving worker
        bodies = write_bodies(repo, work, args.rows)
        results = {
            size: stages(repo, bodies[size].read_bytes(), size, repeat, work / f"run-{size}")
            for size in args.rows
        }
    load = os.getloadavg()[0]
    names = list(results[args.rows[0]])
    header = ["step", *(f"ms, {size:,} rows" for size in args.rows)]
    body_rows = [
        [name, *(f"{median(results[size][name]) * 1000:.2f}" for size in args.rows)]
        for name in names
    ]
    body = (
        f"One `/invocations` body (`dataframe_split`) through each step of the request path in "
        f"process, one OpenMP thread; median ms of {repeat} interleaved rounds, load average "
        f"{load:.1f}. The metrics step is timed per batch (today) and per row (before issue 24's "
        f"change, the reference), in one process and in multiprocess mode (several workers). "
        f"The prediction log's JSON lines are written by its own thread, off the request "
        f"path but holding the GIL beside it: per batch (today) and per row (before).\n\n"
        + table(header, body_rows)
        + "\n\n"
        + request_path_share(results, args.rows)
        + "\n"
    )
    command = "python benchmarks/bench_serving_stages.py" + (" --quick" if args.quick else "")
    path = write_section("serving-stages", "Serving: the steps of a large request", body, command)
    print(body)
    print(f"bench-serving-stages: wrote {path}")


if __name__ == "__main__":
    main()
