"""How good and how faithful generated text is: BLEU and chrF++ (sacrebleu, multi-reference)
and two faithfulness measures users ask for more than BLEU.

- fact coverage: the share of input subject/object strings that appear in the output;
  across scripts (English Wikidata entities, Hindi output) a string counts as present when
  its romanised consonant skeleton appears (``anyascii`` romanises any script; vowels are
  dropped because transliterations disagree mostly on vowels);
- hallucination rate: the share of capitalised or numeric output tokens (sentence-initial
  words excluded) that occur in no input fact; the unsupported rate is the share of outputs
  with at least one such token;
- fallback and foreign-entity rates: the share of outputs a generator reports as written
  partly outside the target language, or as keeping its retrieved reference's own entities.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

from .data import Fact

_WORD = re.compile(r"\w+(?:[.,]\d+)*", re.UNICODE)
_SENT_END = re.compile(r"[.!?।]\s*$")


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _romanise(text: str) -> str:
    from anyascii import anyascii

    return anyascii(text).lower()


def skeleton(text: str) -> str:
    """Romanised consonant skeleton: ``"Soumili Biswas"`` and ``"सौमिली बिस्वास"`` both
    become ``"smlbsws"``.

    >>> skeleton("Biswas") == skeleton("बिस्वास")
    True
    """
    letters = re.sub(r"[^a-z0-9]", "", _romanise(text))
    # vowels, aspiration marks and w/v, on which romanisations of Indic scripts disagree
    letters = re.sub(r"[aeiouyhwv]", "", letters)
    return re.sub(r"(.)\1+", r"\1", letters)


def entity_present(entity: str, output: str) -> bool:
    entity_f, output_f = _fold(entity), _fold(output)
    if not entity_f:
        return True
    if entity_f in output_f:
        return True
    skel = skeleton(entity)
    return len(skel) >= 2 and skel in skeleton(output)


def fact_entities(facts: Sequence[Fact]) -> list[str]:
    seen: dict[str, None] = {}
    for fact in facts:
        seen.setdefault(fact.subject)
        seen.setdefault(fact.object)
    return list(seen)


def coverage(facts: Sequence[Fact], output: str) -> tuple[int, int]:
    """(entities present, entities) for one output."""
    entities = fact_entities(facts)
    return sum(entity_present(e, output) for e in entities), len(entities)


def _candidate_tokens(output: str) -> list[str]:
    """Capitalised or numeric tokens, without the first word of each sentence."""
    out = []
    sentence_start = True
    for match in _WORD.finditer(output):
        token = match.group(0)
        if any(ch.isdigit() for ch in token) or (token[:1].isupper() and not sentence_start):
            out.append(token)
        sentence_start = bool(_SENT_END.search(output[:match.end() + 1]))
    return out


def hallucinations(facts: Sequence[Fact], output: str) -> tuple[int, int]:
    """(tokens found in no input fact, capitalised/numeric tokens) for one output."""
    parts = []
    for f in facts:
        parts += [f.subject, f.predicate, f.object] + [x for q in f.qualifiers for x in q]
    source = _fold(" ".join(parts))
    source_skel = skeleton(" ".join(parts))
    tokens = _candidate_tokens(output)
    bad = 0
    for token in tokens:
        if _fold(token) in source:
            continue
        skel = skeleton(token)
        if len(skel) >= 2 and skel in source_skel:
            continue
        bad += 1
    return bad, len(tokens)


@dataclass
class Scores:
    n: int
    bleu: float
    chrf_pp: float
    coverage: float
    hallucination_rate: float
    #: share of the outputs that language identification puts in the target language (None
    #: where the identifier does not know it): a zero-shot model may write another language
    language_rate: float | None = None
    #: share of the outputs with at least one capitalised/numeric token found in no input
    #: fact: outputs that state something (a name, a number) the input does not
    unsupported_rate: float = 0.0
    #: share of the outputs that write some fact by a fallback instead of the target
    #: language (retrieval: "subject predicate object."; None: not reported by the generator)
    fallback_rate: float | None = None
    #: share of the outputs that keep entities of the retrieved reference the input does not
    #: name (None: not reported by the generator)
    foreign_rate: float | None = None

    def to_dict(self) -> dict:
        out = {"n": self.n, "bleu": round(self.bleu, 2), "chrf++": round(self.chrf_pp, 2),
               "fact_coverage": round(self.coverage, 4),
               "hallucination_rate": round(self.hallucination_rate, 4),
               "unsupported_rate": round(self.unsupported_rate, 4)}
        for key in ("language_rate", "fallback_rate", "foreign_rate"):
            if getattr(self, key) is not None:
                out[key] = round(getattr(self, key), 4)
        return out


def language_rate(texts: Sequence[str], lang: str) -> float | None:
    """Share of ``texts`` identified as ``lang`` among all of langid's 97 languages (None if
    ``lang`` is not one of them, or there are no texts)."""
    from ..langid import default_identifier

    identifier = default_identifier()
    if lang not in identifier.candidates or not texts:
        return None
    return sum(code == lang for code in identifier.detect(list(texts))) / len(texts)


def score(facts: Sequence[Sequence[Fact]], outputs: Sequence[str],
          references: Sequence[Sequence[str]], lang: str = "en",
          generations: Sequence | None = None) -> Scores:
    """Corpus BLEU and chrF++ against every reference of each example, and the
    faithfulness measures pooled over the outputs. ``generations`` (the generator's
    :class:`~.retrieval.Generation` per output) adds the fallback and foreign-entity rates."""
    import sacrebleu

    if not (len(facts) == len(outputs) == len(references)):
        raise ValueError(f"{len(facts)} fact sets, {len(outputs)} outputs and "
                         f"{len(references)} reference lists: pass one of each per example")
    if not outputs or not any(references):
        raise ValueError("score() needs at least one output with a reference (sacrebleu "
                         "cannot score an empty corpus)")
    n_refs = max((len(r) for r in references), default=0)
    # sacrebleu takes one stream per reference position; None where an example has fewer
    streams = [[refs[i] if i < len(refs) else None for refs in references]
               for i in range(n_refs)]
    tokenize = "zh" if lang == "zh" else "13a"
    bleu = sacrebleu.corpus_bleu(list(outputs), streams, tokenize=tokenize).score
    chrf = sacrebleu.corpus_chrf(list(outputs), streams, word_order=2).score
    present = total = bad = candidates = unsupported = 0
    for fs, out in zip(facts, outputs):
        p, t = coverage(fs, out)
        present, total = present + p, total + t
        b, c = hallucinations(fs, out)
        bad, candidates, unsupported = bad + b, candidates + c, unsupported + (b > 0)
    fallback_rate = foreign_rate = None
    if generations is not None:
        fallback_rate = sum(bool(g.fallback) for g in generations) / len(outputs)
        foreign_rate = sum(bool(g.foreign) for g in generations) / len(outputs)
    return Scores(len(outputs), bleu, chrf, present / total if total else 1.0,
                  bad / candidates if candidates else 0.0, language_rate(outputs, lang),
                  unsupported / len(outputs), fallback_rate, foreign_rate)
