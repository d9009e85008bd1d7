"""`make repro` (pipeline/commands/reproduce.py: `dvc repro` with two trainings at a time) of the whole
pipeline in a copy of the project, with a tiny override (a few hundred pairs, one epoch, small sizes):
every stage runs, every declared output exists, a second `dvc repro` runs nothing, and MLflow holds
one parent run with a child per model carrying the test metrics."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.data.length_buckets import BUCKET_LABELS
from tests.pipeline.helpers import copy_project, dvc, run_stage, sentence_pairs, write_parallel
from tests.pipeline.training.tiny_corpus import write_tiny_corpus
from tests.pipeline.helpers import deep_update, free_port

MODELS = ["lm-gru", "rnnenc-gru", "rnnsearch-gru"]
SYNTHETIC_MODELS = ["rnnenc-gru", "rnnsearch-gru"]
TINY = {
    "prepare": {"source": "files", "files": {"src": "corpus.en", "tgt": "corpus.fr", "block_lines": 10},
                "split": {"test_size": 80, "dev_size": 40}, "clean": {"max_len": 30}, "workers": 1,
                "tokenize": {"src_vocab_size": 200, "tgt_vocab_size": 200}},
    "synthetic": {"synthetic": {"pairs": 500, "vocab_size": 40, "max_words": 45},
                  "split": {"test_size": 100, "dev_size": 40}, "workers": 1,
                  "tokenize": {"src_vocab_size": 44, "tgt_vocab_size": 44}},
    "model": {"emb_size": 16, "hidden_size": 24, "maxout_size": 16, "attention_size": 16, "dropout": 0.0},
    "train": {"batch_tokens": 400, "max_epochs": 1, "dev_bleu_sentences": 16, "accelerator": "cpu",
              "early_stopping_patience": 0,
              "epochs": {"bible": {"lm": 1, "rnnenc": 1, "rnnsearch": 1}, "synthetic": {"rnnenc": 1, "rnnsearch": 1}}},
    "experiments": {"models": MODELS, "synthetic_models": SYNTHETIC_MODELS},
    "evaluate": {"beam_size": 2, "bootstrap_samples": 50, "heatmaps": 1, "heatmap_min_words": 5},
    # A real 2-trial Ray Tune sweep of lm-gru, whose best config train@lm-gru then uses.
    "tune": {"models": ["lm-gru"], "num_samples": 2, "epochs": 1, "batches_per_epoch": 4,
             "search_space": {"lm": {"train.lr": {"loguniform": [0.001, 0.01]}, "model.hidden_size": {"choice": [16, 24]},
                                     "model.dropout": {"uniform": [0.0, 0.1]}}}},
}
# `make ablations` on the tiny pipeline: one variant of each kind (replacing the repository's list).
TINY_VARIANTS = {
    "rnnenc-gru-seed2": {"model": "rnnenc-gru", "corpus": "synthetic", "settings": {"train.seed": 2}},
    "rnnsearch-gru-seed2": {"model": "rnnsearch-gru", "corpus": "synthetic", "settings": {"train.seed": 2}},
    "rnnenc-gru-c8": {"model": "rnnenc-gru", "corpus": "synthetic", "settings": {"model.context_size": 8}},
    "rnnenc-gru-reversed": {"model": "rnnenc-gru", "corpus": "synthetic", "settings": {"model.reverse_source": True}},
    "rnnenc-gru-reordered": {"model": "rnnenc-gru", "corpus": "reordered", "settings": {}},
    "rnnsearch-gru-reordered": {"model": "rnnsearch-gru", "corpus": "reordered", "settings": {}},
}




@pytest.fixture(scope="module")
def repro(tmp_path_factory):
    clone = copy_project(tmp_path_factory.mktemp("pipeline"))
    write_parallel(clone, sentence_pairs(400))
    params = yaml.safe_load((clone / "params.yaml").read_text())
    deep_update(params, TINY)
    params["ablations"]["variants"] = TINY_VARIANTS
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = reproduce(clone, "dvc.yaml")
    return clone, first


def reproduce(clone: Path, pipeline: str) -> str:
    """`make repro` / `make ablations` with two trainings side by side: the command's output and the
    trainings' own logs (one per stage), where their `dvc repro --single-item` says what it ran."""
    environment = dict(os.environ, PYTHONPATH=str(clone),
                       PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    run = subprocess.run([sys.executable, "-m", "pipeline.commands.reproduce", pipeline, "--jobs", "2"], cwd=clone,
                         env=environment, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "at a time with 1 thread(s) each" in run.stdout
    logs = clone / "logs" / Path(pipeline).parent
    return run.stdout + "".join(log.read_text() for log in sorted(logs.glob("*.log")))


def test_every_stage_runs_and_writes_its_outputs(repro):
    clone, first = repro
    stages = ["prepare", "prepare_synthetic", "evaluate", "evaluate_synthetic", "probe", "probe_synthetic", "report"]
    stages += [f"train@{m}" for m in MODELS] + [f"train_synthetic@{m}" for m in SYNTHETIC_MODELS]
    stages += [f"tune@{m}" for m in MODELS]
    for stage in stages:
        assert f"Running stage '{stage}'" in first, stage
    for folder, models in (("reports", MODELS), ("reports/synthetic", SYNTHETIC_MODELS)):
        metrics = json.loads((clone / folder / "metrics.json").read_text())
        assert list(metrics) == models + ["claim"]  # the test of the claim after the models (pipeline/evaluation/claim.py)
        assert set(metrics["claim"]) == {"beam", "greedy"} and "gru" in metrics["claim"]["beam"]
        for model in models:
            keys = {"ppl"} if model.startswith("lm-") else {"bleu", "bleu_no_unk", "bleu_multi_ref", "signature"}
            assert keys <= set(metrics[model])
        with (clone / folder / "bleu_by_length.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["model", "decoder", "bucket", "n", "bleu", "ci_low", "ci_high", "bleu_nobp", "bp",
                                 "len_ratio", "p1", "p2", "p3", "p4"]
        translation = [m for m in models if not m.startswith("lm-")]
        assert [(r["model"], r["decoder"], r["bucket"]) for r in rows] == [
            (m, d, b) for m in translation for d in ("beam", "greedy") for b in BUCKET_LABELS]
        assert (clone / folder / "figures/bleu_by_length.png").stat().st_size > 10_000
        assert list((clone / folder / "figures").glob("attention_rnnsearch-gru_*.png"))
        probe = json.loads((clone / folder / "probe.json").read_text())
        assert sorted(probe) == sorted(m for m in models if not m.startswith("lm-"))
    sweep = json.loads((clone / "reports/tune/lm-gru.json").read_text())
    assert sweep["swept"] and len(sweep["trials"]) == 2 and sweep["best"]["config"]
    assert json.loads((clone / "reports/train/bible/lm-gru.json").read_text())["tuned"] == sweep["best"]["config"]
    assert json.loads((clone / "reports/tune/rnnsearch-gru.json").read_text())["swept"] is False
    for model in MODELS:
        assert (clone / f"checkpoints/bible/{model}/best.ckpt").is_file()
        assert json.loads((clone / f"reports/train/bible/{model}.json").read_text())["epochs"] == 1
    report = (clone / "reports/README.md").read_text()
    assert "RNNsearch-50" in report and "figures/bleu_by_length.png" in report
    assert "synthetic/figures/bleu_by_length.png" in report and "**Measured:**" in report
    assert "**The claim, tested**" in report and "**Headline (synthetic, `rnnenc-gru` vs `rnnsearch-gru`" in report
    assert "### Probe of the encoder's summary (the controlled task)" in report and "probe_by_length.png" in report
    assert "## Sweeps (Ray Tune, ASHA on the dev set)" in report and "### `lm-gru`: 2 trials" in report


def test_dvc_status_is_clean_a_second_repro_runs_nothing_and_dvc_reads_the_metrics(repro):
    clone, _ = repro
    # A fresh clone after `dvc repro`: every stage and output of the default pipeline is what dvc.lock
    # records; the ablations' stages (ablations/dvc.yaml, `make ablations`) have not run.
    assert json.loads(dvc(clone, "status", "dvc.yaml", "--json").stdout) == {}
    assert "train_ablation@rnnenc-gru-c8" in dvc(clone, "status").stdout
    second = dvc(clone, "repro")
    assert "Running stage" not in second.stdout
    metrics = json.loads(dvc(clone, "metrics", "show", "--json").stdout)
    text = json.dumps(metrics)
    assert "rnnsearch-gru" in text and "best_dev_loss" in text


def test_make_ablations_trains_the_variants_and_reports_them_beside_the_headline_pair(repro):
    """`make ablations` after `make repro`: the reordered task, one stage per variant (two trainings
    at a time, each its own `dvc repro --single-item`), the comparison and its report; the default
    pipeline is reused, not rerun."""
    clone, _ = repro
    run = reproduce(clone, "ablations/dvc.yaml")
    for stage in ("prepare_reordered", "evaluate_ablations", "report_ablations",
                  *[f"train_ablation@{name}" for name in TINY_VARIANTS]):
        assert f"Running stage 'ablations/dvc.yaml:{stage}'" in run, stage
    for name in TINY_VARIANTS:
        assert f"ablations/dvc.yaml:train_ablation@{name}: done" in run, name
    for model in SYNTHETIC_MODELS:  # the headline pair is up to date: checked, not retrained
        assert f"train_synthetic@{model}: done" in run and f"Running stage 'train_synthetic@{model}'" not in run
    assert "Running stage 'prepare'" not in run
    metrics = json.loads((clone / "reports/ablations/metrics.json").read_text())
    assert set(metrics["models"]) == {"rnnenc-gru", "rnnsearch-gru", *TINY_VARIANTS}
    assert metrics["seeds"]["seeds"] == 2 and list(metrics["seeds"]["per_seed"]) == ["1234", "2"]
    assert list(metrics["capacity"]) == ["8", "24"]  # the headline rnnenc-gru's |c| is its hidden size, 24
    assert list(metrics["controls"]) == ["rnnenc-gru-reversed"] and metrics["reordered"]["verdict"]
    stats = json.loads((clone / "data/reordered/stats.json").read_text())
    assert stats["pairs"] == json.loads((clone / "data/synthetic/stats.json").read_text())["pairs"]
    for figure in ("seeds", "capacity", "controls", "reordered"):
        assert (clone / f"reports/ablations/figures/{figure}.png").stat().st_size > 10_000, figure
    report = (clone / "reports/ablations/README.md").read_text()
    for section in ("## Training variance", "## Capacity", "## Time lag and size", "## Alignment"):
        assert section in report, section
    assert metrics["seeds"]["verdict"] in report
    # The variants' checkpoints hold their settings; the headline pair's are untouched.
    import torch

    hyper = torch.load(clone / "checkpoints/ablations/rnnenc-gru-c8/best.ckpt", weights_only=True)["hyper_parameters"]
    assert hyper["model"]["context_size"] == 8 and hyper["model"]["hidden_size"] == 24
    assert json.loads(dvc(clone, "status", "--json").stdout) == {}  # both pipelines now match their locks
    assert "Running stage" not in dvc(clone, "repro", "ablations/dvc.yaml").stdout


def test_mlflow_parent_with_a_child_per_model_and_bleu_by_length(repro):
    from mlflow.tracking import MlflowClient

    clone, _ = repro
    client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bottleneck")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("bottleneck.role") == "pipeline"]
    children = [r for r in runs if r.data.tags.get("bottleneck.role") == "model"]
    ablations = [r for r in runs if r.data.tags.get("bottleneck.role") == "ablation"]  # make ablations' variants
    sweeps = [r for r in runs if r.data.tags.get("bottleneck.role") == "sweep"]
    trials = [r for r in runs if r.data.tags.get("bottleneck.role") == "trial"]
    assert len(parents) == 1 and len(sweeps) == 1 and len(trials) == 2
    assert len(runs) == 1 + len(children) + len(ablations) + 1 + 2
    assert {r.info.run_name.split("/")[1] for r in ablations} <= set(TINY_VARIANTS)
    assert sweeps[0].data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert all(t.data.tags["mlflow.parentRunId"] == sweeps[0].info.run_id for t in trials)
    assert sorted(r.info.run_name for r in children) == sorted(
        [f"bible/{m}" for m in MODELS] + [f"synthetic/{m}" for m in SYNTHETIC_MODELS])
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert "dev_loss" in child.data.metrics
        if child.data.tags["family"] == "lm":
            assert "test_ppl" in child.data.metrics
            continue
        assert "test_bleu" in child.data.metrics
        curve = client.get_metric_history(child.info.run_id, "bleu_by_length")
        assert sorted(point.step for point in curve) == [0, 10, 20, 30, 40, 50, 60][:len(curve)]
        assert len(curve) >= 4
        figures = [a.path for a in client.list_artifacts(child.info.run_id, "figures")]
        assert "figures/bleu_by_length.png" in figures
    # Every run ended: the model runs by train, the pipeline's by report, with what report gives it.
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    pipeline = parents[0]
    assert pipeline.info.end_time and pipeline.data.params["train.batch_tokens"] == "400"
    assert pipeline.data.metrics["synthetic_beam_gru_shown"] in (0.0, 1.0)
    assert {"synthetic_beam_gru_r_enc", "synthetic_beam_gru_diff_low", "bible_beam_gru_shown"} <= set(
        pipeline.data.metrics)
    assert pipeline.data.tags["verdict.synthetic.beam.gru"]
    assert "figures/synthetic/bleu_by_length.png" in [
        a.path for a in client.list_artifacts(pipeline.info.run_id, "figures/synthetic")]
    table = json.loads(Path(client.download_artifacts(pipeline.info.run_id, "bleu_by_length.json")).read_text())
    assert table["columns"] == ["corpus", "model", "decoder", "bucket", "n", "bleu", "ci_low", "ci_high", "bp",
                                "bleu_nobp"]
    assert {row[0] for row in table["data"]} == {"bible", "synthetic"}


def test_a_failing_stage_marks_its_runs_failed_and_a_rerun_reopens_them(tmp_path_factory):
    """A train stage that fails ends its model run and the pipeline's run FAILED (none stays RUNNING);
    run again, it reopens them: the model run finishes, the pipeline's waits for report."""
    from mlflow.tracking import MlflowClient

    clone = copy_project(tmp_path_factory.mktemp("failing"))
    write_tiny_corpus(clone / "data/prepared")
    params = yaml.safe_load((clone / "params.yaml").read_text())
    deep_update(params, {"model": TINY["model"], "train": {**TINY["train"], "time_limit_minutes": 0.001,
                                                           "epochs": {"bible": {"lm": 50}}}})
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = run_stage(clone, "train", "lm-gru")  # stopped by the safety limit: a UserError
    assert result.returncode == 1 and "train.time_limit_minutes" in result.stderr

    def statuses():
        client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("bottleneck").experiment_id])
        return sorted((r.data.tags["bottleneck.role"], r.info.status) for r in runs)

    assert statuses() == [("model", "FAILED"), ("pipeline", "FAILED")]
    # The same revision and params (the same pipeline key) run again: what a rerun of train does.
    rerun = ("from pipeline.config import load_params; from pipeline.tracking.runs import Tracker; "
             "tracker = Tracker(load_params().mlflow); tracker.finish(tracker.model_run('bible', 'lm-gru', 'train'))")
    subprocess.run([sys.executable, "-c", rerun], cwd=clone, env=dict(os.environ, PYTHONPATH=str(clone)), check=True)
    assert statuses() == [("model", "FINISHED"), ("pipeline", "RUNNING")]


