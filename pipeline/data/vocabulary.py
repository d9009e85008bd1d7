"""Vocabularies: the paper's word shortlist (K most frequent words + <unk>) or subword BPE.

Both share the special ids of ``models.special_tokens`` and one JSON file per language side.
Bahdanau et al. 2014 §4.1 uses a 30k-word shortlist per language, mapping the rest to [UNK].
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from models.special_tokens import SPECIAL_TOKENS, UNK
from pipeline.errors import DataError

BPE_WORD_END = "</w>"


class Vocabulary:
    """Maps Moses-tokenized text (space-joined tokens) to ids and back."""

    def __init__(self, kind: str, tokens: list[str] | None = None, bpe: Tokenizer | None = None) -> None:
        self.kind = kind
        self.itos = tokens if tokens is not None else [bpe.id_to_token(i) for i in range(bpe.get_vocab_size())]
        self._stoi = {token: index for index, token in enumerate(self.itos)}
        self._bpe = bpe

    @classmethod
    def from_counts(cls, counts: Counter[str], size: int) -> "Vocabulary":
        words = [word for word, _ in counts.most_common(size - len(SPECIAL_TOKENS)) if word not in SPECIAL_TOKENS]
        return cls("word", list(SPECIAL_TOKENS) + words)

    @classmethod
    def train_bpe(cls, lines: Iterable[str], size: int) -> "Vocabulary":
        bpe = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS[UNK], end_of_word_suffix=BPE_WORD_END))
        bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # the text is already Moses-tokenized
        bpe.decoder = decoders.BPEDecoder(suffix=BPE_WORD_END)
        trainer = trainers.BpeTrainer(
            vocab_size=size, special_tokens=list(SPECIAL_TOKENS), end_of_word_suffix=BPE_WORD_END,
            show_progress=False,
        )
        bpe.train_from_iterator(lines, trainer=trainer)
        return cls("bpe", bpe=bpe)

    def __len__(self) -> int:
        return len(self.itos)

    def encode_batch(self, lines: list[str]) -> Iterator[np.ndarray]:
        if self._bpe is not None:
            for encoding in self._bpe.encode_batch(lines, add_special_tokens=False):
                yield np.asarray(encoding.ids, dtype=np.int32)
            return
        stoi = self._stoi
        for line in lines:
            yield np.fromiter((stoi.get(token, UNK) for token in line.split()), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Moses tokens (BPE pieces merged back into words), ready for ``tokenization.Detokenizer``."""
        ids = [int(i) for i in ids]
        if self._bpe is not None:
            return self._bpe.decode(ids, skip_special_tokens=False).split()
        return [self.itos[i] for i in ids]

    def save(self, path: Path) -> None:
        data = {"kind": self.kind, "tokens": self.itos}
        if self._bpe is not None:
            data = {"kind": "bpe", "tokenizer": json.loads(self._bpe.to_str())}
        path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        """A saved vocabulary; FileNotFoundError when missing (the caller names the stage that makes
        it), a one-line DataError when the file is not one."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data["kind"] == "bpe":
                return cls("bpe", bpe=Tokenizer.from_str(json.dumps(data["tokenizer"])))
            return cls("word", list(data["tokens"]))
        except FileNotFoundError:
            raise
        except Exception as error:  # not UTF-8 or JSON, a missing key, a directory, tokenizers' bare Exception
            raise DataError(f"{path}: not a vocabulary file ({type(error).__name__}); rerun the prepare stage "
                            "(or `dvc checkout` the prepared data)") from None
