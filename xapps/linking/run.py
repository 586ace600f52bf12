"""End-to-end linking jobs on annotated data: evaluate candidate generation (and re-ranking),
and train the cross-encoder re-ranker. The functions behind ``xapps link eval|train``."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

from ..errors import Errors, InputError
from .candidates import CandidateGenerator, make_generator
from .data import doc_mentions, read_bigbio_kb, read_mantra
from .evaluate import (
    error_analysis,
    evaluate_accuracy,
    evaluate_candidates,
    write_error_analysis,
)
from .kb import load_kb
from .types import Candidate, Mention

logger = logging.getLogger("xapps")

GENERATOR_PRESETS = {
    "tfidf": {"kind": "tfidf"},
    "dense": {"kind": "dense", "backbone": "me5-small", "dtype": "fast"},
    "ensemble": {"kind": "ensemble", "combine": "max",
                 "generators": [{"kind": "tfidf", "k": 64},
                                {"kind": "dense", "k": 64, "backbone": "me5-small",
                                 "dtype": "fast"}]},
}


def load_documents(source: str | None, langs: Sequence[str] | None = None):
    if source in (None, "mantra"):
        return read_mantra(langs=tuple(langs) if langs else ("en", "fr", "de", "es"))
    return [d for d in read_bigbio_kb(source) if not langs or d.lang in set(langs)]


def load_annotated(source: str | None, *, langs: Sequence[str] | None = None,
                   window: int = 64) -> tuple[list[Mention], list[set[str]]]:
    """Mentions with context and gold concept sets from a BigBIO KB file, or from Mantra GSC
    (``source`` None or "mantra" reads data_root()/mantra-gsc; ``langs`` filters, e.g. de,fr)."""
    docs = load_documents(source, langs)
    # Entities without a normalised id cannot be scored in the normalisation setting.
    pairs = [(m, g) for m, g in doc_mentions(docs, window) if g]
    if not pairs:
        langs_text = f" in the languages {', '.join(langs)}" if langs else ""
        found = sorted({d.lang or "und" for d in load_documents(source, None)}) if langs else []
        fix = (f"Its documents are in: {', '.join(found) or 'none'}; pass --langs with those."
               if langs else "Check that the file is the annotated corpus, not the KB.")
        raise InputError(Errors.E250.format(path=source or "mantra-gsc", langs=langs_text,
                                            fix=fix))
    return [m for m, _ in pairs], [g for _, g in pairs]


def load_linkable_kb(path: str | Path):
    """The KB at ``path``; E253 when it is empty (the candidate generators would fail deep
    inside scikit-learn with an "empty vocabulary")."""
    kb = load_kb(path)
    if not len(kb):
        raise InputError(Errors.E253.format(path=path))
    return kb


def load_pipeline(path: str | Path):
    """``spacy.load`` with E185 for a folder that is not a saved pipeline."""
    import spacy

    from .. import factories  # noqa: F401  (registers the xapps factories)

    path = Path(path)
    if not (path / "config.cfg").is_file():
        reason = "it is a file" if path.is_file() else "it has no config.cfg"
        raise InputError(Errors.E185.format(path=path, reason=reason))
    try:
        return spacy.load(path)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - spaCy raises many types for a damaged folder
        raise InputError(Errors.E185.format(path=path, reason=f"{type(exc).__name__}: "
                                                              f"{exc}")) from exc


def build_generator(kb, spec: str | dict) -> CandidateGenerator:
    spec = dict(GENERATOR_PRESETS[spec]) if isinstance(spec, str) else dict(spec)
    return make_generator(spec.pop("kind"), **spec).fit(kb)


def evaluate_linking(kb_path: str | Path, *, source: str | None = None,
                     langs: Sequence[str] | None = None, candidates: str | dict = "ensemble",
                     reranker: str | Path | None = None, k: int = 64,
                     errors_path: str | Path | None = None, window: int = 64) -> dict:
    """Normalisation setting (gold spans given): recall@1/5/16/64 per language and pooled,
    accuracy@1 after re-ranking when a re-ranker is given, and an optional error dump."""
    kb = load_linkable_kb(kb_path)
    mentions, gold = load_annotated(source, langs=langs, window=window)
    generator = build_generator(kb, candidates)
    start = time.perf_counter()
    ranked = generator.generate(mentions, k)
    seconds = time.perf_counter() - start
    report = {"n": len(mentions), "kb": str(kb_path), "candidates": candidates, "k": k,
              "recall": evaluate_candidates(mentions, ranked, gold),
              "mentions_per_s": len(mentions) / seconds if seconds else None}
    final = ranked
    if reranker:
        from .rerank import CrossEncoderReranker

        model = CrossEncoderReranker.load(reranker)
        start = time.perf_counter()
        final = model.score(mentions, ranked, kb)
        report["rerank_seconds"] = time.perf_counter() - start
        report["accuracy@1"] = evaluate_accuracy(mentions, final, gold)
    if errors_path:
        write_error_analysis(error_analysis(mentions, final, gold), errors_path)
    return report


def evaluate_pipeline(pipeline: str | Path, *, source: str | None = None,
                      langs: Sequence[str] | None = None, batch_size: int = 32) -> dict:
    """End to end: spans from the pipeline's NER (doc.ents) linked by its xmen_linker, scored
    with strict P/R/F1 (span and concept must both match) against the gold documents."""
    from .evaluate import entity_tuples, strict_prf

    nlp = load_pipeline(pipeline)
    docs = load_documents(source, langs)
    if not docs:
        raise InputError(Errors.E250.format(
            path=source or "mantra-gsc", langs=f" in the languages {', '.join(langs)}"
            if langs else "", fix="Pass a file with annotated documents."))
    predicted = set()
    for gold_doc, doc in zip(docs, nlp.pipe((d.text for d in docs), batch_size=batch_size)):
        predicted.update((gold_doc.id, e.start_char, e.end_char, e.kb_id_)
                         for e in doc.ents if e.kb_id_)
    return {"n_docs": len(docs), "pipeline": str(pipeline),
            "strict": strict_prf(predicted, entity_tuples(docs))}


def train_linking(kb_path: str | Path, out: str | Path, *, source: str | None = None,
                  langs: Sequence[str] = ("en", "es"), backbone: str = "me5-small",
                  candidates: str | dict = "tfidf", k: int = 16,
                  max_examples: int | None = None, epochs: int = 1, lr: float = 2e-5,
                  batch_size: int = 8, grad_accum: int = 1, candidate_chunk: int = 16,
                  max_length: int = 64, rank_reg_weight: float = 1.0,
                  generator_prior: float = 20.0, seed: int = 0) -> dict:
    """Train a cross-encoder re-ranker on the annotated documents of ``langs`` and save it.

    Train on some languages and evaluate on others for the cross-lingual setting."""
    import random

    from .rerank import (
        CrossEncoderReranker,
        RerankerConfig,
        TrainingExample,
        train_reranker,
    )

    kb = load_linkable_kb(kb_path)
    mentions, gold = load_annotated(source, langs=langs)
    if max_examples and len(mentions) > max_examples:
        order = list(range(len(mentions)))
        random.Random(seed).shuffle(order)
        keep = sorted(order[:max_examples])
        mentions, gold = [mentions[i] for i in keep], [gold[i] for i in keep]
    generator = build_generator(kb, candidates)
    ranked: list[list[Candidate]] = generator.generate(mentions, k)
    examples = [TrainingExample(m, c, sorted(g)[0]) for m, c, g in zip(mentions, ranked, gold)]
    reranker = CrossEncoderReranker(RerankerConfig(backbone=backbone, max_length=max_length,
                                                   rank_reg_weight=rank_reg_weight,
                                                   generator_prior=generator_prior))
    history = train_reranker(reranker, examples, kb, epochs=epochs, lr=lr,
                             batch_size=batch_size, grad_accum=grad_accum,
                             candidate_chunk=candidate_chunk, max_candidates=k, seed=seed)
    reranker.save(out)
    return {"out": str(out), "examples": len(examples), "langs": list(langs or []),
            "history": {key: history[key] for key in ("steps", "seconds", "skipped")
                        if key in history},
            "final_loss": history["loss"][-1] if history.get("loss") else None}
