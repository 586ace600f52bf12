"""Every Doc/Span/Token._ attribute xapps sets, registered once.

Values are plain data (numpy arrays, strings), never Span objects, so Docs survive DocBin
and multiprocessing. ``doc.vector``, ``span.vector`` and ``.similarity`` are served from
them through spaCy's user hooks.
"""
from __future__ import annotations

import functools

import numpy as np
import srsly
from spacy.tokens import Doc, Span, Token

#: Span-group attrs written by annotation_projector, aligned with the group's spans: the
#: score that chose each span and the index of the source span it came from; "unprojected"
#: lists the source spans that found no counterpart.
PROJECTION_SCORES = "projection_scores"
PROJECTION_SOURCES = "projection_source_indices"
PROJECTION_UNPROJECTED = "projection_unprojected"

# The keys spaCy gives a plain Doc extension, so values stored before stay readable.
_PROJECTION_KEY = ("._.", "projection", None, None)
_TRANSLATION_KEY = ("._.", "translation", None, None)
_DOC_MARK = "__xapps_doc__"


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


def _encode_doc(obj, chain=None):
    """srsly msgpack encoder: a Doc held in user_data (``doc._.projection``, a Doc
    ``doc._.translation``) becomes plain data, so the Doc holding it can still be written."""
    if isinstance(obj, Doc):
        return {_DOC_MARK: obj.lang_ or "xx", "bytes": obj.to_bytes()}
    return obj if chain is None else chain(obj)


def doc_from_data(value):
    """The Doc that :func:`_encode_doc` wrote, rebuilt on the blank vocab of its language;
    any other value unchanged."""
    if isinstance(value, dict) and _DOC_MARK in value:
        return Doc(_blank_vocab(value[_DOC_MARK])).from_bytes(value["bytes"])
    return value


@functools.lru_cache(maxsize=64)
def _blank_vocab(lang: str):
    from .languages import blank

    try:
        return blank(lang).vocab
    except (ValueError, ImportError):
        return blank("xx").vocab


def _get_stored_doc(doc: Doc, key: tuple):
    """The value under ``key``, a Doc rebuilt (once) from what :func:`_encode_doc` wrote."""
    value = doc.user_data.get(key)
    if isinstance(value, dict):
        value = doc_from_data(value)
        doc.user_data[key] = value
    return value


def _get_projection(doc: Doc):
    return _get_stored_doc(doc, _PROJECTION_KEY)


def _set_projection(doc: Doc, value) -> None:
    doc.user_data[_PROJECTION_KEY] = value


def _get_translation(doc: Doc):
    return _get_stored_doc(doc, _TRANSLATION_KEY)


def _set_translation(doc: Doc, value) -> None:
    doc.user_data[_TRANSLATION_KEY] = value


def _projection_score(span: Span):
    for group in span.doc.spans.values():
        scores = group.attrs.get(PROJECTION_SCORES)
        if scores is None:
            continue
        for other, score in zip(group, scores):
            if (other.start_char, other.end_char, other.label) == (
                    span.start_char, span.end_char, span.label):
                return score
    return None


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
    if not Doc.has_extension("triples"):
        # Open-IE triples from oie_extractor, as plain dicts: {"relation": {"role": "REL",
        # "start", "end", "text"}, "arguments": [{"role": "ARG0".."ARG3", ...}], "confidence"}
        # with character offsets into doc.text; [] when none was found.
        # xapps.oie.component.triple_spans turns one into Spans.
        Doc.set_extension("triples", default=None)
    if not Doc.has_extension("facts"):
        # Facts to verbalise, set by the caller: [{"subject", "predicate", "object",
        # "qualifiers"?}, ...]; fact2text reads these first, else doc._.triples.
        Doc.set_extension("facts", default=None)
    if not Doc.has_extension("verbalization"):
        # The sentence fact2text generated from the Doc's facts (None without facts).
        Doc.set_extension("verbalization", default=None)
    if not Doc.has_extension("news_vector"):
        # The news item's vector in the recommendation space of news_encoder (float32, shared
        # by every language); doc.vector and doc.similarity read it once set.
        Doc.set_extension("news_vector", default=None)
    if not Doc.has_extension("translation"):
        # The target-language text of a source Doc, for annotation projection: a str, or a
        # Doc whose tokens fix the target words. Both survive a DocBin written with
        # store_user_data=True (a Doc through the msgpack encoder registered below).
        Doc.set_extension("translation", getter=_get_translation, setter=_set_translation)
    if not Doc.has_extension("projection"):
        # The target Doc that annotation_projector made from this (source) Doc: projected
        # spans as its ents and in a span group. Stored in user_data; a Doc value is written
        # by DocBin / Doc.to_bytes / nlp.pipe(n_process>1) as plain data (_encode_doc) and
        # rebuilt on first access after loading.
        Doc.set_extension("projection", getter=_get_projection, setter=_set_projection)
    if not Span.has_extension("projection_score"):
        # The score that chose a projected span (float in [0, 1]); None for a span that
        # annotation_projector did not project. Read from the span-group attrs
        # (PROJECTION_SCORES), which DocBin keeps even without store_user_data.
        Span.set_extension("projection_score", getter=_projection_score)
    if not Token.has_extension("xapps_vector"):
        Token.set_extension("xapps_vector", getter=_token_vector)
    if not Span.has_extension("xapps_vector"):
        Span.set_extension("xapps_vector", getter=_span_vector)
    # Writes a Doc held in user_data as plain data (a dict write: cheap to repeat).
    srsly.msgpack_encoders.register("xapps.doc", func=_encode_doc)


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
