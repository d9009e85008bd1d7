"""WMT'14 through Hugging Face `datasets` (the paper's data: Bahdanau et al. 2014 §4.1).

Train is the WMT'14 training data, dev newstest2013 (``validation``), test newstest2014 (3003
sentences): the splits are predefined, so ``Pair.group`` is the split name. Rows look like
``{"translation": {"en": ..., "fr": ...}}``. Everything is streamed, never held in memory.
With ``data_dir`` the same layout is read from local parquet files (``<split>-*.parquet``).
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional

from pipeline.config import Wmt14Source
from pipeline.errors import ConfigError, DataError
from pipeline.preparation.sources.base import Pair

HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


class Wmt14:
    predefined_splits = True
    reference_names: tuple[str, ...] = ()
    repairs: frozenset[str] = frozenset()
    drops = frozenset({"markup"})  # web-crawled text: leftover tags are noise, not sentences

    def __init__(self, config: Wmt14Source, src_lang: str, tgt_lang: str) -> None:
        self.title = f"WMT'14 ({config.dataset} {config.config})"
        languages = config.config.split("-")
        for param, lang in (("src_lang", src_lang), ("tgt_lang", tgt_lang)):
            if lang not in languages:
                raise ConfigError(
                    f"prepare.{param}: {lang!r} is not a language of prepare.wmt14.config "
                    f"{config.config!r} (allowed: {', '.join(languages)})"
                )
        if config.data_dir is not None and not config.data_dir.is_dir():
            raise DataError(f"{config.data_dir}: directory not found (prepare.wmt14.data_dir)")
        self.config, self.src_lang, self.tgt_lang = config, src_lang, tgt_lang

    def size_hint(self) -> Optional[int]:
        return None

    def group_sizes(self) -> dict[str, int]:
        return {}

    def _load(self, hub_split: str) -> Iterable[dict[str, Any]]:
        import datasets

        datasets.disable_progress_bars()
        try:
            if self.config.data_dir is not None:
                files = sorted(self.config.data_dir.glob(f"{hub_split}-*.parquet"))
                if not files:
                    raise DataError(
                        f"{self.config.data_dir}: no {hub_split}-*.parquet files (prepare.wmt14.data_dir)"
                    )
                return datasets.load_dataset(
                    "parquet", data_files={hub_split: [str(f) for f in files]}, split=hub_split, streaming=True
                )
            return datasets.load_dataset(self.config.dataset, self.config.config, split=hub_split, streaming=True)
        except DataError:
            raise
        except Exception as error:  # the hub raises many types; the user needs one line
            raise DataError(
                f"prepare.wmt14: cannot load {self.config.dataset} ({self.config.config}, {hub_split}): "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''} "
                "(needs network, or set prepare.wmt14.data_dir to a local copy)"
            ) from None

    def pairs(self) -> Iterator[Pair]:
        for split, hub_split in HUB_SPLITS.items():
            limit = self.config.max_train_pairs if split == "train" else None
            for row_number, row in enumerate(self._load(hub_split)):
                if limit is not None and row_number >= limit:
                    break
                try:
                    translation = row["translation"]
                    src, tgt = translation[self.src_lang], translation[self.tgt_lang]
                except (KeyError, TypeError):
                    raise DataError(
                        f"prepare.wmt14: {hub_split} row {row_number} has no translation.{self.src_lang}/"
                        f"{self.tgt_lang} (got {sorted(row)})"
                    ) from None
                yield Pair(split, f"{hub_split}:{row_number}", src or "", tgt or "")
