"""The columnar request path: vectorised column checks against the per-value reference, CSV
bodies, request ids, and a 100,000-row batch."""

from __future__ import annotations

import gc
import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelci.config import Column
from modelci.serving import colcheck, payload
from modelci.serving.fields import MISSING, checker
from modelci.serving.payload import (
    GC_PAUSE_BYTES,
    batch_from_body,
    batch_from_csv,
    batch_from_invocation,
    bound_json_structure,
    gc_paused,
    json_structure,
    parse_paused,
)
from modelci.serving.requestid import MAX_LENGTH, request_id
from modelci.serving.schema import MAX_PROBLEMS, InputError, InputSchema, RawBatch

pytestmark = pytest.mark.unit

SPECS = [
    Column("color", "category", categories=("red", "blue")),
    Column("code", "category", nullable=True, categories=(1, 2, True)),
    Column("text", "category", nullable=True),
    Column("size", "float", min=0, max=10),
    Column("weight", "float", nullable=True),
    Column("count", "int", nullable=True, min=-5),
    Column("big", "int"),
    Column("flag", "bool"),
    Column("maybe", "bool", nullable=True),
]
SCHEMA = InputSchema(SPECS)
ROW = {
    "color": "red",
    "code": 1,
    "text": "x",
    "size": 1.5,
    "weight": 2,
    "count": 2,
    "big": 2**63 - 1,
    "flag": True,
    "maybe": None,
}
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.sampled_from([2**63 - 1, -(2**63) + 1, 2**63, -(2**63), 2.0**63, 1e300, -0.0, 3.0]),
    st.floats(allow_nan=False, allow_infinity=True),
    st.sampled_from(["red", "blue", "green", "", "1", "true"]),
    st.just([1]),
    st.just({"a": 1}),
    st.just(MISSING),
)


def _reference(spec: Column, values: list[Any]) -> tuple[np.ndarray, list[int]]:
    return colcheck.checked_values(spec, checker(spec), values)


def _same_arrays(left: np.ndarray, right: np.ndarray) -> bool:
    if left.dtype != right.dtype or left.shape != right.shape:
        return False
    if left.dtype.kind == "f":
        return bool(np.array_equal(left, right, equal_nan=True))
    return left.tolist() == right.tolist()


def _agrees_with_the_reference(spec: Column, values: list[Any]) -> list[int]:
    """check_column's verdict on ``values`` is the per-value checker's: the same bad rows, and
    the same array when none is bad; returns the bad rows."""
    expected, expected_bad = _reference(spec, values)
    array, bad = colcheck.check_column(spec, values)
    assert bad == expected_bad
    if not bad:
        assert _same_arrays(array, expected), (array, expected)
    return bad


@settings(max_examples=400, deadline=None)
@given(spec=st.sampled_from(SPECS), values=st.lists(ODD_VALUES, min_size=1, max_size=40))
def test_vectorised_checks_agree_with_the_per_value_checker(
    spec: Column, values: list[Any]
) -> None:
    bad = _agrees_with_the_reference(spec, values)
    for row in bad:  # every row found bad has a message from the reference checker
        assert colcheck.problem_text(checker(spec), values[row]) != "invalid value"


@pytest.mark.parametrize("value", [-(2**63), -(2**63) + 1, 2**63 - 1, 2**63])
def test_the_int64_edges_get_the_reference_verdict(value: int) -> None:
    """The declared range is symmetric (the OpenAPI schema's minimum is -(2**63 - 1)): -2**63
    fits NumPy's int64 but is out of range, on the fast path as in the per-value check."""
    bad = _agrees_with_the_reference(Column("big", "int"), [value, 1])
    assert bad == ([0] if abs(value) > 2**63 - 1 else [])


