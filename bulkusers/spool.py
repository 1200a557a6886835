"""A sequence written once and read any number of times: in memory while small, then on disk.

The run reads its input once; what a later stage needs again (the rows for planning, the plan
for sending) comes back from a spool, never from a second parse of the input file. Items are
pickled in blocks into an anonymous temporary file, which the operating system removes when it
is closed or the process ends, so a killed run leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import pickle
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any, Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type)

#: Rows kept in memory before the spool moves to disk (an item weighs the rows it holds).
MEMORY_ITEMS = 20_000
#: Items pickled together: large enough that pickle's per-call cost vanishes, small enough
#: that a block never weighs much.
BLOCK_ITEMS = 2_000


def spooled(cls: C) -> C:
    """Make a frozen dataclass pickle as its constructor call with positional fields.

    A slotted frozen dataclass otherwise pickles through ``__getstate__``/``__setstate__``,
    which look its fields up again for every object: a plan of a million rows spent seconds
    there.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    values = operator.attrgetter(*names)

    def __reduce__(self: Any) -> tuple[type, tuple[Any, ...]]:
        found = values(self)
        return cls, found if len(names) > 1 else (found,)

    cls.__reduce__ = __reduce__  # type: ignore[method-assign,assignment]
    return cls


class Spool(Generic[T]):
    """Append items, then ``close()`` and iterate as often as needed, always in order.

    ``weigh`` tells how many rows an item holds (a batch of 50 creates weighs 50), so that the
    memory budget counts rows whatever the batch size. ``kind``: every item is exactly this
    dataclass (no subclass), made again from its fields in order: a block on disk is then a
    list of plain tuples, which pickle writes and reads back two to three times faster than
    the objects themselves (an input of a million rows spent about 1.4 s there).
    """

    def __init__(self, memory_items: int = MEMORY_ITEMS, block_items: int = BLOCK_ITEMS,
                 weigh: Callable[[T], int] | None = None,
                 kind: Callable[..., T] | None = None) -> None:
        self._memory_items = memory_items
        self._block_items = block_items
        self._weigh = weigh
        self._kind = kind
        self._fields: Callable[[T], tuple[Any, ...]] | None = None
        if kind is not None:
            names = [f.name for f in dataclasses.fields(kind)]  # type: ignore[arg-type]
            if len(names) < 2:
                raise ValueError("a spool of a kind needs a dataclass of two fields or more")
            self._fields = operator.attrgetter(*names)
        self._weight = 0
        self._items: list[T] = []
        self._file: IO[bytes] | None = None
        self._length = 0
        self._closed = False

    def append(self, item: T) -> None:
        """Add one item at the end (only before ``close``)."""
        if self._closed:
            raise ValueError("the spool is closed")
        self._items.append(item)
        self._length += 1
        self._weight += self._weigh(item) if self._weigh is not None else 1
        self._spill()

    def extend(self, items: list[T]) -> None:
        """Add items at the end, in order (only before ``close``): as ``append`` of each, in
        one call."""
        if self._closed:
            raise ValueError("the spool is closed")
        self._items.extend(items)
        self._length += len(items)
        self._weight += sum(map(self._weigh, items)) if self._weigh is not None else len(items)
        self._spill()

    def _spill(self) -> None:
        """Past the memory budget, move to disk; there, write each full block."""
        if self._file is None and self._weight > self._memory_items:
            # Held open across calls and closed by discard(): no `with` block fits.
            self._file = tempfile.TemporaryFile(prefix="bulkusers-spool-")  # noqa: SIM115
        if self._file is not None and self._weight >= self._block_items:
            self._flush()

    def close(self) -> Spool[T]:
        """End writing; returns the spool, ready to read."""
        if self._file is not None and self._items:
            self._flush()
        self._closed = True
        return self

    def _flush(self) -> None:
        assert self._file is not None
        block: list[Any] = self._items
        if self._fields is not None:
            block = list(map(self._fields, block))
        pickle.dump(block, self._file, protocol=pickle.HIGHEST_PROTOCOL)
        self._items = []
        self._weight = 0

    def __len__(self) -> int:
        return self._length

    @property
    def on_disk(self) -> bool:
        """True when the items went to a temporary file."""
        return self._file is not None

    def __iter__(self) -> Iterator[T]:
        if not self._closed:
            raise ValueError("close the spool before reading it")
        if self._file is None:
            yield from self._items
            return
        handle = self._file
        kind = self._kind
        offset = 0
        while True:
            # Each reader keeps its own position: two iterations may interleave.
            handle.seek(offset)
            try:
                block: list[Any] = pickle.load(handle)
            except EOFError:
                return
            offset = handle.tell()
            if kind is not None:
                yield from itertools.starmap(kind, block)
            else:
                yield from block

    def discard(self) -> None:
        """Free the memory or the temporary file."""
        self._items = []
        if self._file is not None:
            self._file.close()
            self._file = None
