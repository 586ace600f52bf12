"""``xm_retriever``: a spaCy component that treats each Doc as a query and sets
``doc._.hits = [(doc_id, score), ...]`` from a multi-vector retriever.

Queries of a ``pipe()`` batch are encoded in one pass and searched together. ``to_disk``
copies the retriever folder (encoder + compressed index, plain files, no pickle) into the
pipeline, so the saved pipeline searches offline without the original path.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from .. import extensions
from ..artifacts import read_component_cfg
from ..batching import BatchedComponent
from ..errors import InputError
from ..fileio import atomic_write_text

CFG_FILE = "cfg.json"
RETRIEVER_DIR = "retriever"


class XmRetriever(BatchedComponent):
    def __init__(self, nlp: Language, name: str = "xm_retriever", *,
                 retriever: str | None = None, k: int = 10, nprobe: int | None = None,
                 n_candidates: int | None = None, batch_size: int = 64) -> None:
        if not isinstance(k, int) or k < 1:
            raise InputError(f"xm_retriever: k must be an integer >= 1, got {k!r}.")
        self.name = name
        self.cfg: dict[str, Any] = {"retriever": retriever, "k": k, "nprobe": nprobe,
                                    "n_candidates": n_candidates, "batch_size": batch_size}
        self.retriever = None
        self._source: Path | None = None
        extensions.register()

    def initialize(self, get_examples=None, *, nlp: Language | None = None,
                   retriever=None) -> None:
        """Load the retriever folder named in the config (or take a loaded Retriever)."""
        from .retriever import Retriever

        if retriever is None:
            if not self.cfg["retriever"]:
                raise InputError(f"{self.name}: no retriever configured. Build one with `xapps "
                                 "index build --kind multivector --input CORPUS --out DIR` and "
                                 "set components.xm_retriever.retriever = DIR.")
            self._source = Path(self.cfg["retriever"])
            retriever = Retriever.load(self._source)
        self.retriever = retriever

    def _require_ready(self) -> None:
        if self.retriever is None:
            raise InputError(f"{self.name} has no retriever loaded: call nlp.initialize() "
                             "(with components.xm_retriever.retriever set) or load a saved "
                             "pipeline.")

    def _annotate(self, docs: list[Doc]) -> None:
        self._require_ready()
        options = {key: self.cfg[key] for key in ("nprobe", "n_candidates")
                   if self.cfg[key] is not None}
        # A pipeline's language is its queries' language (routes adapters and centering); a
        # multi-language "xx" pipeline leaves each query's language to detection.
        languages = [None if doc.lang_ in ("xx", "") else doc.lang_ for doc in docs]
        hits = self.retriever.search([doc.text for doc in docs], self.cfg["k"],
                                     languages=languages, **options)
        for doc, row in zip(docs, hits):
            doc._.hits = [(hit.id, hit.score) for hit in row]

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        self._require_ready()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        target = path / RETRIEVER_DIR
        if self._source is None or self._source.resolve() != target.resolve():
            if self._source is None:
                raise InputError(f"{self.name}: the retriever was passed as an object and has "
                                 "no folder to copy; initialise the component from a retriever "
                                 "folder to save it.")
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(self._source, target)
        atomic_write_text(path / CFG_FILE,
                          json.dumps(dict(self.cfg, retriever=RETRIEVER_DIR), indent=2))

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> XmRetriever:
        from .retriever import Retriever

        path = Path(path)
        cfg = read_component_cfg(path, "xm_retriever", cfg_name=CFG_FILE)
        self.cfg.update(cfg)
        self._source = path / RETRIEVER_DIR
        self.retriever = Retriever.load(self._source)
        return self
