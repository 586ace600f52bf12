"""``oie_extractor``: a spaCy component that sets ``doc._.triples`` from a trained open-IE
tagger (``xapps oie train``).

The words the tagger labels are the Doc's own tokens (space tokens left out), so every
argument and relation starts and ends on a token and :func:`triple_spans` turns it into
Spans exactly. A Doc with sentence boundaries (a sentencizer or parser before this
component) is extracted sentence by sentence, because the tagger reads one sentence of at
most ``max_length`` subwords; the offsets are always characters of ``doc.text``. The Docs of
a ``pipe()`` batch go through the encoder together.

``doc._.triples`` holds plain dicts (``Triple.to_dict()`` without the sentence), so Docs
survive DocBin and multiprocessing. ``to_disk`` copies the tagger folder into the pipeline
(``model/``: safetensors, tokenizer and cfg.json with sha256s; no pickle), so a saved
pipeline extracts offline with ``spacy.load(dir)``.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from .. import extensions
from ..artifacts import read_component_cfg
from ..batching import BatchedComponent
from ..errors import Errors, InputError
from .extract import Extractor, Triple
from .model import OIETagger

FACTORY = "oie_extractor"
CFG_FILE = "cfg.json"
MODEL_DIR = "model"
DEFAULT_CONFIG: dict[str, Any] = {"model": None, "batch_size": 16, "min_confidence": 0.0}


class OIEExtractor(BatchedComponent):
    """Sets ``doc._.triples``: the (relation, arguments, confidence) extractions of each Doc.

    ``model`` is the folder of a tagger saved by ``xapps oie train`` (loaded by
    :meth:`initialize`); ``batch_size`` is the number of Docs per encoder pass in ``pipe()``;
    triples whose confidence is below ``min_confidence`` are left out.
    """

    def __init__(self, nlp: Language, name: str = FACTORY, *, model: str | None = None,
                 batch_size: int = 16, min_confidence: float = 0.0) -> None:
        self.name = name
        self.cfg: dict[str, Any] = {"model": model, "batch_size": batch_size,
                                    "min_confidence": min_confidence}
        self._validate()
        self.tagger: OIETagger | None = None
        self._source: Path | None = None  # the folder the tagger was loaded from
        extensions.register()

    def _validate(self) -> None:
        checks = {
            "model": (self.cfg["model"] is None or (isinstance(self.cfg["model"], str)
                                                    and bool(self.cfg["model"])),
                      "a tagger folder (from `xapps oie train --out DIR`) or null"),
            "batch_size": (isinstance(self.cfg["batch_size"], int)
                           and not isinstance(self.cfg["batch_size"], bool)
                           and self.cfg["batch_size"] >= 1, "an integer >= 1"),
            "min_confidence": (isinstance(self.cfg["min_confidence"], (int, float))
                               and not isinstance(self.cfg["min_confidence"], bool)
                               and 0.0 <= self.cfg["min_confidence"] <= 1.0,
                               "a number in [0, 1]"),
        }
        for key, (ok, expected) in checks.items():
            if not ok:
                raise InputError(Errors.E074.format(what=f"{self.name}.{key}",
                                                    value=self.cfg[key], expected=expected))

    def initialize(self, get_examples=None, *, nlp: Language | None = None,
                   tagger=None) -> None:
        """Load the tagger folder named by ``model`` (or take a loaded :class:`OIETagger`;
        unannotated because spaCy validates initialize() arguments with pydantic)."""
        if tagger is None:
            if not self.cfg["model"]:
                raise InputError(Errors.E174.format(name=self.name))
            self._source = Path(self.cfg["model"])
            tagger = OIETagger.load(self._source)
        else:
            self._source = None
        self.tagger = tagger

    def _require_ready(self) -> OIETagger:
        if self.tagger is None:
            raise InputError(Errors.E174.format(name=self.name))
        return self.tagger

    # ------------------------------------------------------------------ extraction
    def _annotate(self, docs: list[Doc]) -> None:
        tagger = self._require_ready()
        # One unit per sentence (per Doc without sentence boundaries): (doc, char offset).
        units: list[tuple[int, int]] = []
        texts: list[str] = []
        words: list[list[tuple[int, int]]] = []
        for d, doc in enumerate(docs):
            parts = doc.sents if doc.has_annotation("SENT_START") else [doc[:]]
            for part in parts:
                offset = part.start_char
                units.append((d, offset))
                texts.append(part.text)
                words.append([(t.idx - offset, t.idx - offset + len(t.text))
                              for t in part if not t.is_space])
        extractor = Extractor(tagger, batch_size=max(1, len(texts)),
                              min_confidence=self.cfg["min_confidence"])
        found: list[list[dict]] = [[] for _ in docs]
        # The pipeline's language routes the tagger's language modules ("xx": none).
        lang = docs[0].lang_ if docs and docs[0].lang_ != "xx" else None
        for (d, offset), triples in zip(units, extractor.extract(texts, words, lang=lang)):
            found[d].extend(_plain(triple, offset) for triple in triples)
        for doc, triples in zip(docs, found):
            doc._.triples = triples

    # ------------------------------------------------------------------ serialisation
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """cfg.json and the tagger folder (``model/``), so the pipeline loads offline."""
        from ..index.manifest import atomic_directory

        tagger = self._require_ready()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        target = path / MODEL_DIR
        if self._source is None:
            tagger.save(target)
        elif self._source.resolve() != target.resolve():
            with atomic_directory(target) as tmp:
                shutil.copytree(self._source, tmp, dirs_exist_ok=True)
        (path / CFG_FILE).write_text(json.dumps(dict(self.cfg, model=MODEL_DIR), indent=2),
                                     encoding="utf-8")

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "OIEExtractor":
        path = Path(path)
        cfg = read_component_cfg(path, FACTORY, cfg_name=CFG_FILE, known=DEFAULT_CONFIG)
        self.cfg.update(cfg, model=str(path / MODEL_DIR))
        self._validate()
        self._source = path / MODEL_DIR
        self.tagger = OIETagger.load(self._source)
        return self


def _plain(triple: Triple, offset: int) -> dict:
    """``Triple.to_dict()`` without the sentence (it is the Doc's text), offsets moved from
    the sentence to the Doc."""
    data = triple.to_dict()
    del data["sentence"]
    for part in [data["relation"], *data["arguments"]]:
        part["start"] += offset
        part["end"] += offset
    return data


def triple_spans(doc: Doc, triple: Mapping | Triple) -> dict[str, Span]:
    """Spans of one triple of ``doc._.triples`` by role (``"REL"``, ``"ARG0"``..``"ARG3"``),
    each labelled with its role, relation first and arguments in their order.

    Offsets that fall inside a token are widened to it (``alignment_mode="expand"``).
    """
    data = triple.to_dict() if isinstance(triple, Triple) else triple
    try:
        parts = [data["relation"], *data["arguments"]]
        bounds = [(str(p["role"]), int(p["start"]), int(p["end"])) for p in parts]
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(Errors.E176.format(value=triple)) from exc
    spans: dict[str, Span] = {}
    for role, start, end in bounds:
        span = (doc.char_span(start, end, label=role, alignment_mode="expand")
                if 0 <= start < end <= len(doc.text) else None)
        if span is None:
            raise InputError(Errors.E175.format(role=role, start=start, end=end,
                                                text=doc.text[:60], n=len(doc.text)))
        spans[role] = span
    return spans
