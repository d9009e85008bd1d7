"""The evaluate stage's figures (matplotlib, Agg backend: no display needed; docs/decisions.md on offline plots).

- ``bleu_by_length``: BLEU against source sentence length (one decoder: evaluate draws beam search's),
  one line per model with its bootstrap 95% interval as error bars, as Bahdanau et al. 2014 Fig. 2
  (and Cho et al. 2014 Fig. 4); beside it BLEU's two factors, BLEU = BP × P (P: geometric mean of
  the n-gram precisions p1..p4, ``bleu_nobp``), so a fall with length reads as lost content (P falls:
  the bottleneck) or as stopping early (BP falls).
- ``attention_heatmap``: one sentence's alignment, source words on x and output words on y, white
  for weight 1, as Bahdanau et al. 2014 Fig. 3.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: stages run headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pipeline.evaluation.bleu_by_length import BucketScore  # noqa: E402
from pipeline.data.length_buckets import BUCKET_WIDTH  # noqa: E402

# The paper's pairing: RNNenc dashed with squares, RNNsearch solid with circles; a colour per model
# (not per cell: rnnenc-gru and rnnsearch-gru side by side need bands that can be told apart).
LINESTYLES = {"rnnenc": "--", "rnnsearch": "-"}
MARKERS = {"rnnenc": "s", "rnnsearch": "o"}


def model_style(number: int, name: str, label: str) -> dict:
    """Line style of the ``number``-th model of a figure: dashed squares for RNNenc, solid circles for
    RNNsearch, a colour per model."""
    family = name.partition("-")[0]
    colours = plt.get_cmap("tab10").colors
    return dict(linestyle=LINESTYLES.get(family, ":"), color=colours[number % len(colours)],
                marker=MARKERS.get(family, "^"), label=label)


def save(figure, path: Path, title: str = "") -> None:
    """Title, layout, write the PNG (its folder made if needed) and free the figure."""
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def nothing_to_draw(path: Path, text: str) -> None:
    """A figure that says why there is none (a declared DVC output must exist: e.g. the controlled
    experiment turned off with an empty experiments.synthetic_models)."""
    figure, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, wrap=True)
    save(figure, path)


def _values(scores: Sequence[BucketScore], field: str) -> np.ndarray:
    return np.array([np.nan if getattr(s, field) is None else getattr(s, field) for s in scores], dtype=float)




def bleu_by_length(scores: dict[str, list[BucketScore]], path: Path, train_max_len: Optional[int] = None,
                   title: str = "") -> None:
    """One line per model over the buckets; ``train_max_len`` marks the training length limit."""
    any_model = next(iter(scores.values()))
    labels = [f"{s.bucket}\nn={s.n}" for s in any_model]
    x = np.arange(len(labels))
    figure, (ax_bleu, ax_p, ax_bp) = plt.subplots(1, 3, figsize=(17, 5.2), gridspec_kw={"width_ratios": [1.4, 1, 1]})
    for number, (name, rows) in enumerate(scores.items()):
        style = model_style(number, name, name)
        bleu, low, high = _values(rows, "bleu"), _values(rows, "ci_low"), _values(rows, "ci_high")
        # Error bars rather than bands: a band vanishes at a bucket whose neighbours are empty.
        # Each model is nudged sideways so overlapping intervals stay readable.
        dodge = (number - (len(scores) - 1) / 2) * 0.05
        ax_bleu.errorbar(x + dodge, bleu, yerr=[bleu - low, high - bleu], capsize=3, elinewidth=1, **style)
        ax_p.plot(x, _values(rows, "bleu_nobp"), **style)  # BLEU / BP: the precisions' geometric mean
        ax_bp.plot(x, _values(rows, "bp"), **style)
    ax_bleu.set(ylabel="BLEU", title="BLEU by source length (95% bootstrap interval)")
    ax_p.set(ylabel="precision P = (p1·p2·p3·p4)^¼  (%)", title="n-gram precision: content kept")
    ax_bp.set(ylabel="brevity penalty BP", title="brevity penalty: output too short", ylim=(0, 1.05))
    for ax in (ax_bleu, ax_p, ax_bp):
        ax.set_xticks(x, labels, fontsize=8)
        ax.set_xlabel("source sentence length (words)")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        if train_max_len is not None:
            # Between the bucket holding the limit and the next: sentences right of it are longer
            # than any training pair.
            edge = train_max_len / BUCKET_WIDTH - 0.5
            if 0 <= edge <= len(labels) - 1:
                ax.axvline(edge, color="grey", linestyle=":", linewidth=1)
    if train_max_len is not None:
        ax_bleu.text(0.99, 0.02, f"dotted: training limit {train_max_len} words", transform=ax_bleu.transAxes,
                     ha="right", va="bottom", fontsize=8, color="grey")
    ax_bleu.legend(fontsize=8, loc="best")
    save(figure, path, title)


def attention_heatmap(weights: np.ndarray, source: Sequence[str], output: Sequence[str], path: Path,
                      title: str = "") -> None:
    """weights (len(output), len(source)), rows summing to 1; grey scale, white = 1 (Fig. 3)."""
    rows, columns = weights.shape
    size = (max(4.0, 0.28 * columns + 2.0), max(3.0, 0.28 * rows + 1.8))
    figure, ax = plt.subplots(figsize=size)
    ax.imshow(weights, cmap="gray", vmin=0.0, vmax=1.0, aspect="equal", interpolation="nearest")
    ax.set_xticks(range(columns), source, rotation=90, fontsize=8)
    ax.set_yticks(range(rows), output, fontsize=8)
    ax.xaxis.tick_top()  # source sentence along the top, as in the paper
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=9, pad=12)
    save(figure, path)
