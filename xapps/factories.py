"""Every spaCy factory of xapps, in one place (spaCy 3.8's pipeline/factories.py layout).

pyproject.toml lists each one under the ``spacy_factories`` entry point, so a saved pipeline
loads with ``spacy.load(dir)`` without ``import xapps``.
"""
from __future__ import annotations

from typing import Optional

from spacy.language import Language

from . import extensions  # noqa: F401  (registers the Doc/Span/Token attributes)
from .encoder import XappsEncoder
from .fact2text.component import DEFAULT_CONFIG as F2T_CONFIG
from .fact2text.component import Fact2Text
from .linking.component import XmenLinker
from .linking.patterns import kb_patterns  # noqa: F401  (registers xapps.KBPatterns.v1)
from .news.component import DEFAULT_CONFIG as NEWS_CONFIG
from .news.component import NewsEncoder
from .oie.component import DEFAULT_CONFIG as OIE_CONFIG
from .oie.component import OIEExtractor
from .projection.component import DEFAULT_CONFIG as PROJECTOR_CONFIG
from .projection.component import AnnotationProjectorComponent, with_config_signature
from .retrieval.component import XmRetriever


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


@Language.factory(
    "xmen_linker",
    # candidates=None means DEFAULT_CANDIDATES; a dict default would be merged key by key
    # with the user's dict by spaCy's config system.
    default_config={"kb": None, "candidates": None,
                    "reranker": None, "k": 64, "threshold": None, "spans_key": None,
                    "link_ents": True, "context_window": 64, "batch_size": 256,
                    "ruler": None},
    assigns=["span._.kb_ents", "token.ent_kb_id"],
    requires=["doc.ents"],
)
def make_xmen_linker(nlp: Language, name: str, kb: Optional[str], candidates: Optional[dict],
                     reranker: Optional[str], k: int, threshold: Optional[float],
                     spans_key: Optional[str], link_ents: bool, context_window: int,
                     batch_size: int, ruler: Optional[str]) -> XmenLinker:
    return XmenLinker(nlp, name, kb=kb, candidates=candidates, reranker=reranker, k=k,
                      threshold=threshold, spans_key=spans_key, link_ents=link_ents,
                      context_window=context_window, batch_size=batch_size, ruler=ruler)


@Language.factory(
    "xm_retriever",
    default_config={"retriever": None, "k": 10, "nprobe": None, "n_candidates": None,
                    "batch_size": 64},
    assigns=["doc._.hits"],
    requires=[],
)
def make_xm_retriever(nlp: Language, name: str, retriever: Optional[str], k: int,
                      nprobe: Optional[int], n_candidates: Optional[int],
                      batch_size: int) -> XmRetriever:
    return XmRetriever(nlp, name, retriever=retriever, k=k, nprobe=nprobe,
                       n_candidates=n_candidates, batch_size=batch_size)


@Language.factory(
    "annotation_projector",
    # Every ProjectionConfig field with its default (read from the dataclass, so the two
    # cannot drift), plus source, target_key and target_lang; with_config_signature turns
    # them into typed keyword parameters for spaCy's config validation.
    default_config=PROJECTOR_CONFIG,
    assigns=["doc._.projection"],
    requires=["doc._.translation"],
)
@with_config_signature
def make_annotation_projector(nlp: Language, name: str,
                              **cfg) -> AnnotationProjectorComponent:
    return AnnotationProjectorComponent(nlp, name, **cfg)


@Language.factory(
    "oie_extractor",
    default_config=OIE_CONFIG,
    assigns=["doc._.triples"],
    requires=[],
)
def make_oie_extractor(nlp: Language, name: str, model: Optional[str], batch_size: int,
                       min_confidence: float) -> OIEExtractor:
    return OIEExtractor(nlp, name, model=model, batch_size=batch_size,
                        min_confidence=min_confidence)


@Language.factory(
    "fact2text",
    default_config=F2T_CONFIG,
    assigns=["doc._.verbalization"],
    requires=[],
)
def make_fact2text(nlp: Language, name: str, model: Optional[str], target_lang: str,
                   batch_size: int) -> Fact2Text:
    return Fact2Text(nlp, name, model=model, target_lang=target_lang, batch_size=batch_size)


@Language.factory(
    "news_encoder",
    default_config=NEWS_CONFIG,
    assigns=["doc._.news_vector"],
    requires=[],
)
def make_news_encoder(nlp: Language, name: str, model: Optional[str], backbone: str,
                      batch_size: int) -> NewsEncoder:
    return NewsEncoder(nlp, name, model=model, backbone=backbone, batch_size=batch_size)
