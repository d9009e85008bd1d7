"""A controlled toy translation task, generated from the seed (docs/corpora.md, Synthetic).

Each source sentence has ``min_words``..``max_words`` words (length uniform in that range, so every
length bucket is well populated), each word drawn independently from a finite Zipf-distributed
vocabulary: p(word of rank r) ∝ r^-zipf_exponent. The target is the word-by-word translation
through a fixed, seeded, one-to-one dictionary, put in the word order ``order`` names (ORDERS): adjacent
words swapped (positions 0↔1, 2↔3, …; an odd last word stays: local reordering, a near-diagonal
alignment), the source's own order, the whole sentence reversed, or its two halves exchanged (spans
moved across the sentence: a long-range, non-monotone alignment). The target has exactly as many
words as the source.

Why it isolates the bottleneck: words are independent, so none can be guessed from its context and
every source word must reach the decoder. An encoder-decoder whose fixed-size vector summarises the
sentence has to carry all of them, and fails more as sentences grow; attention can look each word
up when it is needed. Human text (the Bible corpus) then shows how much of the effect survives.

Words are pronounceable syllable strings ("bakodu"): ASCII lowercase letters only, so Moses
tokenization keeps each word as one token. Sentences are regenerated from the seed on every pass,
never held in memory; groups (the unit of splitting) are blocks of consecutive pairs.
"""
from __future__ import annotations

from itertools import product
from typing import Iterator

import numpy as np

from pipeline.config import PrepareConfig, SyntheticSource
from pipeline.errors import ConfigError
from pipeline.preparation.sources.base import Pair

SYLLABLES = tuple(c + v for c, v in product("bdfgklmnprstvz", "aeiou"))  # 70 consonant-vowel pairs
MIN_SYLLABLES = 3  # two-syllable strings are too often real English words ("note", "lime")


def spell_words(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct words of equally many syllables, in random order."""
    syllables = MIN_SYLLABLES
    while len(SYLLABLES) ** syllables < 10 * count:  # sparse enough to look varied
        syllables += 1
    # Distinct integers spelled in base len(SYLLABLES): distinct strings, without a retry loop.
    numbers = rng.choice(len(SYLLABLES) ** syllables, size=count, replace=False)
    words = []
    for number in numbers.tolist():
        digits = []
        for _ in range(syllables):
            number, digit = divmod(number, len(SYLLABLES))
            digits.append(SYLLABLES[digit])
        words.append("".join(digits))
    return words


def swap_adjacent(words: list[str]) -> list[str]:
    """Positions 0↔1, 2↔3, …; an odd last word stays where it is."""
    swapped = list(words)
    pairs_end = len(words) - len(words) % 2
    swapped[0:pairs_end:2], swapped[1:pairs_end:2] = words[1:pairs_end:2], words[0:pairs_end:2]
    return swapped


def swap_halves(words: list[str]) -> list[str]:
    """The second half, then the first: target word i translates source word (i + ⌊n/2⌋) mod n, so
    every word moves about half the sentence away, and the alignment is two off-diagonal blocks."""
    middle = len(words) // 2
    return words[middle:] + words[:middle]


# Target word order → the permutation applied to the word-by-word translation.
ORDERS = {
    "swap_adjacent": swap_adjacent,
    "monotone": list,
    "reversed": lambda words: words[::-1],
    "swap_halves": swap_halves,
}


class SyntheticCorpus:
    predefined_splits = False
    repairs: frozenset[str] = frozenset()
    drops: frozenset[str] = frozenset()
    reference_names: tuple[str, ...] = ()

    def __init__(self, config: SyntheticSource, seed: int) -> None:
        if seed < 0:
            raise ConfigError(f"seed: the synthetic source needs a non-negative seed (got {seed})")
        self.config = config
        self.title = f"the controlled task (synthetic dictionary translation, {config.order} order)"
        # Two independent streams: the dictionary does not depend on how many pairs are drawn.
        dictionary_seed, self._sentence_seed = np.random.SeedSequence(seed).spawn(2)
        words = spell_words(2 * config.vocab_size, np.random.default_rng(dictionary_seed))
        # Index = Zipf rank (0 = most frequent); the target words are an independent random draw,
        # so the dictionary is a seeded bijection that spelling cannot reveal.
        self.source_words = words[:config.vocab_size]
        self.dictionary = dict(zip(self.source_words, words[config.vocab_size:]))
        weights = np.arange(1, config.vocab_size + 1, dtype=np.float64) ** -config.zipf_exponent
        self._cdf = np.cumsum(weights) / weights.sum()
        self._cdf[-1] = 1.0  # rounding must not leave a uniform draw past the last rank

    def size_hint(self) -> int:
        return self.config.pairs

    def group_sizes(self) -> dict[str, int]:
        full, rest = divmod(self.config.pairs, self.config.block_pairs)
        sizes = {str(block): self.config.block_pairs for block in range(full)}
        if rest:
            sizes[str(full)] = rest
        return sizes

    def sentences(self) -> Iterator[list[str]]:
        """Source sentences as word lists, the same on every call (a fresh generator each time)."""
        config = self.config
        rng = np.random.default_rng(self._sentence_seed)
        # Sentences are independent, so blocks only set the split's granularity (identical short sentences
        # across splits are the overlap filter's job, as for any source) and the generator's batches.
        for start in range(0, config.pairs, config.block_pairs):  # vectorised per block, streamed
            lengths = rng.integers(config.min_words, config.max_words + 1,
                                   size=min(config.block_pairs, config.pairs - start))
            ranks = np.searchsorted(self._cdf, rng.random(int(lengths.sum())), side="right")
            for sentence in np.split(ranks, np.cumsum(lengths)[:-1]):
                yield [self.source_words[rank] for rank in sentence.tolist()]

    def translate(self, words: list[str]) -> list[str]:
        return ORDERS[self.config.order]([self.dictionary[word] for word in words])

    def pairs(self) -> Iterator[Pair]:
        for index, words in enumerate(self.sentences()):
            yield Pair(str(index // self.config.block_pairs), str(index), " ".join(words), " ".join(self.translate(words)))


def reordered_task(config: PrepareConfig, order: str) -> PrepareConfig:
    """The controlled task's section (`synthetic`) with the target in ``order``: the same seed,
    dictionary, sentences, split and vocabulary, so only the alignment differs (the ablations)."""
    task = config.synthetic.model_copy(update={"order": order})
    return config.model_copy(update={"synthetic": task})
