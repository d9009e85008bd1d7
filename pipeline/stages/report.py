"""`report` stage: ``reports/README.md``, the reproduced result next to the papers' (docs/evaluation.md, Report).

Reads only what earlier stages wrote (metrics, BLEU-by-length CSVs, figures, samples, training
summaries, corpus stats), so it renders offline. The headline rests on what docs/evaluation.md asks for:
per bucket, n-gram precision (what a fixed vector loses) apart from the brevity penalty (length
generalisation), at the same training length limit for both models. The verdicts are the evaluate
stage's test of the claim (metrics.json's ``"claim"``, computed by ``pipeline.evaluation.claim``), not
recomputed here.
"""
from __future__ import annotations

from pipeline.config import load_params
from pipeline.data.corpora import CORPORA
from pipeline.errors import stage_entry_point
from pipeline.probing.summary import probe_section
from pipeline.reporting.sections import (REPORTS, corpus_title, examples_section, experiment_section, headline,
                                         language_model_section, read_json, sweep_section, table,
                                         training_section)

PAPER_TABLE = [  # Bahdanau et al. 2014, Table 1 (WMT'14 En→Fr, newstest2014)
    ("RNNencdec-30", 13.93, 24.19), ("RNNsearch-30", 21.50, 31.44), ("RNNencdec-50", 17.82, 26.71),
    ("RNNsearch-50", 26.75, 34.16), ("RNNsearch-50* (trained longer)", 28.45, 36.15), ("Moses", 33.30, 35.63),
]


def render() -> str:
    bible_metrics = read_json(REPORTS / "metrics.json")
    samples = read_json(REPORTS / "samples.json")
    # experiments.synthetic_models: [] turns the controlled experiment off: its stages write empty outputs.
    controlled = any(key != "claim" for key in read_json(REPORTS / "synthetic/metrics.json"))
    title = corpus_title("bible")
    paper = table(["model (paper)", "BLEU all", "BLEU no-UNK"],
                  [[name, f"{all_:.2f}", f"{no_unk:.2f}"] for name, all_, no_unk in PAPER_TABLE])
    return "\n\n".join(part for part in [
        "# bottleneck: the reproduced result",
        "Why attention was invented, measured: an RNN encoder-decoder that squeezes the source into one "
        "fixed-length vector (RNNenc, Cho et al. 2014) against one that attends over every encoder state "
        "(RNNsearch, Bahdanau et al. 2014), BLEU by source sentence length. Produced by `make repro`; "
        "`dvc.lock` records the code, data and params every output came from, and each MLflow run its git "
        "commit. Regenerate with `dvc repro report`.",
        headline() if controlled else headline("bible"),
        "What the headline rests on — more training seeds, the size of c, the time lag, the parameter count, "
        "long-range reordering — is tested by `make ablations`: [ablations/README.md](ablations/README.md)."
        if controlled else "The controlled experiment is off here (`experiments.synthetic_models: []`).",
        experiment_section("synthetic") if controlled else "",
        probe_section("synthetic", "the controlled task") if controlled else "",
        experiment_section("bible"),
        probe_section("bible", title),
        "### The paper's Table 1 (WMT'14 En→Fr, 348M words, 30k vocabularies, 1000 hidden units, days on a GPU)\n\n"
        + paper,
        language_model_section(bible_metrics, samples),
        examples_section(samples, title),
        training_section(),
        sweep_section(),
        "## Reproduce\n\n```bash\nmake repro            # the whole pipeline (dvc repro)\n"
        "make ablations        # the controls: reports/ablations/README.md\n"
        "dvc metrics show      # every score\ndvc exp run -S train.lr=0.004   # an experiment\nmake ui               "
        "# MLflow UI on 127.0.0.1: runs side by side, bleu_by_length curves\n```",
    ] if part) + "\n"


@stage_entry_point
def main() -> None:
    params = load_params()
    text = render()
    (REPORTS / "README.md").write_text(text, encoding="utf-8")
    print(f"wrote {REPORTS / 'README.md'} ({len(text.splitlines())} lines)")
    # The last stage: the pipeline's MLflow run gets its params and headline numbers, and ends.
    from pipeline.tracking.results import finish_pipeline

    logged = params.model_dump(mode="json", exclude={"profiles"})
    run_id = finish_pipeline(params.mlflow, logged, {name: CORPORA[name].reports for name in ("synthetic", "bible")},
                             {"synthetic": "the controlled task", "bible": corpus_title("bible")})
    print(f"MLflow: pipeline run {run_id} finished; `make ui` opens the BLEU-by-length comparison")


if __name__ == "__main__":
    main()