UNIFORM_COLUMNS = st.one_of(  # one plain type per column: check_column's fast path
    st.lists(st.floats(-1, 12), min_size=1, max_size=40),
    st.lists(st.one_of(st.floats(-1, 12), st.integers(-1, 12)), min_size=1, max_size=40),
    st.lists(st.integers(-(2**64), 2**64), min_size=1, max_size=40),
    st.lists(st.integers(-8, 8), min_size=1, max_size=40),
    st.lists(st.booleans(), min_size=1, max_size=40),
    st.lists(st.sampled_from(["red", "blue", "green", "1"]), min_size=1, max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(spec=st.sampled_from(SPECS), values=UNIFORM_COLUMNS)
def test_uniform_columns_take_the_fast_path_with_the_same_verdicts(
    spec: Column, values: list[Any]
) -> None:
    _agrees_with_the_reference(spec, values)


def _problems(rows: list[Any]) -> tuple[list[dict[str, Any]], int, str]:
    with pytest.raises(InputError) as caught:
        SCHEMA.columns_from_records(rows)
    return caught.value.problems, caught.value.total, caught.value.message


def test_small_and_large_batches_report_the_same_first_problems() -> None:
    bad = [{**ROW, "size": -1}, {**ROW, "color": "green", "extra": 1}, {**ROW, "big": 1.5}]
    small = _problems(bad)
    large = _problems(bad + [ROW] * 100)  # over the row-path threshold: vectorised
    assert small == large
    assert [(p["row"], p["field"]) for p in small[0]] == [
        (0, "size"),
        (1, "extra"),
        (1, "color"),
        (2, "big"),
    ]
    assert small[1] == 4


def test_many_bad_rows_list_the_first_and_count_the_rest() -> None:
    rows = [ROW] * 5 + [{**ROW, "size": 11}] * 3000 + [{**ROW, "flag": "yes"}] * 2000
    problems, total, message = _problems(rows)
    assert len(problems) == MAX_PROBLEMS
    assert [p["row"] for p in problems] == list(range(5, 5 + MAX_PROBLEMS))
    assert total == 5000
    assert message.startswith("invalid input: row 5, field 'size': 11")
    assert f"({5000 - MAX_PROBLEMS} more problems not listed)" in message


def test_a_column_missing_from_a_split_body_is_a_problem_of_every_row() -> None:
    names = [name for name in ROW if name != "size"]
    payload = {"dataframe_split": {"columns": names, "data": [[ROW[n] for n in names]] * 50}}
    with pytest.raises(InputError) as caught:
        SCHEMA.validate(batch_from_invocation(payload, SCHEMA, 100))
    assert caught.value.total == 50
    assert caught.value.problems[0] == {
        "row": 0,
        "field": "size",
        "problem": "required field is missing",
    }


def test_100000_rows_validate_to_arrays() -> None:
    schema = InputSchema(SPECS[3:4] + SPECS[0:1])
    rows = schema.example_rows(100_000, seed=4)
    batch = schema.columns_from_records(rows)
    assert batch["size"].dtype == np.float64
    assert batch["size"].tolist() == [row["size"] for row in rows]
    assert batch["color"].tolist() == [row["color"] for row in rows]


CSV_SCHEMA = InputSchema(
    [
        Column("color", "category", nullable=True, categories=("red", "blue")),
        Column("size", "float", min=0),
        Column("count", "int"),
        Column("flag", "bool"),
    ]
)


def test_csv_bodies_are_parsed_as_columns() -> None:
    body = b"count,size,color,flag\n3,1.5,red,true\n4,2,,False\n"
    batch = CSV_SCHEMA.validate(batch_from_csv(body, CSV_SCHEMA, 10))
    assert batch["count"].tolist() == [3, 4]
    assert batch["size"].tolist() == [1.5, 2.0]
    assert batch["color"].tolist() == ["red", None]
    assert batch["flag"].tolist() == [True, False]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"", 400, "header row"),
        (b"\xff\xfe", 400, "not UTF-8"),
        (b'color,size,count,flag\n"red,1,1,true\n', 400, "malformed CSV"),
        (b"color,size,count,flag\n", 422, "got 0 rows"),
        (b"color,size,count,flag\nred,1,1\n", 422, "CSV line 2: expected 4 values, got 3"),
        (b"color,size,count,flag\nred,NaN,1,true\n", 422, "expected a number, got string"),
        (b"color,size,count,flag\nred,1,1.5,true\n", 422, "expected an integer"),
        (b"color,size,count,flag\nred,1,1,yes\n", 422, "expected a boolean, got string"),
        (b"color,size,count,flag,junk\nred,1,1,true,2\n", 422, "unknown field"),
        (b"color,size,count,flag\n" + b"red,1,1,true\n" * 11, 413, "too many rows"),
    ],
)
def test_bad_csv_is_a_client_error(body: bytes, status: int, text: str) -> None:
    with pytest.raises(InputError) as caught:
        CSV_SCHEMA.validate(batch_from_csv(body, CSV_SCHEMA, 10))
    assert caught.value.status == status
    assert text in caught.value.message or any(text in p["problem"] for p in caught.value.problems)


