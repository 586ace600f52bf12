"""Target-language open-IE training data from parallel text: extract triples from the
source side with a trained tagger, carry each triple's relation and arguments onto the
translation with the annotation projector, keep the triples whose relation and at least one
argument arrive.

The records have the layout of the English training data (``{"sentence", "lang", "tuples":
[{"arg0", "pred", "args"}], "source"}``) with the sentence written as its words joined by
single spaces, so that ``read_oie_jsonl`` finds every projected phrase on word boundaries;
`xapps oie train --modules-only` trains language modules on them.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..projection.types import LabeledSpan, ProjectionPair
from .data import ROLES, Span
from .extract import Extractor


@dataclass
class ParallelSentence:
    """A source sentence and its translation, each as words (char offsets into the text)."""

    source: str
    source_words: list[Span]
    target: str
    target_words: list[Span]


def project_triples(extractor: Extractor, projector, sentences: Iterable[ParallelSentence], *,
                    source_lang: str, target_lang: str, min_confidence: float = 0.0,
                    batch_size: int = 64, stats: dict | None = None,
                    source_name: str = "projected") -> Iterator[dict]:
    """One training record per target sentence that received at least one triple.
    ``stats`` (if given) counts sentences, triples extracted and triples kept."""
    stats = stats if stats is not None else {}
    for key in ("sentences", "triples", "kept"):
        stats.setdefault(key, 0)
    batch: list[ParallelSentence] = []
    for sentence in sentences:
        batch.append(sentence)
        if len(batch) == batch_size:
            yield from _project_batch(extractor, projector, batch, source_lang, target_lang,
                                      min_confidence, stats, source_name)
            batch = []
    if batch:
        yield from _project_batch(extractor, projector, batch, source_lang, target_lang,
                                  min_confidence, stats, source_name)


def _project_batch(extractor, projector, batch: Sequence[ParallelSentence], source_lang: str,
                   target_lang: str, min_confidence: float, stats: dict,
                   source_name: str) -> Iterator[dict]:
    found = extractor.extract([s.source for s in batch], [s.source_words for s in batch],
                              lang=source_lang)
    pairs, owners = [], []
    for i, (sentence, triples) in enumerate(zip(batch, found)):
        stats["sentences"] += 1
        for triple in triples:
            stats["triples"] += 1
            if triple.confidence < min_confidence:
                continue
            # One pair per triple: its spans never overlap, while two triples often share
            # an argument, which the projector's one-to-one assignment would refuse.
            spans = [LabeledSpan(p.start, p.end, p.role)
                     for p in [triple.relation, *triple.arguments]]
            pairs.append(ProjectionPair(sentence.source, sentence.target, spans,
                                        source_words=sentence.source_words,
                                        target_words=sentence.target_words,
                                        source_lang=source_lang, target_lang=target_lang))
            owners.append(i)
    tuples: list[list[dict]] = [[] for _ in batch]
    for owner, result in zip(owners, projector.project(pairs, progress=False)):
        by_role = {span.label: span for span in result.spans}
        if "REL" not in by_role or not any(r in by_role for r in ROLES):
            continue
        words = batch[owner].target_words

        def phrase(role: str) -> str:
            span = by_role[role]
            return " ".join(batch[owner].target[s:e] for s, e in words
                            if s >= span.start and e <= span.end)

        record = {"arg0": phrase("ARG0") if "ARG0" in by_role else "", "pred": phrase("REL"),
                  "args": [phrase(r) for r in ROLES[1:] if r in by_role]}
        if record not in tuples[owner]:
            tuples[owner].append(record)
            stats["kept"] += 1
    for sentence, kept in zip(batch, tuples):
        if kept:
            text = " ".join(sentence.target[s:e] for s, e in sentence.target_words)
            yield {"sentence": text, "lang": target_lang, "tuples": kept,
                   "source": source_name}
