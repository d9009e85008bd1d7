"""Lightning task for the language models (``lm-<cell>``): p(y) on the target side only."""
from __future__ import annotations

import torch

from models.language_model import RNNLanguageModel
from pipeline.training.sequence_task import SequenceTask
from models.sequences import add_bos_eos


class LanguageModelTask(SequenceTask):
    model: RNNLanguageModel

    def features_and_targets(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        tgt_in, tgt_out, tgt_lengths = add_bos_eos(batch["tgt"], batch["tgt_lengths"])
        return self.model.features(tgt_in, tgt_lengths), tgt_out  # (B, T+1, H), (B, T+1)
