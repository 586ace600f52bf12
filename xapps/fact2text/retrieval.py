"""The retrieval-and-relexicalise generator: fast, faithful, no training.

For an input fact set in language L, find the training examples of L whose fact sets are
most like it -- predicates first: each example is keyed by its sorted predicates, embedded
by the shared backbone into a FAISS index per language -- then take the best one's
reference and put the input's entities in place of its own (its facts aligned to the input's
by predicate). Input facts that it does not cover are written by a second reference
retrieved for them alone, when one writes exactly them and names nothing else; the rest get
a sentence from a per-predicate template learned from the examples of L (single-fact ones,
and the sentences of longer references that state one fact alone), or of its most similar
predicate; when L has none, a plain "subject predicate object." -- not a sentence of L, so
the output says so (:class:`Generation`.fallback, the fallback rate in the metrics).
Entities of the retrieved reference that the input does not have are cut with their
sentence where possible; a reference that still carries them ranks below a clean one and
below template sentences, and the output names them (:class:`Generation`.foreign). The
output names what the input names, so fact coverage is high and hallucination low by
construction; fluency is the training references'.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..artifacts import FILES_KEY, read_cfg, record_files, verify_files
from ..errors import Errors, IndexMismatchError, InputError
from ..fileio import atomic_write_text
from .data import F2TExample, Fact
from .evaluate import _candidate_tokens, coverage, hallucinations
from .lexicon import EntityLexicon

logger = logging.getLogger("xapps")

CFG_FILE = "cfg.json"
EXAMPLES_FILE = "examples.jsonl"
KIND = "retrieval"
INDEX_DIR = "index"
#: how a damaged or missing generator is made again (in error messages)
REMAKE = "xapps f2t train --train ... --out <folder>"


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
class Generation:
    """One output and what the caller must know about it: facts written by the plain
    fallback, and entities of the retrieved reference that stayed in the text."""

    text: str
    #: predicates written as the language-neutral "subject predicate object." because the
    #: language has no template for them: that part of the text is not in the target
    #: language (empty when every fact was verbalised in it)
    fallback: list[str] = field(default_factory=list)
    #: entities of the retrieved reference that are not in the input but remain in the text
    foreign: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"fallback": self.fallback, "foreign_entities": self.foreign}


@dataclass
class _Choice:
    text: str | None  # the relexicalised reference (None: no candidate)
    rest: list[Fact]  # input facts it does not cover
    foreign: list[str]  # its own entities that stayed in the text


@dataclass
class _Indexed:
    examples: list[F2TExample]
    signatures: list[str]
    by_signature: dict[str, list[int]]
    index: object  # DenseIndex over the unique signatures


class RetrievalGenerator:
    """``fit(examples)`` then ``generate(fact_sets, lang)``; ``save``/``load`` as a folder:
    cfg.json (with the sha256 of every file), the examples, and one FAISS index of predicate
    sets per language under ``index/`` (re-built on load only when missing or built from other
    predicate sets or another backbone)."""

    def __init__(self, backbone: str = "me5-small", k: int = 20, device: str | None = None,
                 dtype: str | None = None) -> None:
        self.cfg = {"kind": KIND, "backbone": backbone, "k": k, "device": device,
                    "dtype": dtype}
        self._backbone = None
        self._by_lang: dict[str, _Indexed] = {}
        self.templates: dict[str, dict[str, Counter]] = {}
        self.lexicons: dict[str, EntityLexicon] = {}
        self.examples: list[F2TExample] = []
        self.progress = False

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
        return self.backbone.encode(texts, prompt="query", progress=self.progress)

    def fit(self, examples: Sequence[F2TExample]) -> "RetrievalGenerator":
        return self._fit(examples)

    def _fit(self, examples: Sequence[F2TExample],
             saved_indexes: Path | None = None) -> "RetrievalGenerator":
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
            index = self._saved_index(saved_indexes / lang, unique) if saved_indexes else None
            if index is None:
                index = self._build_index(unique)
            self._by_lang[lang] = _Indexed(exs, sigs, groups, index)
            self.templates[lang] = _templates(exs)
            self.lexicons[lang] = EntityLexicon().learn(exs)
            logger.info("fact2text retrieval: %s: %d examples, %d predicate sets, "
                        "templates for %d predicates", lang, len(exs), len(unique),
                        len(self.templates[lang]))
        return self

    def _build_index(self, unique: list[str]):
        from ..index.dense import DenseIndex

        index = DenseIndex(dim=self.backbone.hidden_size, metric="cosine",
                           index_type="flat", backbone=self.backbone.identity)
        index.build(unique, self._encode(unique))
        return index

    def _saved_index(self, folder: Path, unique: list[str]):
        """The saved index of one language if it holds exactly these predicate sets and was
        built with this backbone; else None (it is re-built, which only costs time)."""
        from ..index import load_index

        if not (folder / "manifest.json").is_file():
            logger.info("fact2text retrieval: no saved index in %s; indexing the examples",
                        folder)
            return None
        try:
            # the generator's own cfg.json already verified these files
            index = load_index(folder, backbone=self.backbone.identity, verify=False)
        except IndexMismatchError as exc:
            logger.warning("fact2text retrieval: re-indexing %s: %s", folder, exc)
            return None
        if index.ids() != unique:
            logger.warning("fact2text retrieval: re-indexing %s: it holds other predicate "
                           "sets than the examples", folder)
            return None
        return index

    def generate(self, fact_sets: Sequence[Sequence[Fact]], lang: str) -> list[str]:
        return [g.text for g in self.generate_detailed(fact_sets, lang)]

    def generate_detailed(self, fact_sets: Sequence[Sequence[Fact]],
                          lang: str) -> list[Generation]:
        """Like :meth:`generate`, with what each output owes to fallbacks (see
        :class:`Generation`)."""
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
        first = [self._best(list(fs), row, store) for fs, row in zip(rendered, hits)]
        # facts the first reference does not cover and no template can write: a second
        # reference, retrieved for those facts alone, in one batch
        second: dict[int, _Choice] = {}
        need = [i for i, c in enumerate(first) if c.text and c.rest and not c.foreign
                and self._from_templates(c.rest, lang)[1]]
        if need:
            rest_hits = store.index.search(
                self._encode([signature(first[i].rest) for i in need]),
                k=min(self.cfg["k"], len(store.by_signature)))
            for i, row in zip(need, rest_hits):
                choice = self._best(first[i].rest, row, store)
                if choice.text and _faithful(choice, first[i].rest):
                    second[i] = choice
        out = [self._finish(list(fs), c, second.get(i), lang)
               for i, (fs, c) in enumerate(zip(rendered, first))]
        fallbacks = sum(bool(g.fallback) for g in out)
        if fallbacks:
            logger.warning("fact2text retrieval: %d of %d outputs in '%s' write some facts as "
                           "plain 'subject predicate object.' (no %s template for their "
                           "predicates); they are marked as fallbacks", fallbacks, len(out),
                           lang, lang)
        return out

    def _best(self, facts: list[Fact], hits, store: _Indexed) -> "_Choice":
        """The best relexicalised reference among ``hits`` for ``facts``."""
        best: tuple[float, _Choice] | None = None
        inputs = {e for f in facts for e in (f.subject, f.object)}
        for hit in hits:
            for ei in store.by_signature[hit.id][:5]:
                ex = store.examples[ei]
                pairs = align(ex.facts, facts)
                for text in ex.texts[:3]:
                    out, found, own = relexicalise(text, ex.facts, facts, pairs)
                    out, foreign = _drop_foreign(out, leftovers(text, ex.facts, pairs, inputs),
                                                 inputs)
                    missing_own = (own - found) / own if own else 0.0
                    unaligned_c = (len(ex.facts) - len(pairs)) / len(ex.facts)
                    unaligned_f = (len(facts) - len(pairs)) / len(facts)
                    # a reference that still names facts the input does not have is a
                    # wrong statement, not a less fluent one: it ranks below any clean one
                    score = (hit.score - 0.5 * missing_own - 0.7 * unaligned_c
                             - 0.3 * unaligned_f - 2.0 * bool(foreign))
                    if best is None or score > best[0]:
                        covered = {fi for _, fi in pairs}
                        best = (score, _Choice(out, [f for i, f in enumerate(facts)
                                                     if i not in covered], foreign))
        return best[1] if best is not None else _Choice(None, list(facts), [])

    def _finish(self, facts: list[Fact], choice: "_Choice", second: "_Choice | None",
                lang: str) -> Generation:
        if choice.text is None:
            return Generation(*self._from_templates(facts, lang))
        if choice.foreign:
            # sentences from the language's templates say only what the input says
            text, fallback = self._from_templates(facts, lang)
            if not fallback:
                return Generation(text)
        out, rest = choice.text, choice.rest
        if second is not None:
            out, rest = out.rstrip() + " " + second.text, second.rest
        fallback: list[str] = []
        if rest:
            more, fallback = self._from_templates(rest, lang)
            out = (out.rstrip() + " " + more).strip()
        return Generation(out, fallback, choice.foreign)

    def _from_templates(self, facts: Sequence[Fact], lang: str) -> tuple[str, list[str]]:
        """One sentence per fact from the language's templates (of the predicate, else of
        the most similar predicate); a fact with neither is written "subject predicate
        object." and its predicate returned as a fallback."""
        sentences, fallback = [], []
        templates = self.templates.get(lang, {})
        for fact in facts:
            options = templates.get(fact.predicate) or _similar(templates, fact.predicate)
            if options:
                template = options.most_common(1)[0][0]
                sentences.append(template.replace("{S}", fact.subject)
                                 .replace("{O}", fact.object))
            else:
                sentences.append(f"{fact.subject} {fact.predicate} {fact.object}.")
                fallback.append(fact.predicate)
        return " ".join(sentences), fallback

    # ------------------------------------------------------------------- persistence
    def save(self, folder: str | os.PathLike) -> None:
        """The folder appears whole or not at all; cfg.json records the sha256 of every
        other file (the indexes included)."""
        from ..index.manifest import atomic_directory

        with atomic_directory(folder) as tmp:
            atomic_write_text(tmp / EXAMPLES_FILE, "".join(json.dumps(
                {"id": ex.id, "lang": ex.lang, "facts": [f.to_json() for f in ex.facts],
                 "texts": ex.texts}, ensure_ascii=False) + "\n" for ex in self.examples))
            for lang, store in self._by_lang.items():
                store.index.save(tmp / INDEX_DIR / lang)
            files = record_files(tmp, exclude=(CFG_FILE,))
            atomic_write_text(tmp / CFG_FILE, json.dumps({**self.cfg, FILES_KEY: files},
                                                         indent=2))

    @classmethod
    def load(cls, folder: str | os.PathLike, cfg: dict | None = None) -> "RetrievalGenerator":
        """A saved generator, its files checked against cfg.json first (E235 names a damaged
        one); the saved indexes are used as they are when they fit the examples."""
        from .data import read_jsonl

        folder = Path(folder)
        if cfg is None:
            cfg = read_cfg(folder, lambda reason: InputError(Errors.E192.format(
                path=folder, reason=reason)), CFG_FILE)
        verify_files(folder, cfg, what="fact-to-text generator", remake=REMAKE)
        known = {"backbone", "k", "device", "dtype"}
        unknown = sorted(set(cfg) - known - {"kind", FILES_KEY})
        if unknown:
            raise InputError(Errors.E192.format(path=folder, reason=f"{CFG_FILE} has fields "
                                                f"this xapps does not know: {unknown}"))
        gen = cls(**{k: v for k, v in cfg.items() if k in known})
        examples = list(read_jsonl(folder / EXAMPLES_FILE))
        return gen._fit(examples, saved_indexes=folder / INDEX_DIR)


