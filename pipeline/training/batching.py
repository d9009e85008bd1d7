"""Length-bucketed batches under a token budget, reshuffled every epoch, split across DDP ranks.

Sentences of similar length go together (little padding, and an RNN's cost is the padded
length), each batch holding at most ``batch_tokens`` padded tokens. Every rank builds the same
batch list from the same seed and epoch, then takes every ``world_size``-th batch: the shares are
disjoint. So that every rank runs the same number of steps (DDP's collective calls would otherwise
hang on the rank that runs out first), the largest batches are first halved until the count divides
evenly: every sentence is seen exactly once per epoch on any number of devices, and the dev loss,
summed over ranks, counts each dev sentence once (repeating batches to even out would count some
twice).

The order is a function of (seed, epoch) alone, so a run resumed from a mid-epoch checkpoint can
start at the next batch of the same order (``resume``) and see exactly the batches an
uninterrupted run would.
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np
from torch.utils.data import Sampler

from pipeline.errors import UserError


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


def even_out(batches: list[np.ndarray], world_size: int) -> list[np.ndarray]:
    """``batches`` with the largest halved (in place in the order) until their count is a multiple
    of ``world_size``; repeats only when there are fewer sentences than ranks."""
    batches = list(batches)
    while len(batches) % world_size:
        largest = max(range(len(batches)), key=lambda i: (len(batches[i]), -i))
        if len(batches[largest]) < 2:  # one sentence per batch already: fewer sentences than ranks
            missing = world_size - len(batches) % world_size
            return batches + [batches[i % len(batches)] for i in range(missing)]
        half = len(batches[largest]) // 2
        batches[largest : largest + 1] = [batches[largest][:half], batches[largest][half:]]
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
        self._batch_count = len(self._all_batches(0))
        self._batches_per_rank = -(-self._batch_count // world_size)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every epoch: a new shuffle, the same on every rank."""
        self.epoch = epoch

    def resume(self, epoch: int, batches_done: int, world_size: Optional[int] = None) -> None:
        """The next iteration continues ``epoch`` after its first ``batches_done`` batches per rank of
        a run on ``world_size`` ranks (this run's when None)."""
        world_size = world_size or self.world_size
        if batches_done >= -(-self._batch_count // world_size):  # saved on the epoch's last batch
            epoch, batches_done = epoch + 1, 0
        if batches_done and world_size != self.world_size:
            raise UserError(
                f"the checkpoint was saved in the middle of epoch {epoch + 1} by a run on {world_size} "
                f"device(s); the rest of that epoch cannot be split over {self.world_size}: resume with "
                f"train.devices={world_size}, or delete last.ckpt to resume from best.ckpt")
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
        batches = even_out(self._all_batches(self.epoch), self.world_size)
        skip, self._skip = self._skip, 0
        for batch in batches[self.rank :: self.world_size][skip:]:
            yield batch.tolist()

    def __len__(self) -> int:
        return self._batches_per_rank