def test_ctrl_c_during_training_marks_its_runs_killed(tmp_path_factory):
    """Lightning turns Ctrl-C during fit into sys.exit(1); the stage still ends its runs KILLED."""
    from mlflow.tracking import MlflowClient

    clone = copy_project(tmp_path_factory.mktemp("interrupted"))
    write_tiny_corpus(clone / "data/prepared")
    params = yaml.safe_load((clone / "params.yaml").read_text())
    deep_update(params, {"model": TINY["model"], "train": {**TINY["train"], "epochs": {"bible": {"lm": 500}}}})
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # stderr to a file, not a pipe nobody reads while it trains: the progress bar would fill the pipe and
    # block the process in a write, so it could never act on the Ctrl-C.
    log = clone / "train.log"
    # A Ctrl-C at a terminal reaches a stage whose SIGINT is not ignored. Under a background job of a
    # non-interactive shell (`make test &`, some CI runners) it is ignored, the child inherits that, and
    # Python then installs no KeyboardInterrupt handler: the signal would do nothing and the training
    # run to its end. A handled signal is reset to the default in the child, an ignored one is not.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with log.open("w") as stderr:
            process = subprocess.Popen([sys.executable, "-m", "pipeline.stages.train", "lm-gru"], cwd=clone,
                                       env=dict(os.environ, PYTHONPATH=str(clone), PYTHONFAULTHANDLER="1"),
                                       stdout=subprocess.DEVNULL, stderr=stderr)
    finally:
        signal.signal(signal.SIGINT, previous)
    stamp, deadline = clone / "checkpoints/bible/lm-gru/fingerprint", time.monotonic() + 120
    while not stamp.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # inside trainer.fit
    assert process.poll() is None, log.read_text()[-2000:]
    process.send_signal(signal.SIGINT)
    try:
        returncode = process.wait(timeout=120)
    except subprocess.TimeoutExpired:  # a hang (seen once in a full run): every thread's stack into the log
        process.send_signal(signal.SIGABRT)
        process.wait(timeout=60)
        pytest.fail("the train stage did not exit within 120 s of Ctrl-C; its stderr, stacks last:\n"
                    + log.read_text()[-8000:])
    assert returncode != 0, log.read_text()[-2000:]
    client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("bottleneck").experiment_id])
    assert sorted((r.data.tags["bottleneck.role"], r.info.status) for r in runs) == [
        ("model", "KILLED"), ("pipeline", "KILLED")]



