"""Source-length buckets in words, as in Bahdanau et al. 2014 Fig. 2 (used by prepare and evaluate)."""
from __future__ import annotations

import numpy as np

BUCKET_WIDTH = 10
LAST_BUCKET_START = 60
BUCKET_LABELS = tuple(f"{s}-{s + BUCKET_WIDTH - 1}" for s in range(0, LAST_BUCKET_START, BUCKET_WIDTH)) + (
    f"{LAST_BUCKET_START}+",
)


def bucket_index(words: np.ndarray) -> np.ndarray:
    """Index into BUCKET_LABELS for each sentence length."""
    return np.minimum(np.asarray(words) // BUCKET_WIDTH, len(BUCKET_LABELS) - 1)


def histogram(words: np.ndarray) -> dict[str, int]:
    counts = np.bincount(bucket_index(words), minlength=len(BUCKET_LABELS)) if len(words) else [0] * len(BUCKET_LABELS)
    return {label: int(n) for label, n in zip(BUCKET_LABELS, counts)}
