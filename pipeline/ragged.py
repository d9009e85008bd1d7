"""Token ids of many sentences as one flat int32 array plus int64 offsets (sentence i is
``ids[offsets[i]:offsets[i+1]]``): two ``.npy`` files per side, memory-mapped when read, so
neither writing nor training ever holds a Python list of every sentence.
"""
from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

COPY_CHUNK = 1 << 22  # ids per copy step when the stream is turned into a .npy file


class RaggedWriter:
    """Appends sentences to a raw stream; ``close()`` writes ``<stem>.ids.npy`` and ``<stem>.offsets.npy``."""

    def __init__(self, directory: Path, stem: str) -> None:
        self.directory, self.stem = directory, stem
        self._raw_path = directory / f"{stem}.ids.raw"
        self._raw = self._raw_path.open("wb")
        self._offsets = array("q", [0])

    def append(self, ids: np.ndarray) -> None:
        self._raw.write(np.ascontiguousarray(ids, dtype=np.int32).tobytes())
        self._offsets.append(self._offsets[-1] + len(ids))

    def close(self) -> None:
        self._raw.close()
        total = self._offsets[-1]
        ids = np.lib.format.open_memmap(self.directory / f"{self.stem}.ids.npy", "w+", np.int32, (total,))
        raw = np.memmap(self._raw_path, np.int32, "r", shape=(total,)) if total else np.empty(0, np.int32)
        for start in range(0, total, COPY_CHUNK):
            ids[start : start + COPY_CHUNK] = raw[start : start + COPY_CHUNK]
        ids.flush()
        del ids, raw
        self._raw_path.unlink()
        np.save(self.directory / f"{self.stem}.offsets.npy", np.frombuffer(self._offsets, dtype=np.int64))


class RaggedArray:
    """Read side: ``len()``, ``[i]`` → int32 ids of sentence i, ``lengths`` of every sentence."""

    def __init__(self, directory: Path, stem: str, mmap: bool = True) -> None:
        mode = "r" if mmap else None
        self.ids = np.load(Path(directory) / f"{stem}.ids.npy", mmap_mode=mode)
        self.offsets = np.load(Path(directory) / f"{stem}.offsets.npy")
        self.lengths = np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.ids[self.offsets[index] : self.offsets[index + 1]]
