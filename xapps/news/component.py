"""``news_encoder``: a spaCy component that gives a news Doc its vector in the trained
recommender's space, so news in any language the backbone reads share one space
(``doc.vector``, ``doc.similarity``, and dot products with user vectors).

The Doc's text is the news text (title, or title + abstract, as in training). ``to_disk``
copies the recommender (JSON config + safetensors, no pickle) into the pipeline.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc

from .. import extensions
from ..batching import BatchedComponent
from ..errors import Errors, InputError

logger = logging.getLogger("xapps")

FACTORY = "news_encoder"
CFG_FILE = "cfg.json"
MODEL_DIR = "recommender"
DEFAULT_CONFIG: dict[str, Any] = {"model": None, "backbone": "me5-small", "batch_size": 64}


def _vector(doc: Doc):
    return doc._.news_vector


def _has_vector(doc: Doc) -> bool:
    return doc._.news_vector is not None


def _vector_norm(doc: Doc) -> float:
    vec = doc._.news_vector
    return 0.0 if vec is None else float(np.linalg.norm(vec))


def _similarity(doc: Doc, other) -> float:
    a, b = doc._.news_vector, getattr(other, "vector", None)
    if a is None or b is None or not len(b):
        return 0.0
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / denom if denom else 0.0


class NewsEncoder(BatchedComponent):
    def __init__(self, nlp: Language, name: str = FACTORY, *, model: str | None = None,
                 backbone: str = "me5-small", batch_size: int = 64) -> None:
        self.name = name
        self.cfg: dict[str, Any] = {"model": model, "backbone": backbone,
                                    "batch_size": batch_size}
        self.recommender = None
        extensions.register()

    def initialize(self, get_examples=None, *, nlp: Language | None = None,
                   recommender=None) -> None:
        from .recommender import NewsRecommender

        if recommender is not None:
            self.recommender = recommender
        elif self.cfg["model"]:
            self.recommender = NewsRecommender.load(self.cfg["model"])
        else:
            # no trained model: the untrained recommender on the frozen backbone, the best
            # measured variant that needs no click data
            logger.info("news_encoder: no trained model set; using the untrained "
                        "mean-of-history recommender on frozen %s", self.cfg["backbone"])
            self.recommender = NewsRecommender.untrained(self.cfg["backbone"])

    def _annotate(self, docs: list[Doc]) -> None:
        if self.recommender is None:
            raise InputError(Errors.E204.format(what="the component is not initialised",
                                                fix="Call nlp.initialize() first."))
        vectors = self.recommender.encode_texts([doc.text for doc in docs])
        for doc, vec in zip(docs, vectors):
            doc._.news_vector = vec
            doc.user_hooks["vector"] = _vector
            doc.user_hooks["has_vector"] = _has_vector
            doc.user_hooks["vector_norm"] = _vector_norm
            doc.user_hooks["similarity"] = _similarity

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        if self.recommender is None:
            raise InputError(Errors.E204.format(what="nothing to save: not initialised",
                                                fix="Call nlp.initialize() first."))
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.recommender.save(path / MODEL_DIR)
        (path / CFG_FILE).write_text(json.dumps(dict(self.cfg, model=MODEL_DIR), indent=2),
                                     encoding="utf-8")

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "NewsEncoder":
        from .recommender import NewsRecommender

        path = Path(path)
        if not (path / CFG_FILE).is_file():
            raise InputError(Errors.E203.format(path=path, reason=f"it has no {CFG_FILE}"))
        self.cfg.update(json.loads((path / CFG_FILE).read_text(encoding="utf-8")))
        self.recommender = NewsRecommender.load(path / MODEL_DIR)
        return self


__all__ = ["NewsEncoder"]
