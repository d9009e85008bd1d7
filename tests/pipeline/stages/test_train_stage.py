"""The train stage as a user runs it: checkpoints, reports, resume after SIGKILL, bad params."""
import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.pipeline.helpers import REPO, assert_one_line_error, run_stage
from tests.pipeline.training.fitting import TINY_MODEL
from tests.pipeline.training.tiny_corpus import write_tiny_corpus
from tests.pipeline.helpers import TINY_RUN, write_project_params

TINY = {
    "model": TINY_MODEL.model_dump(),
    "train": {"batch_tokens": 128, "lr": 0.01, "max_epochs": 3, "dev_bleu_sentences": 16, "accelerator": "cpu",
              "early_stopping_patience": 0},
    "experiments": {"models": ["rnnsearch-gru", "lm-gru"], "synthetic_models": []},
}


def tiny_project(project, **train):
    write_tiny_corpus(project / "data/prepared")
    params = yaml.safe_load(yaml.safe_dump(TINY))
    params["train"].update(train)
    write_project_params(project, TINY_RUN, params)
    return project


def read_summary(project, model):
    return json.loads((project / f"reports/train/bible/{model}.json").read_text())


def test_train_writes_checkpoints_and_reports(project):
    tiny_project(project)
    result = run_stage(project, "train", "lm-gru")
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p.name for p in (project / "checkpoints/bible/lm-gru").iterdir()} >= {"best.ckpt", "last.ckpt"}
    summary = read_summary(project, "lm-gru")
    assert summary["epochs"] == 3 and summary["stopped_by"] == "epoch budget" and not summary["resumed"]
    # precision: auto (the default) trains in bf16 exactly where this CPU computes it, and says so.
    from pipeline.training.precision import cpu_has_bf16

    assert summary["precision"] == ("bf16-mixed" if cpu_has_bf16() else "32")
    assert f"precision: {summary['precision']} (auto: " in result.stdout
    assert "host memory: freed blocks stay in the heap" in result.stdout  # this machine runs glibc
    curve = (project / "reports/train/bible/lm-gru.csv").read_text().splitlines()
    assert curve[0].startswith("epoch,step,tokens,train_loss_epoch,dev_loss") and len(curve) == 4
    tokens = [int(line.split(",")[2]) for line in curve[1:]]
    assert tokens[0] > 0 and tokens == [tokens[0] * k for k in (1, 2, 3)]  # the same data every epoch
    assert summary["target_tokens_seen"] == tokens[-1]
    # Started again with nothing changed, it resumes and has nothing left to do.
    again = run_stage(project, "train", "lm-gru")
    assert again.returncode == 0 and read_summary(project, "lm-gru")["resumed"]
    assert read_summary(project, "lm-gru")["steps"] == summary["steps"]


def test_a_step_budget_stops_training_mid_epoch(project):
    """train.max_steps (the gpu profile's budget) ends a run within its first epoch, and says so."""
    tiny_project(project, max_steps=5, max_epochs=3)
    result = run_stage(project, "train", "lm-gru")
    assert result.returncode == 0, result.stderr[-2000:]
    summary = read_summary(project, "lm-gru")
    assert summary["steps"] == 5 and summary["stopped_by"] == "step budget"
    # Lightning validates only at an epoch's end; under a step budget it validates on the last step.
    assert summary["best_dev_loss"] is not None and summary["best_dev_ppl"] < float("inf")


def test_two_ddp_processes_train_through_the_stage(project):
    """devices: 2 (gloo on CPU): every rank joins the final checkpoint, rank 0 writes the report and says
    the run's settings."""
    tiny_project(project, devices=2, accelerator="cpu", max_epochs=1)
    result = run_stage(project, "train", "rnnenc-gru")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = read_summary(project, "rnnenc-gru")
    assert summary["epochs"] == 1 and summary["best_dev_loss"] is not None
    # The settings are said once, by rank 0, though every rank runs the stage.
    assert result.stdout.count("precision: ") == 1 and result.stdout.count("host memory: ") == 1, result.stdout
    assert {p.name for p in (project / "checkpoints/bible/rnnenc-gru").iterdir()} >= {"best.ckpt", "last.ckpt"}


