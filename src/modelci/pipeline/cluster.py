"""The stages on a Dask cluster (``compute.engine: dask``, docs/scale.md).

prepare: the workers read ``data.source`` in place (the files and versions the ``source`` stage
recorded), validate each partition against the declared columns with the local path's checks and
messages, and split each row by a hash of its key (or of the whole row), so the split does not
depend on partitions or workers. The runner receives one partition at a time and writes the splits
as partitioned Parquet (``part-00000.parquet``...), DVC outputs like the local engine's files.

train: each partition of the train split goes to one worker, chosen by the partition's number
among the workers ordered by name; XGBoost's or LightGBM's own Dask learner fits there. The model
is saved as the local engine's is: a scikit-learn Pipeline (the declared columns encoded as the
schema says) ending in the library's scikit-learn estimator, in a skops file, so evaluate, export,
the report, the registry and serving read it unchanged.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from modelci.config import ComputeParams, DataParams, Params, PrepareParams, TrainParams
from modelci.errors import ClusterError, ConfigError, DataError
from modelci.fileio import write_json
from modelci.layout import DEFAULT_PATHS, StagePaths

# The learners that train on a Dask cluster through their library's own Dask interface.
DISTRIBUTED_ESTIMATORS = {
    "classification": ("xgboost.dask.DaskXGBClassifier", "lightgbm.DaskLGBMClassifier"),
    "regression": ("xgboost.dask.DaskXGBRegressor", "lightgbm.DaskLGBMRegressor"),
}
SOURCE_RECORD = DEFAULT_PATHS.source
PART = "part-{:05d}.parquet"
_HASH_SPACE = 1 << 32


def _kind(data: DataParams) -> str:
    return "classification" if data.is_classification else "regression"


def check_estimator(params: Params) -> None:
    """With ``compute.engine: dask``, ``train.estimator`` must be a distributed learner of the
    task's kind (and no ``train.pipeline`` factory); with ``local``, it must not be one."""
    names = {name for both in DISTRIBUTED_ESTIMATORS.values() for name in both}
    estimator = params.train.estimator or ""
    choices = DISTRIBUTED_ESTIMATORS[_kind(params.data)]
    if params.compute.engine == "local":
        if estimator in names:
            raise ConfigError(
                f"params.yaml: train.estimator: {estimator} trains on a Dask cluster; set "
                "compute.engine: dask (and compute.address), or use its local class"
            )
        return
    if params.train.pipeline is not None:
        raise ConfigError(
            "params.yaml: train.pipeline: a factory's model cannot train on compute.engine: dask; "
            f"remove it and set train.estimator to one of {', '.join(choices)}"
        )
    if estimator not in choices:
        raise ConfigError(
            f"params.yaml: train.estimator: {estimator} cannot train on compute.engine: dask; "
            f"use one of {', '.join(choices)} ({params.data.task} task)"
        )


def scheduler_address(compute: ComputeParams) -> str:
    if not compute.address.startswith("env:"):
        return compute.address
    variable = compute.address.removeprefix("env:")
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ConfigError(
            f"params.yaml: compute.address: {compute.address} but ${variable} is not set "
            "(the Dask scheduler's address, tcp://HOST:PORT)"
        )
    return value


def connect(compute: ComputeParams) -> Any:
    """A client of the cluster; an unreachable scheduler is a one-line ClusterError."""
    from distributed import Client

    address = scheduler_address(compute)
    try:
        client = Client(address, timeout=30)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {error}") from None
    link = client.dashboard_link
    print(f"dask: {address}, {len(workers_by_name(client))} worker(s), dashboard {link}")
    return client


