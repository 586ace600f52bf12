"""``fact2text``: a spaCy component that verbalises facts in a target language.

Facts come from ``doc._.facts`` (a list of ``{"subject", "predicate", "object"}`` dicts set
by the caller) or, when that is empty, from ``doc._.triples`` as the ``oie_extractor`` writes
them (ARG0 = subject, the relation = predicate, ARG1 = object, further arguments as
qualifiers), so open-IE output in one language can be verbalised in another. The sentence
goes to ``doc._.verbalization`` (None for a Doc without facts). ``to_disk`` copies the
generator's folder (plain JSON, no pickle) into the pipeline.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from .. import extensions
from ..batching import BatchedComponent
from ..errors import Errors, InputError
from .data import Fact, facts_from_json, make_fact

FACTORY = "fact2text"
CFG_FILE = "cfg.json"
MODEL_DIR = "generator"
DEFAULT_CONFIG: dict[str, Any] = {"model": None, "target_lang": "en", "batch_size": 32}


def facts_of(doc: Doc) -> list[Fact]:
    """The Doc's facts: ``doc._.facts`` if set, else its open-IE triples."""
    if doc._.facts:
        return facts_from_json(list(doc._.facts), f"doc._.facts of {doc.text[:40]!r}")
    out = []
    for triple in doc._.triples or []:
        args = {a["role"]: a["text"] for a in triple.get("arguments", [])}
        if "ARG0" in args and "ARG1" in args:
            quals = [(role, text) for role, text in sorted(args.items())
                     if role not in ("ARG0", "ARG1")]
            out.append(make_fact(args["ARG0"], triple["relation"]["text"], args["ARG1"], quals))
    return out


class Fact2Text(BatchedComponent):
    def __init__(self, nlp: Language, name: str = FACTORY, *, model: str | None = None,
                 target_lang: str = "en", batch_size: int = 32) -> None:
        self.name = name
        self.cfg: dict[str, Any] = {"model": model, "target_lang": target_lang,
                                    "batch_size": batch_size}
        if not isinstance(target_lang, str) or not target_lang:
            raise InputError(Errors.E193.format(what=f"target_lang={target_lang!r} is not a "
                                                     "language code",
                                                fix="Pass e.g. target_lang='cy'."))
        self.generator = None
        self._source: Path | None = None
        extensions.register()

    def initialize(self, get_examples=None, *, nlp: Language | None = None,
                   generator=None) -> None:
        from . import load_generator

        if generator is not None:
            self.generator, self._source = generator, None
        elif self.cfg["model"]:
            self._source = Path(self.cfg["model"])
            self.generator = load_generator(self._source)
        else:
            raise InputError(Errors.E193.format(
                what="no generator: the 'model' setting is empty",
                fix="Set model to a folder made by `xapps f2t train`, or pass generator= to "
                    "initialize()."))

    def _annotate(self, docs: list[Doc]) -> None:
        if self.generator is None:
            raise InputError(Errors.E193.format(what="the component is not initialised",
                                                fix="Call nlp.initialize() first."))
        todo = [(doc, facts_of(doc)) for doc in docs]
        with_facts = [(doc, facts) for doc, facts in todo if facts]
        for doc, facts in todo:
            if not facts:
                doc._.verbalization = None
        if with_facts:
            texts = self.generator.generate([f for _, f in with_facts], self.cfg["target_lang"])
            for (doc, _), text in zip(with_facts, texts):
                doc._.verbalization = text

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.generator is None:
            raise InputError(Errors.E193.format(what="nothing to save: not initialised",
                                                fix="Call nlp.initialize() first."))
        self.generator.save(path / MODEL_DIR)
        (path / CFG_FILE).write_text(json.dumps(dict(self.cfg, model=MODEL_DIR), indent=2),
                                     encoding="utf-8")

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "Fact2Text":
        from . import load_generator

        path = Path(path)
        if not (path / CFG_FILE).is_file():
            raise InputError(Errors.E192.format(path=path, reason=f"it has no {CFG_FILE}"))
        self.cfg.update(json.loads((path / CFG_FILE).read_text(encoding="utf-8")))
        self._source = path / MODEL_DIR
        self.generator = load_generator(self._source)
        return self


__all__ = ["Fact2Text", "facts_of"]
