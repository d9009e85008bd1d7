"""Projects with tiny trained checkpoints where the train stage puts them: what evaluate and probe read."""
from __future__ import annotations

from pathlib import Path

import torch

from tests.pipeline.training.fitting import fit
from tests.pipeline.training.tiny_corpus import write_tiny_corpus
from tests.pipeline.helpers import TINY_RUN, write_project_params

DATA = {"bible": "data/prepared", "synthetic": "data/synthetic"}


def fitted_checkpoints(root: Path, models: list[str]) -> Path:
    """Tiny models fitted for 2 epochs on the tiny corpus (one thread), saved as ``root/<model>/best.ckpt``."""
    data = write_tiny_corpus(root / "tiny" / "prepared")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in models:
            _, trainer, _ = fit(name, data, epochs=2, dev_bleu_every=0)
            trainer.save_checkpoint(root / name / "best.ckpt")
    finally:
        torch.set_num_threads(threads)
    return root


def project_with_checkpoints(root: Path, checkpoints: Path, models: list[str], corpus: str,
                             all_models: list[str], **params) -> Path:
    """The tiny corpus and ``models``' checkpoints in ``root``; ``corpus`` lists ``models``, the other
    corpus ``all_models``; ``params`` are further params.yaml sections."""
    write_tiny_corpus(root / DATA[corpus])
    for name in models:
        target = root / "checkpoints" / corpus / name / "best.ckpt"
        target.parent.mkdir(parents=True)
        target.write_bytes((checkpoints / name / "best.ckpt").read_bytes())
    key = "synthetic_models" if corpus == "synthetic" else "models"
    experiments = {"models": all_models, "synthetic_models": []} | {key: models}
    write_project_params(root, TINY_RUN, {"experiments": experiments, **params})
    return root
