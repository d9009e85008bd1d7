"""The training step never reads a tensor back to the host: on a GPU each such read (``.item()``,
``int(t)``, ``.cpu()``, …) makes the CPU wait for the device at every step. Counted here on the CPU by
patching the Tensor methods that read values back."""
import pytest
import torch

from pipeline.training.tasks import task_class
from tests.host_reads import count_host_reads
from tests.models.util import SIZES, fixed_pairs

TRAIN = {"label_smoothing": 0.1, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "schedule": "none",
         "gradient_clip": 1.0, "length_alpha": 0.6}


def _task_and_batch(name):
    torch.manual_seed(0)
    task = task_class(name)(name, 17, 19, dict(SIZES), TRAIN)
    logged = {}
    task.log = lambda key, value, **kwargs: logged.update({key: (value, kwargs)})
    src, src_lengths, y, y_lengths = fixed_pairs(4, seed=1)
    return task, {"src": src, "src_lengths": src_lengths, "tgt": y, "tgt_lengths": y_lengths}, logged


@pytest.mark.parametrize("name", ["rnnsearch-gru", "rnnenc-gru", "rnnsearch-rnn", "lm-gru"])
def test_training_step_and_backward_read_nothing_back(name):
    task, batch, logged = _task_and_batch(name)
    with count_host_reads() as reads:
        loss = task.training_step(batch, 0)
        loss.backward()
    assert reads == []
    tokens = int(batch["tgt_lengths"].sum()) + len(batch["tgt_lengths"])  # EOS included
    value, options = logged["train_loss"]
    assert torch.is_tensor(options["batch_size"]) and int(options["batch_size"]) == tokens
    assert float(logged["train_tokens"][0]) == tokens


def test_the_counter_sees_a_read():
    """The counter is live: the old ``int((targets != PAD).sum())`` is caught."""
    with count_host_reads() as reads:
        int(torch.ones(3).sum())
        torch.ones(2).cpu()
    assert reads == ["__int__", "cpu"]


def test_an_lstm_encoder_still_packs():
    """Known exception: an LSTM's final memory cell at each sentence's end needs packing, whose
    lengths live on the host (one copy per batch, in the encoder)."""
    task, batch, _ = _task_and_batch("rnnsearch-lstm")
    with count_host_reads() as reads:
        task.training_step(batch, 0)
    assert reads and set(reads) == {"cpu"}
