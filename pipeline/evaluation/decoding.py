"""Running a trained model over the test split: translations (greedy / beam), perplexity, samples, and
which sentences the report shows as examples and heatmaps."""
from __future__ import annotations

import sys
import time
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from models.loss import masked_nll
from models.special_tokens import PAD
from pipeline.config import EvaluateConfig
from pipeline.data.vocabulary import BPE_WORD_END, Vocabulary
from pipeline.evaluation.test_set import TestSet

# Lightning (via pipeline.training.datamodule) takes ~4 s to import: it is imported only once params
# and inputs are known to be good, so those errors come back at once.
EXAMPLES = 3  # short and long example translations per model
SHORT_WORDS, LONG_WORDS = (10, 19), 40
GREEDY, BEAM = "greedy", "beam"


def decoders(config: EvaluateConfig) -> dict[str, int]:
    """Decoder name → beam size, the main decoder first: beam search (if beam_size > 1), then greedy."""
    return {BEAM: config.beam_size, GREEDY: 1} if config.beam_size > 1 else {GREEDY: 1}


def decode(task, test: TestSet, config: EvaluateConfig, name: str, keep_attention: set[int],
           beam_size: int) -> tuple[list[str], dict[int, tuple[list[int], np.ndarray]]]:
    """Hypotheses in corpus order, and (tokens, attention) of the sentences in ``keep_attention``.

    Sentences go through the search longest first in batches of similar length (little padding;
    the largest batch comes first, so a memory problem shows at once); results return to corpus order.
    """
    from pipeline.training.datamodule import collate  # Lightning: see above

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
    from pipeline.training.datamodule import collate  # Lightning: see above

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


def lm_samples(task, test: TestSet, config: EvaluateConfig) -> list[str]:
    """``evaluate.lm_samples`` sentences drawn from a language model, seeded by ``evaluate.seed``."""
    settings = config.lm_samples
    generator = torch.Generator(device=task.device).manual_seed(config.seed)
    drawn = task.model.sample(settings.count, settings.max_len, temperature=settings.temperature,
                              top_k=settings.top_k, generator=generator)
    return [test.text(ids) for ids in drawn]


def example_indices(test: TestSet) -> dict[str, list[int]]:
    """The first few short and long test sentences in corpus order: the same ones for every model."""
    words = test.src_words
    short = np.flatnonzero((words >= SHORT_WORDS[0]) & (words <= SHORT_WORDS[1]))[:EXAMPLES]
    long = np.flatnonzero(words >= LONG_WORDS)[:EXAMPLES]
    return {"short": [int(i) for i in short], "long": [int(i) for i in long]}


def token_labels(vocabulary: Vocabulary, ids) -> list[str]:
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
