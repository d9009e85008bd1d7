"""GPU check of the `gpu` profile: the GRU pair at paper size, trained for a fixed number of steps on
a prepared corpus, then the test split decoded and scored by source-length bucket.

Needs only torch, pytorch-lightning, sacrebleu and tokenizers (what the lent GPU machine has): no
Ray, MLflow, DVC or pydantic; sacremoses is used when present. The corpus is prepared beforehand, on
a machine with the project installed, and carried along as an xz bundle of only what this script
reads (12 pairings, 323k train pairs: 170 MB prepared, 8.5 MB bundled):

    .venv/bin/python benchmarks/gpu_check.py data/gpu --prepare         # here: data/gpu + data/gpu.tar.xz
    tar xJf data/gpu.tar.xz -C data && python benchmarks/gpu_check.py data/gpu --steps 400 --out $OUT  # GPU
    python benchmarks/gpu_check.py <corpus> --steps 3 --tiny            # a CPU smoke run (tiny sizes)

Settings are params.yaml's with ``profiles.gpu`` laid over them (model sizes, optimizer, batches,
precision, beam size). Per model it prints: parameters; training target tokens per second (EOS
included, padding not; after ``--warmup`` steps, CUDA synchronised); peak memory (CUDA: max
allocated; CPU: peak RSS); the last training loss; test sentences per second of the beam search;
BLEU per source-length bucket (sacrebleu; on detokenized text when sacremoses is installed, else on
the Moses tokens of hypothesis and reference alike, marked "tokens"). Then the ``train.max_steps``
that fits the profile's models into a 60-minute run at the measured speed (``recommended_max_steps``).
Everything is also written to ``<out>/gpu_check.json``. Training runs as the train stage runs it on
CUDA (TF32, deterministic kernels, pinned batches: pipeline/training/cuda.py), and the timed window
reads nothing back from the device until it ends.
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import sacrebleu
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.data.length_buckets import BUCKET_LABELS, bucket_index  # noqa: E402
from pipeline.data.vocabulary import Vocabulary  # noqa: E402
from pipeline.training.cuda import apply_cuda_settings, pin_memory  # noqa: E402
from pipeline.training.datamodule import ParallelSplit, PreparedDataModule, collate  # noqa: E402
from pipeline.training.precision import resolve  # noqa: E402
from pipeline.training.tasks import task_class  # noqa: E402

MODELS = ("rnnenc-gru", "rnnsearch-gru")
RUN_MINUTES = 60  # the `gpu` profile's goal: every Bible model trained and evaluated within an hour
TRAIN_SHARE = 0.7  # of it for the train steps themselves
TINY_SIZES = {"emb_size": 16, "hidden_size": 32, "maxout_size": 16, "attention_size": 16, "dropout": 0.0}


def merged(base: dict, override: dict) -> dict:
    """``override`` laid over ``base`` key by key, as params.yaml's profiles are (pipeline/config)."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def gpu_profile() -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    return merged({k: v for k, v in raw.items() if k not in ("profile", "profiles")}, raw["profiles"]["gpu"])


class Throughput(pl.Callback):
    """Target tokens per second of training after ``warmup`` steps, and the last training loss.

    Nothing is read back to the host inside the timed window (on a GPU every ``int()``/``float()`` of
    a device tensor waits for the device): tokens add up on the device, the loss is kept as a tensor,
    and both are read once at the end, after a synchronisation."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.tokens, self.started, self.seconds, self.loss = warmup, 0, None, 0.0, None
        self.steps = 0  # timed steps

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_index) -> None:
        if trainer.global_step == self.warmup:
            self._sync(pl_module)
            self.started = time.perf_counter()
        if self.started is not None:
            self.tokens = self.tokens + batch["tgt_lengths"].sum() + len(batch["tgt_lengths"])  # + EOS
            self.steps += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        self.loss = (outputs["loss"] if isinstance(outputs, dict) else outputs).detach()

    def on_train_end(self, trainer, pl_module) -> None:
        self._sync(pl_module)
        if self.started is not None:
            self.seconds = time.perf_counter() - self.started
        self.tokens = int(self.tokens)
        self.loss = float(self.loss) if self.loss is not None else None


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def detokenizer(language: str):
    """sacremoses' detokenizer when installed (then BLEU is on text, as the evaluate stage scores)."""
    try:
        from pipeline.data.tokenization import Detokenizer
    except ImportError:
        return None
    return Detokenizer(language)