def test_csv_parsing_stops_at_the_first_row_over_the_limit() -> None:
    header = b"color,size,count,flag\n"
    rows = header + b"\n" * 50 + b"red,1,1,true\n" * 10 + b"\r\n" * 50
    assert batch_from_csv(rows, CSV_SCHEMA, 10).rows == 10  # blank lines are not rows
    # an eleventh row, then a line that would be malformed: refused before it is ever parsed
    with pytest.raises(InputError) as caught:
        batch_from_csv(rows + b"red,1,1,true\n" + b'"unclosed\n', CSV_SCHEMA, 10)
    assert caught.value.status == 413
    assert caught.value.message == (
        "too many rows: at least 11 > the limit of 10 (parsing stopped there)"
    )


def _records(rows: int) -> bytes:
    return json.dumps([ROW] * rows).encode()


@pytest.mark.parametrize(
    "body",
    [
        _records(1000),
        json.dumps({"dataframe_records": [ROW] * 1000, "params": {"a": [1, 2]}}).encode(),
        json.dumps(
            {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())] * 1000}}
        ).encode(),
        json.dumps({"inputs": {key: [value] * 1000 for key, value in ROW.items()}}).encode(),
        # text values full of commas and brackets do not count
        json.dumps([{**ROW, "text": ",[{" * 100} for _ in range(1000)]).encode(),
    ],
)
def test_json_bodies_of_max_rows_rows_pass_the_structure_bound(body: bytes) -> None:
    bound_json_structure(body, len(SPECS), 1000)


@pytest.mark.parametrize(
    ("body", "count"),
    [
        (b"[" + b"[]," * 20_000 + b"[]]", 40_002),
        (b"[" + b"{}," * 20_000 + b"{}]", 40_002),
        (b'{"inputs":{"size":[' + b"1," * 20_000 + b"1]}}", 20_003),
        (_records(2000), 2000 * (len(ROW) + 1)),
    ],
)
def test_json_bodies_with_more_structure_than_max_rows_rows_are_refused(
    body: bytes, count: int
) -> None:
    limit = 1001 * (len(SPECS) + 1) + 4096
    with pytest.raises(InputError) as caught:
        bound_json_structure(body, len(SPECS), 1000)
    assert caught.value.status == 413
    assert caught.value.message == (
        f"too many JSON values: {count} commas, arrays and objects > {limit}, the most that "
        f"the limit of 1000 rows of {len(SPECS)} columns needs"
    )
    if body.startswith(b'[{"'):  # parsed, the exact row count still names the rows
        with pytest.raises(InputError, match="too many rows: 2000 > the limit of 1000"):
            batch_from_body(json.loads(body), SCHEMA, 1000)


def test_request_ids_are_honoured_when_sane_and_generated_otherwise() -> None:
    assert request_id(b"abc-123_x.y:z") == "abc-123_x.y:z"
    generated = {request_id(value) for value in (None, b"", b"a b", b"x" * (MAX_LENGTH + 1))}
    assert len(generated) == 4
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in generated)


def test_raw_batch_from_irregular_records_counts_every_structural_problem() -> None:
    raw = RawBatch.from_records([1] * 30, SCHEMA)
    assert raw.problem_count == 30
    assert len(raw.problems) == MAX_PROBLEMS


def test_one_column_model_behind_validation_schema_and_openapi() -> None:
    """The declared column (``data.columns``) is the serving schema's column and the OpenAPI
    document's row: no second model of a column to drift from it."""
    from modelci.config import ColumnSpec, load_data_params
    from modelci.serving.openapi import openapi_document
    from tests.conftest import REPO_ROOT

    data = load_data_params(REPO_ROOT / "params.yaml")
    schema = InputSchema.from_params(data)
    assert [column.name for column in schema.fields] == data.features
    for column in schema.fields:
        declared = data.columns[column.name]
        assert isinstance(column, ColumnSpec)
        assert column.model_dump(exclude={"name"}) == declared.model_dump()
    row = openapi_document(schema, 10)["components"]["schemas"]["Row"]
    assert row["properties"] == {name: data.columns[name].json_schema() for name in data.features}
    assert schema.describe()[0] == {"name": data.features[0], **schema.fields[0].declaration()}


def test_a_column_is_checked_as_params_declare_it() -> None:
    """Column refuses what ``data.columns`` refuses (one set of rules)."""
    with pytest.raises(ValueError, match="categories apply to columns of type 'category' only"):
        Column("size", "float", categories=("a",))


