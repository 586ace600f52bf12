"""Open-IE training data as word-level BIO tags (Multi2OIE's two stages).

Each sentence gets one predicate tag sequence (every predicate of the sentence) and, per
predicate, one argument tag sequence (ARG0 = subject, ARG1 = first object, ARG2, ARG3 = the
rest). Tuples are given as strings (``{"sentence", "tuples": [{"arg0", "pred", "pred_head",
"args"}]}``, the layout of ../shared/data/oie-train/oie_train_unified.jsonl); each string is
located in the sentence's words. OIE2016's predicates often add words the sentence does not
have ("might boost" for "boost"): the longest run of the predicate's words found in the
sentence is tagged, else its head. A tuple whose predicate cannot be found is dropped and
counted, an argument that cannot be found is left untagged.
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Errors, InputError
from ..fileio import iter_json_lines, iter_lines

PREDICATE_TAGS = ("O", "B-P", "I-P")
ROLES = ("ARG0", "ARG1", "ARG2", "ARG3")
ARGUMENT_TAGS = ("O",) + tuple(f"{p}-{r}" for r in ROLES for p in ("B", "I"))

Span = tuple[int, int]  # [first word, last word + 1)

#: Relation styles of the training reader: the tuples as annotated, or moved to CaRB's
#: convention (the test sets' one) where OIE2016 / OpenIE4 annotations differ from it.
RELATION_STYLES = ("as-given", "carb")
# English only: the shipped training data is English. OIE2016 leaves auxiliaries out of the
# relation in 15% of its tuples ("considered" for "was considered") and OIE2016 / OpenIE4 start
# the object with its preposition ("in the Arctic Ocean"); CaRB and BenchIE put both into the
# relation ("was considered", "rested in").
_AUXILIARIES = frozenset("""am is are was were be been being has have had do does did will
would shall should can could may might must not n't 's 're 've 'd""".split())
_PREPOSITIONS = frozenset("""about above across after against along among around as at
before behind below beneath beside between beyond by despite during except for from in inside
into like near of off on onto out outside over past since through throughout till to toward
towards under until up upon via with within without""".split())


@dataclass
class OIESentence:
    """A sentence's words (char offsets into ``text``) and its tagged tuples: predicate span
    -> role -> argument span."""

    text: str
    words: list[Span]
    tuples: list[tuple[Span, dict[str, Span]]] = field(default_factory=list)
    lang: str | None = None  # routes the tagger's language modules when it has them

    def predicate_tags(self) -> list[int]:
        tags = [0] * len(self.words)
        for (s, e), _ in self.tuples:
            if any(tags[s:e]):
                continue  # two tuples share a predicate: tag it once
            tags[s] = 1
            for i in range(s + 1, e):
                tags[i] = 2
        return tags

    def argument_tags(self, index: int) -> list[int]:
        tags = [0] * len(self.words)
        for role, (s, e) in self.tuples[index][1].items():
            if any(tags[s:e]):
                continue
            tags[s] = ARGUMENT_TAGS.index(f"B-{role}")
            for i in range(s + 1, e):
                tags[i] = ARGUMENT_TAGS.index(f"I-{role}")
        return tags


def merge_same_text(sentences: Sequence[OIESentence]) -> list[OIESentence]:
    """One record per distinct sentence text, with the union of its tuples (identical tuples
    once). The shipped training data annotates some sentences twice (OIE2016 dev and CaRB
    dev): as separate records their predicate tags would contradict each other."""
    merged: dict[tuple[str, str | None], OIESentence] = {}
    for sentence in sentences:
        into = merged.setdefault((sentence.text, sentence.lang), OIESentence(
            sentence.text, sentence.words, lang=sentence.lang))
        for t in sentence.tuples:
            if t not in into.tuples:
                into.tuples.append(t)
    return list(merged.values())


def whitespace_words(text: str) -> list[Span]:
    words, start = [], None
    for i, ch in enumerate(text + " "):
        if ch.isspace():
            if start is not None:
                words.append((start, i))
                start = None
        elif start is None:
            start = i
    return words


def find_words(tokens: Sequence[str], phrase: str) -> Span | None:
    """The first run of ``tokens`` equal to the phrase's whitespace words, if any."""
    target = phrase.split()
    n = len(target)
    if not n:
        return None
    for i in range(len(tokens) - n + 1):
        if list(tokens[i:i + n]) == target:
            return i, i + n
    return None


