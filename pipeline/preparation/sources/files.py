"""A user's parallel corpus: two line-aligned UTF-8 files, or one TSV of ``source<TAB>target``.

Plain or gzip/bzip2/xz-compressed (``text_file.read_lines``). The whole input is checked (it exists,
decodes as UTF-8, is line-aligned) in ``group_sizes()``, before the prepare stage writes anything.
Only the repairs named in ``prepare.files.repairs`` and the drops named in ``prepare.files.drops``
run on it: the Bible's would change or drop a user's text (``[VBA]``, ``IFS(a; b[; c])``, ``<A2:C2>``). Blocks of ``block_lines`` consecutive lines are the
unit of splitting, so neighbouring near-duplicates cannot leak from train into test.
"""
from __future__ import annotations

from itertools import zip_longest
from pathlib import Path
from typing import Iterator, Optional

from pipeline.config import FilesSource
from pipeline.errors import DataError
from pipeline.preparation.sources.base import Pair
from pipeline.preparation.sources.text_file import read_lines


class ParallelFiles:
    predefined_splits = False
    reference_names: tuple[str, ...] = ()

    def __init__(self, config: FilesSource) -> None:
        self.config = config
        self.repairs = frozenset(config.repairs)
        self.drops = frozenset(config.drops)
        names = [Path(p).name for p in (config.tsv, config.src, config.tgt) if p is not None]
        self.title = f"your corpus ({', '.join(names)})"
        self._total: Optional[int] = None

    def size_hint(self) -> Optional[int]:
        return self._total

    def _rows(self) -> Iterator[tuple[int, str, str]]:
        config = self.config
        if config.tsv is not None:
            for number, line in enumerate(read_lines(config.tsv, "prepare.files.tsv"), start=1):
                fields = line.split("\t")
                if len(fields) != 2:
                    raise DataError(
                        f"{config.tsv}:{number}: expected 2 tab-separated fields (source, target), "
                        f"found {len(fields)}"
                    )
                yield number, fields[0], fields[1]
            return
        assert config.src is not None and config.tgt is not None
        src_lines = read_lines(config.src, "prepare.files.src")
        tgt_lines = read_lines(config.tgt, "prepare.files.tgt")
        for number, (src, tgt) in enumerate(zip_longest(src_lines, tgt_lines), start=1):
            if src is None or tgt is None:  # one file ended: count the rest of the other for the message
                counts = [number - 1 + (src is not None) + sum(1 for _ in src_lines),
                          number - 1 + (tgt is not None) + sum(1 for _ in tgt_lines)]
                raise DataError(
                    f"{config.src} has {counts[0]} lines but {config.tgt} has {counts[1]}: "
                    "the files must be line-aligned"
                )
            yield number, src, tgt

    def group_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        total = 0
        for number, _, _ in self._rows():
            group = str((number - 1) // self.config.block_lines)
            sizes[group] = sizes.get(group, 0) + 1
            total += 1
        self._total = total
        return sizes

    def pairs(self) -> Iterator[Pair]:
        for number, src, tgt in self._rows():
            yield Pair(str((number - 1) // self.config.block_lines), str(number), src, tgt)
