"""The record every source yields, and what the prepare stage asks of a source."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Protocol


@dataclass(frozen=True, slots=True)
class Pair:
    group: str  # unit of splitting: a chapter, a block of lines, or a predefined split's name
    key: str  # where the pair comes from: "book:chapter:verse", a line number, "<split>:<row>"
    src: str
    tgt: str
    refs: tuple[Optional[str], ...] = ()  # the same target in other versions (extra test references); None: missing
    # A source with several versions per side yields each verse once per pairing ("4-l"); only the
    # primary pairing's pairs may go to test (one source version, scored against every reference).
    pairing: str = ""
    primary: bool = True


class Source(Protocol):
    # Names of the extra references carried in Pair.refs, in order.
    reference_names: tuple[str, ...]
    # True when the source fixes train/dev/test itself (Pair.group is "train", "dev" or "test").
    predefined_splits: bool
    # The repairs of pipeline.preparation.cleaning.SOURCE_REPAIRS this source's text needs (docs/corpora.md, Cleaning).
    repairs: frozenset[str]
    # The drop filters of pipeline.preparation.cleaning.SOURCE_DROPS this source's text needs.
    drops: frozenset[str]
    # What the reports call it ("the Bible (WEB → Segond)", "your corpus (help.tsv.gz)"): corpus.json's title.
    title: str

    def group_sizes(self) -> dict[str, int]:
        """Pairs per group in corpus order; validates the whole input before any output exists."""
        ...

    def pairs(self) -> Iterator[Pair]:
        ...

    def size_hint(self) -> Optional[int]:  # pairs, for progress bars; None when unknown
        ...
