"""The Lightning tasks with a real Trainer on the tiny corpus: loss, metrics, optimizers, checkpoints."""
import pytest
import torch

from pipeline.training.tasks import task_class
from pipeline.training.datamodule import ParallelSplit, collate
from tests.pipeline.training.fitting import fit
from tests.pipeline.training.tiny_corpus import write_tiny_corpus


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_corpus(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["rnnsearch-gru", "rnnenc-lstm"])
def test_translation_learns_and_dev_bleu_rises(tiny, name):
    _, _, history = fit(name, tiny, epochs=10)
    first, last = history.epochs[0], history.epochs[-1]
    assert {"dev_loss", "dev_ppl", "dev_bleu", "train_loss_epoch"} <= set(last)
    assert last["dev_loss"] < 0.5 * first["dev_loss"]
    assert last["dev_ppl"] == pytest.approx(torch.exp(torch.tensor(last["dev_loss"])).item(), rel=1e-4)
    assert last["dev_bleu"] > first["dev_bleu"] and last["dev_bleu"] > 20


def test_language_model_learns_what_random_words_allow(tiny):
    # Tiny-corpus words are uniform and independent: the best a model can do is learn the unigram
    # distribution and where sentences end (dev ppl ≈ 12), against 16 for an untrained model.
    task, _, history = fit("lm-jordan", tiny, epochs=3)
    assert history.epochs[-1]["dev_ppl"] < 14.0
    assert history.epochs[-1]["train_loss_epoch"] < history.epochs[0]["train_loss_epoch"]
    assert "dev_bleu" not in history.epochs[-1]


def test_adadelta_with_the_papers_settings(tiny):
    task, trainer, _ = fit("rnnenc-gru", tiny, epochs=1, optimizer="adadelta", lr=1.0, schedule="none",
                           label_smoothing=0.1, dev_bleu_every=0)
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.Adadelta)
    assert optimizer.defaults["rho"] == 0.95 and optimizer.defaults["eps"] == 1e-6


def test_checkpoint_loads_with_weights_only_and_gives_identical_outputs(tiny, tmp_path):
    task, trainer, _ = fit("rnnsearch-lstm", tiny, epochs=1, dev_bleu_every=0)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)  # no pickled code needed to read it
    restored = task_class("rnnsearch-lstm")(**checkpoint["hyper_parameters"])
    restored.load_state_dict(checkpoint["state_dict"])
    loaded = task_class("rnnsearch-lstm").load_from_checkpoint(path, weights_only=True)
    batch = collate([ParallelSplit(tiny / "dev")[i] for i in range(8)])
    task.eval(), restored.eval(), loaded.eval()
    with torch.no_grad():
        expected = task.logits_and_targets(batch)[0]
        assert torch.equal(restored.logits_and_targets(batch)[0], expected)
        assert torch.equal(loaded.logits_and_targets(batch)[0], expected)
    assert [h.tokens for h in loaded.translate(batch["src"], batch["src_lengths"], beam_size=3)] == \
        [h.tokens for h in task.translate(batch["src"], batch["src_lengths"], beam_size=3)]


def test_cosine_schedule_decays_over_the_epoch_budget(tiny):
    """schedule: cosine spans exactly the Trainer's budget: full lr at step 0, COSINE_FLOOR × lr at the end."""
    from pipeline.training.sequence_task import COSINE_FLOOR

    task, trainer, _ = fit("lm-gru", tiny, epochs=3, schedule="cosine", lr=0.01)
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert trainer.lr_scheduler_configs[0].interval == "step"
    assert scheduler.base_lrs == [0.01]
    final = trainer.optimizers[0].param_groups[0]["lr"]
    assert trainer.global_step == trainer.estimated_stepping_batches
    assert final == pytest.approx(0.01 * COSINE_FLOOR, rel=1e-6)


@pytest.mark.parametrize("name", ["rnnsearch-gru", "rnnenc-lstm", "lm-rnn"])
def test_training_loss_is_the_loss_of_the_logits(tiny, name):
    """training_step's loss (the projection fused into the loss) is masked_nll of logits_and_targets'
    logits, with its gradients, under the bf16 autocast training runs in and without it."""
    from models.loss import masked_nll

    torch.manual_seed(0)
    split = ParallelSplit(tiny / "train")
    batch = collate([split[i] for i in range(16)])
    train = {"label_smoothing": 0.1, "lr": 0.001, "optimizer": "adam"}
    task = task_class(name)(name, 40, 40, {"emb_size": 8, "hidden_size": 16, "maxout_size": 8,
                                           "attention_size": 8, "dropout": 0.0}, train)
    for autocast, tolerance in ((False, 1e-5), (True, 0.03)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            ours, targets = task.training_loss(batch)
            logits, same_targets = task.logits_and_targets(batch)
            theirs = masked_nll(logits, same_targets, label_smoothing=0.1)
        assert torch.equal(targets, same_targets)
        grads = [torch.autograd.grad(loss, list(task.parameters()), allow_unused=True) for loss in (ours, theirs)]
        assert torch.allclose(ours, theirs, rtol=tolerance / 10, atol=1e-5)
        for a, b in zip(*grads):
            if a is not None:
                assert torch.allclose(a, b, rtol=tolerance, atol=tolerance * b.abs().max())
