"""The prepared test split as evaluation reads it: ids, texts, references, length buckets, vocabularies."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np

from pipeline.data.corpora import Corpus
from pipeline.data.length_buckets import bucket_index
from pipeline.data.tokenization import Detokenizer
from pipeline.data.vocabulary import Vocabulary
from pipeline.errors import DataError
from pipeline.evaluation.bleu_by_length import no_unk_mask

if TYPE_CHECKING:
    from pipeline.training.datamodule import ParallelSplit

# Lightning (via pipeline.training.datamodule and the task classes) takes ~4 s to import: it is imported
# only once params and inputs are known to be good, so those errors come back at once.


@dataclass
class TestSet:
    """The prepared test split: ids, texts, references and the per-sentence facts scoring needs."""

    split: "ParallelSplit"
    sources: list[str]
    references: list[list[Optional[str]]]  # sacrebleu's layout: one stream per reference file; [0]: tgt.txt
    src_words: np.ndarray  # source length in words (the bucket's measure)
    buckets: np.ndarray
    no_unk: np.ndarray
    lowercase: bool
    train_max_len: Optional[int]
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    detokenize: Detokenizer

    def __len__(self) -> int:
        return len(self.split)

    def text(self, ids) -> str:
        return self.detokenize(self.tgt_vocab.decode(ids))  # <unk> → UNK_TEXT


def _read_lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def load_test_set(corpus: Corpus) -> TestSet:
    from pipeline.training.datamodule import ParallelSplit  # Lightning: see above

    info = corpus.description()
    test = corpus.data / "test"
    reference_files = info.get("references", ["tgt.txt"])
    try:
        split = ParallelSplit(test)
        src_words = np.load(test / "src_words.npy")
        sources = _read_lines(test / "src.txt")
        references = [_read_lines(test / name) for name in reference_files]
        # An extra version that lacks the verse has an empty line: no reference (sacrebleu skips
        # None), not an empty one that brevity would be measured against.
        references[1:] = [[line or None for line in stream] for stream in references[1:]]
        vocabularies = [Vocabulary.load(corpus.data / "vocab" / f"{side}.json") for side in ("src", "tgt")]
    except FileNotFoundError as error:
        raise corpus.missing(error.filename) from None
    for name, count in [("src_words.npy", len(src_words)), ("src.txt", len(sources)),
                        *zip(reference_files, map(len, references))]:
        if count != len(split):
            raise DataError(f"{test / name}: {count} lines but the test split has {len(split)} sentences; "
                            f"rerun the prepare stage")
    no_unk = no_unk_mask([split.src[i] for i in range(len(split))], [split.tgt[i] for i in range(len(split))])
    return TestSet(split, sources, references, src_words, bucket_index(src_words), no_unk, bool(info["lowercase"]),
                   info.get("max_len"), *vocabularies, Detokenizer(info["tgt_lang"]))
