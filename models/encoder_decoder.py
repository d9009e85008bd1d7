"""The interface RNNenc and RNNsearch share, so that ``models.search`` works with either.

    memory = model.encode(src, src_lengths)                  # dict of (B, …) tensors
    state = model.init_state(memory)                         # decoder state before BOS
    log_probs, state, attention = model.step(prev_tokens, state, memory)
                                                             # (B, V), new state, (B, T_x) or None
    memory = model.reorder_memory(memory, index)             # batch dim 0 of every tensor
    with model.decoding(): …                                 # a search: weights fixed throughout
    state = model.reorder_state(state, index)                # batch dim 1 (torch RNN layout)

``forward(src, src_lengths, tgt_in, tgt_lengths)`` is teacher forcing: tgt_in = BOS y (see
``special_tokens.add_bos_eos``); it returns (logits (B, T_y, V), attention (B, T_y, T_x) or None)
and gives the same numbers as feeding tgt_in to ``step`` one token at a time. It is
``projection(features(…))``: training takes the loss of the projection in one Function
(models.loss.projected_nll) and never forms the logits.
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from models.cells import Recurrent, State

Memory = dict[str, torch.Tensor]


class EncoderDecoder(nn.Module, ABC):
    @abstractmethod
    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> Memory:
        """src (B, T_x) padded ids, src_lengths (B,) -> memory."""

    @abstractmethod
    def init_state(self, memory: Memory) -> State:
        """Decoder state before the first (BOS) input."""

    @abstractmethod
    def step(self, prev_tokens: torch.Tensor, state: State,
             memory: Memory) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """prev_tokens y_{i-1} (B,) -> log p(y_i | y_<i, x) (B, V), new state, attention (B, T_x) or None."""

    @abstractmethod
    def features(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor,
                 tgt_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing up to the vocabulary projection: tgt_in (B, T_y) -> what ``projection``
        maps to logits (B, T_y, M), attention (B, T_y, T_x) or None."""

    @property
    @abstractmethod
    def projection(self) -> nn.Linear:
        """The last layer, M -> V: logits = projection(features)."""

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor,
                tgt_lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: tgt_in (B, T_y) -> logits (B, T_y, V), attention (B, T_y, T_x) or None."""
        features, attention = self.features(src, src_lengths, tgt_in, tgt_lengths)
        return self.projection(features), attention

    @contextmanager
    def decoding(self) -> Iterator[None]:
        """models.search decodes inside this: the weights stay fixed, so a model may derive things
        from them once per search instead of once per step (RNNSearch's gate weights)."""
        yield

    @staticmethod
    def reorder_memory(memory: Memory, index: torch.Tensor) -> Memory:
        return {key: value.index_select(0, index) for key, value in memory.items()}

    @staticmethod
    def reorder_state(state: State, index: torch.Tensor) -> State:
        return Recurrent.reorder_state(state, index)
