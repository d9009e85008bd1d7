"""A tiny prepared corpus in the prepare stage's format, written directly (no tokenizer run).

The task is a word-by-word dictionary translation (``aK`` → ``bK``): learnable in a few epochs
by every architecture, so training tests can assert that loss falls and BLEU rises.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from models.special_tokens import SPECIAL_TOKENS
from pipeline.data.ragged import RaggedWriter
from pipeline.data.vocabulary import Vocabulary


def write_tiny_corpus(root: Path, sizes=(("train", 1024), ("dev", 32), ("test", 32)), words: int = 12,
                      max_len: int = 7, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    src_vocab = Vocabulary("word", list(SPECIAL_TOKENS) + [f"a{i}" for i in range(words)])
    tgt_vocab = Vocabulary("word", list(SPECIAL_TOKENS) + [f"b{i}" for i in range(words)])
    (root / "vocab").mkdir(parents=True)
    src_vocab.save(root / "vocab/src.json")
    tgt_vocab.save(root / "vocab/tgt.json")
    (root / "corpus.json").write_text(json.dumps({"src_lang": "en", "tgt_lang": "fr", "lowercase": True,
                                                  "references": ["tgt.txt"]}))
    (root / "stats.json").write_text(json.dumps({"pairs": dict(sizes), "dropped": {}}))
    for split, count in sizes:
        directory = root / split
        directory.mkdir()
        writers = {side: RaggedWriter(directory, side) for side in ("src", "tgt")}
        texts = {"src": [], "tgt": []}
        for _ in range(count):
            sentence = rng.integers(0, words, size=int(rng.integers(1, max_len + 1)))
            ids = (sentence + len(SPECIAL_TOKENS)).astype(np.int32)
            for side, prefix in (("src", "a"), ("tgt", "b")):
                writers[side].append(ids)
                texts[side].append(" ".join(f"{prefix}{w}" for w in sentence))
        for side, writer in writers.items():
            writer.close()
            (directory / f"{side}.txt").write_text("\n".join(texts[side]) + "\n")
        np.save(directory / "src_words.npy", np.array([len(t.split()) for t in texts["src"]], dtype=np.int32))
    return root
