"""Sentence cleaning and the filters that drop pairs, each counted by reason (docs/corpora.md, Cleaning).

Repairs keep the pair: a verse marker at the start of a verse ("(7:26) L'Éternel…", Segond's
own numbering), the World English Bible's [italic brackets] and its backtick apostrophes.
Drops lose it, and are reported: a verse marker *inside* a verse means the translation merged two
verses (the pair is misaligned); anything left that looks like markup; an empty side; a length
ratio no translation has; sentences longer than the training limit.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Optional

# Segond's own numbering: "(7:26)", "(63:19b)", and once an unclosed "(5:21".
VERSE_MARKER = re.compile(r"\(\d+:\d+[a-z]?\)?")
LEADING_VERSE_MARKER = re.compile(r"^\s*(?:\(\d+:\d+[a-z]?\)?\s*)+")
BRACKETS = re.compile(r"[\[\]]")
MARKUP = re.compile(r"<[^>]*>|[{}]")
SPACES = re.compile(r"\s+")

# Every reason is always reported (0 included), so `dvc metrics diff` compares like with like.
DROP_REASONS = ("empty_side", "verse_marker", "markup", "length_ratio", "too_long", "overlap_heldout")
REPAIRS = ("verse_marker_stripped", "brackets_removed", "backticks_replaced")


def repair(text: str, repairs: Counter[str]) -> str:
    """Fix what can be fixed without losing words; counts each kind of repair."""
    if LEADING_VERSE_MARKER.match(text):
        text = LEADING_VERSE_MARKER.sub("", text)
        repairs["verse_marker_stripped"] += 1
    if "[" in text or "]" in text:
        text = BRACKETS.sub("", text)
        repairs["brackets_removed"] += 1
    if "`" in text:
        text = text.replace("`", "'")
        repairs["backticks_replaced"] += 1
    return SPACES.sub(" ", text).strip()


def clean_reference(text: str) -> str:
    """An extra reference is never dropped: strip every marker, keep the rest."""
    text = VERSE_MARKER.sub(" ", text).replace("`", "'")
    return SPACES.sub(" ", BRACKETS.sub("", text)).strip()


def drop_reason(src: str, tgt: str, max_len: Optional[int], max_ratio: float) -> Optional[str]:
    """Why a repaired pair is dropped, or None to keep it. ``max_len`` None: no length limit (test)."""
    if not src or not tgt:
        return "empty_side"
    if VERSE_MARKER.search(src) or VERSE_MARKER.search(tgt):
        return "verse_marker"
    if MARKUP.search(src) or MARKUP.search(tgt):
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
