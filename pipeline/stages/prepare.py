"""`prepare` stage: corpus → cleaned, split, tokenized, binarized ``data/prepared/``.

    python -m pipeline.stages.prepare                      # `prepare` section → data/prepared
    python -m pipeline.stages.prepare --section synthetic  # `synthetic` section → data/synthetic
    python -m pipeline.stages.prepare --section reordered  # the same, in ablations.reordered_order → data/reordered

Streams in three passes over temporary files, so memory does not grow with the corpus beyond the
output arrays: (1) clean and route each pair to its split, (2) Moses-tokenize on worker processes
and count words, (3) build the vocabularies and write token ids. Everything is built in a
temporary folder and moved into place only when complete: a failed run leaves no partial output.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from models.special_tokens import UNK
from pipeline.preparation.cleaning import DROP_REASONS, REPAIRS, clean_reference, drop_reason, heldout_key, repair
from pipeline.config import PrepareConfig, load_params
from pipeline.data.languages import direction
from pipeline.preparation.sources.synthetic import reordered_task
from pipeline.errors import DataError, stage_entry_point
from pipeline.data.length_buckets import BUCKET_LABELS, histogram
from pipeline.data.ragged import RaggedWriter
from pipeline.preparation.sources import Source, open_source
from pipeline.preparation.splitting import SPLITS, assign_groups
from pipeline.data.tokenization import ParallelTokenizer
from pipeline.data.vocabulary import Vocabulary

OUTPUT_DIRS = {"prepare": Path("data/prepared"), "synthetic": Path("data/synthetic"), "reordered": Path("data/reordered")}
# Each is its own DVC output (dvc.yaml); together they are everything this stage writes.
OUTPUTS = ("train", "dev", "test", "vocab", "corpus.json", "stats.json", "lengths.csv")
ENCODE_CHUNK = 4096
USER_CORPUS = Path("data/corpus")  # a DVC dependency of `prepare` (dvc.yaml)


def _progress(iterable, description: str, total=None):
    return tqdm(iterable, desc=description, total=total, unit=" pairs", file=sys.stderr, mininterval=1.0)


def clean_and_route(source: Source, config: PrepareConfig,
                    work: Path) -> tuple[Counter, Counter, set[str], dict, Counter, defaultdict]:
    """Pass 1: repair, filter and route every pair to ``<split>.clean.tsv``. Test takes only the
    primary pairing's pairs (one source version; the other target versions are its references)."""
    assignment = None
    if not source.predefined_splits:
        assignment = assign_groups(source.group_sizes(), config.split, config.seed)
    dropped: Counter[str] = Counter({reason: 0 for reason in DROP_REASONS})
    repairs: Counter[str] = Counter({name: 0 for name in REPAIRS})
    heldout: set[str] = set()
    routed = {split: 0 for split in SPLITS}
    missing_refs: Counter[str] = Counter({name: 0 for name in source.reference_names})
    by_pairing: defaultdict[str, Counter[str]] = defaultdict(Counter)
    with ExitStack() as stack:
        files = {s: stack.enter_context((work / f"{s}.clean.tsv").open("w", encoding="utf-8")) for s in SPLITS}
        for pair in _progress(source.pairs(), "clean", source.size_hint()):
            split = assignment[pair.group] if assignment is not None else pair.group
            if split == "test" and not pair.primary:
                continue
            src, tgt = repair(pair.src, repairs, source.repairs), repair(pair.tgt, repairs, source.repairs)
            reason = drop_reason(src, tgt, None if split == "test" else config.clean.max_len,
                                 config.clean.max_length_ratio, source.repairs, source.drops)
            if reason is not None:
                dropped[reason] += 1
                continue
            # A verse an extra version lacks is an empty line in its ref-<name>.txt; evaluate reads
            # that as "no reference" (None), never as an empty reference brevity would count.
            refs = ["" if ref is None else clean_reference(ref, source.repairs) for ref in pair.refs]
            if split == "test":
                for name, ref in zip(source.reference_names, refs):
                    missing_refs[name] += not ref
            files[split].write("\t".join([pair.key, src, tgt, *refs]) + "\n")
            routed[split] += 1
            if pair.pairing:
                by_pairing[pair.pairing][split] += 1
            if split != "train":
                heldout.add(heldout_key(src))
    return dropped, repairs, heldout, routed, missing_refs, by_pairing


