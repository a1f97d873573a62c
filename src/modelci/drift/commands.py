"""``modelci monitor drift``; the other monitor commands are in ``github_commands``.

``register(sub)`` only builds parsers; the handlers import pandas, scipy and matplotlib when they
run. ``drift`` exits 0 (no drift), ``DRIFT_EXIT`` (drift or degraded performance), or 1/2 on an
error (bad data, bad config), so a script can tell "drifted" from "could not check".
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from modelci.layout import DEFAULT_PATHS
from modelci.options import add_params

DRIFT_EXIT = 3
DEFAULT_OUT = ".modelci/drift"


def _settings(params_path: Path) -> tuple[Any, Any, Any]:
    """The schema (with serving's trusted types), the gate rules and the monitor thresholds."""
    from modelci.config import MonitorParams, check_monitor, load_section, load_service_params
    from modelci.errors import ConfigError

    service = load_service_params(params_path)
    monitor = load_section(params_path, "monitor", MonitorParams)
    try:
        check_monitor(monitor, service.data)
    except ValueError as error:
        raise ConfigError(f"{params_path}: {error}") from None
    return service, dict(service.gate.metrics), monitor


def _read_reference(path: Path, data: Any) -> Any:
    import pandas as pd

    from modelci.errors import DataError

    if not path.is_file():
        raise DataError(f"{path}: reference data not found (run dvc repro, or pass --reference)")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read the reference data: {error}") from None
    missing = [column for column in data.features if column not in frame.columns]
    if missing:
        raise DataError(f"{path}: feature column(s) {', '.join(map(repr, missing))} missing")
    return frame


def _test_metrics(path: Path) -> dict[str, Any]:
    from modelci.errors import DataError

    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: test-set metrics not found (run dvc repro)") from None
    except ValueError as error:
        raise DataError(f"{path}: not JSON: {error}") from None
    if not isinstance(metrics, dict):
        raise DataError(f"{path}: expected a JSON object of metrics")
    return metrics


def sample(frame: Any, rows: int) -> Any:
    """At most ``rows`` rows of ``frame``, drawn without replacement with a fixed seed."""
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=0)


def cmd_drift(args: argparse.Namespace) -> int:
    from modelci.drift import engine, render
    from modelci.drift.inputs import read_window
    from modelci.drift.realized import join_labels, model_outputs, realized_performance
    from modelci.errors import DataError
    from modelci.fileio import write_json, write_text
    from modelci.modelfile import load_model

    service, rules, monitor = _settings(Path(args.params))
    data = service.data
    reference = _read_reference(Path(args.reference or monitor.reference), data)
    current = read_window(Path(args.current))
    model_path = Path(args.model)
    model = load_model(model_path, service.trusted_types) if model_path.is_file() else None
    if model is None and args.labels:
        raise DataError(f"{model_path}: model file not found (--labels needs the model)")
    engine.check_window(reference, current, data, monitor)
    outputs = None
    if model is not None:
        ref_out, kind = model_outputs(model, sample(reference, monitor.prediction_rows), data)
        cur_out, _ = model_outputs(model, sample(current, monitor.prediction_rows), data)
        outputs = (ref_out, cur_out, kind)
    result = engine.analyse(reference, current, data, monitor, outputs)
    realized = None
    if args.labels:
        labels = read_window(Path(args.labels))
        joined = join_labels(current, labels, data.target, args.labels)
        realized = realized_performance(
            model, joined, data, rules, _test_metrics(Path(args.metrics)), monitor.min_rows
        )
    out = Path(args.out)
    plots = (
        []
        if args.no_plots
        else render.write_plots(out, result, reference, current, outputs[:2] if outputs else None)
    )
    title = f"modelci drift: {Path(args.current).name}"
    payload = {
        **result.to_dict(),
        "current": str(args.current),
        "reference": str(args.reference or monitor.reference),
        "degraded": bool(realized and realized.degraded),
        "realized": realized.to_dict() if realized else None,
        "retrain": monitor.retrain,
        "plots": [f"plots/{name}.png" for name in plots],
    }
    write_json(out / "drift.json", _jsonable(payload))
    write_text(out / "drift.md", render.markdown(result, realized, plots, title))
    for line in render.console_lines(result, realized):
        print(line)
    print(f"drift: wrote {out / 'drift.md'}, {out / 'drift.json'} and {len(plots)} plots")
    return DRIFT_EXIT if result.drifted or (realized is not None and realized.degraded) else 0


def _jsonable(value: Any) -> Any:
    """Strict JSON: NaN and infinities as strings, tuples as lists."""
    from modelci.judge.gate import json_number

    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, float):
        return json_number(value)
    return value


def register(sub: Any) -> None:
    """Add ``drift`` to the ``modelci monitor`` group."""
    drift = sub.add_parser(
        "drift",
        help="compare a window of production data with the training data (exit 3 on drift)",
        description="Compare production inputs (the serving prediction log, or a CSV/Parquet/"
        "JSONL batch) and the model's predictions on them with the reference data, per feature, "
        "against the thresholds of the monitor: section of --params; with --labels, also the "
        "realized metrics against the test-set metrics, by the gate's rules. Writes drift.md, "
        "drift.json and PNG plots. Exit 0: no drift; 3: drift or degraded performance; "
        "1 or 2: the check could not run.",
    )
    drift.add_argument(
        "--current", required=True, metavar="PATH", help="prediction-log directory or data file"
    )
    drift.add_argument(
        "--reference", metavar="FILE", help="reference data (default: monitor.reference)"
    )
    drift.add_argument(
        "--out", default=DEFAULT_OUT, metavar="DIR", help="output dir (default: %(default)s)"
    )
    drift.add_argument(
        "--labels",
        metavar="FILE",
        help="ground truth joined one to one by row_id (or request_id) and the target",
    )
    drift.add_argument(
        "--model",
        default=DEFAULT_PATHS.model.as_posix(),
        metavar="FILE",
        help="model whose predictions are compared (default: %(default)s; skipped if absent)",
    )
    drift.add_argument(
        "--metrics",
        default=DEFAULT_PATHS.metrics.as_posix(),
        metavar="FILE",
        help="the model's test-set metrics, the baseline for --labels (default: %(default)s)",
    )
    drift.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    add_params(drift, "its data:, gate: and monitor: sections")
    drift.set_defaults(handler=cmd_drift)
