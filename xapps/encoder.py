"""The shared spaCy component ``xapps_encoder``: runs the backbone once per batch and stores
contextual vectors on each Doc for ``doc.vector``, ``span.vector``, ``.similarity`` and for the
xapps task components downstream."""
from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Iterable

from spacy.language import Language
from spacy.tokens import Doc

from . import extensions
from .artifacts import read_component_cfg
from .backbone import Backbone, load_backbone
from .batching import BatchedComponent
from .errors import ModelError
from .fileio import atomic_write_text

logger = logging.getLogger("xapps")

CFG_FILE = "cfg.json"
WEIGHTS_DIR = "model"


class XappsEncoder(BatchedComponent):
    """Runs a :class:`~xapps.backbone.Backbone` over Docs.

    Sets ``doc._.xapps_token_vectors`` (one row per spaCy token: the mean of the subwords
    that overlap its characters), ``doc._.xapps_doc_vector`` (the model's pooled, normalised
    sentence vector) and, with ``store_subwords``, ``doc._.xapps_subwords``.
    """

    def __init__(self, nlp: Language, name: str = "xapps_encoder", *, backbone: str = "me5-small",
                 layer: int = -1, prompt: str | None = "passage", batch_size: int = 32,
                 device: str | None = None, dtype: str | None = None,
                 store_subwords: bool = False, save_weights: bool = False) -> None:
        if prompt not in (None, "query", "passage"):
            raise ValueError(f"xapps_encoder: prompt={prompt!r} is not supported. Expected "
                             "'query', 'passage' or null.")
        if batch_size < 1:
            raise ValueError(f"xapps_encoder: batch_size must be >= 1, got {batch_size}.")
        self.name = name
        self.cfg = {"backbone": backbone, "layer": layer, "prompt": prompt,
                    "batch_size": batch_size, "device": device, "dtype": dtype,
                    "store_subwords": store_subwords, "save_weights": save_weights}
        self._backbone: Backbone | None = None  # loaded lazily: __init__ does no I/O
        self._expected_sha256: str | None = None

    @property
    def backbone(self) -> Backbone:
        if self._backbone is None:
            self._backbone = load_backbone(self.cfg["backbone"], device=self.cfg["device"],
                                           dtype=self.cfg["dtype"])
            self._check_saved_sha256()
        return self._backbone

    def initialize(self, get_examples=None, *, nlp: Language | None = None) -> None:
        """Load (and on first use install) the backbone before the first Doc arrives."""
        _ = self.backbone

    def _annotate(self, docs: list[Doc]) -> None:
        backbone = self.backbone
        embedded = backbone.embed_tokens([doc.text for doc in docs], prompt=self.cfg["prompt"],
                                         layer=self.cfg["layer"],
                                         batch_size=self.cfg["batch_size"], progress=False)
        for doc, emb in zip(docs, embedded):
            spans = [(t.idx, t.idx + len(t.text)) for t in doc]
            doc._.xapps_token_vectors = emb.span_vectors(spans)
            doc._.xapps_doc_vector = emb.pooled
            doc._.xapps_backbone = backbone.name
            if self.cfg["store_subwords"]:
                doc._.xapps_subwords = {"vectors": emb.vectors, "offsets": emb.offsets}
            extensions.set_vector_hooks(doc)

    # ------------------------------------------------------------- serialisation
    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> None:
        """Write cfg.json with the backbone reference; copy the weights only when
        ``save_weights`` is set (a self-contained pipeline for machines without the model)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = dict(self.cfg)
        if self.cfg["save_weights"]:
            source = self.backbone.path
            if source is None:
                raise ModelError(f"xapps_encoder: save_weights is set but backbone "
                                 f"{self.cfg['backbone']!r} has no local folder to copy. Load it "
                                 "from a local folder or set save_weights to false.")
            target = path / WEIGHTS_DIR
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target)
            cfg["backbone_source"] = self.cfg["backbone"]
        backbone = self._backbone
        cfg["backbone_sha256"] = backbone.sha256 if backbone is not None else None
        atomic_write_text(path / CFG_FILE, json.dumps(cfg, indent=2))

    def from_disk(self, path: str | Path, *, exclude: Iterable[str] = ()) -> "XappsEncoder":
        path = Path(path)
        cfg = read_component_cfg(path, "xapps_encoder", cfg_name=CFG_FILE, error_type=ModelError)
        saved_sha = cfg.pop("backbone_sha256", None)
        cfg.pop("backbone_source", None)
        if cfg.get("save_weights") and (path / WEIGHTS_DIR).is_dir():
            cfg["backbone"] = str(path / WEIGHTS_DIR)
        self.cfg.update(cfg)
        self._backbone = None
        self._expected_sha256 = saved_sha
        return self

    def _check_saved_sha256(self) -> None:
        """Warn when the backbone found now is not the one the pipeline was saved with."""
        expected = self._expected_sha256
        found = self._backbone.sha256 if self._backbone is not None else None
        if expected and found and expected != found:
            logger.warning("xapps_encoder '%s': backbone %r has sha256 %s, the saved pipeline "
                           "recorded %s; vectors will differ from the ones it was saved with.",
                           self.name, self.cfg["backbone"], found, expected)
