"""Untrained reference scorers: random, popularity, and mean-of-history on frozen backbone
vectors. A trained recommender has to beat all three to be worth its training."""
from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import numpy as np

from .data import Impression, NewsItem
from .vectors import NewsVectorCache


def random_scores(impressions: Sequence[Impression], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(len(imp.candidates)) for imp in impressions]


def popularity_scores(impressions: Sequence[Impression],
                      train: Sequence[Impression]) -> list[np.ndarray]:
    """Clicks each news item got in the training impressions (labelled clicks and history
    clicks); ties broken by how often it was shown, unseen news score 0."""
    clicks: Counter[str] = Counter()
    shown: Counter[str] = Counter()
    for imp in train:
        clicks.update(imp.history)
        shown.update(imp.candidates)
        if imp.labels is not None:
            clicks.update(c for c, y in zip(imp.candidates, imp.labels) if y == 1)
    top = max(shown.values(), default=0) + 1
    return [np.array([clicks[c] + shown[c] / top for c in imp.candidates], dtype=np.float64)
            for imp in impressions]


def mean_of_history_scores(impressions: Sequence[Impression], news: Mapping[str, NewsItem],
                           cache: NewsVectorCache, *, with_abstract: bool = True,
                           history_len: int = 50) -> list[np.ndarray]:
    """Cosine between a candidate's backbone vector and the mean of the user's clicked news
    vectors (0 for a user with no known click): content-based recommending without training."""
    ids = list(dict.fromkeys(
        [n for imp in impressions for n in imp.history[-history_len:] if n in news]
        + [c for imp in impressions for c in imp.candidates]))
    vec = dict(zip(ids, cache.vectors([news[n].text(with_abstract) for n in ids])))
    out = []
    for imp in impressions:
        cands = np.stack([vec[c] for c in imp.candidates])
        hist = [vec[n] for n in imp.history[-history_len:] if n in vec]
        if not hist:
            out.append(np.zeros(len(cands)))
            continue
        user = np.mean(hist, axis=0)
        user /= max(np.linalg.norm(user), 1e-12)
        out.append(cands @ user)
    return out


__all__ = ["mean_of_history_scores", "popularity_scores", "random_scores"]
