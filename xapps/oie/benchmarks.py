"""The standard open-IE test sets by name, read from the shared data folder, and scoring of
an extractor (or of triples extracted earlier) on them.

=================  ======================================================  ===============
name               files under the data root                               scorer
=================  ======================================================  ===============
``benchie-en``     benchie/sentences/sample300_en.txt, benchie/gold/...en  BenchIE (exact)
``benchie-de``     benchie/sentences/sample300_de.txt, benchie/gold/...de  BenchIE (exact)
``carb``           oie/carb_test_sents.txt, oie/carb_gold_test.tsv         CaRB (tokens)
``reoie2016-en``   oie/Re-OIE2016.json                                     Re-OIE2016
``reoie2016-es``   oie/Re-OIE2016-Spanish.json                             Re-OIE2016
=================  ======================================================  ===============

The English and Spanish sentences are pre-tokenised, so the tagger labels their whitespace
words; BenchIE's German sentences are plain text ("... von Australien."), so spaCy's German
tokenizer gives their words: otherwise a final "Australien." would be one word, and no
argument ending there could equal the gold's "von Australien".
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Errors, InputError
from .evaluate import (
    Extraction,
    benchie_scores,
    carb_scores,
    read_benchie_gold,
    read_carb_gold,
    read_reoie2016,
    reoie2016_scores,
)

#: (subject, relation, objects, confidence) of one extraction.
Found = tuple[str, str, Sequence[str], float]


@dataclass(frozen=True)
class Benchmark:
    name: str
    lang: str
    files: tuple[str, ...]  # relative to the data root; the first holds the sentences
    kind: str  # "benchie" | "carb" | "reoie2016"
    tokenized: bool = True  # words are separated by spaces, punctuation included

    def words(self, sentences: Sequence[str]) -> list[list[tuple[int, int]]] | None:
        """Word offsets per sentence for the tagger; None: whitespace words."""
        if self.tokenized:
            return None
        from ..projection.words import spacy_words

        return [spacy_words(s, self.lang) for s in sentences]

    def paths(self, root: Path) -> list[Path]:
        paths = [root / f for f in self.files]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise InputError(Errors.E177.format(name=self.name, path=missing[0], root=root))
        return paths

    def load(self, root: Path) -> tuple[list[str], Any]:
        """The sentences to extract from, in order, and the gold standard."""
        paths = self.paths(root)
        if self.kind == "reoie2016":
            gold = read_reoie2016(paths[0])
            return list(gold), gold
        sentences = [line.strip() for line in paths[0].read_text(encoding="utf-8").splitlines()
                     if line.strip()]
        reader: Callable = read_benchie_gold if self.kind == "benchie" else read_carb_gold
        return sentences, reader(paths[1])

    def score(self, gold: Any, sentences: Sequence[str],
              found: Sequence[Sequence[Found]]) -> dict[str, Any]:
        """Scores of the extractions ``found[i]`` of ``sentences[i]``; BenchIE's gold is keyed
        by line number (from 1), the others by sentence text."""
        if len(found) != len(sentences):
            raise ValueError(f"{len(found)} extraction lists for {len(sentences)} sentences")
        keys = ([str(i + 1) for i in range(len(sentences))] if self.kind == "benchie"
                else list(sentences))
        extractions = [Extraction(key, subject, relation, list(objects), confidence=conf)
                       for key, triples in zip(keys, found)
                       for subject, relation, objects, conf in triples]
        if self.kind == "benchie":
            scores = benchie_scores(gold, extractions)
        elif self.kind == "carb":
            scores = carb_scores(gold, extractions)
        else:
            scores = reoie2016_scores(gold, extractions)
        scores.pop("curve", None)
        return scores


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("benchie-en", "en", ("benchie/sentences/sample300_en.txt",
                                   "benchie/gold/benchie_gold_annotations_en.txt"), "benchie"),
    Benchmark("benchie-de", "de", ("benchie/sentences/sample300_de.txt",
                                   "benchie/gold/benchie_gold_annotations_de.txt"), "benchie",
              tokenized=False),
    Benchmark("carb", "en", ("oie/carb_test_sents.txt", "oie/carb_gold_test.tsv"), "carb"),
    Benchmark("reoie2016-en", "en", ("oie/Re-OIE2016.json",), "reoie2016"),
    Benchmark("reoie2016-es", "es", ("oie/Re-OIE2016-Spanish.json",), "reoie2016"),
)}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise InputError(Errors.E178.format(name=name, known=", ".join(BENCHMARKS))) from None


def evaluate_extractor(extractor, name: str, root: str | Path, *,
                       lang: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Extract from a benchmark's sentences with ``extractor`` (an ``Extractor``) and score
    them; adds ``sentences``, ``seconds`` and ``sentences_per_s``. ``lang`` routes the
    tagger's language modules (default: the benchmark's language); ``progress`` shows a bar."""
    benchmark = get_benchmark(name)
    sentences, gold = benchmark.load(Path(root))
    start = time.perf_counter()
    triples = extractor.extract(sentences, benchmark.words(sentences),
                                lang=lang or benchmark.lang,
                                progress=f"extracting {name}" if progress else False)
    seconds = time.perf_counter() - start
    found = [[(*t.as_strings(), t.confidence) for t in per] for per in triples]
    scores = benchmark.score(gold, sentences, found)
    scores.update(sentences=len(sentences), seconds=round(seconds, 2),
                  sentences_per_s=len(sentences) / max(seconds, 1e-9))
    return scores


def evaluate_records(name: str, root: str | Path,
                     records: Mapping[str, Sequence[Found]]) -> dict[str, Any]:
    """Score extractions made earlier (e.g. by `xapps oie extract`), given per sentence
    text. Every benchmark sentence must be there (an empty list when nothing was found):
    a missing sentence would silently lower recall."""
    benchmark = get_benchmark(name)
    sentences, gold = benchmark.load(Path(root))
    missing = [s for s in sentences if s not in records]
    if missing:
        raise InputError(Errors.E179.format(name=name, n=len(missing), total=len(sentences),
                                            example=missing[0][:80]))
    return benchmark.score(gold, sentences, [records[s] for s in sentences])
