"""Sentence cleaning and the filters that drop pairs, each counted by reason (docs/corpora.md, Cleaning).

Every source's text is normalised (Unicode NFC, runs of whitespace to one space). Repairs keep the
pair and belong to the source whose text needs them (``Source.repairs``): the Bible's verse
markers at the start of a verse ("(7:26) L'Éternel…", Segond's own numbering), the World English
Bible's [italic brackets] and its backtick apostrophes; a user's corpus gets them only when
``prepare.files.repairs`` names them. Drops lose the pair, and are reported: a verse marker *inside*
a verse means the translation merged two verses (misaligned; only where verse markers are repaired);
anything left that looks like markup (only for a source whose text should hold none, ``Source.drops``:
the Bible, WMT'14, or a user's corpus whose ``prepare.files.drops`` names it — a software manual's
``<Oracle client>`` or ``{x}`` is text); an empty side; a length ratio no translation has; sentences
longer than the training limit.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Optional

from pipeline.config import DROP_NAMES, REPAIR_NAMES

# Segond's own numbering: "(7:26)", "(63:19b)", and once an unclosed "(5:21".
VERSE_MARKER = re.compile(r"\(\d+:\d+[a-z]?\)?")
LEADING_VERSE_MARKER = re.compile(r"^\s*(?:\(\d+:\d+[a-z]?\)?\s*)+")
BRACKETS = re.compile(r"[\[\]]")
MARKUP = re.compile(r"<[^>]*>|[{}]")
SPACES = re.compile(r"\s+")

# Every reason is always reported (0 included), so `dvc metrics diff` compares like with like.
DROP_REASONS = ("empty_side", "verse_marker", "markup", "length_ratio", "too_long", "overlap_heldout")
SOURCE_REPAIRS = REPAIR_NAMES  # opt-in per source (params.yaml names them: prepare.files.repairs)
SOURCE_DROPS = DROP_NAMES  # opt-in per source too (prepare.files.drops)
NORMALISATIONS = ("unicode_normalized", "whitespace_normalized")  # every source
REPAIRS = NORMALISATIONS + SOURCE_REPAIRS


def normalise(text: str, counts: Counter[str]) -> str:
    """NFC (one code point per accented letter, whatever the editor wrote) and single spaces."""
    normal = unicodedata.normalize("NFC", text)
    if normal != text:
        counts["unicode_normalized"] += 1
    spaced = SPACES.sub(" ", normal).strip()
    if spaced != normal:
        counts["whitespace_normalized"] += 1
    return spaced


def repair(text: str, counts: Counter[str], repairs: frozenset[str]) -> str:
    """Normalise, then fix what ``repairs`` names without losing words; counts each kind of change."""
    text = normalise(text, counts)
    if "verse_marker_stripped" in repairs and LEADING_VERSE_MARKER.match(text):
        text = LEADING_VERSE_MARKER.sub("", text)
        counts["verse_marker_stripped"] += 1
    if "brackets_removed" in repairs and ("[" in text or "]" in text):
        text = BRACKETS.sub("", text)
        counts["brackets_removed"] += 1
    if "backticks_replaced" in repairs and "`" in text:
        text = text.replace("`", "'")
        counts["backticks_replaced"] += 1
    return SPACES.sub(" ", text).strip()


def clean_reference(text: str, repairs: frozenset[str]) -> str:
    """An extra reference is never dropped: strip every marker the source repairs, keep the rest."""
    text = unicodedata.normalize("NFC", text)
    if "verse_marker_stripped" in repairs:
        text = VERSE_MARKER.sub(" ", text)
    if "backticks_replaced" in repairs:
        text = text.replace("`", "'")
    if "brackets_removed" in repairs:
        text = BRACKETS.sub("", text)
    return SPACES.sub(" ", text).strip()


def drop_reason(src: str, tgt: str, max_len: Optional[int], max_ratio: float,
                repairs: frozenset[str] = frozenset(), drops: frozenset[str] = frozenset()) -> Optional[str]:
    """Why a repaired pair is dropped, or None to keep it. ``max_len`` None: no length limit (test);
    ``drops``: the source's opt-in filters (SOURCE_DROPS)."""
    if not src or not tgt:
        return "empty_side"
    # A marker left inside a verse means merged verses; in other text "(3:4)" is just text.
    if "verse_marker_stripped" in repairs and (VERSE_MARKER.search(src) or VERSE_MARKER.search(tgt)):
        return "verse_marker"
    if "markup" in drops and (MARKUP.search(src) or MARKUP.search(tgt)):
        return "markup"
    src_words, tgt_words = src.count(" ") + 1, tgt.count(" ") + 1
    if max(src_words, tgt_words) > max_ratio * min(src_words, tgt_words):
        return "length_ratio"
    if max_len is not None and max(src_words, tgt_words) > max_len:
        return "too_long"
    return None


def heldout_key(src: str) -> str:
    """What makes two source sentences 'the same' for the train/test overlap filter."""
    return src.lower()
