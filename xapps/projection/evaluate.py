"""Span-level exact-match scores of projected spans against gold (seqeval's micro P/R/F1:
a span counts only when start, end and label all match), overall and per label."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from .types import LabeledSpan


def span_scores(gold: Iterable[Iterable[LabeledSpan]],
                predicted: Iterable[Iterable[LabeledSpan]]) -> dict:
    """{"precision", "recall", "f1", "support", "per_label": {label: {...}}} over sentences
    given in the same order; values in [0, 1]."""
    tp: Counter = Counter()
    n_gold: Counter = Counter()
    n_pred: Counter = Counter()
    n_sentences = 0
    for g, p in zip(gold, predicted, strict=True):
        g, p = set(g), set(p)
        n_sentences += 1
        for span in g:
            n_gold[span.label] += 1
        for span in p:
            n_pred[span.label] += 1
        for span in g & p:
            tp[span.label] += 1
    overall = _prf(sum(tp.values()), sum(n_gold.values()), sum(n_pred.values()))
    labels = sorted(set(n_gold) | set(n_pred))
    overall["per_label"] = {lab: _prf(tp[lab], n_gold[lab], n_pred[lab]) for lab in labels}
    overall["sentences"] = n_sentences
    return overall


def _prf(tp: int, n_gold: int, n_pred: int) -> dict:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": n_gold,
            "predicted": n_pred}
