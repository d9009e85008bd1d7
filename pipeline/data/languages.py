"""Language names for what the reports say about a corpus ("English → French"); a code without a
name here is shown as it is. The codes are those of the Moses tokenizer (params' src_lang/tgt_lang)."""
from __future__ import annotations

NAMES = {
    "ar": "Arabic", "bn": "Bengali", "cs": "Czech", "de": "German", "en": "English", "es": "Spanish",
    "fa": "Farsi", "fi": "Finnish", "fr": "French", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch", "pl": "Polish", "pt": "Portuguese",
    "ro": "Romanian", "ru": "Russian", "sv": "Swedish", "sw": "Swahili", "tl": "Tagalog", "tr": "Turkish",
    "uk": "Ukrainian", "vi": "Vietnamese", "zh": "Chinese",
}


def language_name(code: str) -> str:
    return NAMES.get(code, code)


def direction(src_lang: str, tgt_lang: str) -> str:
    """'English → French'."""
    return f"{language_name(src_lang)} → {language_name(tgt_lang)}"
