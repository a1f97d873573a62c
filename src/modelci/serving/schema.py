"""The request schema of the served model: validation of a batch, column by column.

The schema comes from ``data.columns`` in ``params.yaml`` (the target column left out), in the
order the model was trained on. A request body becomes a :class:`RawBatch` (the client's values
as one list per column, see :mod:`modelci.serving.payload`); :meth:`InputSchema.validate` turns it
into a :data:`Batch` (one 1-D NumPy array per column) or a 422 naming the row and the field of the
first :data:`MAX_PROBLEMS` problems, without echoing long values back, and counting the rest.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from modelci.config import Column
from modelci.serving import colcheck
from modelci.serving.fields import MISSING, InputError, Problem, checker, short, type_name

if TYPE_CHECKING:
    from modelci.config import DataParams

__all__ = [
    "MAX_PROBLEMS",
    "Batch",
    "InputError",
    "InputSchema",
    "RawBatch",
    "short",
]

MAX_PROBLEMS = 10
# Batches up to this many rows are checked value by value: faster than array set-up for a few rows.
ROW_PATH_MAX = 16
Batch = dict[str, np.ndarray]


def _invalid(problems: list[Problem], total: int) -> InputError:
    listed = [
        {"row": row, "field": None if name is None else short(name, 64), "problem": text}
        for row, _, name, text in problems
    ]
    first = listed[0]
    where = f"row {first['row']}" + (f", field {first['field']!r}" if first["field"] else "")
    rest = total - len(listed)
    more = f" ({rest} more problem{'s' if rest != 1 else ''} not listed)" if rest > 0 else ""
    return InputError(
        422,
        "INVALID_PARAMETER_VALUE",
        f"invalid input: {where}: {first['problem']}{more}",
        listed,
        total=total,
    )


@dataclass
class RawBatch:
    """A request's values as sent: one list per column (``MISSING`` where a row omitted the
    field), the columns sent that the schema does not know, and structural problems of single
    rows (a row that is not an object, an unknown or missing field in one row)."""

    rows: int
    columns: dict[str, list[Any]]
    unknown: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0

    @classmethod
    def from_records(cls, records: Sequence[Any], schema: InputSchema) -> RawBatch:
        """Row objects; a uniform batch (every row an object with exactly the schema's fields)
        is transposed with C-level ``map``, anything else row by row."""
        names = schema.names
        count = len(records)
        if set(map(type, records)) <= {dict} and sum(map(len, records)) == count * len(names):
            try:
                columns = {name: list(map(itemgetter(name), records)) for name in names}
            except KeyError:
                pass
            else:
                return cls(count, columns)
        return cls._from_irregular_records(records, schema)

    @classmethod
    def _from_irregular_records(cls, records: Sequence[Any], schema: InputSchema) -> RawBatch:
        columns: dict[str, list[Any]] = {name: [] for name in schema.names}
        problems: list[Problem] = []
        for index, row in enumerate(records):
            if not isinstance(row, dict):
                problems.append(
                    (index, -3, None, f"expected an object of column values, got {type_name(row)}")
                )
                for values in columns.values():
                    values.append(MISSING)
                continue
            if len(row) != len(schema.names) or row.keys() != schema.name_set:
                problems.extend(
                    (index, -2, name, "unknown field (not in the model's input schema)")
                    for name in row.keys() - schema.name_set
                )
                problems.extend(
                    (index, -1, name, "required field is missing")
                    for name in schema.name_set - row.keys() - schema.optional
                )
            for name, values in columns.items():
                values.append(row.get(name, MISSING))
        problems.sort(key=lambda p: (p[0], p[1]))
        return cls(len(records), columns, [], problems[:MAX_PROBLEMS], len(problems))

    @classmethod
    def from_columns(
        cls, rows: int, columns: dict[str, list[Any]], schema: InputSchema
    ) -> RawBatch:
        """Named columns of equal length (``dataframe_split``, columnar ``inputs``, CSV)."""
        unknown = [name for name in columns if name not in schema.name_set]
        known = {name: values for name, values in columns.items() if name in schema.name_set}
        return cls(rows, known, unknown)


class InputSchema:
    """The ordered input columns of a model and the validation of request rows against them."""

    def __init__(self, fields: Sequence[Column]) -> None:
        if not fields:
            raise ValueError("an input schema needs at least one column")
        self.fields = tuple(fields)
        self.names = tuple(spec.name for spec in self.fields)
        self.name_set = frozenset(self.names)
        self.optional = frozenset(spec.name for spec in self.fields if spec.nullable)
        self._checkers = tuple(checker(spec) for spec in self.fields)

    @classmethod
    def from_params(cls, data: DataParams) -> InputSchema:
        return cls(data.inputs())

    def validate(self, raw: RawBatch) -> Batch:
        """Validate client values column by column; returns one 1-D array per column in schema
        order (nulls as NaN in float columns, None in object columns), or raises a 422 naming the
        row and field of the first :data:`MAX_PROBLEMS` problems and counting the rest.

        Small batches go value by value through :func:`~modelci.serving.fields.checker` (no
        array overhead); larger ones through the vectorised checks of
        :mod:`modelci.serving.colcheck`, which find the bad rows with NumPy and ask the same
        checker only for the messages of the first ones.
        """
        vectorised = raw.rows > ROW_PATH_MAX
        problems: list[Problem] = list(raw.problems)
        total = raw.problem_count
        batch: Batch = {}
        for order, spec in enumerate(self.fields):
            values = raw.columns.get(spec.name)
            if values is None:
                values = [MISSING] * raw.rows
                if not spec.nullable:
                    total += raw.rows
                    problems.extend(
                        (row, -1, spec.name, "required field is missing")
                        for row in range(min(raw.rows, MAX_PROBLEMS))
                    )
            check = self._checkers[order]
            if vectorised:
                array, bad = colcheck.check_column(spec, values)
            else:
                array, bad = colcheck.checked_values(spec, check, values)
            total += len(bad)
            problems.extend(
                (row, order, spec.name, colcheck.problem_text(check, values[row]))
                for row in bad[:MAX_PROBLEMS]
            )
            batch[spec.name] = array
        for order, name in enumerate(raw.unknown):
            total += raw.rows
            problems.extend(
                (row, -2 - order, name, "unknown field (not in the model's input schema)")
                for row in range(min(raw.rows, MAX_PROBLEMS))
            )
        if total:
            raise _invalid(sorted(problems, key=lambda p: (p[0], p[1]))[:MAX_PROBLEMS], total)
        return batch

    def columns_from_records(self, rows: Sequence[Any]) -> Batch:
        """Validate a list of row objects (see :meth:`validate`)."""
        return self.validate(RawBatch.from_records(rows, self))

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
        return [spec.declaration() for spec in self.fields]
