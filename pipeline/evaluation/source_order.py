"""The controlled task's second reference: the word-by-word translation in the *source's* word order.

The synthetic target is ``order(translate(source))`` (pipeline/preparation/sources/synthetic.py,
ORDERS). A model can learn every word and the source's order and still miss the target order: against
the task's reference it then looks like a model that learned nothing (bigram precision near zero even
on short sentences). Undoing the order on the reference tells the two apart, and lets the ablations
ask whether the order a model *did* learn is lost with length.
"""
from __future__ import annotations

from typing import Callable, Sequence


# The permutations are restated here, not imported from the generator: importing it would make every
# corpus source a dependency of the evaluation stage. tests/pipeline/evaluation/test_source_order.py
# checks that each one undoes its ORDERS entry.
def _swap_adjacent(words: list[str]) -> list[str]:
    """Positions 0↔1, 2↔3, …: its own inverse."""
    swapped = list(words)
    pairs_end = len(words) - len(words) % 2
    swapped[0:pairs_end:2], swapped[1:pairs_end:2] = words[1:pairs_end:2], words[0:pairs_end:2]
    return swapped


def _unswap_halves(words: list[str]) -> list[str]:
    """Inverse of second-half-then-first (first half ⌊n/2⌋ words): the last ⌊n/2⌋ words go back in front."""
    first_half = len(words) // 2
    return words[len(words) - first_half:] + words[:len(words) - first_half]


# Target word order (ORDERS) → the permutation that takes a target back to the source's order.
UNDO: dict[str, Callable[[list[str]], list[str]]] = {
    "swap_adjacent": _swap_adjacent,
    "monotone": list,
    "reversed": lambda words: words[::-1],
    "swap_halves": _unswap_halves,
}


def source_order_references(references: Sequence[str], order: str) -> list[str]:
    """Each reference (one sentence, words separated by spaces) put back into its source's word order."""
    undo = UNDO[order]
    return [" ".join(undo(reference.split())) for reference in references]