def test_make_ui_opens_the_bleu_by_length_comparison_in_chromium(repro, tmp_path):
    """The URL `make ui` prints (pipeline/commands/ui.py, which then serves the store), in Debian's Chromium:
    the translation runs of both experiments listed, a BLEU-by-length chart per corpus over a source_words
    axis, each run in a colour of its own, the pipeline FINISHED.
    Screenshots: <tmp_path>/comparison.png and pipeline_run.png."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")
    from mlflow.tracking import MlflowClient
    from playwright.sync_api import sync_playwright

    clone, _ = repro
    port = free_port()
    environment = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                       PYTHONPATH=str(clone))
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "pipeline.commands.ui", "--port", str(port)], cwd=clone,
                              env=environment, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        url = next(line.strip() for line in server.stdout if line.strip().startswith("http"))
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/") and "viewStateShareKey=" in url
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.5)
        client = MlflowClient(f"sqlite:///{clone / 'mlflow.db'}")
        experiment = client.get_experiment_by_name("bottleneck")
        pipeline = client.search_runs([experiment.experiment_id], "tags.`bottleneck.role` = 'pipeline'")[0]
        expected = {f"{corpus}/{model}" for corpus, models in (("bible", MODELS), ("synthetic", SYNTHETIC_MODELS))
                    for model in models if not model.startswith("lm-")}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url)
            cards = page.get_by_test_id("experiment-view-compare-runs-card")
            cards.filter(has_text="bleu_by_length.synthetic").wait_for(timeout=120_000)
            page.wait_for_function(  # plotly has drawn the lines
                "n => document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= n",
                arg=len(expected), timeout=60_000)
            page.screenshot(path=tmp_path / "comparison.png")
            print(f"screenshot: {tmp_path / 'comparison.png'}")
            listed = page.get_by_test_id("experiment-view-compare-runs-chart-area").inner_text()
            # A chart per corpus, each over the logged source_words axis (not "Step"), every run listed.
            runs = {run.info.run_name: run for run in client.search_runs(
                [experiment.experiment_id], "tags.`bottleneck.role` = 'model' and tags.family != 'lm'")}
            for corpus in ("synthetic", "bible"):
                card = cards.filter(has_text=f"bleu_by_length.{corpus}")
                assert card.count() == 1, listed
                card.scroll_into_view_if_needed()  # the UI draws a chart once it is on screen
                card.locator(".scatterlayer .trace").first.wait_for(timeout=60_000)
                suffix = f" (bleu_by_length.{corpus})"
                legend = {line.removesuffix(suffix) for line in card.inner_text().splitlines() if line.endswith(suffix)}
                assert legend and legend <= expected, card.inner_text()  # translation models only: no LM, no parent
                assert card.locator(".xtitle").text_content() == "source_words"  # an SVG text node
                drawn = set(card.evaluate("card => Array.from(card.querySelectorAll("
                                          "'.scatterlayer .trace path.js-line')).map(path => path.style.stroke)"))
                for name, run in runs.items():  # each run of this corpus in its own colour
                    if name.startswith(f"{corpus}/"):
                        red, green, blue = (int(run.data.tags["mlflow.runColor"][i:i + 2], 16) for i in (1, 3, 5))
                        assert f"rgb({red}, {green}, {blue})" in drawn, (name, drawn)
            colours = [run.data.tags["mlflow.runColor"] for run in runs.values()]
            assert set(runs) == expected and len(set(colours)) == len(colours)  # no two compared runs alike
            body = page.inner_text("body")
            assert all(name in body for name in expected) and "matching runs" in body, listed
            assert page.get_by_text(f"{len(expected)} matching runs").count() == 1
            page.goto(f"http://127.0.0.1:{port}/#/experiments/{experiment.experiment_id}/runs/"
                      f"{pipeline.info.run_id}")
            page.get_by_text("Finished", exact=True).wait_for(timeout=60_000)
            page.screenshot(path=tmp_path / "pipeline_run.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
