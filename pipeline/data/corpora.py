"""The two corpora a pipeline run trains on, and where each one's files live.

``bible`` is the corpus of params' `prepare` section (the embedded Bible by default); ``synthetic``
the controlled experiment of its `synthetic` section. Torch- and matplotlib-free: every stage and
benchmark imports it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import DataError


@dataclass(frozen=True)
class Corpus:
    data: Path  # what the prepare stage writes
    checkpoints: Path  # <model>/{best,last}.ckpt
    reports: Path  # metrics.json, bleu_by_length.csv, figures/ of the evaluate stage
    prepare_command: str
    models_key: str  # the `experiments` list of the models trained on it ("" for the ablations' corpus)

    def missing(self, path: Path | str) -> DataError:
        return DataError(f"{path}: not found (made by the prepare stage: {self.prepare_command})")

    def require_prepared(self) -> Path:
        """The corpus description file (prepare publishes it last), or a one-line error."""
        corpus_file = self.data / "corpus.json"
        if not corpus_file.exists():
            raise self.missing(corpus_file)
        return corpus_file

    def description(self) -> dict[str, Any]:
        """corpus.json (languages, casing, reference files), or a one-line error naming it."""
        corpus_file = self.require_prepared()
        try:
            info = json.loads(corpus_file.read_text(encoding="utf-8"))
            if not isinstance(info, dict) or not {"tgt_lang", "lowercase"} <= set(info):
                raise ValueError("tgt_lang or lowercase missing")
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError included
            raise DataError(f"{corpus_file}: not a corpus description ({error}); rerun the prepare stage: "
                            f"{self.prepare_command}") from None
        return info


CORPORA = {
    "bible": Corpus(Path("data/prepared"), Path("checkpoints/bible"), Path("reports"),
                    "python -m pipeline.stages.prepare", "models"),
    "synthetic": Corpus(Path("data/synthetic"), Path("checkpoints/synthetic"), Path("reports/synthetic"),
                        "python -m pipeline.stages.prepare --section synthetic", "synthetic_models"),
    # The controlled task in another word order, trained and evaluated by the ablations only.
    "reordered": Corpus(Path("data/reordered"), Path("checkpoints/reordered"), Path("reports/ablations/reordered"),
                        "python -m pipeline.stages.prepare --section reordered", ""),
}