def _split_body(data: list[list[Any]]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": list(ROW), "data": data}}


def test_split_columns_by_strided_slices_are_the_records_columns() -> None:
    rows = [
        {**ROW, "size": index % 10, "color": ("red", "blue")[index % 2]} for index in range(100)
    ]
    split = SCHEMA.validate(
        batch_from_invocation(_split_body([list(row.values()) for row in rows]), SCHEMA, 1000)
    )
    records = SCHEMA.columns_from_records(rows)
    assert list(split) == list(records)
    for name, array in records.items():
        assert _same_arrays(split[name], array), name


def test_a_large_split_body_with_bad_values_names_them_as_a_small_one_does() -> None:
    """Over the row-path threshold the declared-category check on distinct values falls back
    to the full check for an undeclared, an unhashable or a null value, with the per-value
    messages."""
    data = [list(ROW.values()) for _ in range(100)]
    data[3][0], data[5][0], data[7][3], data[9][0], data[11][2] = "green", [1], "1", None, 5
    with pytest.raises(InputError) as large:
        SCHEMA.validate(batch_from_invocation(_split_body(data), SCHEMA, 1000))
    with pytest.raises(InputError) as small:
        SCHEMA.validate(
            batch_from_invocation(_split_body([data[i] for i in (3, 5, 7, 9, 11)]), SCHEMA, 1000)
        )
    assert large.value.message == (
        "invalid input: row 3, field 'color': 'green' is not one of the declared categories "
        "(red, blue)"
    )
    assert [(p["row"], p["field"], p["problem"]) for p in large.value.problems] == [
        (3, "color", "'green' is not one of the declared categories (red, blue)"),
        (5, "color", "expected one of the categories, got array"),
        (7, "size", "expected a number, got string"),
        (9, "color", "must not be null"),
        (11, "text", "expected a string, got number"),
    ]
    assert [p["problem"] for p in small.value.problems] == [
        p["problem"] for p in large.value.problems
    ]
    assert large.value.total == small.value.total == 5


def test_the_structure_count_is_the_three_bytes_across_chunk_edges() -> None:
    rng = np.random.default_rng(7)
    alphabet = np.frombuffer(b',[{}]"a1 ', dtype=np.uint8)
    for size in (0, 1, 2**20 - 1, 2**20, 2**20 + 1, 3 * 2**20 + 5):
        body = rng.choice(alphabet, size).tobytes()
        assert json_structure(body) == body.count(b",") + body.count(b"[") + body.count(b"{")


def test_a_body_as_long_as_the_structure_limit_passes_and_one_byte_more_is_counted() -> None:
    limit = 1001 * (len(SPECS) + 1) + 4096
    bound_json_structure(b"[" * limit, len(SPECS), 1000)  # as many items as allowed
    with pytest.raises(InputError) as caught:
        bound_json_structure(b"[" * (limit + 1), len(SPECS), 1000)
    assert caught.value.message == (
        f"too many JSON values: {limit + 1} commas, arrays and objects > {limit}, the most "
        f"that the limit of 1000 rows of {len(SPECS)} columns needs"
    )


@pytest.fixture
def collector_enabled(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The collector on, and after the test as it was, with no pause left counted, even when
    the test fails mid-pause (the rest of the process would run with the collector off)."""
    was = gc.isenabled()
    gc.enable()
    monkeypatch.setattr(payload, "_gc_pausers", 0)
    monkeypatch.setattr(payload, "_gc_resume", False)
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


@pytest.mark.usefixtures("collector_enabled")
def test_the_collector_is_paused_for_large_bodies_until_the_last_parser_is_done() -> None:
    assert parse_paused(GC_PAUSE_BYTES - 1, gc.isenabled)  # small bodies: untouched
    assert not parse_paused(GC_PAUSE_BYTES, gc.isenabled)
    assert gc.isenabled()
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)  # the first parser finishes while the second still parses
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()
    with pytest.raises(ValueError, match="bad body"), gc_paused():
        raise ValueError("bad body")
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_enabled")
def test_a_collector_disabled_before_the_pause_stays_disabled() -> None:
    gc.disable()
    with gc_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


@pytest.mark.usefixtures("collector_enabled")
def test_a_parse_long_after_the_pause_began_does_not_prolong_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    # payload's own clock only: patching time.monotonic would stop every clock in the process
    monkeypatch.setattr(payload, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    first = gc_paused()
    first.__enter__()
    clock[0] += payload.GC_PAUSE_SECONDS + 0.1
    with gc_paused():  # too late to join: the collector resumes when the first one is done
        first.__exit__(None, None, None)
        assert gc.isenabled()
    assert gc.isenabled()
    clock[0] += 10
    with gc_paused():  # a fresh pause after that
        assert not gc.isenabled()
    assert gc.isenabled()