def bleu_by_bucket(model, data: Path, split: ParallelSplit, settings: dict, sentences: int,
                   device: torch.device) -> dict:
    corpus = json.loads((data / "corpus.json").read_text())
    vocabulary = Vocabulary.load(data / "vocab/tgt.json")
    detokenize = detokenizer(corpus["tgt_lang"])
    count = min(sentences, len(split))
    order = np.argsort(-split.src.lengths[:count], kind="stable")  # longest first: little padding
    hypotheses: list[str] = [""] * count
    beam, alpha = settings["evaluate"]["beam_size"], settings["evaluate"]["length_alpha"]
    precision = resolve(settings["train"]["precision"], device.type)
    started = time.perf_counter()
    with torch.no_grad(), precision.autocast(device.type):
        for start in range(0, count, settings["evaluate"]["batch_sentences"]):
            chunk = [int(i) for i in order[start : start + settings["evaluate"]["batch_sentences"]]]
            batch = collate([split[i] for i in chunk])
            for index, hypothesis in zip(chunk, model.translate(batch["src"], batch["src_lengths"], beam, alpha)):
                tokens = vocabulary.decode(hypothesis.tokens)
                hypotheses[index] = detokenize(tokens) if detokenize else " ".join(tokens)
    seconds = time.perf_counter() - started
    if detokenize:
        references = (data / "test/tgt.txt").read_text(encoding="utf-8").splitlines()[:count]
    else:
        references = [" ".join(vocabulary.decode(split.tgt[i])) for i in range(count)]
    words = np.load(data / "test/src_words.npy")[:count]
    buckets = bucket_index(words)
    lowercase = bool(corpus.get("lowercase"))
    scores = {}
    for number, label in enumerate(BUCKET_LABELS):
        members = np.flatnonzero(buckets == number)
        if len(members):
            bleu = sacrebleu.corpus_bleu([hypotheses[i] for i in members], [[references[i] for i in members]],
                                         lowercase=lowercase, tokenize="13a" if detokenize else "none")
            scores[label] = {"n": int(len(members)), "bleu": round(bleu.score, 2), "bp": round(bleu.bp, 3)}
    overall = sacrebleu.corpus_bleu(hypotheses, [references], lowercase=lowercase,
                                    tokenize="13a" if detokenize else "none")
    return {"beam_size": beam, "sentences": count, "sentences_per_s": round(count / seconds, 1),
            "scored_on": "text" if detokenize else "tokens", "bleu": round(overall.score, 2), "buckets": scores}


