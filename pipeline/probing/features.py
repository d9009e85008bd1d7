"""What the probe reads: each translation model's sentence vector, and the probe fitted on it per model."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from models.names import parse_model_name
from pipeline.config import ProbeConfig
from pipeline.data.length_buckets import BUCKET_LABELS
from pipeline.probing import bow_probe
from pipeline.probing.bow_probe import FAMILIES

FEATURES = {"rnnenc": "c", "rnnsearch": "mean annotation"}
# probe.train_sentences is a fixed, seeded sample of the train split: encoding all ~27k Bible sentences with six models and
# fitting on them is most of the stage's time on a CPU. Measured on the Bible corpus (random-init
# default-size models): RNNenc's c probe is saturated at 8k sentences (test recall 0.20 at 8k, 16k
# and 27k), the 512-wide RNNsearch mean still gains (0.74 / 0.81 / 0.84): 16k keeps the baseline
# close to its full-data value at ~60% of the full cost (16,000). Smaller corpora use all their sentences.
FEATURE_BATCH = 256  # sentences per encoder call, longest first (little padding)


def probed_models(models: list[str]) -> list[str]:
    return [name for name in models if parse_model_name(name)[0] in FAMILIES]


@torch.no_grad()
def features(model, split, indices: np.ndarray, device: torch.device, batch: int = FEATURE_BATCH) -> torch.Tensor:
    """(len(indices), D) float32 on the CPU, in the order of ``indices``: c for RNNenc, the masked
    mean of the annotations for RNNsearch. The model must be in eval mode (no dropout)."""
    from pipeline.training.datamodule import collate  # Lightning: imported once inputs are known to be good

    lengths = split.src.lengths[indices]
    order = np.argsort(-lengths, kind="stable")
    rows: list[Optional[torch.Tensor]] = [None] * ((len(order) + batch - 1) // batch)
    for number, start in enumerate(range(0, len(order), batch)):
        chunk = collate([split[int(i)] for i in indices[order[start : start + batch]]])
        memory = model.encode(chunk["src"].to(device), chunk["src_lengths"].to(device))
        if "context" in memory:
            vector = memory["context"]  # (B, H)
        else:
            mask = memory["mask"].unsqueeze(-1).to(memory["annotations"].dtype)  # (B, T, 1)
            vector = (memory["annotations"] * mask).sum(1) / mask.sum(1).clamp(min=1)  # (B, 2H)
        rows[number] = vector.float().cpu()
    result = torch.empty(len(indices), rows[0].size(1) if rows else 0)
    if rows:
        result[torch.from_numpy(order)] = torch.cat(rows)  # back to the order of ``indices``
    return result


def train_sample(size: int, limit: int, seed: int) -> np.ndarray:
    """The sorted, seeded sample of ``limit`` train sentences the probe is fitted on (all when fewer)."""
    if size <= limit:
        return np.arange(size)
    return np.sort(np.random.default_rng(seed).choice(size, limit, replace=False))


def probe_model(task, splits: dict, labels: dict, sample: np.ndarray, buckets: np.ndarray,
                device: torch.device, config: ProbeConfig) -> dict:
    """Fit, threshold on dev, count on test: the model's probe.json entry."""
    model = task.model.eval()
    train = features(model, splits["train"], sample, device)
    dev = features(model, splits["dev"], np.arange(len(splits["dev"])), device)
    test = features(model, splits["test"], np.arange(len(splits["test"])), device)
    probe = bow_probe.fit_probe(train, labels["train"], config.epochs, config.batch_sentences, config.lr, config.seed)
    dev_truth, test_truth = labels["dev"].dense(), labels["test"].dense()
    threshold = bow_probe.threshold_at_precision(probe.logits(dev), dev_truth, config.target_precision)
    test_logits = probe.logits(test)
    predicted = threshold.predict(test_logits)
    overall = bow_probe.counts(predicted, test_truth, test_logits)
    by_bucket = bow_probe.bucket_counts(predicted, test_truth, buckets, BUCKET_LABELS, test_logits)
    rounded = lambda v: None if v is None else round(v, 4)  # noqa: E731
    return {
        "feature": FEATURES[parse_model_name(task.hparams["model_name"])[0]],
        "dim": int(train.size(1)),
        "target_precision": config.target_precision,
        "threshold": rounded(threshold.probability),
        "dev_precision": rounded(threshold.precision),
        "dev_recall": rounded(threshold.recall),
        **overall.as_dict(),
        "buckets": {label: counts.as_dict() for label, counts in by_bucket.items()},
    }