def _faithful(choice: _Choice, facts: Sequence[Fact]) -> bool:
    """Whether a second reference adds only what ``facts`` say: it covers some of them,
    writes their entities, and names nothing else (no leftover or unlocated name of its
    own, which a plain "subject predicate object." would not have either)."""
    covered = [f for f in facts if f not in choice.rest]
    return bool(covered and not choice.foreign and choice.text
                and all(_all_present(f, choice.text) for f in covered)
                and hallucinations(facts, choice.text)[0] == 0)


def _all_present(fact: Fact, text: str) -> bool:
    present, total = coverage([fact], text)
    return present == total


def leftovers(text: str, candidate: Sequence[Fact], pairs: Sequence[tuple[int, int]],
              inputs: set[str]) -> list[str]:
    """How ``text`` writes the entities of ``candidate`` that relexicalising leaves in place:
    those of candidate facts no input fact is aligned to, unless the input names them too.

    >>> leftovers("A is in B. C leads A.", [Fact("A", "country", "B"),
    ...           Fact("A", "leader", "C")], [(0, 0)], {"X", "Y"})
    ['C']
    """
    aligned = {e for ci, _ in pairs for e in (candidate[ci].subject, candidate[ci].object)}
    out = []
    for fact in candidate:
        for entity in (fact.subject, fact.object):
            if not entity or entity in aligned or entity in inputs:
                continue
            written = locate(entity, text)
            if written and written not in out:
                out.append(written)
    return out


