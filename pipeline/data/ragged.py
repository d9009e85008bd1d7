"""Token ids of many sentences as one flat int32 array plus int64 offsets (sentence i is
``ids[offsets[i]:offsets[i+1]]``): two ``.npy`` files per side, memory-mapped when read, so
neither writing nor training ever holds a Python list of every sentence.
"""
from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

from pipeline.errors import DataError

COPY_CHUNK = 1 << 22  # ids per copy step when the stream is turned into a .npy file
RERUN = "rerun the prepare stage (or `dvc checkout` the prepared data)"


def _load(path: Path, mmap_mode):
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as error:  # truncated, not a .npy file, pickled objects
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DataError(f"{path}: cannot read ({first}); {RERUN}") from None


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
        """A missing file raises FileNotFoundError (callers name the stage that makes it); a
        truncated file or offsets that do not fit the ids are a DataError naming the file."""
        ids_path, offsets_path = Path(directory) / f"{stem}.ids.npy", Path(directory) / f"{stem}.offsets.npy"
        self.ids = _load(ids_path, "r" if mmap else None)
        self.offsets = _load(offsets_path, None)
        self.lengths = np.diff(self.offsets)
        if self.ids.ndim != 1 or not np.issubdtype(self.ids.dtype, np.integer):
            raise DataError(f"{ids_path}: expected a flat array of token ids, found {self.ids.dtype} "
                            f"of shape {self.ids.shape}; {RERUN}")
        if self.offsets.ndim != 1 or not np.issubdtype(self.offsets.dtype, np.integer) or len(self.offsets) == 0:
            raise DataError(f"{offsets_path}: expected a non-empty flat array of integer offsets, found "
                            f"{self.offsets.dtype} of shape {self.offsets.shape}; {RERUN}")
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.ids):
            raise DataError(f"{offsets_path}: offsets run from {self.offsets[0]} to {self.offsets[-1]} but "
                            f"{ids_path.name} holds {len(self.ids)} ids; {RERUN}")
        if len(self.lengths) and self.lengths.min() < 0:
            sentence = int(np.argmax(self.lengths < 0))
            raise DataError(f"{offsets_path}: offsets decrease at sentence {sentence}; {RERUN}")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return self.ids[self.offsets[index] : self.offsets[index + 1]]
