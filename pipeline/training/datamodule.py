"""The prepared corpus as a LightningDataModule: memory-mapped token ids → padded batches.

A batch is a dict of tensors: ``src``/``tgt`` (B, T) padded with PAD, ``src_lengths``/
``tgt_lengths`` (B,), and ``index`` (B,), the sentences' positions in their split (dev BLEU and
decoding map outputs back to the text with it). Language models read only the target side.
Create the Trainer with ``use_distributed_sampler=False``: the batch sampler shards by rank itself.
The training loader is resumable mid-epoch (``ResumableLoader``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from models.special_tokens import PAD
from pipeline.training.batching import TokenBudgetBatchSampler
from pipeline.errors import DataError
from pipeline.data.ragged import RaggedArray


class ParallelSplit(Dataset):
    """One split of ``data/prepared``: item i is (i, source ids, target ids), numpy int32."""

    def __init__(self, directory: Path) -> None:
        self.src, self.tgt = RaggedArray(directory, "src"), RaggedArray(directory, "tgt")
        if len(self.src) != len(self.tgt):
            raise DataError(f"{directory}: {len(self.src)} source but {len(self.tgt)} target sentences; "
                            "rerun the prepare stage (or `dvc checkout` the prepared data)")

    def __len__(self) -> int:
        return len(self.tgt)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray, np.ndarray]:
        return index, self.src[index], self.tgt[index]

    def lengths(self, sides: tuple[str, ...]) -> np.ndarray:
        """Padded length that a batch pays per sentence: the longer side, +1 for BOS/EOS."""
        return np.max([getattr(self, side).lengths for side in sides], axis=0) + 1


def pad(sequences: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    batch = torch.full((len(sequences), max(int(lengths.max()), 1)), PAD, dtype=torch.long)
    for row, ids in enumerate(sequences):
        batch[row, : len(ids)] = torch.from_numpy(ids.astype(np.int64))
    return batch, lengths


def collate(items: list[tuple[int, np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
    indices, sources, targets = zip(*items)
    src, src_lengths = pad(list(sources))
    tgt, tgt_lengths = pad(list(targets))
    return {"src": src, "src_lengths": src_lengths, "tgt": tgt, "tgt_lengths": tgt_lengths,
            "index": torch.tensor(indices, dtype=torch.long)}


class ResumableLoader(DataLoader):
    """A loader Lightning checkpoints with the run (its ``state_dict``/``load_state_dict`` protocol).

    The state is the epoch and how many of its batches training has finished, so a run resumed from
    a ``last.ckpt`` written mid-epoch continues at the next batch of the same order; a plain loader
    would restart the epoch at its first batch, training twice on the head and never on the tail.
    ``batches_done`` reads the count from the trainer: the loader itself runs ahead of training
    (worker processes prefetch).
    """

    def __init__(self, *args: Any, batches_done: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batches_done = batches_done

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.batch_sampler.epoch, "batches_done": self._batches_done(),
                "world_size": self.batch_sampler.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.resume(state["epoch"], state["batches_done"], state.get("world_size", 1))


class PreparedDataModule(pl.LightningDataModule):
    def __init__(self, data_dir: Path | str, batch_tokens: int, seed: int, target_only: bool = False,
                 num_workers: int = 0, batch_sentences: Optional[int] = None, pin_memory: bool = False) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.batch_tokens, self.batch_sentences = batch_tokens, batch_sentences
        self.seed, self.num_workers, self.pin_memory = seed, num_workers, pin_memory
        self.sides = ("tgt",) if target_only else ("src", "tgt")
        self.splits: dict[str, ParallelSplit] = {}

    def setup(self, stage: Optional[str] = None) -> None:
        for split in ("train", "dev"):
            if split not in self.splits:
                self.splits[split] = ParallelSplit(self.data_dir / split)

    def _rank_and_world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        rank, world_size = self._rank_and_world()
        dataset = self.splits[split]
        # A resumed run asks for its loader after the checkpoint is restored; with worker processes the
        # first batches are drawn before Lightning calls set_epoch: start at the epoch being trained.
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        sampler = TokenBudgetBatchSampler(dataset.lengths(self.sides), self.batch_tokens, shuffle, self.seed,
                                          rank, world_size, self.batch_sentences, epoch)
        arguments = dict(batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers,
                         persistent_workers=self.num_workers > 0, pin_memory=self.pin_memory)
        if split == "train" and self.trainer is not None:
            trainer = self.trainer
            return ResumableLoader(dataset, **arguments,
                                   batches_done=lambda: trainer.fit_loop.epoch_loop.batch_progress.current.processed)
        return DataLoader(dataset, **arguments)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", shuffle=False)
