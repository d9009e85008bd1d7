"""The synthetic source (a seeded toy translation task) and the prepare stage run on it."""
import csv
import json
from collections import Counter

import numpy as np
import pytest
from sacremoses import MosesTokenizer

from pipeline.config import SyntheticSource
from pipeline.errors import ConfigError
from pipeline.data.length_buckets import BUCKET_LABELS
from pipeline.preparation.sources.synthetic import SyntheticCorpus
from tests.pipeline.helpers import run_stage
from tests.pipeline.helpers import params_with, write_project_params


def corpus(seed=1234, **settings):
    section = params_with({"synthetic": {"synthetic": {"pairs": 500, "vocab_size": 1000, "zipf_exponent": 1.0,
                                                       **settings}}})["synthetic"]["synthetic"]
    return SyntheticCorpus(SyntheticSource(**section), seed)


def as_tuples(source):
    return [(p.group, p.key, p.src, p.tgt) for p in source.pairs()]


def test_the_seed_alone_decides_the_corpus():
    first = corpus()
    assert as_tuples(first) == as_tuples(corpus())
    assert as_tuples(first) == as_tuples(first)  # a second pass regenerates the same pairs
    assert as_tuples(corpus(seed=1235)) != as_tuples(first)


def test_groups_are_blocks_of_consecutive_pairs():
    source = corpus(pairs=105)
    sizes = source.group_sizes()
    assert sizes == Counter(pair.group for pair in source.pairs())
    assert sum(sizes.values()) == source.size_hint() == 105
    assert list(sizes.values()) == [20] * 5 + [5]  # synthetic.synthetic.block_pairs
    assert [pair.key for pair in source.pairs()] == [str(i) for i in range(105)]
    assert source.predefined_splits is False and source.reference_names == ()


def test_target_is_the_dictionary_translation_with_adjacent_swaps():
    source = corpus(min_words=3, max_words=12)
    inverse = {target: word for word, target in source.dictionary.items()}
    assert len(inverse) == len(source.dictionary) == 1000  # a bijection
    assert not set(inverse) & set(source.dictionary)  # the two sides never share a word
    lengths = set()
    for pair in source.pairs():
        src, tgt = pair.src.split(), pair.tgt.split()
        assert len(tgt) == len(src) and 3 <= len(src) <= 12
        lengths.add(len(src))
        unswapped = list(tgt)
        for i in range(0, len(tgt) - 1, 2):
            unswapped[i], unswapped[i + 1] = tgt[i + 1], tgt[i]
        assert [inverse[word] for word in unswapped] == src
    assert lengths == set(range(3, 13))

    plain = corpus(order="monotone")
    assert all(pair.tgt.split() == [plain.dictionary[w] for w in pair.src.split()] for pair in plain.pairs())


@pytest.mark.parametrize("order, source_position", [
    ("monotone", lambda i, n: i),
    ("reversed", lambda i, n: n - 1 - i),
    ("swap_halves", lambda i, n: (i + n // 2) % n),
    ("swap_adjacent", lambda i, n: i + 1 if i % 2 == 0 and i + 1 < n else i - 1 if i % 2 else i),
])
def test_each_word_order_is_the_alignment_it_names(order, source_position):
    """Target word i translates source word source_position(i, n): the alignment the ablations rely on
    (swap_halves moves every word of a long sentence far: the mean distance is about n/2)."""
    source = corpus(order=order, min_words=1, max_words=49)
    moved = []
    for pair in source.pairs():
        src, tgt = pair.src.split(), pair.tgt.split()
        n = len(src)
        assert [source.dictionary[src[source_position(i, n)]] for i in range(n)] == tgt
        if n >= 40:
            moved.append(np.mean([abs(source_position(i, n) - i) for i in range(n)]))
    far = {"monotone": (0, 0), "swap_adjacent": (0.9, 1.0), "reversed": (19, 25), "swap_halves": (19, 25)}[order]
    assert far[0] <= np.mean(moved) <= far[1]
    assert as_tuples(corpus(order=order)) != as_tuples(corpus(order="monotone" if order != "monotone" else "reversed"))


def test_words_are_zipfian_and_moses_keeps_each_one_whole():
    source = corpus(pairs=2000)
    counts = Counter(word for pair in source.pairs() for word in pair.src.split())
    frequencies = np.array([counts[word] for word in source.source_words])  # by rank, zeros included
    assert counts.most_common(1)[0][0] == source.source_words[0]
    assert frequencies[0] > 50 * np.median(frequencies)  # p(1)/p(500) = 500 at exponent 1

    words = source.source_words + list(source.dictionary.values())
    assert all(word.isascii() and word.isalpha() and word.islower() for word in words)
    assert MosesTokenizer("en").tokenize(" ".join(words), escape=False) == words


def test_a_negative_seed_is_a_config_error():
    with pytest.raises(ConfigError, match="non-negative seed"):
        corpus(seed=-1)


def test_prepare_stage_on_the_synthetic_section(project):
    vocab_size, max_len = 200, 40
    section = {
        "source": "synthetic", "seed": 7, "workers": 1,
        "synthetic": {"pairs": 3000, "vocab_size": vocab_size, "min_words": 1, "max_words": 60},
        "split": {"test_size": 300, "dev_size": 200},
        "clean": {"max_len": max_len},
        "tokenize": {"src_vocab_size": vocab_size + 4, "tgt_vocab_size": vocab_size + 4},
    }
    write_project_params(project, {"synthetic": section})
    result = run_stage(project, "prepare", "--section", "synthetic")
    assert result.returncode == 0, result.stderr
    out = project / "data/synthetic"

    stats = json.loads((out / "stats.json").read_text())
    assert stats["pairs"]["test"] == 300  # whole blocks of 20, every length kept
    assert 0 < stats["pairs"]["dev"] < 200  # dev drops what is longer than max_len, as train does
    assert sum(stats["pairs"].values()) + sum(stats["dropped"].values()) == 3000
    assert stats["dropped"]["length_ratio"] == 0  # the target is as long as the source
    assert stats["dropped"]["too_long"] > 0
    # Every word of the vocabulary is frequent enough to reach train's shortlist: no <unk> in test.
    assert stats["vocab_size"] == {"src": vocab_size + 4, "tgt": vocab_size + 4}
    assert stats["unk_rate"]["test"] == {"src": 0.0, "tgt": 0.0}

    assert np.load(out / "test/src_words.npy").max() > max_len  # test keeps every length
    assert np.load(out / "train/src_words.npy").max() <= max_len
    with (out / "lengths.csv").open() as handle:
        test_buckets = {row["bucket"]: int(row["test"]) for row in csv.DictReader(handle)}
    assert all(test_buckets[label] > 0 for label in BUCKET_LABELS[:-1])  # 0-9 … 50-59
