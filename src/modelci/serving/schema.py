"""The request schema of the served model: validation of JSON rows and their JSON Schema.

The schema comes from ``data.columns`` in ``params.yaml`` (the target column left out), in the
order the model was trained on. Validation is plain Python over the parsed JSON, one compiled
check per column, and collects up to :data:`MAX_PROBLEMS` problems, each naming the row, the field
and what is wrong, without echoing long values back.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from modelci.config import DataParams

FieldType = Literal["int", "float", "category", "bool"]
MAX_PROBLEMS = 10
_INT64 = 2**63 - 1
_SHOWN = 40


class InputError(Exception):
    """A request the client must fix: an HTTP status, a message and the problems found."""

    def __init__(
        self, status: int, code: str, message: str, problems: Sequence[dict[str, Any]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = list(problems)

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"error_code": self.code, "message": self.message}
        if self.problems:
            payload["problems"] = self.problems
        return payload


class _BadValueError(Exception):
    """One value's problem (internal; collected into an InputError)."""


def short(value: Any, limit: int = _SHOWN) -> str:
    """A bounded representation of client input, safe to put in an error message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


@dataclass(frozen=True)
class FieldSpec:
    """One input column: its type, whether null is allowed, and its bounds or categories."""

    name: str
    type: FieldType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str | int | bool, ...] | None = None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any]
        if self.type == "category" and self.categories is not None:
            schema = {"enum": [*self.categories, *([None] if self.nullable else [])]}
            return schema
        json_type = {"int": "integer", "float": "number", "bool": "boolean", "category": "string"}
        base = json_type[self.type]
        schema = {"type": [base, "null"] if self.nullable else base}
        if self.min is not None:
            schema["minimum"] = self.min
        if self.max is not None:
            schema["maximum"] = self.max
        if self.type == "int":
            schema.setdefault("minimum", -_INT64)
            schema.setdefault("maximum", _INT64)
        return schema

    def checker(self) -> Callable[[Any], Any]:
        """A function returning the value to feed the model, or raising _BadValueError."""
        low, high, nullable = self.min, self.max, self.nullable

        def bounded(value: float) -> float:
            if low is not None and value < low:
                raise _BadValueError(f"{short(value)} is below the minimum {low:g}")
            if high is not None and value > high:
                raise _BadValueError(f"{short(value)} is above the maximum {high:g}")
            return value

        def null_or_bad(value: Any, expected: str) -> Any:
            if value is None:
                if nullable:
                    return None
                raise _BadValueError("must not be null")
            raise _BadValueError(f"expected {expected}, got {_type_name(value)}")

        if self.type == "float":

            def check_float(value: Any) -> Any:
                if isinstance(value, int | float) and not isinstance(value, bool):
                    number = float(value)
                    if not math.isfinite(number):
                        raise _BadValueError(
                            "must be a finite number (NaN and Infinity are not allowed)"
                        )
                    return bounded(number)
                return null_or_bad(value, "a number")

            return check_float
        if self.type == "int":

            def check_int(value: Any) -> Any:
                if isinstance(value, float) and not isinstance(value, bool):
                    if not math.isfinite(value) or not value.is_integer():
                        raise _BadValueError(f"expected an integer, got {short(value)}")
                    value = int(value)
                if isinstance(value, int) and not isinstance(value, bool):
                    if abs(value) > _INT64:
                        raise _BadValueError("integer out of the 64-bit range")
                    bounded(value)
                    return value
                return null_or_bad(value, "an integer")

            return check_int
        if self.type == "bool":

            def check_bool(value: Any) -> Any:
                if isinstance(value, bool):
                    return value
                return null_or_bad(value, "a boolean")

            return check_bool
        allowed = frozenset((type(c), c) for c in self.categories or ())
        listed = ", ".join(short(c, 20) for c in (self.categories or ())[:10])

        def check_category(value: Any) -> Any:
            if value is None:
                return null_or_bad(value, "a category")
            if not allowed:
                if isinstance(value, str):
                    return value
                raise _BadValueError(f"expected a string, got {_type_name(value)}")
            if isinstance(value, list | dict):
                raise _BadValueError(f"expected one of the categories, got {_type_name(value)}")
            if (type(value), value) in allowed:
                return value
            raise _BadValueError(
                f"{short(value)!r} is not one of the declared categories ({listed})"
            )

        return check_category


class InputSchema:
    """The ordered input columns of a model and the validation of request rows against them."""

    def __init__(self, fields: Sequence[FieldSpec]) -> None:
        if not fields:
            raise ValueError("an input schema needs at least one column")
        self.fields = tuple(fields)
        self.names = tuple(spec.name for spec in self.fields)
        self._name_set = frozenset(self.names)
        self._checks = tuple((spec.name, spec.checker()) for spec in self.fields)
        self._optional = frozenset(spec.name for spec in self.fields if spec.nullable)

    @classmethod
    def from_params(cls, data: DataParams) -> InputSchema:
        return cls(
            [
                FieldSpec(
                    name=name,
                    type=data.columns[name].type,
                    nullable=data.columns[name].nullable,
                    min=data.columns[name].min,
                    max=data.columns[name].max,
                    categories=data.columns[name].categories,
                )
                for name in data.features
            ]
        )

    def columns_from_records(self, rows: Sequence[Any]) -> dict[str, list[Any]]:
        """Validate a list of row objects; returns column-wise values in schema order."""
        columns: dict[str, list[Any]] = {name: [] for name in self.names}
        problems: list[dict[str, Any]] = []

        def problem(row: int, name: str | None, text: str) -> None:
            if len(problems) < MAX_PROBLEMS:
                problems.append(
                    {
                        "row": row,
                        "field": None if name is None else short(name, 64),
                        "problem": text,
                    }
                )

        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                problem(index, None, f"expected an object of column values, got {_type_name(row)}")
                continue
            if len(row) != len(self.names) or row.keys() != self._name_set:
                for name in row.keys() - self._name_set:
                    problem(index, name, "unknown field (not in the model's input schema)")
                for name in self._name_set - row.keys() - self._optional:
                    problem(index, name, "required field is missing")
            for name, check in self._checks:
                try:
                    columns[name].append(check(row.get(name)))
                except _BadValueError as bad:
                    if name in row:  # a missing field is reported once, above
                        problem(index, name, str(bad))
            if len(problems) >= MAX_PROBLEMS:
                break
        if problems:
            first = problems[0]
            where = f"row {first['row']}" + (
                f", field {first['field']!r}" if first["field"] else ""
            )
            raise InputError(
                422,
                "INVALID_PARAMETER_VALUE",
                f"invalid input: {where}: {first['problem']}",
                problems,
            )
        return columns

    def example_rows(self, count: int, seed: int = 0) -> list[dict[str, Any]]:
        """Deterministic valid rows spanning each column's range (warm-up and runtime checks)."""
        rng = random.Random(seed)  # noqa: S311 - sample inputs, not security
        rows = []
        for index in range(count):
            row: dict[str, Any] = {}
            for spec in self.fields:
                low = spec.min if spec.min is not None else 0.0
                high = spec.max if spec.max is not None else max(low, 0.0) + 100.0
                if spec.type == "float":
                    row[spec.name] = round(rng.uniform(low, high), 4)
                elif spec.type == "int":
                    row[spec.name] = rng.randint(math.ceil(low), math.floor(min(high, low + 10)))
                elif spec.type == "bool":
                    row[spec.name] = bool(index % 2)
                elif spec.categories:
                    row[spec.name] = spec.categories[index % len(spec.categories)]
                else:
                    row[spec.name] = "x"
            rows.append(row)
        return rows

    def row_json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {spec.name: spec.json_schema() for spec in self.fields},
            "required": [spec.name for spec in self.fields if not spec.nullable],
            "additionalProperties": False,
        }

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "name": spec.name,
                "type": spec.type,
                "nullable": spec.nullable,
                **({"min": spec.min} if spec.min is not None else {}),
                **({"max": spec.max} if spec.max is not None else {}),
                **({"categories": list(spec.categories)} if spec.categories else {}),
            }
            for spec in self.fields
        ]


