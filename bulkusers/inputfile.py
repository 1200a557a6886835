"""An input file opened once: its first bytes for the checks, then every byte read once and
hashed on the way, so that a run gets the file's SHA-256 from the same pass that parses it."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from bulkusers.errors import InputError

#: Enough bytes to sniff the delimiter and catch a wrong encoding or binary data up front.
SAMPLE_BYTES = 64 * 1024
#: Read size of the buffered text stream over the file (fewer, larger reads: faster).
BUFFER_BYTES = 1 << 20


class InputFile(io.RawIOBase):
    """A binary stream over a file that replays its sample, then reads on, hashing each byte.

    ``sample`` is the file's first bytes, read at open; reading the stream starts again from
    byte 0 (the sample comes from memory, the rest from disk), so the file is opened and read
    from disk exactly once. ``sha256`` is known once the stream has reached the end.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        try:
            self._file = path.open("rb", buffering=0)
        except OSError as exc:
            raise InputError(
                f"{path}: cannot be read ({exc.strerror}); check its permissions") from exc
        self._digest = hashlib.sha256()
        self._ended = False
        start = self._read_from_disk(SAMPLE_BYTES + 1)
        #: The first bytes of the file (at most SAMPLE_BYTES).
        self.sample = start[:SAMPLE_BYTES]
        #: True when ``sample`` is the whole file.
        self.whole = len(start) <= SAMPLE_BYTES
        self._pending = memoryview(start)

    def _read_from_disk(self, size: int) -> bytes:
        """Up to ``size`` bytes from the file (fewer only at its end), hashed."""
        chunks: list[bytes] = []
        wanted = size
        while wanted > 0:
            chunk = self._file.read(wanted)
            if not chunk:
                self._ended = True
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        data = b"".join(chunks)
        self._digest.update(data)
        return data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` from the replayed sample, then from the file; 0 at the end."""
        if self._pending:
            count = min(len(buffer), len(self._pending))
            buffer[:count] = self._pending[:count]
            self._pending = self._pending[count:]
            return count
        count = self._file.readinto(buffer) or 0
        if count:
            self._digest.update(memoryview(buffer)[:count])
        else:
            self._ended = True
        return count

    def read_all(self) -> bytes:
        """Every byte of the file (for a workbook, which needs them all at once)."""
        rest = self._file.readall()
        self._digest.update(rest)
        self._ended = True
        data = bytes(self._pending) + rest
        self._pending = memoryview(b"")
        return data

    def text(self, encoding: str) -> io.TextIOWrapper:
        """The file from its first byte as text, for the csv module (newline="" as it wants)."""
        return io.TextIOWrapper(io.BufferedReader(self, BUFFER_BYTES), encoding=encoding,
                                newline="")

    @property
    def sha256(self) -> str:
        """The SHA-256 (hex) of the file's bytes; only once they have all been read."""
        if not self._ended:
            raise RuntimeError(f"{self.path}: sha256 asked before the file was read to the end")
        return self._digest.hexdigest()

    def close(self) -> None:
        self._file.close()
        super().close()