def _read_clean(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\n").split("\t")


def tokenize_split(split: str, total: int, tokenizer: ParallelTokenizer, work: Path, heldout: set[str],
                   reference_names: tuple[str, ...], dropped: Counter, counts: dict[str, Counter]) -> np.ndarray:
    """Pass 2: write the split's plain text and its Moses tokens; returns source lengths in words."""
    out = work / split
    out.mkdir()
    src_words: list[int] = []
    with ExitStack() as stack:
        text = {name: stack.enter_context((out / f"{name}.txt").open("w", encoding="utf-8"))
                for name in ("keys", "src", "tgt")}
        refs = [stack.enter_context((out / f"ref-{name}.txt").open("w", encoding="utf-8"))
                for name in (reference_names if split == "test" else ())]
        tokens = stack.enter_context((work / f"{split}.tok.tsv").open("w", encoding="utf-8"))

        def kept() -> Iterator[tuple[str, str]]:
            for key, src, tgt, *extra in _read_clean(work / f"{split}.clean.tsv"):
                if split == "train" and heldout_key(src) in heldout:
                    dropped["overlap_heldout"] += 1
                    continue
                text["keys"].write(key + "\n")
                text["src"].write(src + "\n")
                text["tgt"].write(tgt + "\n")
                for handle, ref in zip(refs, extra):
                    handle.write(ref + "\n")
                src_words.append(src.count(" ") + 1)
                yield src, tgt

        for src_tokens, tgt_tokens in _progress(tokenizer(kept()), f"tokenize {split}", total):
            tokens.write(f"{src_tokens}\t{tgt_tokens}\n")
            if split == "train":
                counts["src"].update(src_tokens.split())
                counts["tgt"].update(tgt_tokens.split())
    return np.asarray(src_words, dtype=np.int32)


def _token_column(path: Path, column: int) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            yield line.rstrip("\n").split("\t")[column]


def build_vocabularies(config: PrepareConfig, work: Path, counts: dict[str, Counter]) -> dict[str, Vocabulary]:
    sizes = {"src": config.tokenize.src_vocab_size, "tgt": config.tokenize.tgt_vocab_size}
    vocabularies = {}
    for column, side in enumerate(("src", "tgt")):
        if config.tokenize.vocab == "bpe":
            vocabularies[side] = Vocabulary.train_bpe(_token_column(work / "train.tok.tsv", column), sizes[side])
        else:
            vocabularies[side] = Vocabulary.from_counts(counts[side], sizes[side])
    (work / "vocab").mkdir()
    for side, vocabulary in vocabularies.items():
        vocabulary.save(work / "vocab" / f"{side}.json")
    return vocabularies


def encode_split(split: str, total: int, work: Path, vocabularies: dict[str, Vocabulary]) -> dict[str, float]:
    """Pass 3: token ids as ragged int32 arrays; returns the share of <unk> tokens per side."""
    writers = {side: RaggedWriter(work / split, side) for side in ("src", "tgt")}
    unknown = {"src": 0, "tgt": 0}
    tokens = {"src": 0, "tgt": 0}
    with (work / f"{split}.tok.tsv").open(encoding="utf-8") as handle, \
            tqdm(total=total, desc=f"encode {split}", unit=" pairs", file=sys.stderr, mininterval=1.0) as bar:
        while lines := [line.rstrip("\n").split("\t") for _, line in zip(range(ENCODE_CHUNK), handle)]:
            for column, side in enumerate(("src", "tgt")):
                for ids in vocabularies[side].encode_batch([fields[column] for fields in lines]):
                    writers[side].append(ids)
                    unknown[side] += int(np.count_nonzero(ids == UNK))
                    tokens[side] += len(ids)
            bar.update(len(lines))
    for writer in writers.values():
        writer.close()
    return {side: round(unknown[side] / max(tokens[side], 1), 5) for side in tokens}


def prepare(source: Source, config: PrepareConfig, work: Path) -> dict:
    dropped, repairs, heldout, routed, missing_refs, by_pairing = clean_and_route(source, config, work)
    counts: dict[str, Counter] = {"src": Counter(), "tgt": Counter()}
    with ParallelTokenizer(config.src_lang, config.tgt_lang, config.tokenize.lowercase, config.workers) as tokenizer:
        # ``heldout`` (every dev and test source) is complete after pass 1: train's overlap filter uses it.
        src_words = {split: tokenize_split(split, routed[split], tokenizer, work, heldout,
                                           source.reference_names, dropped, counts)
                     for split in ("test", "dev", "train")}
    pairs = {split: len(src_words[split]) for split in SPLITS}
    empty = [split for split in SPLITS if pairs[split] == 0]
    if empty:
        reasons = ", ".join(f"{reason} {n}" for reason, n in dropped.items() if n)
        raise DataError(
            f"prepare.source {config.source!r}: the corpus is empty after cleaning "
            f"({' and '.join(empty)} split{'s' if len(empty) > 1 else ''} hold no pair; dropped: {reasons or 'none'})"
        )
    vocabularies = build_vocabularies(config, work, counts)
    unk_rate = {}
    for split in SPLITS:
        unk_rate[split] = encode_split(split, pairs[split], work, vocabularies)
        np.save(work / split / "src_words.npy", src_words[split])
    stats = {"pairs": pairs, "dropped": dict(dropped), "repaired": dict(repairs), "unk_rate": unk_rate,
             "vocab_size": {side: len(v) for side, v in vocabularies.items()}}
    if missing_refs:
        stats["test_references_missing"] = dict(missing_refs)
    if by_pairing:  # pairs per version pairing and split, after cleaning (before train's overlap filter)
        stats["pairings"] = {name: {split: counts[split] for split in SPLITS} for name, counts in by_pairing.items()}
    (work / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    corpus = {"title": f"{source.title}, {direction(config.src_lang, config.tgt_lang)}",
              "source": config.source, "src_lang": config.src_lang, "tgt_lang": config.tgt_lang,
              "lowercase": config.tokenize.lowercase, "vocab": config.tokenize.vocab,
              "references": ["tgt.txt"] + [f"ref-{name}.txt" for name in source.reference_names],
              "max_len": config.clean.max_len}
    (work / "corpus.json").write_text(json.dumps(corpus, indent=2) + "\n")
    with (work / "lengths.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["bucket", *SPLITS])  # pairs per source-length bucket, one column per split
        histograms = [histogram(src_words[split]) for split in SPLITS]
        for bucket in BUCKET_LABELS:
            writer.writerow([bucket, *(h[bucket] for h in histograms)])
    return stats


def publish(work: Path, output_dir: Path) -> None:
    """Replace each output only once all of them exist."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        target = output_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        (work / name).replace(target)


def warn_untracked_corpus(config: PrepareConfig) -> None:
    """A user's files outside data/corpus/ were read, but no DVC dependency covers them: say so."""
    if config.source != "files":
        return
    inside = USER_CORPUS.resolve()
    for key in ("tsv", "src", "tgt"):
        path = getattr(config.files, key)
        if path is not None and not Path(path).resolve().is_relative_to(inside):
            print(f"note: prepare.files.{key}: {path} is outside {USER_CORPUS}/, so `dvc repro` will not "
                  f"prepare it again when it changes; move it into {USER_CORPUS}/", flush=True)


@stage_entry_point
def main() -> None:
    parser = argparse.ArgumentParser(description="Prepare a corpus (see params.yaml).")
    parser.add_argument("--section", choices=sorted(OUTPUT_DIRS), default="prepare",
                        help="the params.yaml section to read: the main corpus, the synthetic one, or the "
                             "synthetic one in the ablations' word order")
    section = parser.parse_args().section
    params = load_params()
    if section == "reordered":  # the controlled task with another target word order, all else equal
        config: PrepareConfig = reordered_task(params.synthetic, params.ablations.reordered_order)
    else:
        config = getattr(params, section)
    output_dir = OUTPUT_DIRS[section]
    source = open_source(config)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".prepare-", dir=output_dir.parent))
    try:
        stats = prepare(source, config, work)
        publish(work, output_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    dropped = ", ".join(f"{reason} {n}" for reason, n in stats["dropped"].items())
    print(f"prepared {output_dir}: pairs {stats['pairs']}; dropped: {dropped}; "
          f"vocab {stats['vocab_size']}; buckets {', '.join(BUCKET_LABELS)}")
    warn_untracked_corpus(config)


if __name__ == "__main__":
    main()
