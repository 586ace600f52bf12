"""Words of a sentence as character offsets: the units projected spans start and end on.

CoNLL input fixes them; otherwise spaCy's tokenizer for the language gives them, and for a
language written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Burmese,
Tibetan), whose spaCy tokenizers need extra packages or split per character, the backbone's
own subwords do: a SentencePiece vocabulary learned on such text holds its frequent words.
"""
from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence

import numpy as np

#: Languages whose words the backbone's subwords stand for (no spaces between words).
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo"})

Offsets = list[tuple[int, int]]


@functools.lru_cache(maxsize=32)
def tokenizer_for(lang: str):
    """spaCy's tokenizer for ``lang`` (any ISO code; cached). Raises ValueError for a value
    that is not a language code."""
    from ..languages import blank

    return blank(lang).tokenizer


def spacy_words(text: str, lang: str | None) -> Offsets:
    """Word offsets of ``text`` from spaCy's tokenizer (whitespace tokens dropped);
    ``lang=None`` means spaCy's language-neutral rules."""
    return [(t.idx, t.idx + len(t.text)) for t in tokenizer_for(lang or "xx")(text)
            if not t.is_space]


def segment(text: str, lang: str | None, subword_offsets: np.ndarray) -> Offsets:
    """Word offsets of ``text``: subwords for :data:`NO_SPACE_LANGUAGES`, else spaCy tokens
    (whitespace tokens dropped); ``lang=None`` means spaCy's language-neutral rules."""
    if lang in NO_SPACE_LANGUAGES:
        return [(int(s), int(e)) for s, e in subword_offsets if e > s]
    return spacy_words(text, lang)


def word_of_subword(subword_offsets: np.ndarray, words: Offsets) -> np.ndarray:
    """Index of the word each subword starts in (-1 for one outside every word, such as a
    lone whitespace piece)."""
    if not len(words) or not len(subword_offsets):
        return np.full(len(subword_offsets), -1, dtype=np.int64)
    starts = np.array([s for s, _ in words])
    ends = np.array([e for _, e in words])
    sub_start, sub_end = subword_offsets[:, 0], subword_offsets[:, 1]
    # The word a subword starts in; else (it starts in a gap) the next word, if it reaches it.
    idx = np.searchsorted(starts, sub_start, side="right") - 1
    inside = (idx >= 0) & (ends[np.clip(idx, 0, None)] > sub_start)
    nxt = np.clip(idx + 1, 0, len(words) - 1)
    reaches = (idx + 1 < len(words)) & (starts[nxt] < sub_end)
    out = np.where(inside, idx, np.where(reaches, nxt, -1))
    return np.where(sub_end > sub_start, out, -1).astype(np.int64)


def words_covering(words: Offsets, start: int, end: int) -> tuple[int, int]:
    """[first, last + 1) of the words that overlap the character span; (0, 0) when none does."""
    hit = [i for i, (s, e) in enumerate(words) if s < end and e > start]
    return (hit[0], hit[-1] + 1) if hit else (0, 0)


def words_covering_all(words: Offsets, spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """:func:`words_covering` of each character span, by binary search (words are in order
    and do not overlap), so a long text with many spans costs n log n, not n * spans.

    >>> words_covering_all([(0, 3), (4, 9), (10, 12)], [(4, 12), (5, 6), (3, 4), (13, 14)])
    [(1, 3), (1, 2), (0, 0), (0, 0)]
    """
    if not words or not spans:
        return [(0, 0) for _ in spans]
    starts = np.array([s for s, _ in words])
    ends = np.array([e for _, e in words])
    out = []
    for start, end in spans:
        first = int(np.searchsorted(ends, start, side="right"))  # first word ending after start
        last = int(np.searchsorted(starts, end, side="left"))  # words starting before end
        out.append((first, last) if first < last else (0, 0))
    return out


def is_punctuation(word: str) -> bool:
    return bool(word) and all(unicodedata.category(ch).startswith("P") for ch in word)


_OPEN = {"(": ")", "[": "]", "{": "}", "«": "»", "“": "”", "„": "“", "‘": "’"}
_CLOSE = {v: k for k, v in _OPEN.items()}


def bracket_depths(words: Sequence[str]) -> np.ndarray:
    """Running bracket depth after each word: a candidate span [k, m) is balanced when the
    depth at m - 1 equals the depth before k and never drops below it in between."""
    depth = 0
    out = np.zeros(len(words), dtype=np.int64)
    for i, w in enumerate(words):
        if w in _OPEN and w not in _CLOSE:
            depth += 1
        elif w in _CLOSE and w not in _OPEN:
            depth -= 1
        out[i] = depth
    return out


def opens(word: str) -> bool:
    return word in _OPEN and word not in _CLOSE


def closes(word: str) -> bool:
    return word in _CLOSE and word not in _OPEN
