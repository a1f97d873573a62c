"""Request bodies to :class:`~modelci.serving.schema.RawBatch`: the shapes ``/predict`` and
``/invocations`` accept, with the row limit (413 beyond it) applied before any value is checked.

* ``POST /predict``: one row object, or an array of row objects.
* ``POST /invocations`` (MLflow's scoring protocol): a JSON object with exactly one of
  ``dataframe_split``, ``dataframe_records``, ``inputs`` or ``instances`` (``params`` allowed), or
  ``text/csv`` with a header row (what ``mlflow models serve`` also accepts).

Column-shaped bodies (``dataframe_split``, columnar ``inputs``, CSV) stay columns: no row objects
are built for them.
"""

from __future__ import annotations

import csv
import gc
import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any

from modelci.serving.fields import InputError, short, type_name
from modelci.serving.schema import InputSchema, RawBatch

INVOCATION_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")


# Besides its rows, a body may hold this many structural items: MLflow's wrapper, "params",
# dataframe_split's column list.
_STRUCTURE_SLACK = 4096
# A JSON string (with its escapes): replaced by "" before counting the structure outside strings.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


_STRUCTURE_BYTES = b",[{"
_CHUNK = 1 << 20


def json_structure(body: bytes) -> int:
    """The body's commas, arrays and objects (inside strings too): a bound on the Python
    objects a JSON parser builds from it, counted at C speed without building any.

    One ``translate`` pass per MiB deletes the three bytes and the length difference counts
    them (a third of the CPU time of three ``count`` passes); the chunks keep the copies small."""
    return sum(
        len(chunk) - len(chunk.translate(None, _STRUCTURE_BYTES))
        for chunk in (body[start : start + _CHUNK] for start in range(0, len(body), _CHUNK))
    )


def bound_json_structure(body: bytes, columns: int, max_rows: int) -> None:
    """Refuse (413) a JSON body with more structure than ``max_rows`` rows of ``columns``
    values can need, before it is parsed.

    Every accepted form spends at most ``columns + 1`` commas, arrays and objects per row (a
    record: its object, ``columns - 1`` commas and the comma after it; a ``dataframe_split``
    row likewise with an array; a column: one comma per value). Parsing builds about one Python
    object per such item, so this bounds the memory a body costs before a single object is
    built: 63 MB of ``[[],[],...]`` would be 21 million lists (2 GB). Commas inside strings
    are counted only by the cheap first count; a body over the bound is counted again with its
    strings blanked out, so text values never cause a refusal."""
    limit = (max_rows + 1) * (columns + 1) + _STRUCTURE_SLACK
    if len(body) <= limit:  # every counted item is a byte: the count cannot pass the limit
        return
    count = json_structure(body)
    if count <= limit:
        return
    if b'"' in body:  # (without strings, the first count is already exact)
        count = json_structure(_JSON_STRING.sub(b'""', body))
    if count > limit:
        raise InputError(
            413,
            "PAYLOAD_TOO_LARGE",
            f"too many JSON values: {count} commas, arrays and objects > {limit}, the most "
            f"that the limit of {max_rows} rows of {columns} columns needs",
        )


# Bodies from this size up are parsed and turned into columns with the cyclic garbage collector
# paused (see parse_paused).
GC_PAUSE_BYTES = 64 * 1024
# A parse that begins this long after the collector was paused does not join the pause: under a
# steady stream of overlapping large parses the collector is off for at most this long plus the
# longest parse that joined.
GC_PAUSE_SECONDS = 1.0
_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_resume = False
_gc_paused_at = 0.0


