"""Every Doc/Span/Token._ attribute xapps sets, registered once.

Values are plain data (numpy arrays, strings), never Span objects, so Docs survive DocBin
and multiprocessing. ``doc.vector``, ``span.vector`` and ``.similarity`` are served from
them through spaCy's user hooks.
"""
from __future__ import annotations

import numpy as np
from spacy.tokens import Doc, Span, Token


def _token_vector(token: Token):
    vectors = token.doc._.xapps_token_vectors
    return None if vectors is None else vectors[token.i]


def _span_vector(span: Span):
    """Mean of the span's contextual token vectors, skipping tokens no subword covers."""
    vectors = span.doc._.xapps_token_vectors
    if vectors is None:
        return None
    rows = vectors[span.start:span.end]
    covered = rows[np.any(rows != 0, axis=1)]
    if len(covered) == 0:
        return np.zeros(vectors.shape[1], dtype=np.float32)
    return covered.mean(axis=0)


def register() -> None:
    """Idempotent: safe to call from every module that needs the attributes."""
    if not Doc.has_extension("xapps_token_vectors"):
        # (n_tokens, hidden) float32, aligned with spaCy tokens; set by xapps_encoder.
        Doc.set_extension("xapps_token_vectors", default=None)
        # (hidden,) pooled, L2-normalised sentence vector of the whole text.
        Doc.set_extension("xapps_doc_vector", default=None)
        # Which backbone produced the vectors (name), so consumers can check compatibility.
        Doc.set_extension("xapps_backbone", default=None)
        # Optional subword-level output: {"vectors": (n, h), "offsets": (n, 2)}.
        Doc.set_extension("xapps_subwords", default=None)
    if not Span.has_extension("kb_ents"):
        # Ranked [(concept_id, score), ...] from xmen_linker; [] when nothing was found.
        Span.set_extension("kb_ents", default=None)
    if not Doc.has_extension("hits"):
        # Ranked [(doc_id, score), ...] for a query Doc, set by xm_retriever.
        Doc.set_extension("hits", default=None)
    if not Doc.has_extension("translation"):
        # The target-language text of a source Doc, for annotation projection; plain str, so
        # it survives a DocBin written with store_user_data=True.
        Doc.set_extension("translation", default=None)
    if not Token.has_extension("xapps_vector"):
        Token.set_extension("xapps_vector", getter=_token_vector)
    if not Span.has_extension("xapps_vector"):
        Span.set_extension("xapps_vector", getter=_span_vector)


# --- user hooks: module-level functions so that hooked Docs still pickle by reference ------

def _cosine(a, b) -> float:
    if a is None or b is None:
        return 0.0
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def _vector_of(obj):
    if isinstance(obj, Doc):
        return _doc_vector(obj)
    if isinstance(obj, Span):
        return _span_hook_vector(obj)
    if isinstance(obj, Token):
        return _token_hook_vector(obj)
    return getattr(obj, "vector", None)


def _doc_vector(doc: Doc):
    return doc._.xapps_doc_vector


def _doc_has_vector(doc: Doc) -> bool:
    return doc._.xapps_doc_vector is not None


def _doc_vector_norm(doc: Doc) -> float:
    vec = doc._.xapps_doc_vector
    return 0.0 if vec is None else float(np.linalg.norm(vec))


def _similarity(self_obj, other) -> float:
    return _cosine(_vector_of(self_obj), _vector_of(other))


def _span_hook_vector(span: Span):
    return _span_vector(span)


def _token_hook_vector(token: Token):
    return _token_vector(token)


def set_vector_hooks(doc: Doc) -> None:
    """Make doc/span/token .vector and .similarity use the xapps vectors of this Doc."""
    doc.user_hooks["vector"] = _doc_vector
    doc.user_hooks["has_vector"] = _doc_has_vector
    doc.user_hooks["vector_norm"] = _doc_vector_norm
    doc.user_hooks["similarity"] = _similarity
    doc.user_span_hooks["vector"] = _span_hook_vector
    doc.user_span_hooks["similarity"] = _similarity
    doc.user_token_hooks["vector"] = _token_hook_vector
    doc.user_token_hooks["similarity"] = _similarity


register()
