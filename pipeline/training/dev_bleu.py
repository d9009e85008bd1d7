"""A Lightning callback that measures sacrebleu BLEU on a fixed dev sample every N epochs.

The sample is the first ``sentences`` pairs of the dev split, so numbers compare across epochs and
runs. Hypotheses are decoded to Moses tokens, detokenized and scored against the cleaned dev text
(lowercased on both sides when the corpus was lowercased). Logged as ``dev_bleu``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytorch_lightning as pl
import sacrebleu

from pipeline.training.datamodule import ParallelSplit, collate
from pipeline.data.tokenization import Detokenizer
from pipeline.data.vocabulary import Vocabulary

DECODE_BATCH = 64  # sentences per search call


class DevBleu(pl.Callback):
    def __init__(self, data_dir: Path | str, sentences: int, every: int, beam_size: int = 1) -> None:
        self.data_dir, self.sentences, self.every, self.beam_size = Path(data_dir), sentences, every, beam_size
        self.last_hypotheses: list[str] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        corpus = json.loads((self.data_dir / "corpus.json").read_text())
        self.lowercase = corpus["lowercase"]
        self.vocabulary = Vocabulary.load(self.data_dir / "vocab/tgt.json")
        self.detokenize = Detokenizer(corpus["tgt_lang"])
        self.dev = ParallelSplit(self.data_dir / "dev")
        self.count = min(self.sentences, len(self.dev))
        with (self.data_dir / "dev/tgt.txt").open(encoding="utf-8") as handle:
            self.references = [next(handle).rstrip("\n") for _ in range(self.count)]

    def due(self, trainer: pl.Trainer) -> bool:
        return bool(self.every) and not trainer.sanity_checking and (trainer.current_epoch + 1) % self.every == 0

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.due(trainer):
            return
        hypotheses = []
        for start in range(0, self.count, DECODE_BATCH):
            batch = collate([self.dev[i] for i in range(start, min(start + DECODE_BATCH, self.count))])
            for hypothesis in pl_module.translate(batch["src"], batch["src_lengths"], self.beam_size):
                hypotheses.append(self.detokenize(self.vocabulary.decode(hypothesis.tokens)))
        bleu = sacrebleu.corpus_bleu(hypotheses, [self.references], lowercase=self.lowercase)
        self.last_hypotheses = hypotheses
        # Every rank decodes the same sample with the same weights: the values agree across ranks.
        pl_module.log("dev_bleu", bleu.score, prog_bar=True, sync_dist=True)
