"""Extractions from a trained tagger: predicates first, then each predicate's arguments.

A triple keeps character offsets and texts of its subject (ARG0), relation and objects
(ARG1, ARG2, ARG3), and a confidence: the mean probability of the tags that make it up, so
that a precision/recall curve over confidence (CaRB's AUC) is meaningful.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .data import ARGUMENT_TAGS, PREDICATE_TAGS, ROLES, Span
from .model import OIETagger, bio_spans, bio_viterbi


@dataclass
class Argument:
    role: str
    start: int
    end: int
    text: str


@dataclass
class Triple:
    """One extraction: relation and arguments as character spans of ``sentence``."""

    sentence: str
    relation: Argument
    arguments: list[Argument] = field(default_factory=list)
    confidence: float = 1.0

    @property
    def subject(self) -> Argument | None:
        return next((a for a in self.arguments if a.role == "ARG0"), None)

    @property
    def objects(self) -> list[Argument]:
        return [a for a in self.arguments if a.role != "ARG0"]

    def as_strings(self) -> tuple[str, str, list[str]]:
        """(subject, relation, objects) texts, the shape the scorers and fact-to-text read."""
        subject = self.subject
        return (subject.text if subject else "", self.relation.text,
                [a.text for a in self.objects])

    def to_dict(self) -> dict:
        return asdict(self)


class Extractor:
    def __init__(self, tagger: OIETagger, *, batch_size: int = 16,
                 min_confidence: float = 0.0) -> None:
        self.tagger = tagger
        self.batch_size = batch_size
        self.min_confidence = min_confidence

    def extract(self, sentences: Sequence[str], words: Sequence[list[Span]] | None = None,
                *, lang: str | None = None, progress: bool | str = False,
                ) -> list[list[Triple]]:
        """Triples per sentence; ``words`` are word char offsets per sentence (default:
        whitespace words); ``lang`` (an ISO code) routes the tagger's language modules.
        ``progress`` (True, or the bar's label) shows a progress bar on stderr."""
        from tqdm.auto import tqdm

        from .data import whitespace_words

        words = list(words) if words is not None else [whitespace_words(s) for s in sentences]
        out: list[list[Triple]] = []
        label = progress if isinstance(progress, str) else "extracting open IE"
        with tqdm(total=len(sentences), desc=label, unit=" sentences",
                  disable=not progress) as bar:
            for b in range(0, len(sentences), self.batch_size):
                out += self._batch(list(sentences[b:b + self.batch_size]),
                                   words[b:b + self.batch_size], lang)
                bar.update(len(sentences[b:b + self.batch_size]))
        return out

    def iter_extract(self, sentences: Iterable[str], *, lang: str | None = None,
                     ) -> Iterator[list[Triple]]:
        batch: list[str] = []
        for sentence in sentences:
            batch.append(sentence)
            if len(batch) == self.batch_size:
                yield from self.extract(batch, lang=lang)
                batch = []
        if batch:
            yield from self.extract(batch, lang=lang)

    def _batch(self, texts: list[str], words: list[list[Span]],
               lang: str | None) -> list[list[Triple]]:
        import torch

        results: list[list[Triple]] = [[] for _ in texts]
        keep = [i for i, w in enumerate(words) if w]
        if not keep:
            return results
        texts_k, words_k = [texts[i] for i in keep], [words[i] for i in keep]
        with torch.inference_mode():
            states, mask = self.tagger.word_states(texts_k, words_k, lang=lang)
            probs = torch.softmax(self.tagger.predicate_logits(states), -1).cpu().numpy()
            predicates = []
            for b, w in enumerate(words_k):
                tags = bio_viterbi(probs[b, :len(w)], PREDICATE_TAGS)
                for s, e, _ in bio_spans(tags, PREDICATE_TAGS):
                    conf = float(probs[b, np.arange(s, e), tags[s:e]].mean())
                    predicates.append((b, (s, e), conf))
            if not predicates:
                return results
            arg_probs = torch.softmax(self.tagger.argument_logits(
                states, mask, [(b, span) for b, span, _ in predicates]), -1).cpu().numpy()
        for (b, (s, e), conf), p in zip(predicates, arg_probs):
            text, w = texts_k[b], words_k[b]
            tags = bio_viterbi(p[:len(w)], ARGUMENT_TAGS)
            best: dict[str, tuple[float, int, int]] = {}
            for a_s, a_e, role in bio_spans(tags, ARGUMENT_TAGS):
                score = float(p[np.arange(a_s, a_e), tags[a_s:a_e]].mean())
                if role in ROLES and score > best.get(role, (-1.0,))[0]:
                    best[role] = (score, a_s, a_e)  # one span per role: the surest
            if not best:
                continue
            args = [Argument(role, w[a_s][0], w[a_e - 1][1], text[w[a_s][0]:w[a_e - 1][1]])
                    for role, (_, a_s, a_e) in best.items()]
            confs = [conf] + [score for score, _, _ in best.values()]
            relation = Argument("REL", w[s][0], w[e - 1][1], text[w[s][0]:w[e - 1][1]])
            args.sort(key=lambda a: ROLES.index(a.role))
            triple = Triple(text, relation, args, float(np.mean(confs)))
            if triple.confidence >= self.min_confidence:
                results[keep[b]].append(triple)
        return results
