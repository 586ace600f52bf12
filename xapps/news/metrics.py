"""MIND's ranking metrics (AUC, MRR, nDCG@k) per impression, then averaged, as in the MIND
and Microsoft Recommenders evaluation code, so results compare with published ones; plus
the diversity and catalogue coverage of the top-k lists, which accuracy alone hides.

Ties: AUC counts a tied positive/negative pair as half right (average ranks); MRR and nDCG
rank tied candidates in candidate order (MIND leaves the order of ties to ``argsort``).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import Errors, InputError


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ascending ranks, tied scores sharing their average rank."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC of one impression (Mann-Whitney, ties counted half); nan with one class."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = float(_ranks(s)[y == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def _descending(scores: Sequence[float]) -> np.ndarray:
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def mrr(labels: Sequence[int], scores: Sequence[float]) -> float:
    """MIND's ``mrr_score``: mean of 1/rank over the clicked candidates; nan without one."""
    y = np.asarray(labels, dtype=np.float64)[_descending(scores)]
    if y.sum() == 0:
        return math.nan
    return float((y / np.arange(1, len(y) + 1)).sum() / y.sum())


def _dcg(labels: np.ndarray, scores: Sequence[float], k: int) -> float:
    y = labels[_descending(scores)[:k]]
    return float(((2 ** y - 1) / np.log2(np.arange(2, len(y) + 2))).sum())


def ndcg(labels: Sequence[int], scores: Sequence[float], k: int = 10) -> float:
    """MIND's ``ndcg_score``: DCG@k (gains 2**rel - 1, discounts log2(rank + 1)) over the
    ideal DCG@k; nan without a clicked candidate."""
    y = np.asarray(labels, dtype=np.float64)
    best = _dcg(y, y, k)
    return _dcg(y, scores, k) / best if best > 0 else math.nan


def intra_list_distance(vectors: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Mean pairwise cosine distance (1 - cosine) among the rows: 0 when a list shows the
    same news again and again, 1 for unrelated (orthogonal) news; 0.0 below two rows."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or len(v) < 2:
        return 0.0
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    sim = v @ v.T
    n = len(v)
    upper = np.triu_indices(n, k=1)
    return float(np.mean(1.0 - sim[upper]))


def _mean(values: list[float]) -> float:
    kept = [x for x in values if not math.isnan(x)]
    return round(float(np.mean(kept)), 4) if kept else math.nan


def _mismatch(index: int, reason: str, what: str) -> InputError:
    return InputError(Errors.E197.format(index=index, reason=reason, what=what))


def evaluate_impressions(labels: Sequence[Sequence[int]], scores: Sequence[Sequence[float]], *,
                         vectors: Sequence[np.ndarray] | None = None,
                         ids: Sequence[Sequence[str]] | None = None,
                         k_diversity: int = 10) -> dict:
    """AUC, MRR, nDCG@5 and nDCG@10 averaged over impressions (each skipping impressions
    where it is undefined; ``auc_skipped`` counts those without both classes). With
    ``vectors`` (per impression, the candidates' vectors in candidate order) also
    ``diversity@k``, the mean intra-list distance of the k best-scored candidates; with
    ``ids`` also ``coverage@k``, the share of distinct candidate ids that reach some top-k
    list."""
    if len(labels) == 0:
        raise InputError(Errors.E196.format(
            what="labels", value=[], reason="there is no impression to evaluate",
            fix="Pass at least one labelled impression."))
    others = [("scores", scores), ("vectors", vectors), ("ids", ids)]
    for name, seq in others:
        if seq is not None and len(seq) != len(labels):
            raise _mismatch(min(len(seq), len(labels)),
                            f"{len(labels)} impressions have labels but {len(seq)} have "
                            f"{name}", name[:-1] if name != "ids" else "id")
    k = k_diversity
    aucs, mrrs, n5, n10, divs = [], [], [], [], []
    top_ids: set[str] = set()
    all_ids: set[str] = set()
    for i, (y, s) in enumerate(zip(labels, scores)):
        if y is None:
            raise _mismatch(i, "it has no click labels (an unlabelled behaviors file?)",
                            "label 0/1")
        y = np.asarray(y)
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        if len(y) != len(s):
            raise _mismatch(i, f"{len(y)} labels but {len(s)} scores", "score")
        if len(y) == 0:
            raise _mismatch(i, "it has no candidates", "label and score")
        if not np.isin(y, (0, 1)).all():
            raise _mismatch(i, f"labels {sorted(set(y.tolist()))} are not all 0 or 1",
                            "label 0/1")
        if not np.isfinite(s).all():
            raise _mismatch(i, "a score is nan or infinite", "finite score")
        aucs.append(auc(y, s))
        mrrs.append(mrr(y, s))
        n5.append(ndcg(y, s, 5))
        n10.append(ndcg(y, s, 10))
        top = _descending(s)[:k]
        if vectors is not None:
            v = np.asarray(vectors[i])
            if v.ndim != 2 or len(v) != len(s):
                raise _mismatch(i, f"{len(s)} scores but vectors of shape {v.shape}",
                                "vector (a row)")
            divs.append(intra_list_distance(v[top]))
        if ids is not None:
            if len(ids[i]) != len(s):
                raise _mismatch(i, f"{len(s)} scores but {len(ids[i])} ids", "id")
            all_ids.update(ids[i])
            top_ids.update(ids[i][j] for j in top)
    out = {"auc": _mean(aucs), "mrr": _mean(mrrs), "ndcg@5": _mean(n5),
           "ndcg@10": _mean(n10), "impressions": len(labels),
           "auc_skipped": sum(math.isnan(x) for x in aucs)}
    if vectors is not None:
        out[f"diversity@{k}"] = _mean(divs)
    if ids is not None:
        out[f"coverage@{k}"] = round(len(top_ids) / len(all_ids), 4)
    return out
