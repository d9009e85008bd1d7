"""Which checkpoint a training run resumes from: a folder stamped with what its run trains."""
from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path
import os
from typing import Callable, Optional

from pipeline.config import Params
from pipeline.errors import UserError
from pipeline.training import srun

# Settings that only say how long or where to train: changing them continues a run, not restarts it.
CONTINUABLE = {"max_epochs", "epochs", "time_limit_minutes", "early_stopping_patience", "accelerator", "devices",
               "num_nodes", "num_workers", "checkpoint_every_minutes", "dev_bleu_every", "dev_bleu_sentences",
               "use_tuned"}  # use_tuned: the tuned values themselves are part of the fingerprint
RESUME_FROM = "BOTTLENECK_RESUME_FROM"  # rank 0's choice of checkpoint, read by the other DDP ranks
PROJECT = Path(__file__).resolve().parents[2]
# The code whose change makes an old checkpoint wrong to resume: the architectures and the losses.
TRAINED_CODE = (*sorted((PROJECT / "models").glob("*.py")), *sorted(Path(__file__).parent.glob("*_task.py")))


def fingerprint(model: str, params: Params, data_dir: Path) -> str:
    """Identifies what a checkpoint was trained for: resuming across a change of any of it is wrong."""
    train = {k: v for k, v in params.train.model_dump(mode="json").items() if k not in CONTINUABLE}
    digest = hashlib.sha256(json.dumps([model, params.model.model_dump(), train], sort_keys=True).encode())
    for path in [data_dir / "stats.json", data_dir / "corpus.json", *TRAINED_CODE]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def resume_checkpoint(directory: Path, key: str) -> Optional[Path]:
    """The newest checkpoint of a compatible earlier run, None to start over; changes nothing.
    A truncated one is a UserError: resuming would fail deep inside Lightning."""
    stamp = directory / "fingerprint"
    if not (stamp.is_file() and stamp.read_text() == key):
        return None
    candidates = [p for p in (directory / "last.ckpt", directory / "best.ckpt") if p.exists()]
    if not candidates:
        return None
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    if not zipfile.is_zipfile(newest):  # torch.save writes a zip archive; its index is at the end of the file
        others = [p.name for p in candidates if p != newest]
        then = f"resume from {others[0]}" if others else "start over"
        raise UserError(f"{newest}: truncated or not a checkpoint file, cannot resume from it; "
                        f"delete it and run the stage again to {then} (or `dvc checkout` it)")
    return newest


def start_over(directory: Path, key: str) -> None:
    """Removes a stale run's checkpoints and stamps the folder with what the new run trains."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / "fingerprint").write_text(key)


def is_rank_zero() -> bool:
    """Whether this process is global rank 0 (or the only one), as Lightning reads it from the
    launcher's environment (RANK, LOCAL_RANK, SLURM_PROCID, …) before any Trainer exists."""
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def shared_resume(decide: Callable[[], Optional[Path]]) -> Optional[Path]:
    """The checkpoint every rank resumes from: one process ``decide``s and its children read the
    choice from their environment. Under Lightning's launcher that is rank 0, which starts the other
    DDP ranks from inside ``fit`` with its environment (the stage is one process, not torchrun);
    under SLURM it is the stage's process in the batch step, which starts every rank, rank 0
    included, with srun (pipeline/training/srun.py). (Were only rank 0 to resume, the others would
    restart at epoch 0 with fresh optimizer state and another shuffle; were each to decide, a folder
    rank 0 had just cleared could answer differently.)"""
    if is_rank_zero() and not srun.is_rank():
        resume = decide()
        os.environ[RESUME_FROM] = str(resume or "")
        return resume
    return Path(os.environ[RESUME_FROM]) if os.environ.get(RESUME_FROM) else None
