"""Scores of a target candidate for one source span, each in [0, 1].

- alignment: F1 of (a) the share of the span's words linked into the candidate and (b) how
  well the candidate's words belong to the span: its first and last words must be linked to
  the span; a word inside it counts by the share of its links that go to the span, and one
  with no link at all counts as belonging (the "de" in "Fondo de Cohesión", gap filling as
  in the aligner projection rule, but a word linked elsewhere pulls the score down).
- similarity: cosine of the mean contextual vectors of the span and the candidate (negative
  cosines, which do not occur between a span and its translation, count as 0).
"""
from __future__ import annotations

import numpy as np


def alignment_scores(links: np.ndarray, span: tuple[int, int], starts: np.ndarray,
                     ends: np.ndarray) -> np.ndarray:
    """``links`` (n_src_words, n_tgt_words) 0/1; ``span`` = source words [s, e)."""
    s, e = span
    inside = links[s:e]  # (span words, target words)
    to_span = np.minimum(inside.sum(axis=0), 1.0)
    elsewhere = np.minimum(links.sum(axis=0) - inside.sum(axis=0), 1.0)
    # Recall: for each span word, is it linked into [k, m)?  Cumulative sums per row.
    cum = np.concatenate([np.zeros((inside.shape[0], 1)), np.cumsum(inside, axis=1)], axis=1)
    covered = np.minimum(cum[:, ends] - cum[:, starts], 1.0)
    recall = covered.mean(axis=0) if len(inside) else np.zeros(len(starts))
    total = to_span + elsewhere
    belongs = np.where(total > 0, to_span / np.maximum(total, 1e-9), 1.0)
    cum_b = np.concatenate([[0.0], np.cumsum(belongs)])
    length = ends - starts
    inner = np.where(length > 2, cum_b[np.maximum(ends - 1, starts)] - cum_b[starts + 1], 0.0)
    first, last = to_span[starts], to_span[ends - 1]
    precision = np.where(length > 1, (first + last + inner) / (length), first)
    return _f1(recall, precision)


def similarity_scores(span_vector: np.ndarray, word_vector_sums: np.ndarray,
                      starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``word_vector_sums``: (n_tgt_words + 1, dim) cumulative sums of per-word subword vector
    sums, so a candidate's mean vector direction is one subtraction."""
    vecs = word_vector_sums[ends] - word_vector_sums[starts]
    norms = np.linalg.norm(vecs, axis=1) * max(float(np.linalg.norm(span_vector)), 1e-9)
    cos = (vecs @ span_vector) / np.maximum(norms, 1e-9)
    return np.clip(cos, 0.0, 1.0)


def _f1(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    return np.where(recall + precision > 0,
                    2 * recall * precision / np.maximum(recall + precision, 1e-9), 0.0)