_SENTENCE = re.compile(r"(?<=[.!?।])\s+")


def _drop_foreign(text: str, foreign: list[str], inputs: set[str]) -> tuple[str, list[str]]:
    """``text`` without the sentences that name a foreign entity, where the rest still names
    every input entity the text names; and the foreign entities still in it.

    >>> _drop_foreign("Mae B yn Denmark. Arweinydd B yw M.", ["Denmark"], {"B", "M"})
    ('Arweinydd B yw M.', [])
    """
    if not foreign:
        return text, []
    present = [e for e in inputs if e and e in text]
    keep = _SENTENCE.split(text)
    for sentence in list(keep):
        if any(f in sentence for f in foreign):
            rest = [s for s in keep if s is not sentence]
            if rest and all(e in " ".join(rest) for e in present):
                keep = rest
    text = " ".join(keep)
    return text, [f for f in foreign if f in text]


def _similar(templates: dict[str, Counter], predicate: str) -> Counter | None:
    """The templates of the most similar predicate (at least half its words shared), for a
    predicate the language has none of ("birth date" for "date of birth")."""
    scored = [(_predicate_similarity(predicate, p), p) for p in templates]
    scored = [sp for sp in scored if sp[0] >= 0.5]
    return templates[max(scored)[1]] if scored else None


