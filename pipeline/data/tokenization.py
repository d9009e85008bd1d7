"""Moses-style tokenization (sacremoses), run over worker processes in corpus order.

Token strings are space-joined, the form both the word shortlist and the BPE trainer read.
``Detokenizer`` undoes it for sacrebleu, which scores detokenized text (docs/evaluation.md, Detokenization).
"""
from __future__ import annotations

import multiprocessing
import os
from collections import deque
from typing import Iterable, Iterator, Optional

from sacremoses import MosesDetokenizer, MosesTokenizer

from models.special_tokens import SPECIAL_TOKENS, UNK

CHUNK_PAIRS = 512
# An unknown output word is written as one token that sacrebleu keeps whole and no reference holds;
# "<unk>" itself would become three tokens (< unk >) and inflate the hypothesis length. Dev BLEU
# during training and evaluate both score text made here, so they share the convention.
UNK_TEXT = "UNK"

_worker: Optional["PairTokenizer"] = None


class PairTokenizer:
    def __init__(self, src_lang: str, tgt_lang: str, lowercase: bool) -> None:
        self.src, self.tgt, self.lowercase = MosesTokenizer(src_lang), MosesTokenizer(tgt_lang), lowercase

    def __call__(self, src: str, tgt: str) -> tuple[str, str]:
        if self.lowercase:
            src, tgt = src.lower(), tgt.lower()
        return (
            " ".join(self.src.tokenize(src, escape=False)),
            " ".join(self.tgt.tokenize(tgt, escape=False)),
        )


def _init_worker(src_lang: str, tgt_lang: str, lowercase: bool) -> None:
    global _worker
    _worker = PairTokenizer(src_lang, tgt_lang, lowercase)


def _tokenize_chunk(chunk: list[tuple[str, str]]) -> list[tuple[str, str]]:
    assert _worker is not None
    return [_worker(src, tgt) for src, tgt in chunk]


def _chunks(pairs: Iterable[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    chunk: list[tuple[str, str]] = []
    for pair in pairs:
        chunk.append(pair)
        if len(chunk) == CHUNK_PAIRS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class ParallelTokenizer:
    """Moses-tokenizes (src, tgt) pairs on worker processes, in input order.

    One pool serves every split (a pool takes ~2 s to start). Chunks go out through apply_async
    with a bounded queue instead of Pool.imap, whose feeder thread would read the whole input
    ahead of the workers, so memory would grow with the corpus.
    """

    def __init__(self, src_lang: str, tgt_lang: str, lowercase: bool, workers: int) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._arguments = (src_lang, tgt_lang, lowercase)
        self._pool = None
        if self.workers > 1:
            context = multiprocessing.get_context("forkserver")
            self._pool = context.Pool(self.workers, _init_worker, self._arguments)

    def __enter__(self) -> "ParallelTokenizer":
        return self

    def __exit__(self, *exc_info) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def __call__(self, pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
        if self._pool is None:
            tokenizer = PairTokenizer(*self._arguments)
            for src, tgt in pairs:
                yield tokenizer(src, tgt)
            return
        pending: deque = deque()
        for chunk in _chunks(pairs):
            pending.append(self._pool.apply_async(_tokenize_chunk, (chunk,)))
            if len(pending) >= 2 * self.workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


class Detokenizer:
    """A model's output tokens back to text, as sacrebleu wants it (its own tokenizer runs on top)."""

    def __init__(self, lang: str) -> None:
        self._moses = MosesDetokenizer(lang)

    def __call__(self, tokens: list[str]) -> str:
        return self._moses.detokenize([UNK_TEXT if token == SPECIAL_TOKENS[UNK] else token for token in tokens])
