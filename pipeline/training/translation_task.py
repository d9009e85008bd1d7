"""Lightning task for RNNenc / RNNsearch: p(y | x) with teacher forcing on ``BOS y → y EOS``."""
from __future__ import annotations

import torch

from models.encoder_decoder import EncoderDecoder
from models.search import Hypothesis, beam_search, greedy_search
from pipeline.training.sequence_task import SequenceTask
from models.sequences import add_bos_eos


class TranslationTask(SequenceTask):
    model: EncoderDecoder

    def features_and_targets(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        tgt_in, tgt_out, tgt_lengths = add_bos_eos(batch["tgt"], batch["tgt_lengths"])
        features, _ = self.model.features(batch["src"], batch["src_lengths"], tgt_in, tgt_lengths)  # (B, T+1, M)
        return features, tgt_out

    def translate(self, src: torch.Tensor, src_lengths: torch.Tensor, beam_size: int = 1,
                  alpha: float | None = None) -> list[Hypothesis]:
        """Decode a padded batch: greedy for beam 1, else batched beam search."""
        alpha = self.train_config["length_alpha"] if alpha is None else alpha
        src, src_lengths = src.to(self.device), src_lengths.to(self.device)
        if beam_size == 1:
            return greedy_search(self.model, src, src_lengths, alpha=alpha)
        return beam_search(self.model, src, src_lengths, beam_size=beam_size, alpha=alpha)
