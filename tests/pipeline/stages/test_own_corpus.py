"""A user's own corpus, first-class: the whole pipeline (`dvc repro`, tiny sizes) on a gzip-compressed
English → German TSV in data/corpus/, with the controlled experiment turned off. The report names the
corpus and shows none of the Bible, no pair with <…> or braces is lost, and editing the corpus in
place makes DVC prepare it again."""
import gzip
import json

import yaml

from tests.pipeline.helpers import copy_project, deep_update, dvc, sentence_pairs

# Software-help lines a Bible filter would drop or change; the corpus keeps every one.
HELP = [("Select the range <A2:C2> first", "Wählen Sie zuerst den Bereich <A2:C2>"),
        ("Install the <Oracle client> on the server", "Installieren Sie den <Oracle-Client> auf dem Server"),
        ("The formula {=SUM(A1:A3)} is an array", "Die Formel {=SUMME(A1:A3)} ist eine Matrix")]
TINY = {
    "prepare": {"source": "files", "src_lang": "en", "tgt_lang": "de", "workers": 1,
                "files": {"tsv": "data/corpus/help.tsv.gz", "src": None, "tgt": None, "block_lines": 10},
                "split": {"test_size": 60, "dev_size": 30}, "clean": {"max_len": 30},
                "tokenize": {"src_vocab_size": 200, "tgt_vocab_size": 200}},
    "synthetic": {"synthetic": {"pairs": 200}, "split": {"test_size": 40, "dev_size": 20}, "workers": 1},
    "model": {"emb_size": 16, "hidden_size": 16, "maxout_size": 8, "attention_size": 8, "dropout": 0.0},
    "train": {"batch_tokens": 400, "dev_bleu_sentences": 8, "accelerator": "cpu", "early_stopping_patience": 0,
              "epochs": {"bible": {"lm": 1, "rnnenc": 1, "rnnsearch": 1}}},
    "experiments": {"models": ["rnnenc-gru", "rnnsearch-gru"], "synthetic_models": []},
    "evaluate": {"beam_size": 1, "bootstrap_samples": 20, "heatmaps": 1, "heatmap_min_words": 5},
    "tune": {"models": []},
}


def write_corpus(clone, pairs):
    with gzip.open(clone / "data/corpus/help.tsv.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(f"{src}\t{tgt}\n" for src, tgt in pairs)


def test_the_pipeline_on_a_users_gzip_tsv_without_the_controlled_experiment(tmp_path):
    clone = copy_project(tmp_path / "project")
    pairs = sentence_pairs(300, max_words=25)
    for position, pair in zip((5, 120, 250), HELP):
        pairs[position] = pair
    write_corpus(clone, pairs)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    deep_update(params, TINY)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = dvc(clone, "repro")
    assert "Running stage 'train_synthetic@" not in run.stdout and "is outside data/corpus" not in run.stdout
    stats = json.loads((clone / "data/prepared/stats.json").read_text())
    assert stats["dropped"]["markup"] == 0 and sum(stats["pairs"].values()) == len(pairs)
    corpus = json.loads((clone / "data/prepared/corpus.json").read_text())
    assert corpus["title"] == "your corpus (help.tsv.gz), English → German"
    report = (clone / "reports/README.md").read_text()
    assert "## Real text: your corpus (help.tsv.gz), English → German" in report
    assert "test set of your corpus (help.tsv.gz)" in report
    assert "The controlled experiment is off here" in report and "## Controlled experiment" not in report
    assert "Bible" not in report and "Segond" not in report
    assert json.loads((clone / "reports/synthetic/metrics.json").read_text()) == {}
    assert json.loads((clone / "reports/synthetic/probe.json").read_text()) == {}
    assert json.loads(dvc(clone, "status", "dvc.yaml", "--json").stdout) == {}
    # The corpus is a DVC dependency of prepare: edited in place, prepare is out of date.
    write_corpus(clone, pairs[:-1])
    status = json.loads(dvc(clone, "status", "dvc.yaml", "--json").stdout)
    assert "prepare" in status and {"changed deps": {"data/corpus": "modified"}} in status["prepare"]
