"""The probe stage's figure (matplotlib, Agg backend, like ``pipeline.evaluation.figures``).

``probe_by_length``: recall of the source's words at the fixed precision against source length, one
line per model (RNNenc dashed with squares, RNNsearch solid with circles, as in the BLEU figure),
beside it the precision actually reached in each test bucket (the threshold was set on dev), and
the probe's threshold-free ROC AUC per bucket.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: stages run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.evaluation.figures import model_style, save  # noqa: E402


def _values(buckets: dict[str, dict], key: str) -> np.ndarray:
    return np.array([np.nan if row[key] is None else row[key] for row in buckets.values()], dtype=float)


def probe_by_length(results: dict[str, dict], path: Path, target_precision: float, title: str = "") -> None:
    """``results``: model → its probe.json entry (``buckets``: label → {n, recall, precision, …})."""
    first = next(iter(results.values()))["buckets"]
    labels = [f"{label}\nn={row['n']}" for label, row in first.items()]
    x = np.arange(len(labels))
    figure, (ax_recall, ax_precision, ax_auc) = plt.subplots(1, 3, figsize=(18, 4.8),
                                                           gridspec_kw={"width_ratios": [1.4, 1, 1]})
    for number, (name, entry) in enumerate(results.items()):
        style = model_style(number, name, f"{name} ({entry['feature']})")
        ax_recall.plot(x, 100 * _values(entry["buckets"], "recall"), **style)
        ax_precision.plot(x, 100 * _values(entry["buckets"], "precision"), **style)
        ax_auc.plot(x, _values(entry["buckets"], "auc"), **style)
    ax_recall.set(ylabel="recall of the source's words (%)",
                  title=f"words a linear probe finds at {target_precision:.0%} precision (set on dev)")
    ax_precision.axhline(100 * target_precision, color="grey", linestyle=":", linewidth=1)
    ax_precision.set(ylabel="precision reached (%)", title="precision in each test bucket")
    ax_auc.axhline(0.5, color="grey", linestyle=":", linewidth=1)  # chance
    ax_auc.set(ylabel="ROC AUC", title="threshold-free: present words ranked above absent ones")
    for ax, limits in ((ax_recall, (0, 101)), (ax_precision, (0, 101)), (ax_auc, (0.4, 1.005))):
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_xlabel("source sentence length (words)")
        ax.set_ylim(*limits)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.grid(alpha=0.3)
    ax_recall.legend(fontsize=8, loc="best")
    save(figure, path, title)
