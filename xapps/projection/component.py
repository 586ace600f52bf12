"""The ``annotation_projector`` spaCy component: carries a source Doc's entities (or a span
group) onto its translation and stores the result as a target Doc in ``doc._.projection``.

The translation is ``doc._.translation``: a str (the projector picks the target words, as
for a plain-text target file) or a Doc (its tokens are the target words, kept as they are).
The pair API (:meth:`AnnotationProjectorComponent.project_pair`, ``project_pairs``) serves
translations that are not on the Doc. A ``pipe()`` batch is one ``AnnotationProjector.project``
call, so the backbone encodes the batch's sources and targets together.

The target Doc holds the projected spans twice: as ``target.ents`` and as the span group
``target.spans[target_key]``, whose attrs hold the scores (``projection_scores``), the source
span each came from (``projection_source_indices``) and the source spans that found no
counterpart (``projection_unprojected``). Span-group attrs are written by DocBin even without
``store_user_data``; ``span._.projection_score`` reads them for any span of the target Doc.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

from spacy.language import Language
from spacy.tokens import Doc

from .. import extensions
from ..artifacts import read_component_cfg
from ..batching import BatchedComponent
from ..errors import Errors, InputError
from .io import words_and_spaces
from .projector import AnnotationProjector, ProjectionConfig
from .types import LabeledSpan, ProjectionPair, ProjectionResult
from .words import NO_SPACE_LANGUAGES, segment

logger = logging.getLogger("xapps")

CFG_FILE = "cfg.json"
FACTORY = "annotation_projector"

#: Every ProjectionConfig field with its default: the projector part of the factory config.
#: ``batch_size`` is both the pipe() batch (docs per projector call) and the backbone's
#: encoding batch, as in ProjectionConfig.
PROJECTION_DEFAULTS: dict[str, Any] = {f.name: f.default
                                       for f in dataclasses.fields(ProjectionConfig)}
#: The component's own settings.
COMPONENT_DEFAULTS: dict[str, Any] = {"source": "ents", "target_key": "projected",
                                      "target_lang": None}
DEFAULT_CONFIG: dict[str, Any] = {**PROJECTION_DEFAULTS, **COMPONENT_DEFAULTS}
#: The type of every setting, for spaCy's config validation.
CONFIG_TYPES: dict[str, Any] = {
    **{name: hint for name, hint in typing.get_type_hints(ProjectionConfig).items()
       if name in PROJECTION_DEFAULTS},
    "source": str, "target_key": str, "target_lang": Optional[str]}


def with_config_signature(func):
    """Give a ``(nlp, name, **cfg)`` factory one typed keyword parameter per setting of
    :data:`DEFAULT_CONFIG`, so that spaCy checks every setting's name and type and a new
    ProjectionConfig field needs no edit of the factory."""
    params = [inspect.Parameter("nlp", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=Language),
              inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=str)]
    params += [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY,
                                 default=DEFAULT_CONFIG[key], annotation=CONFIG_TYPES[key])
               for key in DEFAULT_CONFIG]
    func.__signature__ = inspect.Signature(params)
    func.__annotations__ = {p.name: p.annotation for p in params}
    return func


#: A translation: a str, or a Doc whose tokens are the target words.
Target = str | Doc


class AnnotationProjectorComponent(BatchedComponent):
    """Projects labelled spans of source Docs onto their translations.

    ``source`` is ``"ents"`` or the name of a span group (``doc.spans[source]``);
    ``target_key`` names the span group of the target Doc; ``target_lang`` is the language of
    target Docs made from str translations (None: language-neutral ``xx``). Every other
    setting is a :class:`~xapps.projection.projector.ProjectionConfig` field.
    """

    def __init__(self, nlp: Language, name: str = FACTORY, **cfg: Any) -> None:
        unknown = sorted(set(cfg) - set(DEFAULT_CONFIG))
        if unknown:
            raise InputError(Errors.E074.format(what=f"{name} settings", value=unknown,
                                                expected=f"names among {sorted(DEFAULT_CONFIG)}"))
        self.name = name
        self.cfg: dict[str, Any] = {**DEFAULT_CONFIG, **cfg}
        self._validate()
        self.projector = self._make_projector()
        self._blanks: dict[str, Language] = {}
        self._warned_missing_group = False
        extensions.register()

    def _validate(self) -> None:
        for key in ("source", "target_key"):
            value = self.cfg[key]
            if not isinstance(value, str) or not value:
                raise InputError(Errors.E074.format(what=f"{self.name}.{key}", value=value,
                                                    expected="a non-empty string"))
        lang = self.cfg["target_lang"]
        if lang is not None and (not isinstance(lang, str) or not lang):
            raise InputError(Errors.E074.format(what=f"{self.name}.target_lang", value=lang,
                                                expected="a language code such as 'es', or "
                                                         "null for 'xx'"))

    def _make_projector(self) -> AnnotationProjector:
        """Validates the projection settings (ProjectionConfig); loads nothing."""
        return AnnotationProjector(ProjectionConfig.from_dict(
            {key: self.cfg[key] for key in PROJECTION_DEFAULTS}))

    @property
    def config(self) -> ProjectionConfig:
        return self.projector.config

    def initialize(self, get_examples=None, *, nlp: Language | None = None) -> None:
        """Load (and on first use install) the backbone before the first Doc arrives."""
        _ = self.projector.backbone

    # ------------------------------------------------------------------ projection
    def project_pair(self, source: Doc, target: Target) -> Doc:
        """The target Doc of one source Doc and its translation (a str or a Doc); the source
        Doc is left unchanged."""
        return self.project_pairs([source], [target])[0]

    def project_pairs(self, sources: Sequence[Doc], targets: Sequence[Target]) -> list[Doc]:
        """Target Docs for source Docs and their translations, in order, one projector call
        per ``batch_size`` pairs; the source Docs are left unchanged."""
        sources, targets = list(sources), list(targets)
        if len(sources) != len(targets):
            raise InputError(Errors.E143.format(name=self.name, n=len(sources),
                                                m=len(targets)))
        out: list[Doc] = []
        size = self.cfg["batch_size"]
        for i in range(0, len(sources), size):
            out.extend(self._project(sources[i:i + size], targets[i:i + size]))
        return out

    def _annotate(self, docs: list[Doc]) -> None:
        for doc, target in zip(docs, self._project(docs, [d._.translation for d in docs])):
            doc._.projection = target

    def _project(self, docs: list[Doc], targets: list[Target | None]) -> list[Doc]:
        pairs = [self._pair(doc, target) for doc, target in zip(docs, targets)]
        # A pair with no spans needs no encoding: its target words are the ones the projector
        # would take (spaCy's tokenizer), except in languages whose words are subwords, and
        # except where the MT model has to translate it first.
        todo = [i for i, pair in enumerate(pairs)
                if pair.spans or not pair.target.strip()
                or (pair.target_words is None and pair.target_lang in NO_SPACE_LANGUAGES)]
        results: dict[int, ProjectionResult] = {}
        if todo:
            batch = [pairs[i] for i in todo]
            projected = self.projector.project(batch, chunk_size=len(batch), progress=False)
            results = dict(zip(todo, projected))
        for i, pair in enumerate(pairs):
            if i not in results:
                words = pair.target_words or segment(pair.target, pair.target_lang, None)
                results[i] = ProjectionResult(pair, [], list(words), [])
        return [self._target_doc(results[i], target)
                for i, target in enumerate(targets)]

    def _pair(self, doc: Doc, target: Target | None) -> ProjectionPair:
        if isinstance(target, Doc) and target.text.strip():
            text = target.text
            target_words = _words(target)
            target_lang = target.lang_ or "xx"
        elif isinstance(target, str) and target.strip():
            text, target_words, target_lang = target, None, self.cfg["target_lang"] or "xx"
        elif self.cfg["mt_model"] and (target is None or isinstance(target, str)):
            text, target_words, target_lang = "", None, self.cfg["target_lang"] or "xx"
        else:
            snippet = doc.text[:60] + ("..." if len(doc.text) > 60 else "")
            value = (target.text if isinstance(target, Doc) else
                     target if target is None or isinstance(target, str) else type(target))
            raise InputError(Errors.E142.format(name=self.name, text=snippet, value=value))
        return ProjectionPair(doc.text, text, self._source_spans(doc), _words(doc),
                              target_words, source_lang=doc.lang_ or None,
                              target_lang=target_lang)

    def _source_spans(self, doc: Doc) -> list[LabeledSpan]:
        key = self.cfg["source"]
        if key == "ents":
            spans = doc.ents
        elif key in doc.spans:
            spans = doc.spans[key]
        else:
            if not self._warned_missing_group:
                logger.warning("%s: the doc '%s' has no span group %r; nothing is projected "
                               "from it (nor from later docs without it). Set source to "
                               "'ents' or to the name of the group that holds the spans.",
                               self.name, doc.text[:60], key)
                self._warned_missing_group = True
            spans = []
        return [LabeledSpan(s.start_char, s.end_char, s.label_) for s in spans]

    def _target_doc(self, result: ProjectionResult, target: Target | None) -> Doc:
        text = result.pair.target
        if isinstance(target, Doc):
            doc = Doc(target.vocab, words=[t.text for t in target],
                      spaces=[bool(t.whitespace_) for t in target])
        else:
            lang = result.pair.target_lang or "xx"
            if lang not in self._blanks:
                from ..languages import blank

                self._blanks[lang] = blank(lang)
            doc = Doc(self._blanks[lang].vocab, *words_and_spaces(text, result.target_words))
            if doc.text != text:  # subword offsets that overlap (no-space languages)
                raise InputError(Errors.E144.format(name=self.name, start=0, end=len(text),
                                                    text=text[:60]))
        spans = []
        for projected in result.spans:
            span = doc.char_span(projected.start, projected.end, label=projected.label,
                                 alignment_mode="expand")
            if span is None:
                raise InputError(Errors.E144.format(name=self.name, start=projected.start,
                                                    end=projected.end, text=text[:60]))
            spans.append(span)
        doc.ents = spans  # projected spans never overlap (one candidate per target word)
        doc.spans[self.cfg["target_key"]] = spans
        group = doc.spans[self.cfg["target_key"]]
        group.attrs[extensions.PROJECTION_SCORES] = [float(p.score) for p in result.spans]
        group.attrs[extensions.PROJECTION_SOURCES] = [int(p.source_index)
                                                      for p in result.spans]
        group.attrs[extensions.PROJECTION_UNPROJECTED] = [int(i) for i in result.unprojected]
        return doc

    # ------------------------------------------------------------------ serialisation
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """cfg.json only: the backbone and MT model are referenced by name or path."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / CFG_FILE).write_text(json.dumps(self.cfg, indent=2), encoding="utf-8")

    def from_disk(self, path: str | Path, *,
                  exclude: Iterable[str] = ()) -> "AnnotationProjectorComponent":
        path = Path(path)
        cfg = read_component_cfg(path, FACTORY, cfg_name=CFG_FILE, known=DEFAULT_CONFIG)
        self.cfg.update(cfg)
        self._validate()
        self.projector = self._make_projector()
        return self


def _words(doc: Doc) -> list[tuple[int, int]]:
    return [(t.idx, t.idx + len(t.text)) for t in doc if not t.is_space]


def projection_spans(doc: Doc, key: str = "projected") -> list[tuple[int, int, str, float]]:
    """``(start_char, end_char, label, score)`` of the projected spans of a target Doc, in
    order: plain data for comparing and writing projections."""
    if key not in doc.spans:
        return []
    group = doc.spans[key]
    scores = group.attrs.get(extensions.PROJECTION_SCORES, [])
    return [(s.start_char, s.end_char, s.label_, float(score))
            for s, score in zip(group, scores)]

