"""``@frozen``: an immutable value class, as cheap to make as a plain one.

``@dataclass(frozen=True)`` guards every field by setting it through ``object.__setattr__``
in ``__init__``: a row result of 12 fields cost 1.9 µs to make against 0.3 µs for the same
class unfrozen, and a run makes several such values per input row. A class declared with
``@frozen`` is a slotted, hashable dataclass whose fields the type checker treats as
read-only (``dataclass_transform(frozen_default=True)``; ``mypy --strict`` refuses any
assignment to one), and which skips the per-field guard at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

C = TypeVar("C", bound=type)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: C) -> C:
    """Declare ``cls`` an immutable value: a slotted dataclass, compared and hashed by its
    fields, read-only for the type checker."""
    made: C = dataclass(slots=True, unsafe_hash=True)(cls)  # type: ignore[assignment]
    return made
