"""A float32 matrix written to the cache row block by row block, so a long extraction survives interruption.

:class:`RowFile` is a ``.npy`` file whose header states the final shape up front; rows are appended in order
and reach the file (the OS page cache) as soon as they are written, so a killed process loses at most the
block in flight. Opening the same path again resumes after the last complete row that passes ``check`` (a row
that does not, and every row after it, is written again); a file whose header does not match the expected shape
is started afresh. Nothing is kept in memory but the block being written or checked.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no locking
    fcntl = None

import numpy as np
import torch

_DTYPE = np.dtype("<f4")
RowCheck = Callable[[np.ndarray], np.ndarray]  # (n, dim) rows -> (n,) bool: which rows are sound
_CHECK_BLOCK = 1 << 14


def finite_rows(rows: np.ndarray) -> np.ndarray:
    """The default row check: every value finite."""
    return np.isfinite(rows).all(axis=1)


def _header(rows: int, dim: int) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": _DTYPE.str, "fortran_order": False, "shape": (rows, dim)})
    return buf.getvalue()


class RowFileBusy(RuntimeError):
    """Another process is writing this row file."""


class RowFile:
    """Append-only (rows, dim) float32 ``.npy`` at ``path``; ``done`` is the number of sound rows already in it."""

    def __init__(self, path: str | os.PathLike, rows: int, dim: int, check: RowCheck = finite_rows):
        self.path, self.rows, self.dim = Path(path), int(rows), int(dim)
        self.header = _header(self.rows, self.dim)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+b", buffering=0)  # noqa: SIM115 - held until close(); created if missing, never truncated
        if fcntl is not None:
            try:
                fcntl.lockf(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._fh.close()
                raise RowFileBusy(f"{self.path} is being written by another process") from None
        row_bytes = self.dim * _DTYPE.itemsize
        self._fh.seek(0)
        if self._fh.read(len(self.header)) == self.header:
            complete = min(self.rows, (os.fstat(self._fh.fileno()).st_size - len(self.header)) // row_bytes)
            self.done = self._sound_prefix(complete, check)
        else:  # absent, empty or another matrix: start afresh
            self.done = 0
            self._fh.truncate(0)
            self._fh.write(self.header)
        self._fh.truncate(len(self.header) + self.done * row_bytes)  # drop a torn or unsound tail

    def _sound_prefix(self, complete: int, check: RowCheck) -> int:
        """How many of the first ``complete`` rows pass ``check`` before the first that does not."""
        self._fh.seek(len(self.header))
        for start in range(0, complete, _CHECK_BLOCK):
            n = min(_CHECK_BLOCK, complete - start)
            block = np.frombuffer(self._fh.read(n * self.dim * _DTYPE.itemsize), dtype=_DTYPE).reshape(n, self.dim)
            bad = np.flatnonzero(~check(block))
            if len(bad):
                return start + int(bad[0])
        return complete

    @property
    def complete(self) -> bool:
        return self.done == self.rows

    def write(self, first: int, block: torch.Tensor | np.ndarray) -> None:
        """Write rows ``first .. first + len(block)``; rows already in the file are skipped, a gap is an error."""
        if first > self.done:
            raise ValueError(f"{self.path}: rows must come in order; got row {first} after {self.done} rows")
        block = np.ascontiguousarray(torch.as_tensor(block).float().numpy(), dtype=_DTYPE)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise ValueError(f"{self.path}: expected blocks of shape (n, {self.dim}), got {block.shape}")
        block = block[self.done - first:]
        if self.done + len(block) > self.rows:
            raise ValueError(f"{self.path}: {self.done + len(block)} rows exceed the declared {self.rows}")
        self._fh.write(block.tobytes())
        self.done += len(block)

    def truncate(self, rows: int) -> None:
        """Keep only the first ``rows`` rows (fewer than :attr:`done`: the rest will be written again)."""
        if rows < self.done:
            self.done = max(0, int(rows))
            self._fh.truncate(len(self.header) + self.done * self.dim * _DTYPE.itemsize)
            self._fh.seek(0, os.SEEK_END)

    def read(self) -> torch.Tensor:
        """The complete matrix (an error if rows are missing)."""
        if not self.complete:
            raise RuntimeError(f"{self.path}: only {self.done} of {self.rows} rows were written")
        self._fh.seek(0)  # through this handle: closing a second one would drop the process's lock
        return torch.from_numpy(np.load(self._fh))

    def close(self) -> None:
        self._fh.close()

    def discard(self) -> None:
        """Delete the file and close it (once its rows live on in the final cache entries)."""
        self.path.unlink(missing_ok=True)
        self.close()

    def __enter__(self) -> RowFile:
        return self

    def __exit__(self, *exc) -> None:
        if not self._fh.closed:
            self.close()