def _templates(examples: Sequence[F2TExample]) -> dict[str, Counter]:
    """Per predicate, reference texts of single-fact examples with the subject and object
    replaced by {S} and {O} (where both were located, see :func:`locate`); and, counted
    less, the sentences of multi-fact references that state one fact alone (its subject and
    object, no entity of another fact, no other name or number), so that a language has templates for more of its
    predicates than its single-fact examples show."""
    out: dict[str, Counter] = {}
    for ex in examples:
        if len(ex.facts) == 1:
            fact = ex.facts[0]
            for text in ex.texts:
                template = _template(fact, text)
                if template:
                    out.setdefault(fact.predicate, Counter())[template] += 10
            continue
        for text in ex.texts:
            for sentence in _SENTENCE.split(text):
                for fact in ex.facts:
                    others = {e for f in ex.facts if f is not fact
                              for e in (f.subject, f.object)} - {fact.subject, fact.object}
                    if any(locate(o, sentence) for o in others):
                        continue
                    template = _template(fact, sentence)
                    # a name or number left in the sentence is another fact's (a translated
                    # "Unol Daleithiau" that locate() cannot see): it would be hallucinated
                    if template and not _candidate_tokens(
                            template.replace("{S}", "").replace("{O}", "")):
                        out.setdefault(fact.predicate, Counter())[template] += 1
    return out


def _template(fact: Fact, text: str) -> str | None:
    subject, obj = locate(fact.subject, text), locate(fact.object, text)
    if not subject or not obj or subject == obj or subject in obj or obj in subject:
        return None
    t = text.replace(subject, "\x00S\x00").replace(obj, "\x00O\x00")
    return t.replace("\x00S\x00", "{S}").replace("\x00O\x00", "{O}")