def parse_paused(size: int, parse: Callable[[], RawBatch]) -> RawBatch:
    """``parse()``, with the collector paused (:func:`gc_paused`) for a body of ``size`` bytes
    from :data:`GC_PAUSE_BYTES` up; a smaller body is parsed without a context manager."""
    if size < GC_PAUSE_BYTES:
        return parse()
    with gc_paused():
        return parse()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large body is parsed and turned into columns
    (:func:`parse_paused`).

    A 10,000-row ``dataframe_split`` body parses into 10,000 row lists, each a container the
    collector tracks: building them sets off a dozen young collections that traverse the new
    lists (and now and then an older one over the whole heap), about as much CPU time as the
    parse itself. None of these objects can be in a cycle (JSON builds a tree, which reference
    counting frees as soon as the columns are built), so the pause changes nothing but the time.
    Threads pausing together are counted: the collector resumes when the last one is done, and
    only if it was enabled when the first one began. A thread that comes more than
    :data:`GC_PAUSE_SECONDS` after the pause began does not join it (it parses with the
    collector as it finds it), so overlapping parses cannot keep the collector off for good."""
    global _gc_pausers, _gc_resume, _gc_paused_at
    with _gc_lock:
        now = time.monotonic()
        joined = _gc_pausers == 0 or now - _gc_paused_at <= GC_PAUSE_SECONDS
        if _gc_pausers == 0:
            _gc_resume = gc.isenabled()
            _gc_paused_at = now
            gc.disable()
        _gc_pausers += joined
    if not joined:
        yield
        return
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_resume:
                gc.enable()


def check_row_count(count: int, max_rows: int) -> None:
    """Refuse an empty batch (422) or one over the row limit (413), for every body format."""
    if count == 0:
        raise InputError(422, "INVALID_PARAMETER_VALUE", "no rows to predict (got 0 rows)")
    if count > max_rows:
        raise InputError(
            413, "PAYLOAD_TOO_LARGE", f"too many rows: {count} > the limit of {max_rows}"
        )


def _records(rows: list[Any], schema: InputSchema, max_rows: int) -> RawBatch:
    check_row_count(len(rows), max_rows)
    return RawBatch.from_records(rows, schema)


def batch_from_body(payload: Any, schema: InputSchema, max_rows: int) -> RawBatch:
    """``POST /predict``: one row object, or an array of row objects."""
    if isinstance(payload, dict):
        return _records([payload], schema, max_rows)
    if isinstance(payload, list):
        return _records(payload, schema, max_rows)
    raise InputError(
        400,
        "BAD_REQUEST",
        f"expected a row object or an array of row objects, got {type_name(payload)}",
    )


def batch_from_invocation(payload: Any, schema: InputSchema, max_rows: int) -> RawBatch:
    """``POST /invocations`` with a JSON body (MLflow's scoring protocol)."""
    if not isinstance(payload, dict):
        raise InputError(
            400,
            "BAD_REQUEST",
            f"expected a JSON object with one of the keys {', '.join(INVOCATION_FORMATS)}, "
            f"got {type_name(payload)}",
        )
    found = [key for key in INVOCATION_FORMATS if key in payload]
    unknown = [short(key, 64) for key in payload if key not in (*INVOCATION_FORMATS, "params")]
    if len(found) != 1 or unknown:
        detail = f"unknown key(s): {', '.join(unknown)}" if unknown else f"got {found or 'none'}"
        raise InputError(
            400,
            "BAD_REQUEST",
            f"expected exactly one of the keys {', '.join(INVOCATION_FORMATS)} ({detail})",
        )
    key = found[0]
    value = payload[key]
    if key == "dataframe_split":
        return _split(value, schema, max_rows)
    if key in ("inputs", "instances") and isinstance(value, dict):
        return _columnar(key, value, schema, max_rows)
    if not isinstance(value, list):
        raise InputError(
            400, "BAD_REQUEST", f"{key}: expected an array of row objects, got {type_name(value)}"
        )
    return _records(value, schema, max_rows)


def _split(value: Any, schema: InputSchema, max_rows: int) -> RawBatch:
    if not isinstance(value, dict):
        raise InputError(
            400, "BAD_REQUEST", f"dataframe_split: expected an object, got {type_name(value)}"
        )
    columns, data = value.get("columns"), value.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(400, "BAD_REQUEST", "dataframe_split.columns: expected an array of names")
    if not isinstance(data, list):
        raise InputError(400, "BAD_REQUEST", "dataframe_split.data: expected an array of rows")
    check_row_count(len(data), max_rows)
    width = len(columns)
    if set(map(type, data)) != {list} or set(map(len, data)) != {width}:
        index = next(
            i for i, row in enumerate(data) if not isinstance(row, list) or len(row) != width
        )
        raise InputError(
            422,
            "INVALID_PARAMETER_VALUE",
            f"dataframe_split.data[{index}]: expected an array of {width} values",
            [{"row": index, "field": None, "problem": "wrong number of values"}],
        )
    # every row is a list of ``width`` values: one flat list, then a strided slice per column
    # (two C-level passes, no tuple per row as ``zip(*data)`` builds)
    flat = list(chain.from_iterable(data))
    transposed = [flat[start::width] for start in range(width)]
    return RawBatch.from_columns(len(data), dict(zip(columns, transposed, strict=True)), schema)


def _columnar(key: str, value: dict[str, Any], schema: InputSchema, max_rows: int) -> RawBatch:
    lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
    if -1 in lengths or len(lengths) > 1:
        raise InputError(
            400, "BAD_REQUEST", f"{key}: expected an object of equally long arrays (one per column)"
        )
    count = lengths.pop() if lengths else 0
    check_row_count(count, max_rows)
    return RawBatch.from_columns(count, dict(value), schema)


def batch_from_csv(body: bytes, schema: InputSchema, max_rows: int) -> RawBatch:
    """``text/csv``: a header row naming the columns, then one line per row. An empty field is
    null; numbers are parsed for numeric columns (``int`` when whole, like JSON), ``true`` and
    ``false`` (any case) for boolean ones; other columns keep the text.

    The body is decoded and parsed as a stream, and parsing stops at the first row over
    ``max_rows``: a body of millions of tiny lines costs no more than ``max_rows + 1`` rows."""
    text = io.TextIOWrapper(io.BytesIO(body), encoding="utf-8-sig", newline="")
    rows: list[list[str]] = []
    try:
        lines = csv.reader(text, strict=True)
        header = next(lines, None)
        for line in lines:
            if not line:
                continue
            if len(rows) == max_rows:
                raise InputError(
                    413,
                    "PAYLOAD_TOO_LARGE",
                    f"too many rows: at least {max_rows + 1} > the limit of {max_rows} "
                    "(parsing stopped there)",
                )
            rows.append(line)
    except UnicodeDecodeError as error:
        raise InputError(400, "BAD_REQUEST", f"CSV is not UTF-8: {error.reason}") from None
    except csv.Error as error:
        raise InputError(400, "BAD_REQUEST", f"malformed CSV: {short(str(error), 120)}") from None
    if not header:
        raise InputError(400, "BAD_REQUEST", "CSV: expected a header row naming the columns")
    check_row_count(len(rows), max_rows)
    width = len(header)
    for index, row in enumerate(rows):
        if len(row) != width:
            raise InputError(
                422,
                "INVALID_PARAMETER_VALUE",
                f"CSV line {index + 2}: expected {width} values, got {len(row)}",
                [{"row": index, "field": None, "problem": "wrong number of values"}],
            )
    kinds = {spec.name: spec.type for spec in schema.fields}
    columns = {
        name: csv_values(kinds.get(name), list(values))
        for name, values in zip(header, zip(*rows, strict=True), strict=True)
    }
    return RawBatch.from_columns(len(rows), columns, schema)


def csv_values(kind: str | None, cells: list[str]) -> list[Any]:
    """Cells read as text (CSV, or v2 BYTES tensors) typed by their column's kind; empty is null."""
    if kind in ("float", "int"):
        return [_csv_number(cell) for cell in cells]
    if kind == "bool":
        return [_CSV_BOOLS.get(cell.lower(), cell) if cell else None for cell in cells]
    return [cell if cell else None for cell in cells]


_CSV_BOOLS = {"true": True, "false": False}


def _csv_number(cell: str) -> Any:
    """The JSON value a numeric cell stands for: int when it reads as one, else float, else the
    text itself (which the column check then refuses, naming row and field). NaN and Infinity
    stay text: they are not numbers JSON could carry either."""
    if not cell:
        return None
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        number = float(cell)
    except ValueError:
        return cell
    return number if number == number and abs(number) != float("inf") else cell
