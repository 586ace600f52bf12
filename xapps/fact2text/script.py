"""Script unification for related Indic scripts (XF2T's trick for sharing subwords).

The Unicode blocks of Devanagari, Bengali, Gurmukhi, Gujarati, Oriya, Tamil, Telugu, Kannada
and Malayalam follow the same ISCII-derived layout, 128 code points each, so a letter moves to
the same letter of another script by a fixed offset. Training texts of all these languages
written in Devanagari share one set of subwords; generated Devanagari text goes back to the
language's own script by the inverse offset.
"""
from __future__ import annotations

#: the first code point of each script's block
BLOCKS = {"deva": 0x0900, "beng": 0x0980, "guru": 0x0A00, "gujr": 0x0A80, "orya": 0x0B00,
          "taml": 0x0B80, "telu": 0x0C00, "knda": 0x0C80, "mlym": 0x0D00}
#: ISO 639-1 language -> its script in BLOCKS
LANGUAGE_SCRIPTS = {"hi": "deva", "mr": "deva", "ne": "deva", "bn": "beng", "as": "beng",
                    "pa": "guru", "gu": "gujr", "or": "orya", "ta": "taml", "te": "telu",
                    "kn": "knda", "ml": "mlym"}
_START, _END = 0x0900, 0x0D80


def to_devanagari(text: str) -> str:
    """Every Indic letter of the blocks above, moved to the same place in Devanagari.

    >>> to_devanagari("বাংলা")
    'बांला'
    """
    out = []
    for ch in text:
        cp = ord(ch)
        if _START <= cp < _END:
            cp = 0x0900 + (cp - _START) % 0x80
        out.append(chr(cp))
    return "".join(out)


def from_devanagari(text: str, lang: str) -> str:
    """Devanagari text back into the script of ``lang`` (unchanged for Devanagari languages
    and for languages outside the table)."""
    script = LANGUAGE_SCRIPTS.get(lang)
    if script is None or script == "deva":
        return text
    base = BLOCKS[script]
    return "".join(chr(base + ord(ch) - 0x0900) if 0x0900 <= ord(ch) < 0x0980 else ch
                   for ch in text)


def unifies(lang: str) -> bool:
    return lang in LANGUAGE_SCRIPTS
