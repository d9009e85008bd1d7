"""The LightningModule and DataModule of one model on one prepared corpus."""
from __future__ import annotations

from pathlib import Path

from models.names import parse_model_name
from pipeline.config import Params
from pipeline.data.vocabulary import Vocabulary
from pipeline.errors import DataError
from pipeline.training.cuda import pin_memory
from pipeline.training.datamodule import PreparedDataModule
from pipeline.training.precision import device_type
from pipeline.training.tasks import task_class


def build_task_and_data(model: str, data_dir: Path, params: Params):
    """The LightningModule and DataModule of ``model`` on a prepared corpus: what the training stage
    and every Ray Tune trial (pipeline.sweeps.trial) fit."""
    family, _ = parse_model_name(model)
    config = params.train
    try:
        vocab_sizes = [len(Vocabulary.load(data_dir / f"vocab/{side}.json")) for side in ("src", "tgt")]
    except FileNotFoundError as error:
        raise DataError(f"{error.filename}: not found (made by the prepare stage; run it again)") from None
    task = task_class(model)(model, *vocab_sizes, params.model.model_dump(), config.model_dump())
    datamodule = PreparedDataModule(data_dir, config.batch_tokens, config.seed, target_only=family == "lm",
                                    num_workers=config.num_workers, batch_sentences=config.batch_sentences,
                                    pin_memory=pin_memory(device_type(config.accelerator)))
    return task, datamodule
