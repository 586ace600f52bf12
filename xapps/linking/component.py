"""The ``xmen_linker`` spaCy component: links entity spans of any language to a KB.

It gathers the mentions of a whole batch of Docs, asks the candidate generator once (so the
dense generator runs the backbone once per batch), optionally re-ranks with the cross-encoder,
and writes ``span._.kb_ents`` (plain ``[(concept_id, score), ...]``) and the best concept above
the threshold as the span's ``kb_id_``.
"""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any, Iterable

from spacy.language import Language
from spacy.tokens import Doc, Span

from .. import extensions
from ..artifacts import read_component_cfg
from ..batching import BatchedComponent
from ..errors import Errors, InputError
from .candidates import CandidateGenerator, load_generator, make_generator
from .types import Candidate, Mention

logger = logging.getLogger("xapps")

CFG_FILE = "cfg.json"
#: Character n-gram TF-IDF and the me5-small bi-encoder, max of their raw cosines.
DEFAULT_CANDIDATES = {"kind": "ensemble", "combine": "max",
                      "generators": [{"kind": "tfidf", "k": 64},
                                     {"kind": "dense", "k": 64, "backbone": "me5-small",
                                      "dtype": "fast"}]}


class XmenLinker(BatchedComponent):
    def __init__(self, nlp: Language, name: str = "xmen_linker", *, kb: str | None = None,
                 candidates: dict | None = None, reranker: str | None = None, k: int = 64,
                 threshold: float | None = None, spans_key: str | None = None,
                 link_ents: bool = True, context_window: int = 64,
                 batch_size: int = 256, ruler: str | None = None) -> None:
        if k < 1:
            raise ValueError(f"xmen_linker: k must be >= 1, got {k}.")
        if not link_ents and not spans_key:
            raise ValueError("xmen_linker: nothing to link: link_ents is false and no "
                             "spans_key is set. Set one of them.")
        self.name = name
        self.cfg: dict[str, Any] = {
            "kb": kb, "candidates": dict(candidates or DEFAULT_CANDIDATES),
            "reranker": reranker, "k": k, "threshold": threshold, "spans_key": spans_key,
            "link_ents": link_ents, "context_window": context_window, "batch_size": batch_size,
            "ruler": ruler}
        self.kb = None
        self.generator: CandidateGenerator | None = None
        self.reranker = None
        extensions.register()

    # ------------------------------------------------------------------ set-up
    def initialize(self, get_examples=None, *, nlp: Language | None = None, kb=None) -> None:
        """Load the KB (path from the config, or a KnowledgeBase object) and index its names."""
        from .kb import KnowledgeBase

        if kb is None:
            if not self.cfg["kb"]:
                raise InputError(Errors.E084.format(name=self.name))
            kb = _load_kb(self.cfg["kb"])
        if not isinstance(kb, KnowledgeBase):
            raise InputError(f"xmen_linker: kb must be a KnowledgeBase or a path, got "
                             f"{type(kb).__name__}.")
        self.kb = kb
        if self.cfg.get("ruler"):
            self._fill_ruler(nlp, kb)
        spec = dict(self.cfg["candidates"])
        self.generator = make_generator(spec.pop("kind"), **spec).fit(kb)
        if self.cfg["reranker"]:
            from .rerank import CrossEncoderReranker

            self.reranker = CrossEncoderReranker.load(self.cfg["reranker"])
        if nlp is not None:
            self._check_mention_source(nlp)

    def _fill_ruler(self, nlp: Language | None, kb) -> None:
        """Give the entity_ruler named by ``ruler`` the KB's names as phrase patterns: the
        pipeline then finds mentions of the KB's concepts without an NER model. Runs after
        the ruler's own initialize (which clears it), as the ruler comes first."""
        from spacy.pipeline import EntityRuler

        from .patterns import patterns_from_kb

        name = self.cfg["ruler"]
        names = nlp.pipe_names if nlp is not None else []
        if name not in names or not isinstance(nlp.get_pipe(name), EntityRuler) or \
                names.index(name) > names.index(self.name):
            raise InputError(Errors.E074.format(
                what=f"{self.name}: ruler", value=name,
                expected=f"the name of an entity_ruler before '{self.name}' in the pipeline "
                         f"(it has: {names}), or null"))
        ruler = nlp.get_pipe(name)
        ruler.clear()
        ruler.add_patterns(patterns_from_kb(kb, where=f"{self.name}: ruler '{name}'"))
        logger.info("%s: %d phrase patterns from the KB '%s' in '%s'", self.name,
                    len(ruler.patterns), kb.name, name)

    def _check_mention_source(self, nlp: Language) -> None:
        """Say once, at initialize, when nothing can give the linker a mention: rather than
        an empty result and spaCy's W036 on every document."""
        from spacy.pipeline import EntityRuler

        if self.cfg["spans_key"] or self.name not in nlp.pipe_names:
            return
        before = nlp.pipe_names[:nlp.pipe_names.index(self.name)]
        sources = [n for n in before if "doc.ents" in (nlp.get_pipe_meta(n).assigns or [])
                   or isinstance(nlp.get_pipe(n), EntityRuler)]
        empty = [n for n in sources if isinstance(nlp.get_pipe(n), EntityRuler)
                 and not len(nlp.get_pipe(n))]
        if sources and len(empty) < len(sources):
            return
        reason = (f"its entity ruler(s) {empty} have no patterns at initialize" if empty
                  else "no component before it declares that it sets doc.ents (assigns)")
        logger.warning(Errors.E255.format(
            what=f"{self.name}", reason=reason,
            fix="Set ruler = 'entity_ruler' in its config (patterns from the KB's names), add "
                "patterns or an NER before it, or set spans_key (patterns added after "
                "initialize also work; then ignore this)."))
        if empty:  # W036 would repeat this on every document
            warnings.filterwarnings("ignore", message=r"\[W036\]")

    def _require_ready(self) -> None:
        if self.generator is None:
            raise InputError(Errors.E084.format(name=self.name))

    # ------------------------------------------------------------------ linking
    def _spans(self, doc: Doc) -> list[Span]:
        spans = list(doc.ents) if self.cfg["link_ents"] else []
        key = self.cfg["spans_key"]
        if key and key in doc.spans:
            spans.extend(doc.spans[key])
        return spans

    def _annotate(self, docs: list[Doc]) -> None:
        self._require_ready()
        located, mentions = [], []
        for doc in docs:
            for span in self._spans(doc):
                located.append((doc, span))
                mentions.append(_mention(doc, span, self.cfg["context_window"]))
        if not mentions:
            return
        ranked = self.generator.generate(mentions, self.cfg["k"])
        if self.reranker is not None:
            ranked = self.reranker.score(mentions, ranked, self.kb)
        threshold = self.cfg["threshold"]
        best: dict[tuple[int, int, int], str] = {}
        for (doc, span), cands in zip(located, ranked):
            span._.kb_ents = [c.as_tuple() for c in cands]
            top = _best(cands, threshold)
            if top is not None:
                best[(id(doc), span.start_char, span.end_char)] = top
        for doc in docs:
            self._write_kb_ids(doc, best)

    def _write_kb_ids(self, doc: Doc, best: dict) -> None:
        """Span objects from doc.ents / doc.spans are views: write kb_id_ through new Spans."""
        def relabel(span: Span) -> Span:
            kb_id = best.get((id(doc), span.start_char, span.end_char), "")
            return Span(doc, span.start, span.end, label=span.label, kb_id=kb_id)

        if self.cfg["link_ents"] and doc.ents:
            doc.ents = [relabel(s) for s in doc.ents]
        key = self.cfg["spans_key"]
        if key and key in doc.spans:
            doc.spans[key] = [relabel(s) for s in doc.spans[key]]

    # ------------------------------------------------------------------ serialisation
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        self._require_ready()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.kb.save(path / "kb")
        self.generator.to_disk(path / "candidates")
        cfg = dict(self.cfg, kb="kb", reranker="reranker" if self.reranker else None)
        if self.reranker is not None:
            self.reranker.save(path / "reranker")
        (path / CFG_FILE).write_text(json.dumps(cfg, indent=2), encoding="utf-8")

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "XmenLinker":
        from .kb import KnowledgeBase

        path = Path(path)
        cfg = read_component_cfg(path, "xmen_linker", cfg_name=CFG_FILE)
        self.cfg.update(cfg)
        self.kb = KnowledgeBase.load(path / "kb")
        self.generator = load_generator(path / "candidates", self.kb)
        self.reranker = None
        if self.cfg.get("reranker"):
            from .rerank import CrossEncoderReranker

            self.reranker = CrossEncoderReranker.load(path / "reranker")
        return self


def _load_kb(ref: str):
    from .kb import KnowledgeBase

    path = Path(ref)
    if path.is_dir():
        kb = KnowledgeBase.load(path)
    elif path.is_file():
        kb = KnowledgeBase.from_jsonl(path)
    else:
        raise InputError(Errors.E059.format(
            path=ref, reason="no such KB file or folder",
            expected="a KB .jsonl file or a folder written by `xapps kb build`"))
    if not len(kb):  # the generators would fail later, deep in scikit-learn
        raise InputError(Errors.E253.format(path=ref))
    return kb


def _mention(doc: Doc, span: Span, window: int) -> Mention:
    text = doc.text
    left = text[max(0, span.start_char - window):span.start_char]
    right = text[span.end_char:span.end_char + window]
    return Mention(span.text, lang=doc.lang_, left=left, right=right,
                   id=f"{span.start_char}-{span.end_char}")


def _best(cands: list[Candidate], threshold: float | None) -> str | None:
    if not cands:
        return None
    top = cands[0]
    if threshold is not None and top.score < threshold:
        return None
    return top.concept_id
