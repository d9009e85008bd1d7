"""A trained model's checkpoint, loaded for evaluation and checked against the prepared data."""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch

from pipeline.errors import UserError
from pipeline.evaluation.test_set import TestSet


def _train_command(name: str, path: Path) -> str:
    return f"python -m pipeline.stages.train {name}" + (" --corpus synthetic" if "synthetic" in path.parts else "")


def _retrain(name: str, path: Path) -> str:
    """How to get a sound checkpoint back: the cached one, or a new one from the train stage."""
    return f"restore it with `dvc checkout`, or delete it and retrain: {_train_command(name, path)}"


def load_task(name: str, path: Path, test: TestSet, device: torch.device):
    from pipeline.training.tasks import task_class  # Lightning: imported once inputs are known to be good

    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; its index is at the end of the file
        raise UserError(f"{path}: truncated or not a checkpoint file; {_retrain(name, path)}")
    try:
        task = task_class(name).load_from_checkpoint(path, weights_only=True, map_location="cpu")
    except Exception as error:  # a damaged or foreign file: say which, in one line
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0]
        raise UserError(f"{path}: cannot load the checkpoint ({first_line}); {_retrain(name, path)}") from None
    hparams = task.hparams
    if hparams.get("model_name") != name:
        raise UserError(f"{path}: holds {hparams.get('model_name')!r}, not {name!r}; {_retrain(name, path)}")
    sides = {"tgt": test.tgt_vocab} if name.startswith("lm-") else {"src": test.src_vocab, "tgt": test.tgt_vocab}
    for side, vocabulary in sides.items():  # a stale checkpoint would index past the vocabulary
        if hparams.get(f"{side}_vocab") != len(vocabulary):
            raise UserError(f"{path}: trained with {hparams.get(f'{side}_vocab')} {side} words but the prepared "
                            f"vocabulary has {len(vocabulary)}; retrain {name} on the current corpus "
                            f"({_train_command(name, path)}), or `dvc checkout` the data it was trained on")
    return task.to(device).eval()
