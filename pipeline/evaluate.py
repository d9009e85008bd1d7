"""`evaluate` stage: decode the test split with every trained model and score it (docs/evaluation.md).

    python -m pipeline.evaluate                     # data/prepared + checkpoints/bible → reports/
    python -m pipeline.evaluate --corpus synthetic  # data/synthetic + checkpoints/synthetic → reports/synthetic/

Translation models (rnnenc-*, rnnsearch-*) decode twice, with greedy search and with beam search
(``evaluate.beam_size``; 1 = greedy only), and each decode is scored with sacrebleu on detokenized
text: overall, on the no-UNK subset and against every reference (Bahdanau et al. 2014 Table 1), and
per source-length bucket with a bootstrap interval and BLEU's parts (Bahdanau et al. 2014 Fig. 2,
Cho et al. 2014 Fig. 4; see ``pipeline.bleu_by_length``). Each rnnenc/rnnsearch pair of a cell is
then tested for the bottleneck (``pipeline.claim``). RNNsearch models also draw attention heatmaps
(Bahdanau Fig. 3) from the beam decode. Language models (lm-*) get test perplexity and a few samples.

The main decoder is beam search (greedy when beam_size is 1): its scores are metrics.json's per-model
keys (so ``dvc metrics diff`` compares like with like), the BLEU-by-length figure, samples.json and
``hypotheses/<model>.txt``. Greedy's scores are nested under the model's ``"greedy"`` key and its
output is ``hypotheses/<model>.greedy.txt`` (when beam search ran too). metrics.json's ``"claim"``
holds the test of each pair per decoder; ``bleu_by_length.csv`` has one row per model × decoder × bucket.

Outputs under the reports folder: ``metrics.json``, ``bleu_by_length.csv``, ``samples.json``,
``hypotheses/`` (one line per test sentence, corpus order) and ``figures/``
(``bleu_by_length.png``, ``attention_<model>_<k>.png``). Everything is written to a temporary
folder first and moved into place at the end: a failed run leaves the previous outputs as they were.
Only checkpoint files are read from training (``checkpoints/<corpus>/<model>/best.ckpt``), not its code.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch
from tqdm import tqdm

from models.loss import masked_nll
from models.registry import parse_model_name, task_class
from models.special_tokens import PAD
from pipeline import claim, figures
from pipeline.bleu_by_length import CSV_COLUMNS, ModelScores, no_unk_mask, score_model
from pipeline.config import EvaluateConfig, load_params
from pipeline.corpora import CORPORA, Corpus
from pipeline.errors import DataError, UserError, stage_entry_point
from pipeline.length_buckets import bucket_index
from pipeline.precision import resolve as resolve_precision
from pipeline.tokenization import Detokenizer
from pipeline.vocabulary import BPE_WORD_END, Vocabulary

if TYPE_CHECKING:
    from pipeline.datamodule import ParallelSplit


FILES = ("metrics.json", "bleu_by_length.csv", "samples.json")  # replaced whole
HYPOTHESES, FIGURES = "hypotheses", "figures"
OWN_FIGURES = ("bleu_by_length.png", "attention_*.png")  # other stages may put figures beside these
LM_SAMPLES, SAMPLE_MAX_LEN, SAMPLE_TEMPERATURE, SAMPLE_TOP_K = 5, 60, 0.8, 20
EXAMPLES = 3  # short and long example translations per model
SHORT_WORDS, LONG_WORDS = (10, 19), 40
GREEDY, BEAM = "greedy", "beam"
GREEDY_KEYS = ("bleu", "bleu_no_unk", "bleu_multi_ref")  # of greedy's scores, nested in metrics.json
# _LAZY: pytorch_lightning (via pipeline.datamodule and the task classes) takes ~4 s to import; it is
# imported only once params and inputs are known to be good, so those errors come back at once.


@dataclass
class TestSet:
    """The prepared test split: ids, texts, references and the per-sentence facts scoring needs."""

    split: "ParallelSplit"
    sources: list[str]
    references: list[list[Optional[str]]]  # sacrebleu's layout: one stream per reference file; [0]: tgt.txt
    src_words: np.ndarray  # source length in words (the bucket's measure)
    buckets: np.ndarray
    no_unk: np.ndarray
    lowercase: bool
    train_max_len: Optional[int]
    src_vocab: Vocabulary
    tgt_vocab: Vocabulary
    detokenize: Detokenizer

    def __len__(self) -> int:
        return len(self.split)

    def text(self, ids) -> str:
        return self.detokenize(self.tgt_vocab.decode(ids))  # <unk> → UNK_TEXT


def _read_lines(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def load_test_set(corpus: Corpus) -> TestSet:
    from pipeline.datamodule import ParallelSplit  # Lightning: see _LAZY

    info = corpus.description()
    test = corpus.data / "test"
    reference_files = info.get("references", ["tgt.txt"])
    try:
        split = ParallelSplit(test)
        src_words = np.load(test / "src_words.npy")
        sources = _read_lines(test / "src.txt")
        references = [_read_lines(test / name) for name in reference_files]
        # An extra version that lacks the verse has an empty line: no reference (sacrebleu skips
        # None), not an empty one that brevity would be measured against.
        references[1:] = [[line or None for line in stream] for stream in references[1:]]
        vocabularies = [Vocabulary.load(corpus.data / "vocab" / f"{side}.json") for side in ("src", "tgt")]
    except FileNotFoundError as error:
        raise corpus.missing(error.filename) from None
    for name, count in [("src_words.npy", len(src_words)), ("src.txt", len(sources)),
                        *zip(reference_files, map(len, references))]:
        if count != len(split):
            raise DataError(f"{test / name}: {count} lines but the test split has {len(split)} sentences; "
                            f"rerun the prepare stage")
    no_unk = no_unk_mask([split.src[i] for i in range(len(split))], [split.tgt[i] for i in range(len(split))])
    return TestSet(split, sources, references, src_words, bucket_index(src_words), no_unk, bool(info["lowercase"]),
                   info.get("max_len"), *vocabularies, Detokenizer(info["tgt_lang"]))


def _train_command(name: str, path: Path) -> str:
    return f"python -m pipeline.train {name}" + (" --corpus synthetic" if "synthetic" in path.parts else "")


def _retrain(name: str, path: Path) -> str:
    """How to get a sound checkpoint back: the cached one, or a new one from the train stage."""
    return f"restore it with `dvc checkout`, or delete it and retrain: {_train_command(name, path)}"


def load_task(name: str, path: Path, test: TestSet, device: torch.device):
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


def decoders(config: EvaluateConfig) -> dict[str, int]:
    """Decoder name → beam size, the main decoder first: beam search (if beam_size > 1), then greedy."""
    return {BEAM: config.beam_size, GREEDY: 1} if config.beam_size > 1 else {GREEDY: 1}


def decode(task, test: TestSet, config: EvaluateConfig, name: str, keep_attention: set[int],
           beam_size: int) -> tuple[list[str], dict[int, tuple[list[int], np.ndarray]]]:
    """Hypotheses in corpus order, and (tokens, attention) of the sentences in ``keep_attention``.

    Sentences go through the search longest first in batches of similar length (little padding;
    the largest batch comes first, so a memory problem shows at once); results return to corpus order.
    """
    from pipeline.datamodule import collate  # Lightning: see _LAZY

    order = np.argsort(-test.split.src.lengths, kind="stable")
    hypotheses: list[Optional[str]] = [None] * len(test)
    attention: dict[int, tuple[list[int], np.ndarray]] = {}
    started, output_tokens = time.perf_counter(), 0
    search = "greedy" if beam_size == 1 else f"beam {beam_size}"
    with tqdm(total=len(test), desc=f"decode {name} ({search})", unit=" sent", file=sys.stderr, mininterval=1.0) as bar:
        for start in range(0, len(order), config.batch_sentences):
            chunk = [int(i) for i in order[start : start + config.batch_sentences]]
            batch = collate([test.split[i] for i in chunk])
            results = task.translate(batch["src"], batch["src_lengths"], beam_size, config.length_alpha)
            for index, hypothesis in zip(chunk, results):
                hypotheses[index] = test.text(hypothesis.tokens)
                output_tokens += len(hypothesis.tokens) + 1  # EOS included
                if index in keep_attention and hypothesis.attention is not None:
                    attention[index] = (hypothesis.tokens, hypothesis.attention.float().numpy())
            bar.update(len(chunk))
    seconds = time.perf_counter() - started
    print(f"decoded {name} ({search}, {config.batch_sentences} per batch): {len(test) / seconds:.1f} sentences/s, "
          f"{output_tokens / seconds:,.0f} output tokens/s", flush=True)
    return hypotheses, attention  # type: ignore[return-value]


@torch.no_grad()
def perplexity(task, test: TestSet, config: EvaluateConfig, name: str) -> float:
    """exp(mean NLL per target token, EOS included) over the whole test split, as dev_ppl in training."""
    from pipeline.datamodule import collate  # Lightning: see _LAZY

    order = np.argsort(-test.split.tgt.lengths, kind="stable")
    total, tokens = 0.0, 0
    for start in tqdm(range(0, len(order), config.batch_sentences), desc=f"perplexity {name}", unit=" batch",
                      file=sys.stderr, mininterval=1.0):
        batch = collate([test.split[int(i)] for i in order[start : start + config.batch_sentences]])
        batch = {key: value.to(task.device) for key, value in batch.items()}
        logits, targets = task.logits_and_targets(batch)
        total += float(masked_nll(logits.float(), targets, reduction="sum"))
        tokens += int((targets != PAD).sum())
    return float(np.exp(total / max(tokens, 1)))


def lm_samples(task, test: TestSet, seed: int) -> list[str]:
    generator = torch.Generator(device=task.device).manual_seed(seed)
    drawn = task.model.sample(LM_SAMPLES, SAMPLE_MAX_LEN, temperature=SAMPLE_TEMPERATURE, top_k=SAMPLE_TOP_K,
                              generator=generator)
    return [test.text(ids) for ids in drawn]


def example_indices(test: TestSet) -> dict[str, list[int]]:
    """The first few short and long test sentences in corpus order: the same ones for every model."""
    words = test.src_words
    short = np.flatnonzero((words >= SHORT_WORDS[0]) & (words <= SHORT_WORDS[1]))[:EXAMPLES]
    long = np.flatnonzero(words >= LONG_WORDS)[:EXAMPLES]
    return {"short": [int(i) for i in short], "long": [int(i) for i in long]}


def _token_labels(vocabulary: Vocabulary, ids) -> list[str]:
    """One label per id (attention has a column per id): BPE pieces inside a word end in '@@'."""
    labels = []
    for i in ids:
        token = vocabulary.itos[int(i)]
        if vocabulary.kind == "bpe":
            token = token[: -len(BPE_WORD_END)] if token.endswith(BPE_WORD_END) else token + "@@"
        labels.append(token)
    return labels


def heatmap_indices(test: TestSet, config: EvaluateConfig) -> list[int]:
    return [int(i) for i in np.flatnonzero(test.src_words >= config.heatmap_min_words)[: config.heatmaps]]


def write_csv(path: Path, scores: dict[str, dict[str, ModelScores]]) -> None:
    """One row per model × decoder × bucket; ``scores`` is decoder → model → scores."""
    models = list(dict.fromkeys(name for by_model in scores.values() for name in by_model))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for name in models:
            for decoder, by_model in scores.items():
                for bucket in by_model[name].buckets:
                    writer.writerow({key: "" if value is None else value
                                     for key, value in bucket.row(name, decoder).items()})


def publish(work: Path, reports: Path) -> None:
    """Move the finished outputs into ``reports``, replacing only what this stage owns."""
    reports.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (work / name).replace(reports / name)
    if (reports / HYPOTHESES).exists():
        shutil.rmtree(reports / HYPOTHESES)
    (work / HYPOTHESES).replace(reports / HYPOTHESES)
    (reports / FIGURES).mkdir(exist_ok=True)
    for pattern in OWN_FIGURES:
        for stale in (reports / FIGURES).glob(pattern):
            stale.unlink()
    for figure in (work / FIGURES).iterdir():
        figure.replace(reports / FIGURES / figure.name)


def evaluate(corpus_name: str, models: list[str], config: EvaluateConfig) -> dict:
    corpus = CORPORA[corpus_name]
    if not models:
        raise UserError(f"experiments.{corpus.models_key} "
                        f"is empty: nothing to evaluate on the {corpus_name} corpus")
    corpus.require_prepared()
    # Every checkpoint is checked before the first one decodes: no half run for a missing file.
    paths = {name: corpus.checkpoints / name / "best.ckpt" for name in models}
    for name, path in paths.items():
        if not path.is_file():
            raise UserError(f"{path}: checkpoint not found (written by the train stage for {name}; train it first)")
    test = load_test_set(corpus)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(config.precision, device.type)
    print(f"decoding precision: {precision.value} ({precision.reason})", flush=True)
    torch.manual_seed(config.seed)
    # Long beam searches drive some activations into denormal floats, which x86 CPUs compute ~100×
    # slower: a random-init RNNsearch took 39 s instead of 1.4 s for 16 sentences of 85 words.
    # Flushing them to zero changes no score.
    torch.set_flush_denormal(True)

    reports = corpus.reports
    reports.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".evaluate-", dir=reports))
    try:
        (work / HYPOTHESES).mkdir()
        (work / FIGURES).mkdir()
        metrics: dict[str, dict] = {}
        search = decoders(config)
        primary = next(iter(search))
        scores: dict[str, dict[str, ModelScores]] = {decoder: {} for decoder in search}
        samples: dict[str, dict] = {"language_models": {}, "translations": {}}
        examples = example_indices(test)
        timings: dict[str, float] = {}
        for name in models:
            family, _ = parse_model_name(name)
            task = load_task(name, paths[name], test, device)
            started = time.perf_counter()
            with precision.autocast(device.type):  # decoding and perplexity
                if family == "lm":
                    metrics[name] = {"ppl": round(perplexity(task, test, config, name), 2)}
                    samples["language_models"][name] = lm_samples(task, test, config.seed)
                else:
                    heatmaps = heatmap_indices(test, config) if family == "rnnsearch" else []
                    outputs, attention = {}, {}
                    for decoder, beam_size in search.items():  # heatmaps from the main (beam) decode
                        outputs[decoder], found = decode(task, test, config, name,
                                                         set(heatmaps) if decoder == primary else set(), beam_size)
                        attention.update(found)
                        suffix = "" if decoder == primary else f".{decoder}"
                        (work / HYPOTHESES / f"{name}{suffix}.txt").write_text(
                            "".join(h + "\n" for h in outputs[decoder]), encoding="utf-8")
                        scores[decoder][name] = score_model(outputs[decoder], test.references, test.buckets,
                                                            test.no_unk, test.lowercase, config.bootstrap_samples,
                                                            config.seed)
                    metrics[name] = scores[primary][name].metrics()
                    if primary != GREEDY:
                        greedy = scores[GREEDY][name].metrics()
                        metrics[name][GREEDY] = {key: greedy[key] for key in GREEDY_KEYS}
                    hypotheses = outputs[primary]
                    samples["translations"][name] = {
                        kind: [{"index": i, "source": test.sources[i], "reference": test.references[0][i],
                                "hypothesis": hypotheses[i]} for i in indices]
                        for kind, indices in examples.items()
                    }
                    for k, index in enumerate(heatmaps):
                        tokens, weights = attention[index]
                        figures.attention_heatmap(
                            weights, _token_labels(test.src_vocab, test.split.src[index]),
                            _token_labels(test.tgt_vocab, tokens), work / FIGURES / f"attention_{name}_{k}.png",
                            title=f"{name}, test sentence {index} ({int(test.src_words[index])} words)")
            timings[name] = time.perf_counter() - started
            del task
        if scores[primary]:
            figures.bleu_by_length({name: s.buckets for name, s in scores[primary].items()},
                                   work / FIGURES / "bleu_by_length.png", test.train_max_len,
                                   title=f"{corpus_name} test set, "
                                         f"{'greedy search' if primary == GREEDY else f'beam {config.beam_size}'}")
            tested = claim.judge({decoder: {name: s.statistics for name, s in by_model.items()}
                                  for decoder, by_model in scores.items()},
                                 test.buckets, config.bootstrap_samples, config.seed)
            if any(tested.values()):
                metrics["claim"] = tested
        (work / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (work / "samples.json").write_text(json.dumps(samples, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        write_csv(work / "bleu_by_length.csv", scores)
        publish(work, reports)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, seconds in timings.items():
        summary = ", ".join(f"{k} {v}" for k, v in metrics[name].items() if k in ("bleu", "bleu_no_unk", "ppl"))
        if GREEDY in metrics[name]:
            summary += f" (greedy: bleu {metrics[name][GREEDY]['bleu']})"
        print(f"{name}: {summary} ({seconds:.1f} s)")
    for decoder, by_cell in metrics.get("claim", {}).items():
        for cell, tested in by_cell.items():
            print(f"claim, {decoder}, {cell}: {tested['verdict']}")
    print(f"evaluated {len(test)} test sentences of {corpus.data} → {reports}")
    return metrics


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Decode and score the test split with every trained model.")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="bible",
                        help="bible: data/prepared → reports/; synthetic: data/synthetic → reports/synthetic/")
    corpus = parser.parse_args().corpus
    params = load_params()  # validated before any work
    models = params.experiments.synthetic_models if corpus == "synthetic" else params.experiments.models
    metrics = evaluate(corpus, list(models), params.evaluate)
    reports = CORPORA[corpus].reports
    with (reports / "bleu_by_length.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    figures_written = sorted((reports / FIGURES).glob("*.png"))
    from pipeline.tracking import log_evaluation

    log_evaluation(params.mlflow, corpus, metrics, rows, figures_written)


if __name__ == "__main__":
    main()