def records_from_body(payload: Any, max_rows: int) -> list[Any]:
    """``POST /predict``: one row object, or an array of row objects."""
    if isinstance(payload, dict):
        rows: list[Any] = [payload]
    elif isinstance(payload, list):
        rows = payload
    else:
        raise InputError(
            400,
            "BAD_REQUEST",
            f"expected a row object or an array of row objects, got {_type_name(payload)}",
        )
    return _bounded(rows, max_rows)


def _bounded(rows: list[Any], max_rows: int) -> list[Any]:
    if not rows:
        raise InputError(422, "INVALID_PARAMETER_VALUE", "no rows to predict (got 0 rows)")
    if len(rows) > max_rows:
        raise InputError(
            413, "PAYLOAD_TOO_LARGE", f"too many rows: {len(rows)} > the limit of {max_rows}"
        )
    return rows


INVOCATION_FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")


def records_from_invocation(payload: Any, max_rows: int) -> list[Any]:
    """``POST /invocations``: MLflow's scoring protocol (``dataframe_split``, ``dataframe_records``,
    ``inputs`` or ``instances``), turned into a list of row objects."""
    if not isinstance(payload, dict):
        raise InputError(
            400,
            "BAD_REQUEST",
            f"expected a JSON object with one of the keys {', '.join(INVOCATION_FORMATS)}, "
            f"got {_type_name(payload)}",
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
        return _bounded(_split_rows(value, max_rows), max_rows)
    if key in ("inputs", "instances") and isinstance(value, dict):
        return _bounded(_columnar_rows(key, value, max_rows), max_rows)
    if not isinstance(value, list):
        raise InputError(
            400, "BAD_REQUEST", f"{key}: expected an array of row objects, got {_type_name(value)}"
        )
    return _bounded(value, max_rows)


def _split_rows(value: Any, max_rows: int) -> list[Any]:
    if not isinstance(value, dict):
        raise InputError(
            400, "BAD_REQUEST", f"dataframe_split: expected an object, got {_type_name(value)}"
        )
    columns, data = value.get("columns"), value.get("data")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(400, "BAD_REQUEST", "dataframe_split.columns: expected an array of names")
    if not isinstance(data, list):
        raise InputError(400, "BAD_REQUEST", "dataframe_split.data: expected an array of rows")
    if len(data) > max_rows:
        _bounded(data, max_rows)
    rows = []
    for index, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InputError(
                422,
                "INVALID_PARAMETER_VALUE",
                f"dataframe_split.data[{index}]: expected an array of {len(columns)} values",
                [{"row": index, "field": None, "problem": "wrong number of values"}],
            )
        rows.append(dict(zip(columns, row, strict=True)))
    return rows


def _columnar_rows(key: str, value: dict[str, Any], max_rows: int) -> list[Any]:
    lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
    if -1 in lengths or len(lengths) > 1:
        raise InputError(
            400, "BAD_REQUEST", f"{key}: expected an object of equally long arrays (one per column)"
        )
    count = lengths.pop() if lengths else 0
    if count > max_rows:
        _bounded([None] * count, max_rows)
    return [{name: column[i] for name, column in value.items()} for i in range(count)]
