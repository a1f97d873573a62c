"""The per-value check of an input column that is the reference for request validation.

:func:`checker` of a declared :class:`~modelci.config.Column` checks one JSON value and returns what
to feed the model or raises :class:`BadValueError` with the message the client sees; the vectorised
checks in :mod:`modelci.serving.colcheck` must agree with it (tests compare them) and ask it for
messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from modelci.config import INT64, Column
from modelci.errors import ModelCIError

_SHOWN = 40
# (row, order within the row, field name or None, problem): sorted by row then order.
Problem = tuple[int, int, str | None, str]


class _Missing:
    """A value the client did not send (distinct from an explicit null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class InputError(ModelCIError):
    """A request the client must fix: an HTTP status, a message, the first problems found and
    how many there are in all."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: Sequence[dict[str, Any]] = (),
        total: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total

    def body(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"error_code": self.code, "message": self.message}
        if self.problems:
            payload["problems"] = self.problems
            payload["problem_count"] = self.total
        return payload


class BadValueError(Exception):
    """One value's problem (internal; collected into an InputError)."""


def short(value: Any, limit: int = _SHOWN) -> str:
    """A bounded representation of client input, safe to put in an error message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def type_name(value: Any) -> str:
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


def checker(column: Column) -> Callable[[Any], Any]:
    """A function returning the value to feed the model, or raising BadValueError."""
    low, high, nullable = column.min, column.max, column.nullable

    def bounded(value: float) -> float:
        if low is not None and value < low:
            raise BadValueError(f"{short(value)} is below the minimum {low:g}")
        if high is not None and value > high:
            raise BadValueError(f"{short(value)} is above the maximum {high:g}")
        return value

    def null_or_bad(value: Any, expected: str) -> Any:
        if value is None:
            if nullable:
                return None
            raise BadValueError("must not be null")
        raise BadValueError(f"expected {expected}, got {type_name(value)}")

    if column.type == "float":

        def check_float(value: Any) -> Any:
            if isinstance(value, int | float) and not isinstance(value, bool):
                number = float(value)
                if not math.isfinite(number):
                    raise BadValueError(
                        "must be a finite number (NaN and Infinity are not allowed)"
                    )
                return bounded(number)
            return null_or_bad(value, "a number")

        return check_float
    if column.type == "int":

        def check_int(value: Any) -> Any:
            if isinstance(value, float) and not isinstance(value, bool):
                if not math.isfinite(value) or not value.is_integer():
                    raise BadValueError(f"expected an integer, got {short(value)}")
                value = int(value)
            if isinstance(value, int) and not isinstance(value, bool):
                if abs(value) > INT64:
                    raise BadValueError("integer out of the 64-bit range")
                bounded(value)
                return value
            return null_or_bad(value, "an integer")

        return check_int
    if column.type == "bool":

        def check_bool(value: Any) -> Any:
            if isinstance(value, bool):
                return value
            return null_or_bad(value, "a boolean")

        return check_bool
    allowed = frozenset((type(c), c) for c in column.categories or ())
    listed = ", ".join(short(c, 20) for c in (column.categories or ())[:10])

    def check_category(value: Any) -> Any:
        if value is None:
            return null_or_bad(value, "a category")
        if not allowed:
            if isinstance(value, str):
                return value
            raise BadValueError(f"expected a string, got {type_name(value)}")
        if isinstance(value, list | dict):
            raise BadValueError(f"expected one of the categories, got {type_name(value)}")
        if (type(value), value) in allowed:
            return value
        raise BadValueError(f"{short(value)!r} is not one of the declared categories ({listed})")

    return check_category
