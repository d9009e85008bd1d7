"""The probe's results read back for the report: the Markdown section and its one-sentence reading."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from pipeline.data.corpora import CORPORA
from pipeline.errors import UserError
from pipeline.probing.bow_probe import FAMILIES

JSON, CSV, FIGURE = "probe.json", "probe_by_length.csv", "probe_by_length.png"
REPORTS = Path("reports")
SHORT, LONG = "10-19", "40-49"


def percent(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def probe_section(corpus: str, label: str) -> str:
    """A Markdown section for reports/README.md: recall per bucket, the figure and one sentence;
    ``label`` names the corpus in its heading."""
    folder = CORPORA[corpus].reports
    path = folder / JSON
    if not path.exists():
        raise UserError(f"{path}: missing (run `dvc repro` to produce it)")
    results = json.loads(path.read_text(encoding="utf-8"))
    if not results:
        return f"### Probe of the encoder's summary ({label})\n\nNo rnnenc or rnnsearch model was probed."
    first = next(iter(results.values()))
    target = first["target_precision"]
    header = (["model", "probed vector"] + [f"{label} (n={row['n']})" for label, row in first["buckets"].items()]
              + ["all", f"{LONG} / {SHORT}", f"AUC {SHORT} → {LONG}"])
    body = [[f"`{name}`", f"{entry['feature']} ({entry['dim']})",
             *[percent(row["recall"]) for row in entry["buckets"].values()],
             percent(entry["recall"]), _ratio(entry), _auc_change(entry)] for name, entry in results.items()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    try:
        link = (folder / FIGURE).relative_to(REPORTS)
    except ValueError:
        link = folder / FIGURE
    return "\n".join([
        f"### Probe of the encoder's summary ({label})", "",
        f"Recall (%) of the source's words that a linear bag-of-words probe reads off each model's sentence "
        f"vector, at {target:.0%} pooled precision (threshold set on dev; the {first.get('labels', '?')} most "
        f"frequent source word types, fitted on {first.get('train_sentences', '?')} train sentences), "
        f"per source-length bucket of the test set. RNNenc's probed vector is c, all its decoder sees; "
        f"RNNsearch's is the mean of its annotations, a summary it never had to make and one that is itself "
        f"diluted as sentences grow, so compare how much of its short-sentence recall each keeps. The last "
        f"column is the probe's ROC AUC (the chance that a word the sentence has scores above one it lacks): "
        f"it needs no threshold and does not rise with the share of the vocabulary a long sentence holds, "
        f"which on a small vocabulary saturates recall.", "",
        f"![probe recall by source length]({link})", "",
        "\n".join(lines), "", reading(results)])


def _at(entry: dict, bucket: str, key: str = "recall") -> Optional[float]:
    """``key`` of ``bucket``'s row; None where the bucket or the value is missing."""
    return (entry["buckets"].get(bucket) or {}).get(key)


def _auc_change(entry: dict) -> str:
    short, long = _at(entry, SHORT, "auc"), _at(entry, LONG, "auc")
    return "–" if short is None or long is None else f"{short:.3f} → {long:.3f}"


def _ratio(entry: dict) -> str:
    short, long = _at(entry, SHORT), _at(entry, LONG)
    return "–" if not short or long is None else f"{long / short:.2f}"


def reading(results: dict[str, dict]) -> str:
    """One sentence: how much recall the fixed vector loses from 10-19 to 40-49, vs the baseline."""
    pair = [next((n for n in results if n == f"{family}-gru"), None)
            or next((n for n in results if n.startswith(f"{family}-")), None) for family in FAMILIES]
    parts, missing = [], []
    for name in pair:
        if name is None:
            continue
        short, long = _at(results[name], SHORT), _at(results[name], LONG)
        if short is None or long is None:
            missing.append(f"`{name}`")
            continue
        kept = f"keeps {long / short:.2f} of its recall" if short else "nothing to keep"
        if (auc := _auc_change(results[name])) != "–":
            kept += f"; ROC AUC {auc}"
        parts.append(f"`{name}`'s {results[name]['feature']} goes from {percent(short)}% to {percent(long)}% "
                     f"of the words ({kept})")
    if missing:
        return (f"Reading: {' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} no recall at "
                f"{SHORT} or {LONG} words (no test sentences there), so the fall cannot be read.")
    if not parts:
        return ""
    sentence = f"Reading: from {SHORT}- to {LONG}-word sentences, " + " and ".join(parts) + "."
    if all(_saturated(results[name]) for name in pair if name):
        sentence += (" Both probes find every word at both lengths: the vectors keep the bag of words, so what is "
                     "lost with length is the words' order, which a bag-of-words probe cannot see (compare p1 "
                     "with p4 in bleu_by_length.csv).")
    return sentence


def _saturated(entry: dict) -> bool:
    """Recall ≥ 99% and ROC AUC ≥ 0.999 at both lengths: the probe cannot tell the lengths apart."""
    def found_all(bucket: str) -> bool:
        recall, auc = _at(entry, bucket), _at(entry, bucket, "auc")
        return recall is not None and recall >= 0.99 and (auc is None or auc >= 0.999)

    return found_all(SHORT) and found_all(LONG)
