"""Column checks: a column of client values becomes one NumPy array, plus the rows that fail.

Two implementations with the same verdicts: :func:`checked_values` runs the reference
:func:`~modelci.serving.fields.checker` on each value (used for small batches), :func:`check_column`
finds the bad rows with array operations (type codes from C-level ``map(type, ...)``, bounds and
membership as masks), so a 100,000-row batch costs a few passes over arrays instead of a Python call
per value; a column of one plain type, all in bounds or categories (the usual batch), is converted
straight to its array without the type-code arrays (:func:`_all_good`). Either way the message
for a bad value comes from the checker (:func:`problem_text`).

Arrays fed to the runtimes: ``float`` and nullable ``int`` columns as float64 with NaN for null;
``int`` as int64; ``bool`` as bool (object with None when nullable); ``category`` as object with
None for null. ``MISSING`` (a field a row omitted) counts as null and is never reported here: a
missing required field is reported where the batch's structure is checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from modelci.config import INT64, Column
from modelci.serving.fields import MISSING, BadValueError

_NONE = type(None)
_MISSING = type(MISSING)
_HASHABLE = (str, int, float, bool)
# Float magnitudes from here up are checked exactly against the int64 range (float64 rounds).
_NEAR_INT64 = 2.0**62


def _of(kinds: np.ndarray, kind: type) -> np.ndarray:
    """Rows whose value is exactly of type ``kind`` (``bool`` is not ``int`` here)."""
    return np.asarray(kinds == kind, dtype=bool)


def problem_text(check: Callable[[Any], Any], value: Any) -> str:
    """The reference checker's message for a value found bad."""
    try:
        check(value)
    except BadValueError as bad:
        return str(bad)
    return "invalid value"  # unreachable while both implementations agree (tested)


def _array(spec: Column, values: Sequence[Any], null: np.ndarray | None) -> np.ndarray:
    """The model-ready array of already-valid values (``null`` marks null and missing)."""
    if spec.type == "float" or (spec.type == "int" and spec.nullable):
        if null is None or not null.any():
            return np.array(values, dtype="float64")
        out = np.full(len(values), np.nan)
        keep = ~null
        out[keep] = np.array([v for v, n in zip(values, null, strict=True) if not n], "float64")
        return out
    if spec.type == "int":
        return np.array(values, dtype="int64")
    if spec.type == "bool" and not spec.nullable:
        return np.array(values, dtype="bool")
    out = _objects(values)
    if null is not None and null.any():
        out[null] = None
    return out


def checked_values(
    spec: Column, check: Callable[[Any], Any], values: Sequence[Any]
) -> tuple[np.ndarray, list[int]]:
    """Value by value through the reference checker: (array, bad rows)."""
    converted: list[Any] = []
    bad: list[int] = []
    for index, value in enumerate(values):
        if value is MISSING:
            converted.append(None)
            continue
        try:
            converted.append(check(value))
        except BadValueError:
            bad.append(index)
            converted.append(None)
    if bad:
        return np.empty(0), bad
    null = np.fromiter((v is None for v in converted), dtype=bool, count=len(converted))
    if spec.type == "int" and not spec.nullable:
        converted = [0 if v is None else v for v in converted]  # only MISSING (reported elsewhere)
    return _array(spec, converted, null), bad


def _floats(objects: np.ndarray) -> np.ndarray:
    """Python numbers (object array) as float64; integers beyond float range become inf."""
    try:
        return objects.astype("float64")
    except OverflowError:
        return np.array([_to_float(v) for v in objects], dtype="float64")


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return float("inf") if value > 0 else float("-inf")


def _bounded(spec: Column, numbers: np.ndarray) -> np.ndarray:
    ok = np.ones(len(numbers), dtype=bool)
    if spec.min is not None:
        ok &= numbers >= spec.min
    if spec.max is not None:
        ok &= numbers <= spec.max
    return ok


def _all_good(spec: Column, values: Sequence[Any]) -> np.ndarray | None:
    """The model-ready array when every value is of one plain type the column takes and in its
    bounds or categories (the usual batch), found with C-level passes and one NumPy conversion
    straight from the values; None when any value needs the full check."""
    if spec.type == "category" and spec.categories is not None:
        return _all_declared(spec.categories, values)
    kinds = set(map(type, values))
    if len(kinds) != 1 and not (spec.type == "float" and kinds == {float, int}):
        return None
    kind = kinds.pop() if len(kinds) == 1 else float
    try:
        if spec.type == "float" and kind in (float, int):
            numbers = np.array(values, dtype="float64")
            ok = np.isfinite(numbers) & _bounded(spec, numbers)
            return numbers if ok.all() else None
        if spec.type == "int" and kind is int:
            whole = np.array(values, dtype="int64")  # OverflowError beyond int64
            # the declared range is symmetric, [-INT64, INT64]: int64's own minimum is outside
            ok = _bounded(spec, whole) & (whole >= -INT64)
            if not ok.all():
                return None
            return whole.astype("float64") if spec.nullable else whole
        if spec.type == "bool" and kind is bool:
            return np.array(values, dtype="bool" if not spec.nullable else object)
    except OverflowError:
        return None
    if spec.type == "category" and kind is str:  # undeclared categories: any string goes
        return _objects(values)
    return None


