"""The retrieval-and-relexicalise generator: fast, faithful, no training.

For an input fact set in language L, find the training examples of L whose fact sets are
most like it -- predicates first: each example is keyed by its sorted predicates, embedded
by the shared backbone into a FAISS index per language -- then take the best one's
reference and put the input's entities in place of its own (its facts aligned to the input's
by predicate). Input facts that no retrieved fact covers get a sentence from a per-predicate
template learned from the single-fact examples of L, or a plain "subject predicate object."
when L has none. The output names what the input names, so fact coverage is high and
hallucination low by construction; fluency is the training references'.

A reference whose entities are written differently from the facts (a translated name) cannot
be relexicalised fully; such candidates rank lower, and what is left of them counts as
hallucination in the metrics, as it should.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import Errors, InputError
from ..fileio import atomic_write_text
from .data import F2TExample, Fact
from .lexicon import EntityLexicon

logger = logging.getLogger("xapps")

CFG_FILE = "cfg.json"
EXAMPLES_FILE = "examples.jsonl"
KIND = "retrieval"


def signature(facts: Sequence[Fact]) -> str:
    """What a fact set is keyed by: its predicates, sorted (entities do not matter)."""
    return " ; ".join(sorted(f.predicate for f in facts))


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _predicate_similarity(a: str, b: str) -> float:
    wa, wb = _words(a), _words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 0.0


def align(candidate: Sequence[Fact], facts: Sequence[Fact]) -> list[tuple[int, int]]:
    """(candidate fact, input fact) pairs: same predicate first, then the most similar
    predicate (word overlap), each fact used once."""
    pairs: list[tuple[int, int]] = []
    free_c = set(range(len(candidate)))
    free_f = list(range(len(facts)))
    for fi in list(free_f):
        match = next((ci for ci in sorted(free_c)
                      if candidate[ci].predicate == facts[fi].predicate), None)
        if match is not None:
            pairs.append((match, fi))
            free_c.discard(match)
            free_f.remove(fi)
    for fi in list(free_f):
        scored = [(_predicate_similarity(candidate[ci].predicate, facts[fi].predicate), ci)
                  for ci in free_c]
        if scored:
            sim, ci = max(scored)
            if sim > 0:
                pairs.append((ci, fi))
                free_c.discard(ci)
                free_f.remove(fi)
    return pairs


_TOKEN = re.compile(r"[\w'’.-]+", re.UNICODE)


def _key(word: str) -> str:
    import unicodedata

    word = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in word if ch.isalnum())


def locate(entity: str, text: str) -> str | None:
    """How ``entity`` is written in ``text``: verbatim, else the run of capitalised words
    around the entity's own distinctive words (``Aarhus Airport`` in Welsh text is
    ``Maes Awyr Aarhus``), so that relexicalising replaces the whole name."""
    if entity in text:
        return entity
    if re.fullmatch(r"-?\d+\.0", entity) and re.search(
            rf"(?<![\d.]){re.escape(entity[:-2])}(?![\d.])", text):
        return entity[:-2]  # "84.0" written as "84"
    keys = {_key(w) for w in _TOKEN.findall(entity) if len(_key(w)) >= 3}
    if not keys:
        return None
    tokens = list(_TOKEN.finditer(text))
    hits = [i for i, t in enumerate(tokens) if _key(t.group(0)) in keys]
    if not hits:
        return None

    def part_of_name(i: int) -> bool:
        word = tokens[i].group(0)
        return word[:1].isupper() or _key(word) in keys or word[:1].isdigit()

    start, end = hits[0], hits[-1]
    if any(not part_of_name(i) for i in range(start, end + 1)):
        start = end = hits[0]
    while start > 0 and part_of_name(start - 1) and tokens[start].start() - tokens[
            start - 1].end() <= 1:
        start -= 1
    while end + 1 < len(tokens) and part_of_name(end + 1) and tokens[end + 1].start() - tokens[
            end].end() <= 1:
        end += 1
    return text[tokens[start].start():tokens[end].end()].rstrip(".")


def relexicalise(text: str, candidate: Sequence[Fact], facts: Sequence[Fact],
                 pairs: Sequence[tuple[int, int]]) -> tuple[str, int, int]:
    """``text`` with the aligned candidate entities replaced by the input's; also returns
    (candidate entities found in the text, candidate entities)."""
    mapping: dict[str, str] = {}
    own = {e for f in candidate for e in (f.subject, f.object) if e}
    written = {e: locate(e, text) for e in own}
    for ci, fi in pairs:
        for src, dst in ((candidate[ci].subject, facts[fi].subject),
                         (candidate[ci].object, facts[fi].object)):
            if written.get(src):
                mapping.setdefault(written[src], dst)
    found = sum(1 for e in own if written[e])
    # placeholders first, so that a replacement is never replaced again
    out = text
    slots: list[str] = []
    for source in sorted(mapping, key=len, reverse=True):
        if source in out:
            out = out.replace(source, f"\x00{len(slots)}\x00")
            slots.append(mapping[source])
    for i, target in enumerate(slots):
        out = out.replace(f"\x00{i}\x00", target)
    return out, found, len(own)


@dataclass
class _Indexed:
    examples: list[F2TExample]
    signatures: list[str]
    by_signature: dict[str, list[int]]
    index: object  # DenseIndex over the unique signatures


class RetrievalGenerator:
    """``fit(examples)`` then ``generate(fact_sets, lang)``; ``save``/``load`` as a folder
    (cfg.json + the examples; the index is rebuilt on load, it is small)."""

    def __init__(self, backbone: str = "me5-small", k: int = 20, device: str | None = None,
                 dtype: str | None = None) -> None:
        self.cfg = {"kind": KIND, "backbone": backbone, "k": k, "device": device,
                    "dtype": dtype}
        self._backbone = None
        self._by_lang: dict[str, _Indexed] = {}
        self.templates: dict[str, dict[str, Counter]] = {}
        self.lexicons: dict[str, EntityLexicon] = {}
        self.examples: list[F2TExample] = []

    @property
    def backbone(self):
        if self._backbone is None:
            from ..backbone import load_backbone

            self._backbone = load_backbone(self.cfg["backbone"], device=self.cfg["device"],
                                           dtype=self.cfg["dtype"])
        return self._backbone

    @property
    def languages(self) -> list[str]:
        return sorted(self._by_lang)

    def _encode(self, texts: list[str]) -> np.ndarray:
        return self.backbone.encode(texts, prompt="query", progress=False)

    def fit(self, examples: Sequence[F2TExample]) -> "RetrievalGenerator":
        from ..index.dense import DenseIndex

        usable = [ex for ex in examples if ex.texts and ex.facts]
        if not usable:
            raise InputError(Errors.E190.format(
                where="RetrievalGenerator.fit", reason="no example has both facts and a text",
                expected="training examples with reference texts"))
        self.examples = list(usable)
        by_lang: dict[str, list[F2TExample]] = {}
        for ex in usable:
            by_lang.setdefault(ex.lang, []).append(ex)
        for lang, exs in sorted(by_lang.items()):
            sigs = [signature(ex.facts) for ex in exs]
            groups: dict[str, list[int]] = {}
            for i, sig in enumerate(sigs):
                groups.setdefault(sig, []).append(i)
            unique = list(groups)
            index = DenseIndex(dim=self.backbone.hidden_size, metric="cosine",
                               index_type="flat", backbone=self.backbone.identity)
            index.build(unique, self._encode(unique))
            self._by_lang[lang] = _Indexed(exs, sigs, groups, index)
            self.templates[lang] = _templates(exs)
            self.lexicons[lang] = EntityLexicon().learn(exs)
            logger.info("fact2text retrieval: %s: %d examples, %d predicate sets, "
                        "templates for %d predicates", lang, len(exs), len(unique),
                        len(self.templates[lang]))
        return self

    def generate(self, fact_sets: Sequence[Sequence[Fact]], lang: str) -> list[str]:
        if lang not in self._by_lang:
            raise InputError(Errors.E191.format(lang=lang, known=", ".join(self.languages)
                                                or "(none)"))
        store = self._by_lang[lang]
        queries = [signature(fs) for fs in fact_sets]
        hits = store.index.search(self._encode(queries), k=min(self.cfg["k"],
                                                               len(store.by_signature)))
        lexicon = self.lexicons[lang]
        # the entities as the language writes them (learned renderings), for the output
        rendered = [[Fact(lexicon.render(f.subject), f.predicate, lexicon.render(f.object),
                          f.qualifiers) for f in fs] for fs in fact_sets]
        return [self._one(list(fs), row, store, lang) for fs, row in zip(rendered, hits)]

    def _one(self, facts: list[Fact], hits, store: _Indexed, lang: str) -> str:
        best: tuple[float, str, list[tuple[int, int]]] | None = None
        for hit in hits:
            for ei in store.by_signature[hit.id][:5]:
                ex = store.examples[ei]
                pairs = align(ex.facts, facts)
                for text in ex.texts[:3]:
                    out, found, own = relexicalise(text, ex.facts, facts, pairs)
                    missing_own = (own - found) / own if own else 0.0
                    unaligned_c = (len(ex.facts) - len(pairs)) / len(ex.facts)
                    unaligned_f = (len(facts) - len(pairs)) / len(facts)
                    score = (hit.score - 0.5 * missing_own - 0.7 * unaligned_c
                             - 0.3 * unaligned_f)
                    if best is None or score > best[0]:
                        best = (score, out, pairs)
        if best is None:
            return self._from_templates(facts, lang)
        _, out, pairs = best
        covered = {fi for _, fi in pairs}
        rest = [f for i, f in enumerate(facts) if i not in covered]
        if rest:
            out = (out.rstrip() + " " + self._from_templates(rest, lang)).strip()
        return out

    def _from_templates(self, facts: Sequence[Fact], lang: str) -> str:
        sentences = []
        for fact in facts:
            options = self.templates.get(lang, {}).get(fact.predicate)
            if options:
                template = options.most_common(1)[0][0]
                sentences.append(template.replace("{S}", fact.subject)
                                 .replace("{O}", fact.object))
            else:
                sentences.append(f"{fact.subject} {fact.predicate} {fact.object}.")
        return " ".join(sentences)

    # ------------------------------------------------------------------- persistence
    def save(self, folder: str | os.PathLike) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / CFG_FILE, json.dumps(self.cfg, indent=2))
        atomic_write_text(folder / EXAMPLES_FILE, "".join(json.dumps(
            {"id": ex.id, "lang": ex.lang, "facts": [f.to_json() for f in ex.facts],
             "texts": ex.texts}, ensure_ascii=False) + "\n" for ex in self.examples))

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "RetrievalGenerator":
        from .data import read_jsonl

        folder = Path(folder)
        cfg = json.loads((folder / CFG_FILE).read_text(encoding="utf-8"))
        gen = cls(**{k: v for k, v in cfg.items() if k != "kind"})
        return gen.fit(list(read_jsonl(folder / EXAMPLES_FILE)))


def _templates(examples: Sequence[F2TExample]) -> dict[str, Counter]:
    """Per predicate, reference texts of single-fact examples with the subject and object
    replaced by {S} and {O} (where both were located, see :func:`locate`)."""
    out: dict[str, Counter] = {}
    for ex in examples:
        if len(ex.facts) != 1:
            continue
        fact = ex.facts[0]
        for text in ex.texts:
            subject, obj = locate(fact.subject, text), locate(fact.object, text)
            if not subject or not obj or subject == obj or subject in obj or obj in subject:
                continue
            t = text.replace(subject, "\x00S\x00").replace(obj, "\x00O\x00")
            t = t.replace("\x00S\x00", "{S}").replace("\x00O\x00", "{O}")
            out.setdefault(fact.predicate, Counter())[t] += 1
    return out