def record_run(stage: str, client: Any, partitions: int, seconds: float, what: str) -> None:
    """Say where and how ``stage`` ran: in the log, in the GitHub job summary, and in
    :data:`~modelci.layout.COMPUTE_RUN` for ``modelci pr report`` (one entry per stage)."""
    from modelci.github import write_outputs
    from modelci.layout import COMPUTE_RUN

    entry = {
        "engine": "dask",
        "workers": len(workers_by_name(client)),
        "partitions": partitions,
        "seconds": round(seconds, 1),
        "dashboard": str(client.dashboard_link),
    }
    line = (
        f"{what} on {entry['workers']} Dask worker(s), {partitions} partitions, "
        f"{seconds:.1f} s wall time"
    )
    print(f"{stage}: {line}")
    write_outputs({}, f"**{stage}** {line} ([dashboard]({entry['dashboard']}))")
    runs: dict[str, Any] = {}
    if COMPUTE_RUN.is_file():
        try:
            runs = json.loads(COMPUTE_RUN.read_text(encoding="utf-8"))
        except ValueError:
            runs = {}
    write_json(COMPUTE_RUN, {**(runs if isinstance(runs, dict) else {}), stage: entry})


def worker_names(client: Any) -> dict[str, str]:
    """Each worker's name by its address (an address changes when a worker restarts)."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    return {address: str(worker.get("name")) for address, worker in info.items()}


def workers_by_name(client: Any) -> list[str]:
    """The workers' addresses ordered by worker name (addresses change with every start; names
    are what a deployment fixes), the order partitions are dealt to."""
    return [address for address, _ in sorted(worker_names(client).items(), key=lambda w: w[1])]


# ---- prepare ----------------------------------------------------------------------------------


def canonical(frame: pd.DataFrame, data: DataParams) -> pd.DataFrame:
    """Declared dtypes, the same in every partition (a nullable int is float everywhere, not only
    where a partition holds a null), so a row hashes and writes alike wherever it falls."""
    out = frame.copy()
    for name, spec in data.columns.items():
        if name not in out.columns or not spec.is_numeric:
            continue
        if spec.type == "int" and not spec.nullable:
            out[name] = out[name].astype("int64")
        else:
            out[name] = out[name].astype("float64")
    return out


def in_test_split(frame: pd.DataFrame, key: pd.DataFrame, prepare: PrepareParams) -> pd.Series:
    """True for the rows of the test split: a seeded hash of ``key`` (one column, or the whole
    row) below ``test_size`` of the hash space. It depends on the row alone."""
    salt = f"{prepare.seed:016d}"[-16:]
    hashed = pd.util.hash_pandas_object(key, index=False, hash_key=salt)
    return pd.Series((hashed.to_numpy() >> 32) < prepare.test_size * _HASH_SPACE, index=frame.index)


def _target_stats(column: pd.Series, classification: bool) -> dict[str, Any]:
    if classification:
        return {str(k): int(v) for k, v in column.value_counts().items()}
    values = column.astype("float64")
    count = len(values)
    mean = float(values.mean()) if count else 0.0
    return {"count": count, "mean": mean, "m2": float(((values - mean) ** 2).sum())}


def prepare_partition(
    raw: pd.DataFrame, data: DataParams, prepare: PrepareParams
) -> dict[str, Any]:
    """One partition, on a worker: drop and validate it, then split it (when it is valid)."""
    from modelci.data import schema

    null_rows = 0
    if prepare.null_target == "drop" and data.target in raw.columns:
        missing = raw[data.target].isna()
        null_rows = int(missing.sum())
        raw = raw[~missing]
    kept, _ = schema.drop_declared(raw, data)
    frame, failures = schema.check_partition(kept, data)
    result: dict[str, Any] = {"rows": len(frame), "failures": failures, "null_rows": null_rows}
    if failures:
        return result
    frame = canonical(frame, data).reset_index(drop=True)
    key_name = prepare.split_key
    if key_name is None:
        key = frame[sorted(frame.columns)]
    else:
        key = raw[[key_name]].reset_index(drop=True)
    mask = in_test_split(frame, key, prepare)
    train, test = frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)
    result.update(
        train=train,
        test=test,
        target={
            "train": _target_stats(train[data.target], data.is_classification),
            "test": _target_stats(test[data.target], data.is_classification),
        },
    )
    return result


def _summary(parts: list[dict[str, Any]], classification: bool) -> dict[str, Any]:
    """The local profile's target summary from per-partition aggregates (exact counts; mean and
    std combined in partition order with Chan's formula)."""
    if classification:
        counts: dict[str, int] = {}
        for part in parts:
            for key, value in part.items():
                counts[key] = counts.get(key, 0) + value
        return {"classes": dict(sorted(counts.items()))}
    count, mean, m2 = 0, 0.0, 0.0
    for part in parts:
        n = part["count"]
        if n == 0:
            continue
        delta = part["mean"] - mean
        total = count + n
        mean += delta * n / total
        m2 += part["m2"] + delta * delta * count * n / total
        count = total
    std = math.sqrt(m2 / (count - 1)) if count > 1 else float("nan")
    return {"mean": round(mean, 6), "std": round(std, 6)}