def test_sigkill_mid_epoch_then_resume_finishes(project):
    tiny_project(project, checkpoint_every_minutes=0.005, max_epochs=4)
    command = [sys.executable, "-m", "pipeline.stages.train", "rnnsearch-gru"]
    environment = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(command, cwd=project, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    last = project / "checkpoints/bible/rnnsearch-gru/last.ckpt"
    deadline = time.monotonic() + 120
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert process.poll() is None, "training finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (project / "reports/train/bible/rnnsearch-gru.json").exists()

    result = run_stage(project, "train", "rnnsearch-gru")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Restored all states from the checkpoint" in result.stderr + result.stdout
    summary = read_summary(project, "rnnsearch-gru")
    assert summary["resumed"] and summary["epochs"] == 4
    assert summary["minutes_this_run"] < summary["minutes_total"] + 0.01  # earlier time counts too


def test_budget_is_epochs_by_corpus_and_family_and_deterministic(project, tmp_path_factory):
    """train.epochs overrides max_epochs per corpus and family; two runs give the same weights."""
    import torch

    tiny_project(project, max_epochs=3, epochs={"bible": {"lm": 2}})
    other = tiny_project(tmp_path_factory.mktemp("again"), max_epochs=3, epochs={"bible": {"lm": 2}})
    for folder in (project, other):
        assert run_stage(folder, "train", "lm-gru").returncode == 0
    summary = read_summary(project, "lm-gru")
    assert summary["epochs"] == summary["epoch_budget"] == 2 and summary["stopped_by"] == "epoch budget"
    assert {k: v for k, v in summary.items() if "minutes" not in k} == \
        {k: v for k, v in read_summary(other, "lm-gru").items() if "minutes" not in k}
    weights = [torch.load(folder / "checkpoints/bible/lm-gru/best.ckpt", weights_only=True)["state_dict"]
               for folder in (project, other)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_synthetic_overrides_size_the_controlled_experiment_only(project):
    """experiments.synthetic_overrides apply on the synthetic corpus, never to the Bible models."""
    import torch

    tiny_project(project, max_epochs=1)
    write_tiny_corpus(project / "data/synthetic")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["experiments"]["synthetic_overrides"] = {"model.hidden_size": 24, "train.lr": 0.005}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_stage(project, "train", "rnnenc-gru", "--corpus", "synthetic")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "synthetic overrides: model.hidden_size=24, train.lr=0.005" in result.stdout
    assert run_stage(project, "train", "rnnenc-gru").returncode == 0
    summaries = {corpus: json.loads((project / f"reports/train/{corpus}/rnnenc-gru.json").read_text())
                 for corpus in ("bible", "synthetic")}
    assert summaries["synthetic"]["overrides"] == {"model.hidden_size": 24, "train.lr": 0.005}
    assert "overrides" not in summaries["bible"]
    hidden = {corpus: torch.load(project / f"checkpoints/{corpus}/rnnenc-gru/best.ckpt",
                                 weights_only=True)["hyper_parameters"]["model"]["hidden_size"]
              for corpus in ("bible", "synthetic")}
    assert hidden == {"bible": TINY_MODEL.hidden_size, "synthetic": 24}


def test_a_profile_leaves_the_controlled_experiment_alone(project):
    """Under a profile that resizes the models (as `gpu` does), the synthetic pair keeps the top-level
    sizes, learning rate and batches it was calibrated with; only where it runs (precision here)
    follows the profile. The Bible models take the whole profile."""
    import torch

    tiny_project(project, max_epochs=1)
    write_tiny_corpus(project / "data/synthetic")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["profile"] = "big"
    params["profiles"] = {"big": {"model": {"hidden_size": 20, "emb_size": 12},
                                  "train": {"lr": 0.05, "batch_tokens": 256, "precision": "32"}}}
    params["experiments"]["synthetic_overrides"] = {"train.lr": 0.005}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    for corpus in ("bible", "synthetic"):
        result = run_stage(project, "train", "rnnenc-gru", "--corpus", corpus)
        assert result.returncode == 0, result.stderr[-2000:]
    hyper = {corpus: torch.load(project / f"checkpoints/{corpus}/rnnenc-gru/best.ckpt",
                                weights_only=True)["hyper_parameters"] for corpus in ("bible", "synthetic")}
    assert hyper["bible"]["model"]["hidden_size"] == 20 and hyper["bible"]["model"]["emb_size"] == 12
    assert hyper["synthetic"]["model"] == TINY_MODEL.model_dump()
    summaries = {corpus: json.loads((project / f"reports/train/{corpus}/rnnenc-gru.json").read_text())
                 for corpus in ("bible", "synthetic")}
    assert summaries["bible"]["precision"] == summaries["synthetic"]["precision"] == "32"
    train = {corpus: hyper[corpus]["train"] for corpus in hyper}
    assert (train["bible"]["lr"], train["bible"]["batch_tokens"]) == (0.05, 256)
    assert (train["synthetic"]["lr"], train["synthetic"]["batch_tokens"]) == (0.005, TINY["train"]["batch_tokens"])


def test_safety_time_limit_fails_loudly_and_keeps_the_checkpoint(project):
    tiny_project(project, max_epochs=50, time_limit_minutes=0.002)
    result = run_stage(project, "train", "lm-gru")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert "train.time_limit_minutes=0.002" in last_line and "run the stage again to continue" in last_line
    assert not (project / "reports/train/bible/lm-gru.json").exists()
    # last.ckpt is where the limit cut the epoch: a resumed run continues with the next batch, the
    # cut epoch is not counted as done.
    import torch

    checkpoint = torch.load(project / "checkpoints/bible/lm-gru/last.ckpt", weights_only=False)
    (loader,) = checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    assert loader["epoch"] == checkpoint["epoch"] and loader["batches_done"] > 0
    assert f"in epoch {loader['epoch'] + 1} of 50" in last_line


def test_changed_learning_rate_starts_over(project):
    tiny_project(project, max_epochs=1)
    assert run_stage(project, "train", "lm-gru").returncode == 0
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["lr"] = 0.02
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_stage(project, "train", "lm-gru").returncode == 0
    assert not read_summary(project, "lm-gru")["resumed"]


@pytest.mark.parametrize("section, values, needle", [
    ("experiments", {"models": ["rnnenc-foo"]}, "experiments.models: unknown model 'rnnenc-foo'"),
    ("experiments", {"models": []}, "experiments.models: the model list is empty"),
    ("train", {"devices": 0}, "train.devices: Input should be greater than or equal to 1"),
    ("evaluate", {"beam_size": 0}, "evaluate.beam_size: Input should be greater than or equal to 1"),
    ("train", {"precision": "8"}, "train.precision"),
    ("experiments", {"synthetic_overrides": {"train.devices": 2}},
     "experiments.synthetic_overrides: train.devices: not a tunable key (allowed: model.attention_size"),
    ("experiments", {"synthetic_overrides": {"model.dropout": 1.5}},
     "experiments.synthetic_overrides: model.dropout: 1.5 is not a valid model.dropout"),
])
def test_bad_params_fail_before_any_work(project, section, values, needle):
    tiny_project(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params.setdefault(section, {}).update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert_one_line_error(run_stage(project, "train", "lm-gru"), needle, exit_code=2)
    assert not (project / "checkpoints").exists()


def test_unknown_model_argument(project):
    tiny_project(project)
    assert_one_line_error(run_stage(project, "train", "gpt-2"), "unknown model 'gpt-2'", exit_code=2)


def test_an_ablation_variant_trains_with_its_settings_apart(project):
    """--variant trains params' ablations.variants entry: the controlled experiment with its settings
    laid over, its outputs under checkpoints/ablations and reports/ablations/train (never beside the
    headline pair's); an unknown name is a one-line error naming the known ones."""
    import torch

    tiny_project(project, max_epochs=1)
    write_tiny_corpus(project / "data/synthetic")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["ablations"]["variants"] = {"rnnenc-gru-c4": {"model": "rnnenc-gru", "corpus": "synthetic",
                                                         "settings": {"model.context_size": 4, "train.seed": 7}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    assert_one_line_error(run_stage(project, "train", "--variant", "rnnenc-gru-c5"), "ablations.variants: no variant "
                          "'rnnenc-gru-c5' (params.yaml has: rnnenc-gru-c4)", exit_code=2)
    result = run_stage(project, "train", "--variant", "rnnenc-gru-c4")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "variant rnnenc-gru-c4: model.context_size=4, train.seed=7" in result.stdout
    checkpoint = torch.load(project / "checkpoints/ablations/rnnenc-gru-c4/best.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["model"]["context_size"] == 4
    assert checkpoint["hyper_parameters"]["train"]["seed"] == 7
    summary = json.loads((project / "reports/ablations/train/rnnenc-gru-c4.json").read_text())
    assert summary["overrides"]["model.context_size"] == 4
    assert not (project / "checkpoints/synthetic/rnnenc-gru-c4").exists()
    assert not (project / "reports/train/synthetic").exists()
