"""Length-bucketed batches under a token budget, reshuffled every epoch, split across DDP ranks.

Sentences of similar length go together (little padding, and an RNN's cost is the padded
length), each batch holding at most ``batch_tokens`` padded tokens. Every rank builds the same
batch list from the same seed and epoch, then takes every ``world_size``-th batch: the shares are
disjoint, and the list is first padded with repeats so that every rank runs the same number of
steps (DDP's collective calls would otherwise hang on the rank that runs out first).

The order is a function of (seed, epoch) alone, so a run resumed from a mid-epoch checkpoint can
start at the next batch of the same order (``resume``) and see exactly the batches an
uninterrupted run would.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Sampler


def token_budget_batches(lengths: np.ndarray, batch_tokens: int, order: np.ndarray,
                         batch_sentences: int | None = None) -> list[np.ndarray]:
    """Consecutive runs of ``order`` (sorted by length) whose padded size fits the budget
    (and that hold at most ``batch_sentences`` sentences, when given).

    A sentence longer than the budget gets a batch of its own rather than being dropped.
    """
    batches, start, longest = [], 0, 0
    most = batch_sentences or len(order) + 1
    for position, index in enumerate(order):
        longest_with = max(longest, int(lengths[index]))
        size = position - start + 1
        if position > start and (longest_with * size > batch_tokens or size > most):
            batches.append(order[start:position])
            start, longest_with = position, int(lengths[index])
        longest = longest_with
    if start < len(order):
        batches.append(order[start:])
    return batches


class TokenBudgetBatchSampler(Sampler[list[int]]):
    def __init__(self, lengths: np.ndarray, batch_tokens: int, shuffle: bool, seed: int,
                 rank: int = 0, world_size: int = 1, batch_sentences: int | None = None, epoch: int = 0) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        self.lengths = np.asarray(lengths)
        self.batch_tokens, self.batch_sentences, self.shuffle, self.seed = batch_tokens, batch_sentences, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = epoch
        self._skip = 0  # batches of this epoch already trained on (set by resume, used once)
        # Lightning calls set_epoch on ``dataloader.batch_sampler.sampler``, not on the batch sampler.
        self.sampler = self
        # The count depends only on the sorted lengths, not on how ties are broken: fixed per epoch.
        self._batches_per_rank = -(-len(self._all_batches(0)) // world_size)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every epoch: a new shuffle, the same on every rank."""
        self.epoch = epoch

    def resume(self, epoch: int, batches_done: int) -> None:
        """The next iteration continues ``epoch`` after its first ``batches_done`` batches (per rank)."""
        if batches_done >= len(self):  # saved on the epoch's last batch: Lightning goes on with the next
            epoch, batches_done = epoch + 1, 0
        self.epoch, self._skip = epoch, batches_done

    def _all_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng((self.seed, epoch))
        tie_break = rng.random(len(self.lengths)) if self.shuffle else np.arange(len(self.lengths))
        order = np.lexsort((tie_break, self.lengths))  # by length; random among equal lengths
        batches = token_budget_batches(self.lengths, self.batch_tokens, order, self.batch_sentences)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches(self.epoch)
        total = self._batches_per_rank * self.world_size
        batches = batches + batches[: total - len(batches)]  # repeats so every rank gets as many
        skip, self._skip = self._skip, 0
        for batch in batches[self.rank :: self.world_size][skip:]:
            yield batch.tolist()

    def __len__(self) -> int:
        return self._batches_per_rank