def read_source(record: dict[str, Any], data: DataParams, partitions: int) -> Any:
    """The recorded files as a Dask DataFrame of ``partitions`` partitions, read by the workers."""
    import dask.dataframe as dd

    files = [entry["path"] for entry in record["files"]]
    if record["format"] == "csv":
        # Numbers as floats: type inference per block would differ between blocks.
        dtypes = {name: "float64" for name, spec in data.columns.items() if spec.is_numeric}
        frame = dd.read_csv(files, dtype=dtypes, blocksize=None)
    else:
        frame = dd.read_parquet(files)
    return frame.repartition(npartitions=partitions)


def _load_record(params: Params) -> dict[str, Any]:
    """The ``source`` stage's record when it is for ``data.source``, else a fresh one."""
    from modelci.data.locations import record_versions

    if SOURCE_RECORD.is_file():
        record: dict[str, Any] = json.loads(SOURCE_RECORD.read_text(encoding="utf-8"))
        if record.get("source") == params.data.source:
            return record
    return record_versions(params.data.source)


class _PartWriter:
    """Writes one Parquet file per partition as it arrives into a staging folder beside
    ``directory``; ``commit`` replaces ``directory`` with it (a rename), ``discard`` drops it."""

    def __init__(self, directory: Path) -> None:
        directory.parent.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.rows = 0
        self._count = 0
        self._staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))

    def write(self, frame: pd.DataFrame) -> None:
        frame.to_parquet(self._staging / PART.format(self._count), index=False)
        self._count += 1
        self.rows += len(frame)

    def commit(self) -> None:
        if self.directory.is_dir():
            shutil.rmtree(self.directory)
        elif self.directory.exists():
            self.directory.unlink()
        self._staging.rename(self.directory)

    def discard(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)


def prepare(params: Params, paths: StagePaths = DEFAULT_PATHS) -> dict[str, Any]:
    """The prepare stage on the cluster; writes what the local stage writes, split in parts."""
    from dask.delayed import delayed

    from modelci.data import schema
    from modelci.data.locations import check_unchanged

    data, options = params.data, params.prepare
    record = _load_record(params)
    started = time.monotonic()
    client = connect(params.compute)
    writers = (_PartWriter(paths.train), _PartWriter(paths.test))
    try:
        try:
            frame = read_source(record, data, params.compute.partitions)
            _, problems = schema.drop_declared(frame._meta, data)
            tasks = [delayed(prepare_partition)(p, data, options) for p in frame.to_delayed()]
            results = []
            # in partition order; the runner holds one partition at a time and writes it
            for future in client.compute(tasks):
                part = future.result()
                future.release()
                if "train" in part:
                    writers[0].write(part.pop("train"))
                    writers[1].write(part.pop("test"))
                results.append(part)
            seconds = time.monotonic() - started
            rows = sum(part["rows"] for part in results)
            record_run("prepare", client, len(results), seconds, f"{rows} rows read and checked")
        except (OSError, ValueError) as error:
            raise DataError(f"{data.source}: cannot read on the cluster: {error}") from None
        finally:
            client.close()
        found = schema.merge_failures([part["failures"] for part in results])
        problems += schema.describe(found)
        total = sum(part["rows"] for part in results)
        if not found and total < data.min_rows:
            problems.append(f"table: has fewer rows than the required {data.min_rows} rows")
        schema.raise_problems(data.source, problems)
        check_unchanged(record)
        for writer in writers:
            writer.commit()
    finally:
        for writer in writers:
            writer.discard()
    summary = {
        "rows": {"total": total, "train": writers[0].rows, "test": writers[1].rows},
        "columns": {name: spec.type for name, spec in data.columns.items()},
        "target": {
            "name": data.target,
            "task": data.task,
            "train": _summary([p["target"]["train"] for p in results], data.is_classification),
            "test": _summary([p["target"]["test"] for p in results], data.is_classification),
        },
        "dropped": {
            "columns": list(data.drop_columns),
            "null_target_rows": sum(part["null_rows"] for part in results),
        },
        "source": {"path": data.source, "files": record["files"]},
        "compute": {"engine": "dask", "partitions": params.compute.partitions},
    }
    write_json(paths.profile, summary)
    return summary


