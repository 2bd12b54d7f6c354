"""Samples kept compactly: what a sample repeats from the one before it is kept once.

A sampler keeps two hours of samples (28,800 at 0.25 s). Most of a sample's figures are the same
tick after tick: the memory's total, the process ids, a GPU's name, backend, totals and the reasons
why a figure is missing. Each read makes new objects for them all the same (a parsed int is 32
bytes, an empty dict 64). `share_unchanged(previous, sample)` points the new sample's fields at
the previous sample's objects wherever the values are equal, so a repeated figure costs one
pointer: the samples stay the immutable objects every reader of the buffer uses, at a fraction of
their size (bench/sample_memory.py measures it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, cast

T = TypeVar("T")

_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELDS.get(kind)
    if names is None:
        names = _FIELDS[kind] = tuple(f.name for f in dataclasses.fields(kind))
    return names


def shared(previous: Any, value: Any) -> Any:
    """`value`, or `previous` where the two are equal, with a dataclass's or a tuple's parts shared
    the same way (part by part, where they differ as a whole). `value` must be freshly made: a
    dataclass's fields are set in place, frozen or not."""
    if value is previous:
        return value
    kind = type(value)
    if type(previous) is not kind:
        return value
    if kind is tuple:
        if len(previous) != len(value):
            return value
        parts = tuple(shared(p, v) for p, v in zip(previous, value, strict=True))
        if all(p is q for p, q in zip(parts, previous, strict=True)):
            return previous
        return value if all(p is v for p, v in zip(parts, value, strict=True)) else parts
    if dataclasses.is_dataclass(kind):
        same = True
        for name in _field_names(kind):
            mine, theirs = getattr(value, name), getattr(previous, name)
            if mine is not theirs and (kept := shared(theirs, mine)) is not mine:
                object.__setattr__(value, name, kept)
                mine = kept
            same = same and mine is theirs
        return previous if same else value
    try:
        return previous if value == previous else value
    except (TypeError, ValueError):  # a value that cannot be compared is kept as it is
        return value


def share_unchanged(previous: T | None, sample: T) -> T:
    """`sample` with every field equal to `previous`'s pointing at `previous`'s object."""
    return sample if previous is None else cast(T, shared(previous, sample))