def check(name: str, data: Path, settings: dict, steps: int, warmup: int, test_sentences: int) -> dict:
    vocab = {side: len(Vocabulary.load(data / f"vocab/{side}.json")) for side in ("src", "tgt")}
    train = settings["train"]
    pl.seed_everything(train["seed"], verbose=False)
    task = task_class(name)(name, vocab["src"], vocab["tgt"], settings["model"], train)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    precision = resolve(train["precision"], device.type)
    meter = Throughput(warmup)
    trainer = pl.Trainer(accelerator="auto", devices=1, precision=precision.value, max_steps=steps,
                         use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                         callbacks=[meter], log_every_n_steps=max(steps // 10, 1),
                         **apply_cuda_settings(device.type))  # as the train stage: TF32, deterministic
    datamodule = PreparedDataModule(data, train["batch_tokens"], train["seed"], num_workers=train["num_workers"],
                                    batch_sentences=train["batch_sentences"], pin_memory=pin_memory(device.type))
    started = time.perf_counter()
    trainer.fit(task, datamodule)
    train_seconds = time.perf_counter() - started
    result = {
        "model": name, "parameters": sum(p.numel() for p in task.parameters()), "device": str(device),
        "precision": precision.value, "steps": trainer.global_step, "train_seconds": round(train_seconds, 1),
        "tokens_per_s": round(meter.tokens / meter.seconds) if meter.seconds else None,
        "seconds_per_step": round(meter.seconds / meter.steps, 4) if meter.steps else None,
        "last_loss": round(meter.loss, 3) if meter.loss is not None else None,
    }
    model = task.to(device).eval()
    result["test"] = bleu_by_bucket(model, data, ParallelSplit(data / "test"), settings, test_sentences, device)
    result["peak_memory_mb"] = round(peak_memory_mb(device))
    return result


def recommended_max_steps(models: list[dict], settings: dict) -> int | None:
    """The per-model step budget that fits the `gpu` profile's models into RUN_MINUTES: TRAIN_SHARE of
    it for training (the rest: validation, dev BLEU, evaluate, probe), each model at the measured
    seconds per step of its family's GRU (language models as rnnenc: no attention, one recurrence
    fewer). Rounded down to a hundred."""
    seconds = {m["model"].split("-")[0]: m["seconds_per_step"] for m in models if m["seconds_per_step"]}
    if set(seconds) != {"rnnenc", "rnnsearch"}:
        return None
    per_step = sum(seconds["rnnsearch" if name.startswith("rnnsearch") else "rnnenc"]
                   for name in settings["experiments"]["models"])
    return max(int(RUN_MINUTES * 60 * TRAIN_SHARE / per_step + 1e-6) // 100 * 100, 100)  # + 1e-6: float division


def prepare(target: Path) -> None:
    """The gpu profile's corpus, by the prepare stage itself (needs the project's own environment)."""
    target = target.resolve()
    work = target.parent / f".{target.name}-project"
    (work / "data").mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    (work / "params.yaml").write_text(yaml.safe_dump({**params, "profile": "gpu"}, sort_keys=False))
    subprocess.run([sys.executable, "-m", "pipeline.stages.prepare"], cwd=work, check=True,
                   env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    shutil.rmtree(target, ignore_errors=True)
    (work / "data/prepared").replace(target)
    bundle = target.with_name(target.name + ".tar.xz")
    with tarfile.open(bundle, "w:xz") as archive:
        for path in sorted(target.rglob("*")):
            relative = path.relative_to(target)
            if path.is_file() and (path.suffix == ".npy" or relative.parts[0] == "vocab"
                                   or relative.as_posix() in ("corpus.json", "stats.json", "test/tgt.txt")):
                archive.add(path, arcname=f"{target.name}/{relative.as_posix()}")
    print(f"prepared {target}; bundle {bundle} ({bundle.stat().st_size / 2**20:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a prepared corpus (data/prepared layout)")
    parser.add_argument("--prepare", action="store_true", help="first prepare the gpu profile's corpus into DATA")
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps per model")
    parser.add_argument("--warmup", type=int, default=20, help="steps left out of the tokens/s")
    parser.add_argument("--test-sentences", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--tiny", action="store_true", help="tiny model sizes and beam 2: a CPU smoke run")
    parser.add_argument("--out", type=Path, default=Path("."))
    arguments = parser.parse_args()
    if arguments.prepare:
        prepare(arguments.data)
        return
    settings = gpu_profile()
    if arguments.tiny:
        settings["model"] = {**settings["model"], **TINY_SIZES}
        settings["evaluate"] = {**settings["evaluate"], "beam_size": 2}
        settings["train"] = {**settings["train"], "batch_tokens": 256, "num_workers": 0}
    if not torch.cuda.is_available():
        settings["train"] = {**settings["train"], "precision": "auto"}  # bf16 only where the CPU has it
    results = {"torch": torch.__version__, "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
               "steps": arguments.steps, "sizes": settings["model"], "models": []}
    for name in arguments.models:
        result = check(name, arguments.data, settings, arguments.steps, min(arguments.warmup, arguments.steps - 1),
                       arguments.test_sentences)
        results["models"].append(result)
        test = result["test"]
        print(f"{name}: {result['parameters']:,} parameters, {result['steps']} steps in {result['train_seconds']} s, "
              f"{result['tokens_per_s']} target tokens/s ({result['precision']}), peak {result['peak_memory_mb']} MB, "
              f"last loss {result['last_loss']}; beam {test['beam_size']}: {test['sentences_per_s']} sentences/s, "
              f"BLEU {test['bleu']} ({test['scored_on']})", flush=True)
        print("  " + "  ".join(f"{label} {row['bleu']} (n={row['n']})" for label, row in test["buckets"].items()))
    results["recommended_max_steps"] = recommended_max_steps(results["models"], settings)
    if results["recommended_max_steps"]:
        print(f"recommended train.max_steps for a {RUN_MINUTES}-minute `gpu` run: {results['recommended_max_steps']} "
              f"({len(settings['experiments']['models'])} models, {TRAIN_SHARE:.0%} of the time training; "
              "lm-* and rnnenc-* timed as rnnenc-gru, rnnsearch-* as rnnsearch-gru)")
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "gpu_check.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