def longest_run(tokens: Sequence[str], phrase: str) -> Span | None:
    """The longest contiguous part of the phrase found in ``tokens`` (the whole first)."""
    words = phrase.split()
    for size in range(len(words), 0, -1):
        for start in range(len(words) - size + 1):
            found = find_words(tokens, " ".join(words[start:start + size]))
            if found:
                return found
    return None


def read_oie_jsonl(path: str | os.PathLike, *, stats: dict | None = None,
                   relation_style: str = "as-given") -> Iterator[OIESentence]:
    """Sentences of a unified OIE JSONL file; ``stats`` (if given) counts what was dropped.
    ``relation_style="carb"`` moves English relations (records without a "lang", or "en") to
    CaRB's convention (see :func:`carb_style`)."""
    if relation_style not in RELATION_STYLES:
        raise ValueError(f"relation_style must be one of {RELATION_STYLES}, not "
                         f"{relation_style!r}")
    stats = stats if stats is not None else {}
    for key in ("tuples", "dropped_tuples", "untagged_arguments", "restyled"):
        stats.setdefault(key, 0)

    def error(where: str, reason: str) -> InputError:
        return InputError(Errors.E059.format(path=where, reason=reason,
                                             expected=_EXPECTED))

    for where, obj in iter_json_lines(path, iter_lines(Path(path), error)):
        if not isinstance(obj, dict) or not isinstance(obj.get("sentence"), str) or \
                not isinstance(obj.get("tuples"), list):
            raise InputError(Errors.E170.format(where=where, expected=_EXPECTED))
        lang = obj.get("lang")
        if lang is not None and not isinstance(lang, str):
            raise InputError(Errors.E170.format(where=where, expected=_EXPECTED))
        sentence = sentence_from_tuples(obj["sentence"], obj["tuples"], where, stats)
        sentence.lang = lang or None
        if relation_style == "carb" and sentence.lang in (None, "en"):
            stats["restyled"] += carb_style(sentence)
        if sentence.tuples:
            yield sentence


def sentence_from_tuples(text: str, tuples: list, where: str, stats: dict) -> OIESentence:
    words = whitespace_words(text)
    tokens = [text[s:e] for s, e in words]
    sentence = OIESentence(text, words)
    for t in tuples:
        if not isinstance(t, dict) or not isinstance(t.get("pred"), str):
            raise InputError(Errors.E170.format(where=where, expected=_EXPECTED))
        stats["tuples"] += 1
        pred = longest_run(tokens, t["pred"]) or (
            find_words(tokens, t["pred_head"]) if t.get("pred_head") else None)
        if pred is None:
            stats["dropped_tuples"] += 1
            continue
        roles: dict[str, Span] = {}
        phrases = [t.get("arg0") or ""] + list(t.get("args") or [])
        for role, phrase in zip(ROLES, phrases[:3] + [" ".join(phrases[3:])]):
            if not phrase:
                continue
            found = find_words(tokens, phrase)
            if found is None or (found[0] < pred[1] and pred[0] < found[1]):
                stats["untagged_arguments"] += 1
                continue
            roles[role] = found
        sentence.tuples.append((pred, roles))
    return sentence


def carb_style(sentence: OIESentence) -> int:
    """Move each tuple's relation to CaRB's convention in place: auxiliaries just before the
    relation join it, and a preposition that opens ARG1 moves from ARG1 into the relation
    ("served" + "as the first PM" -> "served as" + "the first PM"). Returns how many tuples
    changed."""
    tokens = [sentence.text[s:e].lower() for s, e in sentence.words]
    changed = 0
    for i, ((start, end), roles) in enumerate(sentence.tuples):
        taken = {w for s, e in roles.values() for w in range(s, e)}
        new_start = start
        while new_start > 0 and tokens[new_start - 1] in _AUXILIARIES and \
                new_start - 1 not in taken:
            new_start -= 1
        new_end, roles = end, dict(roles)
        arg1 = roles.get("ARG1")
        if arg1 and arg1[0] == end and arg1[1] - arg1[0] > 1 and tokens[end] in _PREPOSITIONS:
            new_end, roles["ARG1"] = end + 1, (arg1[0] + 1, arg1[1])
        if (new_start, new_end) != (start, end):
            sentence.tuples[i] = ((new_start, new_end), roles)
            changed += 1
    return changed


_EXPECTED = ('one JSON object per line: {"sentence": str, "tuples": [{"arg0": str, "pred": '
             'str, "pred_head": str (optional), "args": [str, ...]}], "lang": str (optional)}')
