"""Train/dev/test assignment by whole groups (chapters, blocks of lines), seeded and deterministic.

The Bible repeats near-identical passages (Kings/Chronicles, the synoptic gospels), so splitting
by single verses would leak test sentences into train (docs/corpora.md, Splits). Whole groups are shuffled and
taken into test until it holds ``test_size`` pairs, then into dev, the rest train: test keeps the
corpus's natural length distribution.
"""
from __future__ import annotations

import random

from pipeline.config import SplitConfig
from pipeline.errors import ConfigError

SPLITS = ("train", "dev", "test")


def assign_groups(group_sizes: dict[str, int], config: SplitConfig, seed: int) -> dict[str, str]:
    total = sum(group_sizes.values())
    if config.test_size + config.dev_size >= total:
        raise ConfigError(
            f"prepare.split: test_size {config.test_size} + dev_size {config.dev_size} do not fit "
            f"the corpus of {total} pairs (train would be empty)"
        )
    groups = sorted(group_sizes)  # the seed alone decides the order, not the source's order
    random.Random(seed).shuffle(groups)
    assignment: dict[str, str] = {}
    filled = {"test": 0, "dev": 0}
    for group in groups:
        split = next((s for s in ("test", "dev") if filled[s] < getattr(config, f"{s}_size")), "train")
        if split != "train":
            filled[split] += group_sizes[group]
        assignment[group] = split
    if "train" not in assignment.values():
        raise ConfigError(
            f"prepare.split: test_size {config.test_size} + dev_size {config.dev_size} leave no whole "
            f"group for train in a corpus of {total} pairs in {len(groups)} groups"
        )
    return assignment
