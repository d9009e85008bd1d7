"""The sections of reports/README.md, each rendered from what an earlier stage wrote (docs/evaluation.md, Report)."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pipeline.data.languages import direction
from pipeline.data.length_buckets import BUCKET_LABELS
from pipeline.errors import UserError
from pipeline.evaluation.claim import CONFIDENCE, DIFF_ABOVE, LONG, SHORT
from pipeline.evaluation.losses import BP_AT_LEAST, KEEPS, OVER_ABOVE
from pipeline.sweeps.tuned import describe

REPORTS = Path("reports")
EXPERIMENTS = {  # corpus → (reports folder, prepared data, what the heading calls it before the corpus's title)
    "synthetic": (REPORTS / "synthetic", Path("data/synthetic"), "Controlled experiment"),
    "bible": (REPORTS, Path("data/prepared"), "Real text"),
}
HEADLINE_CELL = "gru"  # the pair rnnenc-gru / rnnsearch-gru
DECODERS = {"beam": "beam search", "greedy": "greedy search"}  # metrics.json's "claim", in report order


def read_json(path: Path) -> Any:
    if not path.exists():
        raise UserError(f"{path}: missing (run `dvc repro` to produce it)")
    return json.loads(path.read_text(encoding="utf-8"))


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise UserError(f"{path}: missing (run `dvc repro` to produce it)")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def number(value: Any, digits: int = 1) -> str:
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "–"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main_decoder(rows: list[dict[str, str]]) -> str:
    """The decoder of the per-bucket table and the figure: beam search when it ran, else greedy."""
    return "beam" if any(row.get("decoder", "beam") == "beam" for row in rows) else "greedy"


def bucket_rows(rows: list[dict[str, str]], model: str, decoder: str) -> dict[str, dict[str, str]]:
    return {row["bucket"]: row for row in rows if row["model"] == model and row.get("decoder", decoder) == decoder}


def fall(rows: dict[str, dict[str, str]], key: str, short: str = SHORT, long: str = LONG) -> str:
    """long-bucket value / short-bucket value, the ratio the targets are stated in."""
    try:
        return f"{float(rows[long][key]) / float(rows[short][key]):.2f}"
    except (KeyError, ValueError, ZeroDivisionError):
        return "–"


def corpus_title(corpus: str) -> str:
    """What the prepared corpus is, from its corpus.json ("the Bible (WEB → Segond), English → French")."""
    info = read_json(EXPERIMENTS[corpus][1] / "corpus.json")
    return info.get("title") or direction(info.get("src_lang", "?"), info.get("tgt_lang", "?"))


def experiment_section(corpus: str) -> str:
    folder, data, kind = EXPERIMENTS[corpus]
    title = f"{kind}: {corpus_title(corpus)}"
    metrics = read_json(folder / "metrics.json")
    rows = read_rows(folder / "bleu_by_length.csv")
    stats = read_json(data / "stats.json")
    translation = [m for m, v in metrics.items() if m != "claim" and "bleu" in v]
    decoder = main_decoder(rows)
    parts = [f"## {title}", "",
             f"Pairs: {stats['pairs']['train']:,} train (≤ {read_json(data / 'corpus.json').get('max_len', '?')} "
             f"words), {stats['pairs']['dev']:,} dev, {stats['pairs']['test']:,} test (every length).", "",
             f"![BLEU by source length]({(folder / 'figures/bleu_by_length.png').relative_to(REPORTS)})", ""]
    parts.append(table(
        ["model", f"BLEU ({DECODERS[decoder]})", "BLEU no-UNK", "BLEU multi-ref", "BLEU greedy", "test sentences"],
        [[m, number(metrics[m]["bleu"], 2), number(metrics[m].get("bleu_no_unk"), 2),
          number(metrics[m].get("bleu_multi_ref"), 2), number(metrics[m].get("greedy", {}).get("bleu"), 2),
          str(metrics[m].get("n", "–"))] for m in translation]))
    if translation:
        parts += ["", f"sacrebleu signature: `{metrics[translation[0]].get('signature', '?')}`"]
    parts += ["", f"BLEU per source-length bucket ({DECODERS[decoder]}), with the 95% bootstrap interval, and its "
              "parts: n-gram precision P = BLEU / BP, the geometric mean of p1..p4 (content), and brevity penalty "
              "BP (length):", ""]
    header = ["model"] + list(BUCKET_LABELS) + [f"{LONG} / {SHORT} BLEU", "P ratio", "BP ratio"]
    body = []
    for model in translation:
        by_bucket = bucket_rows(rows, model, decoder)
        cells = []
        for bucket in BUCKET_LABELS:
            row = by_bucket.get(bucket)
            if row is None or not row.get("bleu"):
                cells.append("–")
                continue
            cells.append(f"{number(row['bleu'])} [{number(row['ci_low'])}, {number(row['ci_high'])}] "
                         f"P {number(row.get('bleu_nobp'))} BP {number(row['bp'], 2)} (n={row['n']})")
        body.append([model, *cells, fall(by_bucket, "bleu"), fall(by_bucket, "bleu_nobp"), fall(by_bucket, "bp")])
    parts.append(table(header, body))
    parts += ["", claim_section(metrics.get("claim", {}))]
    figures = sorted((folder / "figures").glob("attention_*.png"))
    if figures:
        parts += ["", "Attention of RNNsearch on long test sentences (like Bahdanau et al. Fig. 3):", ""]
        parts += [f"![{f.stem}]({f.relative_to(REPORTS)})" for f in figures[:4]]
    return "\n".join(parts)


def interval(entry: dict[str, Any], key: str) -> str:
    if entry.get(key) is None:
        return "–"
    return f"{number(entry.get(key), 2)} [{number(entry.get(key + '_low'), 2)}, {number(entry.get(key + '_high'), 2)}]"


def claim_section(claim: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The test of the claim per pair (metrics.json's "claim"): a table per decoder, a sentence per pair."""
    if not any(claim.values()):
        return ("(The claim is not tested here: metrics.json holds no `claim`, so no rnnenc / rnnsearch model was "
                "evaluated, or the metrics predate `pipeline/evaluation/claim.py`.)")
    parts = [f"**The claim, tested** (`pipeline/evaluation/claim.py`): r = P({LONG}) / P({SHORT}), the n-gram precision a "
             f"model keeps from short to long sources, with {CONFIDENCE}% bootstrap intervals (training seeds, then "
             f"test sentences, paired across the two models). Shown only when, each on its interval, the fixed "
             f"vector's r lies below {KEEPS:g}, attention's at or above {KEEPS:g}, the difference above "
             f"{DIFF_ABOVE:g}, and what the fixed vector loses is content (`pipeline/evaluation/losses.py`): "
             f"**words** (unigram precision, r_p1, falls below {KEEPS:g}) or **word order** (r_p1 holds, 4-gram "
             f"precision r_p4 falls) — not **over-generation** (hyp/ref above {OVER_ABOVE:g} at {LONG}, which lowers "
             f"precision without losing words). A brevity penalty below {BP_AT_LEAST:g} at {LONG} is named as a "
             f"**length** loss; with several seeds the claim must hold on each."]
    for decoder in sorted(claim, key=lambda d: list(DECODERS).index(d) if d in DECODERS else len(DECODERS)):
        body = [[f"`{cell}`", interval(entry, "r_enc"), interval(entry, "r_search"), interval(entry, "diff"),
                 interval(entry, "r_p1_enc"), interval(entry, "r_p4_enc"), interval(entry, "len_ratio_enc_long"),
                 interval(entry, "bp_enc_long"), str(entry.get("lost", "–")), str(entry.get("seeds", "–")),
                 "**shown**" if entry.get("shown") else "not tested" if entry.get("r_enc") is None else "not shown"]
                for cell, entry in claim[decoder].items()]
        parts += ["", table(["cell", "r rnnenc", "r rnnsearch", "diff", "r_p1 rnnenc", "r_p4 rnnenc",
                             f"hyp/ref rnnenc {LONG}", f"BP rnnenc {LONG}", "rnnenc loses", "seeds",
                             f"verdict ({DECODERS.get(decoder, decoder)})"], body), ""]
        for cell, entry in claim[decoder].items():
            parts.append(f"**Measured:** `rnnenc-{cell}` vs `rnnsearch-{cell}`, {DECODERS.get(decoder, decoder)}: "
                         f"{entry['verdict']}.")
            if entry.get("per_seed"):
                parts += ["", table(["training seed", "r rnnenc", "r rnnsearch", "diff", "rnnenc loses", "verdict"],
                                    [[name, number(one.get("r_enc"), 2), number(one.get("r_search"), 2),
                                      number(one.get("diff"), 2), str(one.get("lost", "–")),
                                      "**shown**" if one.get("shown") else "not shown"]
                                     for name, one in entry["per_seed"].items()]), ""]
    return "\n".join(parts)


