"""The prepare stage on a user's corpus (`files` source): outputs, splits, and every bad input."""
import json

import numpy as np
import pytest

from pipeline.data.ragged import RaggedArray
from pipeline.data.vocabulary import Vocabulary
from tests.pipeline.helpers import (assert_no_output, assert_one_line_error, run_stage, sentence_pairs,
                                    write_parallel, write_params)

SMALL_SPLIT = {"test_size": 60, "dev_size": 40}


def prepare_files(project, pairs, files_repairs=(), files_drops=(), **overrides):
    src, tgt = write_parallel(project, pairs)
    settings = {"source": "files", "split": SMALL_SPLIT, "workers": 2,
                "files": {"src": str(src), "tgt": str(tgt), "block_lines": 10, "repairs": list(files_repairs),
                          "drops": list(files_drops)}}
    settings.update(overrides)
    write_params(project, **settings)
    return run_stage(project, "prepare")


def read_lines(path):
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("vocab", ["word", "bpe"])
def test_outputs_round_trip_and_splits_are_disjoint(project, vocab):
    pairs = sentence_pairs(400)
    result = prepare_files(project, pairs, clean={"max_len": 30},
                           tokenize={"vocab": vocab, "src_vocab_size": 200, "tgt_vocab_size": 250})
    assert result.returncode == 0, result.stderr
    out = project / "data/prepared"
    stats = json.loads((out / "stats.json").read_text())
    assert sum(stats["pairs"].values()) + sum(stats["dropped"].values()) == len(pairs)
    assert stats["dropped"]["too_long"] > 0  # train/dev sentences over 30 words
    assert 60 <= stats["pairs"]["test"] <= 70 and stats["pairs"]["dev"] > 0  # whole blocks of 10

    keys = {split: read_lines(out / split / "keys.txt") for split in ("train", "dev", "test")}
    blocks = {split: {(int(k) - 1) // 10 for k in keys[split]} for split in keys}
    assert not blocks["train"] & blocks["test"] and not blocks["train"] & blocks["dev"]
    test_words = np.load(out / "test/src_words.npy")
    assert test_words.max() > 30  # test keeps every length
    assert np.load(out / "train/src_words.npy").max() <= 30 and np.load(out / "dev/src_words.npy").max() <= 30

    vocabulary = Vocabulary.load(out / "vocab/tgt.json")
    assert vocabulary.kind == vocab and len(vocabulary) <= 250
    targets = RaggedArray(out / "test", "tgt")
    texts = read_lines(out / "test/tgt.txt")
    assert len(targets) == len(texts) == stats["pairs"]["test"]
    # Lowercased Moses tokens come back, with <unk> for words outside the shortlist.
    decoded = vocabulary.decode(targets[0])
    expected = texts[0].lower().split()
    assert len(decoded) == len(expected) if vocab == "word" else True
    assert all(d == e or d == "<unk>" for d, e in zip(decoded, expected)) if vocab == "word" else \
        " ".join(decoded).replace("<unk>", "") != ""
    assert np.array_equal(RaggedArray(out / "test", "src").lengths > 0, np.ones(len(targets), bool))


def test_tsv_and_parallel_files_give_the_same_corpus(project, tmp_path_factory):
    pairs = sentence_pairs(200)
    assert prepare_files(project, pairs).returncode == 0
    other = tmp_path_factory.mktemp("tsv")
    (other / "corpus.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    write_params(other, source="files", files={"tsv": str(other / "corpus.tsv"), "block_lines": 10},
                 split=SMALL_SPLIT, workers=1)
    assert run_stage(other, "prepare").returncode == 0
    for name in ("train/src.ids.npy", "test/tgt.ids.npy", "dev/tgt.offsets.npy"):
        assert np.array_equal(np.load(project / "data/prepared" / name), np.load(other / "data/prepared" / name))


def test_cleaning_drops_are_counted_by_reason(project):
    pairs = sentence_pairs(300)
    pairs[5] = ("", "quelque chose")
    pairs[6] = ("one two (3:4) three", "un deux trois")
    pairs[7] = ("a b c d e f g h i j k l", "x")
    pairs[8] = ("<b>bold</b> words", "mots")
    # Verse markers are a Bible repair, markup a Bible drop: a user's corpus opts in to both.
    result = prepare_files(project, pairs, files_repairs=["verse_marker_stripped"], files_drops=["markup"])
    assert result.returncode == 0, result.stderr
    dropped = json.loads((project / "data/prepared/stats.json").read_text())["dropped"]
    assert dropped["empty_side"] == 1 and dropped["verse_marker"] == 1
    assert dropped["length_ratio"] == 1 and dropped["markup"] == 1


SOFTWARE_HELP = [  # text a Bible repair or drop would change: brackets, a ratio, backticks, <…>, braces
    ("NPV Function [VBA]", "Fonction VAN [VBA]"),
    ("IFS(expression1; result1[; expression2; result2])", "SI.CONDITIONS(expression1; résultat1[; expression2])"),
    ("Set the aspect ratio to (16:9) in `Settings`", "Réglez le format sur (16:9) dans `Paramètres`"),
    ("Select the range <A2:C2> first", "Sélectionnez d'abord la plage <A2:C2>"),
    ("Install the <Oracle client> on the server", "Installez le <client Oracle> sur le serveur"),
    ("The formula {=SUM(A1:A3)} is an array", "La formule {=SOMME(A1:A3)} est matricielle"),
]


@pytest.mark.parametrize("compression", ["gzip", "bz2", "lzma", None])
def test_a_users_corpus_arrives_intact_compressed_or_not(project, compression):
    """The files source runs no Bible repair, reads gzip/bzip2/xz by content (whatever the name),
    and normalises only Unicode (NFC) and whitespace, counting both."""
    import importlib

    pairs = sentence_pairs(200)
    for position, pair in zip((3, 100, 150, 4, 101, 151), SOFTWARE_HELP):  # lands in every split
        pairs[position] = pair
    pairs[7] = ("  two   spaces  ", "deux espaces")
    pairs[8] = ("cafe\u0301 ok", "cafe\u0301 ok")  # e + combining acute: NFC makes it one letter
    text = "".join(f"{s}\t{t}\n" for s, t in pairs).encode("utf-8")
    corpus = project / "corpus.tsv"  # no .gz suffix: recognised by content
    corpus.write_bytes(importlib.import_module(compression).compress(text) if compression else text)
    write_params(project, source="files", files={"tsv": str(corpus), "block_lines": 10}, split=SMALL_SPLIT,
                 workers=1)
    result = run_stage(project, "prepare")
    assert result.returncode == 0, result.stderr
    out = project / "data/prepared"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["repaired"] == {"unicode_normalized": 2, "whitespace_normalized": 1, "verse_marker_stripped": 0,
                                 "brackets_removed": 0, "backticks_replaced": 0}
    assert sum(stats["pairs"].values()) + stats["dropped"]["too_long"] == len(pairs)  # nothing else dropped
    prepared = {line for split in ("train", "dev", "test") for line in read_lines(out / split / "src.txt")}
    assert {src for src, _ in SOFTWARE_HELP} <= prepared
    assert "two spaces" in prepared and "caf\u00e9 ok" in prepared


def test_bible_repairs_are_opt_in_for_a_users_corpus(project):
    pairs = sentence_pairs(200)
    pairs[3] = SOFTWARE_HELP[0]
    result = prepare_files(project, pairs, files_repairs=["brackets_removed"])
    assert result.returncode == 0, result.stderr
    stats = json.loads((project / "data/prepared/stats.json").read_text())
    assert stats["repaired"]["brackets_removed"] == 2  # counted per side
    prepared = {line for split in ("train", "dev", "test")
                for line in read_lines(project / "data/prepared" / split / "src.txt")}
    assert "NPV Function VBA" in prepared


def test_line_counts_that_differ(project):
    src, tgt = write_parallel(project, sentence_pairs(50))
    tgt.write_text("".join(f"t{i}\n" for i in range(48)))
    write_params(project, source="files", files={"src": str(src), "tgt": str(tgt)})
    line = assert_one_line_error(run_stage(project, "prepare"), "corpus.en has 50 lines", "corpus.fr has 48")
    assert "line-aligned" in line
    assert_no_output(project)


def test_invalid_utf8_names_the_line(project):
    src, tgt = write_parallel(project, sentence_pairs(50))
    lines = src.read_bytes().split(b"\n")
    lines[41] = b"caf\xe9 au lait"
    src.write_bytes(b"\n".join(lines))
    write_params(project, source="files", files={"src": str(src), "tgt": str(tgt)})
    assert_one_line_error(run_stage(project, "prepare"), "corpus.en:42: invalid UTF-8")
    assert_no_output(project)


def test_missing_file(project):
    write_params(project, source="files", files={"src": "nowhere.en", "tgt": "nowhere.fr"})
    assert_one_line_error(run_stage(project, "prepare"), "nowhere.en: file not found", "prepare.files.src")
    assert_no_output(project)


def test_tsv_line_without_a_tab(project):
    (project / "c.tsv").write_text("a\tb\nno tab here\n")
    write_params(project, source="files", files={"tsv": "c.tsv"})
    assert_one_line_error(run_stage(project, "prepare"), "c.tsv:2: expected 2 tab-separated fields")
    assert_no_output(project)


def test_empty_corpus_after_cleaning(project):
    pairs = [(f"word {i} " * 40, "court") for i in range(300)]  # every pair fails the length ratio
    result = prepare_files(project, pairs)
    assert_one_line_error(result, "empty after cleaning", "length_ratio 300")
    assert_no_output(project)


def test_split_sizes_that_do_not_fit(project):
    result = prepare_files(project, sentence_pairs(80), split={"test_size": 50, "dev_size": 40})
    assert_one_line_error(result, "prepare.split", "do not fit the corpus of 80 pairs", exit_code=2)
    assert_no_output(project)


def test_a_failed_run_keeps_the_previous_output(project):
    assert prepare_files(project, sentence_pairs(200)).returncode == 0
    before = (project / "data/prepared/stats.json").read_text()
    assert prepare_files(project, sentence_pairs(50), split={"test_size": 40, "dev_size": 20}).returncode == 2
    assert (project / "data/prepared/stats.json").read_text() == before
    assert not list((project / "data").glob(".prepare-*"))
