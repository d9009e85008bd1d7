"""A linear bag-of-words probe: which source words can be read off a sentence vector? (maths only)

Labels are the source word types of a sentence (multi-label: present or not, repeats count once),
restricted to the ``probe.labels`` most frequent types of the train split (by the number of sentences
they occur in), special tokens excluded; with a BPE vocabulary a "type" is a vocabulary piece.
Words outside the label set (rarer ones, <unk>) are neither asked for nor counted. The
probe is one logistic layer D → labels fitted with binary cross-entropy and Adam for a fixed number
of epochs from a zero start (the problem is convex; the seed only orders the minibatches), so the
same features give the same probe. Its threshold is chosen on the dev split for a fixed pooled
precision, and recall is read per test bucket at that threshold (``pipeline.stages.probe`` is the stage).

Torch and numpy only: no Lightning, no matplotlib.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from models.special_tokens import SPECIAL_TOKENS

# Recall is read at a fixed precision (params.yaml: probe.target_precision), chosen per model on dev,
# so that models (and lengths) are compared at the same rate of false alarms: a probe can always raise
# recall by guessing more words. 0.9 means "one reported word in ten is wrong": high enough that a
# probe which only guesses the frequent words everywhere cannot reach it on real text, low enough
# that a useful probe finds a fair share of the words at it.
FAMILIES = ("rnnenc", "rnnsearch")  # the models whose sentence vector is probed


@dataclass(frozen=True)
class LabelSet:
    """Word ids probed, most frequent first, and the column of every vocabulary id (-1: not probed)."""

    ids: np.ndarray  # (K,) vocabulary ids
    column: np.ndarray  # (V,) id → column, -1 for specials and rare types

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Labels:
    """A split's label sets, sparse: sentence i holds columns ``columns[offsets[i]:offsets[i+1]]``."""

    offsets: np.ndarray  # (N+1,) int64
    columns: np.ndarray  # int64
    size: int  # K

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def rows(self, index: np.ndarray) -> "Labels":
        starts, ends = self.offsets[index], self.offsets[index + 1]
        lengths = ends - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        columns = (np.concatenate([self.columns[s:e] for s, e in zip(starts, ends)]) if len(index)
                   else np.zeros(0, np.int64))
        return Labels(offsets, columns.astype(np.int64), self.size)

    def dense(self, index: Optional[np.ndarray] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(n, K) 0/1 matrix of the given sentences (all when None)."""
        part = self if index is None else self.rows(index)
        matrix = torch.zeros(len(part), self.size, dtype=dtype)
        rows = np.repeat(np.arange(len(part)), np.diff(part.offsets))
        matrix[torch.from_numpy(rows), torch.from_numpy(part.columns)] = 1.0
        return matrix


def document_frequency(ids: np.ndarray, offsets: np.ndarray, vocab_size: int) -> np.ndarray:
    """(V,) number of sentences each id occurs in, for a ragged split (flat ids + offsets)."""
    sentence = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
    pairs = np.unique(sentence * vocab_size + np.asarray(ids, dtype=np.int64))
    return np.bincount(pairs % vocab_size, minlength=vocab_size)


def label_set(frequency: np.ndarray, size: int) -> LabelSet:
    """The ``size`` most frequent ids that occur at all (ties: the lower id), specials excluded."""
    frequency = np.asarray(frequency).copy()
    frequency[: len(SPECIAL_TOKENS)] = 0  # <pad>, <unk>, <s>, </s>: not words
    order = np.lexsort((np.arange(len(frequency)), -frequency))  # by count down, then id up
    ids = np.array([i for i in order[:size] if frequency[i] > 0], dtype=np.int64)
    column = np.full(len(frequency), -1, dtype=np.int64)
    column[ids] = np.arange(len(ids))
    return LabelSet(ids, column)


def sentence_labels(labels: LabelSet, sentences: Sequence[np.ndarray]) -> Labels:
    offsets, columns = [0], []
    for ids in sentences:
        found = np.unique(labels.column[np.asarray(ids, dtype=np.int64)])
        found = found[found >= 0]
        columns.append(found)
        offsets.append(offsets[-1] + len(found))
    flat = np.concatenate(columns).astype(np.int64) if columns else np.zeros(0, np.int64)
    return Labels(np.array(offsets, dtype=np.int64), flat, len(labels))


class Probe:
    """Standardize features (train mean and std), then one logistic layer D → K."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, layer: torch.nn.Linear) -> None:
        self.mean, self.std, self.layer = mean, std, layer

    @torch.no_grad()
    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.layer((features.float() - self.mean) / self.std)


def fit_probe(features: torch.Tensor, labels: Labels, epochs: int, batch: int, lr: float, seed: int) -> Probe:
    """Binary cross-entropy, Adam, ``epochs`` passes over shuffled minibatches (seeded), float32, CPU."""
    features = features.float()
    mean = features.mean(0)
    std = features.std(0, unbiased=False).clamp(min=1e-6)
    x = (features - mean) / std
    n, size = len(features), labels.size
    layer = torch.nn.Linear(features.size(1), size)
    with torch.no_grad():  # start from the label priors: the first epoch learns words, not frequencies
        layer.weight.zero_()
        prior = np.bincount(labels.columns, minlength=size) / max(n, 1)
        prior = np.clip(prior, 1.0 / (n + 2), 1.0 - 1.0 / (n + 2))
        layer.bias.copy_(torch.from_numpy(np.log(prior / (1 - prior))).float())
    optimizer = torch.optim.Adam(layer.parameters(), lr=lr, fused=True)  # one kernel: ~2× the loop on a CPU
    targets = labels.dense(dtype=torch.uint8)  # (n, K) bytes: 32 MB for 16k sentences × 2000 words
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch):
            index = order[start : start + batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(layer(x[index]), targets[index].float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    layer.requires_grad_(False)
    return Probe(mean, std, layer)


@dataclass(frozen=True)
class Threshold:
    """Predict a word present iff its logit ≥ ``logit``; None: no threshold reaches the precision."""

    logit: Optional[float]
    precision: Optional[float]  # pooled precision reached on the split it was chosen on
    recall: float

    @property
    def probability(self) -> Optional[float]:
        return None if self.logit is None else 1.0 / (1.0 + math.exp(-self.logit))

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        if self.logit is None:
            return torch.zeros_like(logits, dtype=torch.bool)
        return logits >= self.logit


def threshold_at_precision(logits: torch.Tensor, truth: torch.Tensor,
                           target: float) -> Threshold:
    """The lowest threshold whose pooled precision over every (sentence, word) decision is ≥ target.

    Precision is read only at cuts between distinct scores (tied scores are all in or all out); of
    the cuts that reach the target, the one that predicts most wins (the highest recall).
    """
    scores = logits.detach().double().flatten().numpy()
    positive = truth.flatten().numpy() > 0.5
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], positive[order]
    hits = np.cumsum(positive)
    predicted = np.arange(1, len(scores) + 1)
    cut = np.ones(len(scores), dtype=bool)
    cut[:-1] = scores[:-1] != scores[1:]  # last position of each run of equal scores
    reached = np.flatnonzero(cut & (hits >= target * predicted - 1e-9))
    total = int(positive.sum())
    if len(reached) == 0:
        return Threshold(None, None, 0.0)
    last = int(reached[-1])
    return Threshold(float(scores[last]), float(hits[last] / predicted[last]),
                     float(hits[last] / total) if total else 0.0)


@dataclass(frozen=True)
class Counts:
    n: int  # sentences
    words: int  # (sentence, word type) pairs present: what recall divides by
    found: int  # of those, predicted present
    predicted: int  # every (sentence, word type) predicted present
    auc: Optional[float] = None  # threshold-free: see ``ranking_auc``

    @property
    def recall(self) -> Optional[float]:
        return self.found / self.words if self.words else None

    @property
    def precision(self) -> Optional[float]:
        return self.found / self.predicted if self.predicted else None

    def as_dict(self, digits: int = 4) -> dict:
        rounded = lambda v: None if v is None else round(v, digits)  # noqa: E731
        return {"n": self.n, "recall": rounded(self.recall), "precision": rounded(self.precision),
                "auc": rounded(self.auc), "words": self.words, "found": self.found, "predicted": self.predicted}


def ranking_auc(logits: torch.Tensor, truth: torch.Tensor) -> Optional[float]:
    """ROC AUC over every (sentence, word) decision: the chance that a word the sentence has scores
    above one it lacks. Unlike recall at a fixed threshold it does not depend on how many words are
    present, which grows with length (on a small vocabulary a long sentence holds most words, and a
    probe that guesses "present" everywhere is then right at any precision). None: one class only."""
    from sklearn.metrics import roc_auc_score

    present = truth.flatten().numpy() > 0.5
    if present.all() or not present.any():
        return None
    return float(roc_auc_score(present, logits.detach().double().flatten().numpy()))


def counts(predicted: torch.Tensor, truth: torch.Tensor, logits: Optional[torch.Tensor] = None) -> Counts:
    present = truth > 0.5
    return Counts(int(predicted.size(0)), int(present.sum()), int((predicted & present).sum()),
                  int(predicted.sum()), None if logits is None else ranking_auc(logits, truth))


def bucket_counts(predicted: torch.Tensor, truth: torch.Tensor, buckets: np.ndarray,
                  labels: Sequence[str], logits: Optional[torch.Tensor] = None) -> dict[str, Counts]:
    """Counts per bucket label (every label, empty ones with n = 0); AUC where ``logits`` are given."""
    result = {}
    for number, label in enumerate(labels):
        rows = torch.from_numpy(np.flatnonzero(np.asarray(buckets) == number))
        result[label] = counts(predicted[rows], truth[rows], None if logits is None else logits[rows])
    return result