def headline(corpus: str = "synthetic", cell: str = HEADLINE_CELL) -> str:
    """One sentence on the headline pair: "bottleneck shown", with its interval, only when metrics say so."""
    folder, _, _ = EXPERIMENTS[corpus]
    claim = read_json(folder / "metrics.json").get("claim", {})
    decoder = next((d for d in DECODERS if cell in claim.get(d, {})), None)
    if decoder is None:
        return f"**Headline ({corpus}, {cell.upper()} pair):** not tested (its metrics.json holds no test of the pair)."
    entry = claim[decoder][cell]
    where = f"**Headline ({corpus}, `rnnenc-{cell}` vs `rnnsearch-{cell}`, {DECODERS[decoder]}):**"
    if entry.get("shown"):
        seeds = entry.get("seeds") or 1
        return (f"{where} bottleneck shown{f' on each of {seeds} training seeds' if seeds > 1 else ''}: from {SHORT} "
                f"to {LONG} source words the fixed vector keeps {interval(entry, 'r_enc')} of its n-gram precision, "
                f"attention {interval(entry, 'r_search')}; the difference is {interval(entry, 'diff')} "
                f"({CONFIDENCE}% bootstrap). What the fixed vector loses is {entry.get('lost', '?')}: unigram "
                f"precision keeps {interval(entry, 'r_p1_enc')}, 4-gram precision {interval(entry, 'r_p4_enc')}; "
                f"at {LONG} words its output is {interval(entry, 'len_ratio_enc_long')} of the reference's length "
                f"(brevity penalty {interval(entry, 'bp_enc_long')}).")
    return f"{where} {entry['verdict']}."