def _all_declared(categories: Sequence[Any], values: Sequence[Any]) -> np.ndarray | None:
    """The object array of a category column whose distinct values are all strings among its
    declared (string) categories; None otherwise. The types are checked on the distinct values
    only: a value equal to a string is a string among the types a JSON or CSV parser builds."""
    try:
        distinct = set(values)
    except TypeError:  # an unhashable value (a list or an object): the full check names it
        return None
    if set(map(type, distinct)) != {str} or not distinct <= frozenset(categories):
        return None
    return _objects(values)


def _objects(values: Sequence[Any]) -> np.ndarray:
    """The values as a one-dimensional object array (``np.array`` would nest lists and tuples)."""
    objects = np.empty(len(values), dtype=object)
    objects[:] = values
    return objects


def check_column(spec: Column, values: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
    """Vectorised: (array, bad rows); the array is empty when there are bad rows."""
    fast = _all_good(spec, values)
    if fast is not None:
        return fast, []
    return check_by_type_codes(spec, values)


def check_by_type_codes(spec: Column, values: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
    """:func:`check_column` without its fast path: a type code per value, masks per kind."""
    count = len(values)
    kinds = np.fromiter(map(type, values), dtype=object, count=count)
    objects = np.fromiter(values, dtype=object, count=count)
    missing = kinds == _MISSING
    null = (kinds == _NONE) | missing
    if spec.type in ("float", "int"):
        good, numbers = _numeric(spec, kinds, objects)
    elif spec.type == "bool":
        good, numbers = _of(kinds, bool), None
    else:
        good, numbers = _category(spec, kinds, objects), None
    good |= missing
    if spec.nullable:
        good |= null
    bad = np.flatnonzero(~good).tolist()
    if bad:
        return np.empty(0), bad
    any_null = bool(null.any())
    if numbers is not None and (spec.type == "float" or spec.nullable):
        numbers[null] = np.nan
        return numbers, bad
    if spec.type == "int":
        objects[missing] = 0  # a missing required value, already reported by the caller
        return objects.astype("int64"), bad
    if spec.type == "bool" and not spec.nullable:
        objects[missing] = False  # likewise
        return objects.astype("bool"), bad
    if any_null:
        objects[null] = None
    return objects, bad


def _numeric(spec: Column, kinds: np.ndarray, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    is_int = _of(kinds, int)
    is_float = _of(kinds, float)
    numeric = is_int | is_float
    numbers = np.zeros(len(objects), dtype="float64")
    numbers[numeric] = _floats(objects[numeric])
    finite = np.isfinite(numbers)
    if spec.type == "float":
        return numeric & finite & _bounded(spec, numbers), numbers
    whole = is_float & finite & (numbers == np.floor(numbers))
    good = (is_int | whole) & finite & _bounded(spec, numbers)
    near = np.flatnonzero(good & (np.abs(numbers) >= _NEAR_INT64))
    for index in near.tolist():  # exact range check where float64 rounds
        good[index] = abs(int(objects[index])) <= INT64
    if good.all():
        # whole floats become ints: exact for ints, and floats below 2**53 are exact anyway
        objects[is_float] = numbers[is_float].astype("int64")
    return good, numbers


def _category(spec: Column, kinds: np.ndarray, objects: np.ndarray) -> np.ndarray:
    is_str = _of(kinds, str)
    if spec.categories is None:
        return is_str
    if all(isinstance(c, str) for c in spec.categories):
        good = is_str.copy()
        allowed = frozenset(spec.categories)
        good[is_str] = np.fromiter(
            map(allowed.__contains__, objects[is_str]), dtype=bool, count=int(is_str.sum())
        )
        return good
    typed = frozenset((type(c), c) for c in spec.categories)
    hashable = np.zeros(len(kinds), dtype=bool)
    for kind in _HASHABLE:
        hashable |= _of(kinds, kind)
    good = np.zeros(len(kinds), dtype=bool)
    good[hashable] = np.fromiter(
        map(typed.__contains__, zip(kinds[hashable], objects[hashable], strict=True)),
        dtype=bool,
        count=int(hashable.sum()),
    )
    return good
