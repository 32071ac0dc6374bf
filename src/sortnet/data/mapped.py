"""Images kept on disk: rows of a raw uint8 [N, C, H, W] file, read on demand with pread.

Usage:
    rows = MappedRows("cache/images.u8", shape=(30000, 3, 224, 224))
    batch = rows.take(np.array([5, 17, 3]))     # uint8 [3, C, H, W] in RAM, in the order asked
    train = rows.subset(train_index)             # a view: nothing is read

It behaves like a read-only uint8 array for what sortnet does with ImageSet.images (len, shape, dtype,
ndim, slicing, index arrays) but never maps the file: pages of a mapped file count toward the
process's resident memory, while pread leaves them in the kernel's page cache, so RAM stays bounded.
"""
from __future__ import annotations

import os

import numpy as np

MAX_READ = 64 << 20  # bytes per pread call (consecutive rows are read together up to this)


class MappedRows:
    """A read-only view of selected rows of a raw uint8 file (row-major [N, C, H, W], `offset` bytes in)."""

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, file: str | os.PathLike, shape: tuple[int, int, int, int], index: np.ndarray | None = None,
                 offset: int = 0):
        self.file, self.offset = os.fspath(file), int(offset)
        self.base_shape = tuple(int(v) for v in shape)
        self.index = np.arange(self.base_shape[0], dtype=np.int64) if index is None else np.asarray(index, np.int64)
        self.row_bytes = int(np.prod(self.base_shape[1:]))
        self._fd: int | None = None

    @classmethod
    def from_memmap(cls, mm: np.memmap) -> "MappedRows":
        if not mm.flags.c_contiguous or mm.dtype != np.uint8 or mm.ndim != 4:
            raise ValueError("only C-contiguous uint8 [N, C, H, W] memmaps can be viewed as MappedRows")
        return cls(mm.filename, mm.shape, offset=mm.offset)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base_shape[1:])

    def __len__(self) -> int:
        return len(self.index)

    def __getstate__(self) -> dict:  # never ship an open descriptor to another process
        return {**self.__dict__, "_fd": None}

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.file, os.O_RDONLY)
        return self._fd

    def subset(self, index: np.ndarray) -> "MappedRows":
        """The rows `index` of this view, as a new view (no pixels are read)."""
        return MappedRows(self.file, self.base_shape, self.index[np.asarray(index, np.int64)], self.offset)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """uint8 [len(rows), C, H, W] of view rows `rows`, read in file order (sorted, runs merged)."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        out = np.empty((len(rows), *self.base_shape[1:]), np.uint8)
        flat = out.reshape(len(rows), -1)
        file_rows = self.index[rows]
        order = np.argsort(file_rows, kind="stable")
        srt = file_rows[order]
        fd, i, n = self._descriptor(), 0, len(srt)
        per_read = max(1, MAX_READ // max(1, self.row_bytes))
        while i < n:
            j = i + 1
            while j < n and j - i < per_read and srt[j] == srt[j - 1] + 1:
                j += 1
            want = (j - i) * self.row_bytes
            buf = os.pread(fd, want, self.offset + int(srt[i]) * self.row_bytes)
            if len(buf) != want:
                raise OSError(f"image cache {self.file} is shorter than expected; delete it to rebuild")
            flat[order[i:j]] = np.frombuffer(buf, np.uint8).reshape(j - i, -1)
            i = j
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.take(np.asarray([key]))[0]
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.nonzero(key)[0]
        return self.take(key)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        arr = self.take(np.arange(len(self)))  # explicit materialisation: the whole view in RAM
        return arr if dtype is None else arr.astype(dtype)


def is_on_disk(images) -> bool:
    """True for images that should be streamed (MappedRows or np.memmap) rather than held resident."""
    return isinstance(images, (MappedRows, np.memmap))


def as_rows(images) -> MappedRows:
    """A MappedRows view of on-disk images (np.memmap views are wrapped without reading)."""
    return images if isinstance(images, MappedRows) else MappedRows.from_memmap(images)
