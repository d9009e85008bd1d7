"""Each model run's line colour in the MLflow UI (tag ``mlflow.runColor``): the UI's default colours come
from a hash of the run id, so two runs compared side by side may share one. A fixed colour per corpus
and model name keeps every run of a pipeline apart, and the same run the same colour in every pipeline."""
from __future__ import annotations

import zlib

RUN_COLOUR_TAG = "mlflow.runColor"
# 24 dark colours far apart (matplotlib's tab10 and 14 more), readable on white: one per model name of
# models/names.py on the main corpus, then one per model name on the controlled task.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#000080", "#808000", "#800000", "#008080", "#800080", "#4b0082", "#556b2f", "#b8860b",
           "#2f4f4f", "#dc143c", "#006400", "#8b4513", "#483d8b", "#ff1493")


def run_colour(corpus: str, model: str, models: tuple[str, ...], corpora: tuple[str, ...]) -> str:
    """The colour of (corpus, model): its place among ``corpora`` × ``models`` (the project's model names),
    else a stable hash (an ablation variant)."""
    if model in models and corpus in corpora:
        index = corpora.index(corpus) * len(models) + models.index(model)
    else:
        index = zlib.crc32(f"{corpus}/{model}".encode())
    return PALETTE[index % len(PALETTE)]
