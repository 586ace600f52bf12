"""Every spaCy factory of xapps, in one place (spaCy 3.8's pipeline/factories.py layout).

pyproject.toml lists each one under the ``spacy_factories`` entry point, so a saved pipeline
loads with ``spacy.load(dir)`` without ``import xapps``.
"""
from __future__ import annotations

from typing import Optional

from spacy.language import Language

from . import extensions  # noqa: F401  (registers the Doc/Span/Token attributes)
from .encoder import XappsEncoder


@Language.factory(
    "xapps_encoder",
    default_config={"backbone": "me5-small", "layer": -1, "prompt": "passage",
                    "batch_size": 32, "device": None, "dtype": None,
                    "store_subwords": False, "save_weights": False},
    assigns=["doc._.xapps_token_vectors", "doc._.xapps_doc_vector", "doc._.xapps_backbone"],
    requires=[],
)
def make_xapps_encoder(nlp: Language, name: str, backbone: str, layer: int,
                       prompt: Optional[str], batch_size: int, device: Optional[str],
                       dtype: Optional[str], store_subwords: bool,
                       save_weights: bool) -> XappsEncoder:
    return XappsEncoder(nlp, name, backbone=backbone, layer=layer, prompt=prompt,
                        batch_size=batch_size, device=device, dtype=dtype,
                        store_subwords=store_subwords, save_weights=save_weights)