def training_section() -> str:
    """Budgets are epochs (params' train.epochs), so every score rests on a known amount of training."""
    rows = []
    for path in sorted((REPORTS / "train").glob("*/*.json")):
        summary = json.loads(path.read_text())
        tokens = summary.get("target_tokens_seen")
        rows.append([f"{path.parent.name}/{path.stem}", f"{summary.get('parameters', 0):,}",
                     f"{summary.get('epochs')} / {summary.get('epoch_budget', '–')}", f"{summary.get('steps', 0):,}",
                     f"{tokens / 1e6:.2f}M" if tokens else "–", str(summary.get("precision", "–")),
                     number(summary.get("best_dev_loss"), 3), number(summary.get("best_dev_ppl"), 1),
                     number(summary.get("last_dev_bleu")), str(summary.get("stopped_by")),
                     number(summary.get("minutes_total"))])
    return "\n".join(["## Training", "", "Budgets are epochs, by corpus and family (`train.epochs`): the same "
                      "commit and params train the same steps on any machine; minutes are only what this run took.",
                      "", table(["corpus/model", "parameters", "epochs / budget", "steps", "target tokens seen",
                                 "precision", "best dev loss", "best dev ppl", "dev BLEU (sample)", "stopped by",
                                 "minutes"], rows)])


def sweep_section() -> str:
    """The Ray Tune sweeps (reports/tune): each swept model's trials and the config training used."""
    parts = []
    for path in sorted((REPORTS / "tune").glob("*.json")):
        sweep = json.loads(path.read_text())
        if not sweep.get("swept"):
            continue
        metric = sweep["metric"]
        best = sweep["best"]["trial_id"] if sweep.get("best") else None
        rows = [[trial["trial_id"] + (" (best)" if trial["trial_id"] == best else ""), trial["status"],
                 str(trial["epochs"]), number(trial["best"], 3),
                 describe(trial["config"])]
                for trial in sweep["trials"]]
        parts += [f"### `{sweep['model']}`: {len(rows)} trials in {number(sweep['wall_minutes'])} min, "
                  f"{sweep['stopped_early']} stopped early by ASHA, {sweep['failed']} failed", "",
                  table(["trial", "status", "epochs", f"best {metric}", "config"], rows), ""]
    if not parts:
        return ""
    return "\n".join(["## Sweeps (Ray Tune, ASHA on the dev set)", "",
                      "With `train.use_tuned: true` the training stage used each best config.", "", *parts])


def language_model_section(metrics: dict[str, Any], samples: dict[str, Any]) -> str:
    models = [m for m, v in metrics.items() if "ppl" in v]
    if not models:
        return ""
    parts = ["## Language models (generators)", "",
             table(["model", "test perplexity"], [[m, number(metrics[m]["ppl"], 1)] for m in models])]
    for model in models:
        texts = samples.get("language_models", {}).get(model, [])
        if texts:
            parts += ["", f"Samples from `{model}` (temperature 0.8, top-k 20):", ""]
            parts += [f"- {text}" for text in texts[:5]]
    return "\n".join(parts)


def examples_section(samples: dict[str, Any], title: str) -> str:
    translations = samples.get("translations", {})
    if not translations:
        return ""
    parts = [f"## Example translations (test set of {title})", "",
             "The same test sentences for every model: short ones (10-19 words) and long ones (40+).", ""]
    first = next(iter(translations.values()))
    for kind, examples in first.items():
        for k, example in enumerate(examples):
            parts += [f"**{kind} {k + 1}** (test sentence {example['index']})", "",
                      f"- source: {example['source']}", f"- reference: {example['reference']}"]
            parts += [f"- `{model}`: {by_kind[kind][k]['hypothesis']}" for model, by_kind in translations.items()]
            parts.append("")
    return "\n".join(parts)