# ---- train ------------------------------------------------------------------------------------


def part_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("part-*.parquet"))
    if not files:
        raise DataError(f"{directory}: no partitions (run the prepare stage with engine dask)")
    return files


def encoder(data: DataParams, files: list[Path]) -> Any:
    """The features' encoding, fitted on the schema instead of the data: numeric columns pass
    through (the boosters handle missing values), categorical and bool columns are one-hot
    encoded over their declared categories (or, undeclared, the sorted values of the split)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    numeric = [name for name in data.features if data.columns[name].is_numeric]
    categorical = [name for name in data.features if not data.columns[name].is_numeric]
    levels: list[list[Any]] = []
    for name in categorical:
        spec = data.columns[name]
        if spec.type == "bool":
            levels.append([False, True])
        elif spec.categories is not None:
            levels.append(sorted(spec.categories, key=str))
        else:
            seen: set[Any] = set()
            for path in files:
                seen.update(pd.read_parquet(path, columns=[name])[name].dropna().unique())
            levels.append(sorted(seen, key=str))
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", "passthrough", numeric))
    if categorical:
        onehot = OneHotEncoder(categories=levels, handle_unknown="ignore", sparse_output=False)
        transformers.append(("categorical", onehot, categorical))
    encode = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    # One row per category (cycled): fitting on it gives the encoder the data would give it.
    width = max([len(values) for values in levels] + [1])
    example = pd.DataFrame({name: [0.0] * width for name in numeric})
    for name, values in zip(categorical, levels, strict=True):
        example[name] = [values[row % len(values)] if values else None for row in range(width)]
    return encode.fit(example)


def make_distributed(data: DataParams, train: TrainParams, client: Any) -> Any:
    """The Dask learner, seeded with ``train.seed`` and given ``train.n_threads`` threads per
    worker unless ``estimator_params`` set them; LightGBM also made deterministic."""
    from modelci.pipeline.train import import_estimator

    cls = import_estimator(train.estimator or "")
    kwargs = dict(train.estimator_params)
    kwargs.setdefault("random_state", train.seed)
    kwargs.setdefault("n_jobs", train.n_threads)
    if cls.__module__.startswith("lightgbm"):
        kwargs.setdefault("deterministic", True)
        kwargs.setdefault("force_row_wise", True)
        kwargs.setdefault("verbose", -1)
    try:
        model = cls(**kwargs)
    except TypeError as error:
        raise ConfigError(f"params.yaml: train.estimator_params: {error}") from None
    model.client = client
    return model


def to_local(model: Any) -> Any:
    """The fitted Dask learner as its library's scikit-learn estimator (what skops saves)."""
    if hasattr(model, "to_local"):  # LightGBM
        return model.to_local()
    import xgboost

    local_cls = (
        xgboost.XGBClassifier
        if type(model).__name__.endswith("Classifier")
        else xgboost.XGBRegressor
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.ubj"
        model.save_model(path)
        local = local_cls()
        local.load_model(path)
    return local


def release_memory() -> int:
    """On a worker: hand the memory earlier tasks freed back to the OS (Arrow's pool caches
    freed blocks, glibc keeps freed heap), so it does not count against the worker's memory
    limit during the fit; returns the worker's RSS after, in bytes."""
    import contextlib
    import ctypes
    import gc

    import psutil
    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(psutil.Process().memory_info().rss)


def _scatter(
    client: Any, encode: Any, data: DataParams, files: list[Path], dtype: str
) -> tuple[Any, Any]:
    """Deal the encoded partitions to the workers (partition i to worker i mod n, by name) and
    return them as Dask arrays (features, target) of ``dtype``."""
    import dask.array as da

    workers = workers_by_name(client)
    if not workers:
        raise ClusterError("the Dask cluster has no workers")
    features, targets = [], []
    for index, path in enumerate(files):
        part = pd.read_parquet(path)
        if part.empty:
            continue
        where = [workers[index % len(workers)]]
        x = encode.transform(part[data.features]).astype(dtype)
        y = part[data.target].to_numpy()
        fx = client.scatter(x, workers=where, direct=True)
        fy = client.scatter(y, workers=where, direct=True)
        features.append(da.from_delayed(fx, shape=x.shape, dtype=x.dtype))  # type: ignore[no-untyped-call]
        targets.append(da.from_delayed(fy, shape=y.shape, dtype=y.dtype))  # type: ignore[no-untyped-call]
    if not features:
        raise DataError("the train split is empty")
    return (
        da.concatenate(features),  # type: ignore[no-untyped-call]
        da.concatenate(targets),  # type: ignore[no-untyped-call]
    )


def _fit_failure(client: Any, before: dict[str, str], error: BaseException) -> str:
    """The one-line error of a failed fit, naming the workers that left the cluster meanwhile
    (a restart by the nanny, at 95% of the worker's memory limit, is the usual reason)."""
    message = str(error).splitlines()[0] if str(error) else "no message"
    line = f"training on the Dask cluster failed ({type(error).__name__}: {message})"
    try:
        now = worker_names(client)
        gone = sorted(name for address, name in before.items() if address not in now)
    except Exception:  # the scheduler itself is gone: the error above says enough
        gone = []
    if gone:
        line += (
            f"; worker(s) {', '.join(gone)} left the cluster during the fit (a worker's nanny "
            "restarts it at 95% of its memory limit: see the worker's log)"
        )
    return line + "; no model written"


def train(params: Params, paths: StagePaths = DEFAULT_PATHS) -> tuple[Any, dict[str, Any]]:
    """Fit on the cluster; returns the local Pipeline to save and the compute record (what the
    model's bytes depend on besides data and params: the number of workers and partitions)."""
    from sklearn.pipeline import Pipeline

    check_estimator(params)
    files = part_files(paths.train)
    encode = encoder(params.data, files)
    started = time.monotonic()
    client = connect(params.compute)
    try:
        workers = len(workers_by_name(client))
        # XGBoost reads every feature value as a float32 (the model is the same as from
        # float64), so the workers hold half the bytes; LightGBM bins from float64 values.
        dtype = "float32" if (params.train.estimator or "").startswith("xgboost.") else "float64"
        # A worker that crosses 95% of its memory limit during the fit is restarted by its
        # nanny, and XGBoost's collective cannot lose a member: start from what the data needs.
        before = worker_names(client)
        freed = client.run(release_memory)
        memory = ", ".join(
            f"{before.get(address, address)} {rss / 1e6:.0f} MB"
            for address, rss in sorted(freed.items(), key=lambda item: before.get(item[0], ""))
        )
        print(f"train: the workers' memory before the data is sent: {memory}")
        features, target = _scatter(client, encode, params.data, files, dtype)
        model = make_distributed(params.data, params.train, client)
        try:
            model.fit(features, target)
        except Exception as error:  # a lost worker surfaces as one of many exception types
            raise ClusterError(_fit_failure(client, before, error)) from None
        seconds = time.monotonic() - started
        record_run("train", client, len(files), seconds, f"{params.train.estimator} fitted")
    finally:
        client.close()
    record = {
        "engine": "dask",
        "estimator": params.train.estimator,
        "workers": workers,
        "partitions": len(files),
        "threads_per_worker": params.train.n_threads,
    }
    return Pipeline([("preprocess", encode), ("model", to_local(model))]), record
