"""Token-budget batches: the budget holds, every sentence once per epoch, seeded shuffles, DDP shares."""
import numpy as np
import pytest

from pipeline.training.batching import TokenBudgetBatchSampler

LENGTHS = np.random.default_rng(0).integers(1, 60, size=1000)


def epoch_batches(sampler, epoch):
    sampler.set_epoch(epoch)
    return [list(batch) for batch in sampler]


def test_budget_holds_and_every_sentence_appears_once():
    sampler = TokenBudgetBatchSampler(LENGTHS, batch_tokens=400, shuffle=True, seed=1)
    batches = epoch_batches(sampler, 0)
    assert len(batches) == len(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(len(LENGTHS)))
    padded = 0
    for batch in batches:
        assert LENGTHS[batch].max() * len(batch) <= 400
        padded += LENGTHS[batch].max() * len(batch)
    assert padded / LENGTHS.sum() < 1.1  # bucketed by length: little padding


def test_a_sentence_over_the_budget_gets_its_own_batch():
    sampler = TokenBudgetBatchSampler(np.array([3, 500, 4]), batch_tokens=100, shuffle=False, seed=0)
    assert sorted(map(sorted, sampler)) == [[0, 2], [1]]


def test_shuffle_changes_per_epoch_and_is_reproducible():
    sampler = TokenBudgetBatchSampler(LENGTHS, batch_tokens=400, shuffle=True, seed=1)
    first, second = epoch_batches(sampler, 0), epoch_batches(sampler, 1)
    assert first != second
    again = TokenBudgetBatchSampler(LENGTHS, batch_tokens=400, shuffle=True, seed=1)
    assert epoch_batches(again, 1) == second
    assert len(first) == len(second)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_get_disjoint_shares_of_equal_length(world_size):
    samplers = [TokenBudgetBatchSampler(LENGTHS, 400, True, 7, rank, world_size) for rank in range(world_size)]
    shares = [epoch_batches(sampler, 3) for sampler in samplers]
    assert len({len(share) for share in shares}) == 1  # same number of steps on every rank
    seen = [{i for batch in share for i in batch} for share in shares]
    assert set().union(*seen) == set(range(len(LENGTHS)))
    overlap = sum(len(a & b) for k, a in enumerate(seen) for b in seen[k + 1:])
    single = len(samplers[0]._all_batches(3))
    padding = len(shares[0]) * world_size - single
    assert overlap <= padding * 400  # only the padding repeats may overlap
    if padding == 0:
        assert overlap == 0


def test_sentence_cap_as_in_the_papers_minibatch_of_80():
    sampler = TokenBudgetBatchSampler(np.full(1000, 3), batch_tokens=10_000, shuffle=True, seed=0,
                                      batch_sentences=80)
    sizes = [len(batch) for batch in sampler]
    assert max(sizes) == 80 and sum(sizes) == 1000


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_split_every_sentence_exactly_once_in_equal_steps(world_size):
    """Batches are halved, not repeated, to even out the ranks: the dev loss summed over ranks
    counts each sentence once, and an epoch trains on each sentence once on any number of devices."""
    lengths = np.random.default_rng(3).integers(1, 30, size=257)
    for shuffle in (False, True):
        shares = [list(TokenBudgetBatchSampler(lengths, 120, shuffle, 5, rank, world_size))
                  for rank in range(world_size)]
        assert len({len(share) for share in shares}) == 1
        seen = sorted(i for share in shares for batch in share for i in batch)
        assert seen == list(range(len(lengths)))


def test_fewer_sentences_than_ranks_still_gives_every_rank_a_batch():
    shares = [list(TokenBudgetBatchSampler(np.array([3, 5]), 100, False, 0, rank, 4)) for rank in range(4)]
    assert [len(share) for share in shares] == [1, 1, 1, 1]
