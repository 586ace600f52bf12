"""Entity-linking metrics, as pure functions (pylate's ``scores/``): recall@k of candidate
lists per language (normalisation setting: gold spans given), accuracy@1 after re-ranking,
strict span+concept P/R/F1 (spans from an NER), and an error-analysis dump.

Gold for one mention is a concept id or a set of them (any one counts as correct); ``None``,
``""`` or an empty set means NIL (no concept).
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

from ..errors import Errors, InputError
from .data import Document, atomic_write_text
from .types import Candidate, Mention

DEFAULT_KS = (1, 5, 16, 64)
UNKNOWN_LANG = "und"  # ISO 639-2 "undetermined", for mentions without a language

Gold = str | set[str] | frozenset[str] | None


def _gold_set(gold: Any) -> frozenset[str]:
    if gold is None or gold == "":
        return frozenset()
    if isinstance(gold, str):
        return frozenset((gold,))
    return frozenset(g for g in gold if g)


def _cid(item: Candidate | str) -> str:
    return item.concept_id if isinstance(item, Candidate) else item


def _check_lengths(what: str, **seqs: Sequence) -> int:
    sizes = {name: len(seq) for name, seq in seqs.items()}
    if len(set(sizes.values())) > 1:
        counts = ", ".join(f"{n} {name}" for name, n in sizes.items())
        raise InputError(Errors.E066.format(what=what, counts=counts))
    n = next(iter(sizes.values()))
    if n == 0:
        raise InputError(Errors.E069.format(what=what))
    return n


def _check_ks(ks: Iterable[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise InputError(Errors.E067.format(what="ks", value=ks,
                                            expected="Use positive integers, e.g. (1, 5, 16, 64)."))
    return ks


def recall_at_k(ranked: Sequence[Sequence[str | Candidate]], gold: Sequence[Gold],
                ks: Iterable[int] = DEFAULT_KS) -> dict[int, float]:
    """Share of mentions with a gold concept among the first ``k`` candidates.

    A NIL gold is never found (those mentions only lower recall; filter them out first to
    measure non-NIL recall).

    >>> ranked = [["C1", "C2", "C3"], ["C9", "C4"], ["C7"]]
    >>> recall_at_k(ranked, ["C1", {"C4", "C5"}, "C8"], ks=(1, 2))
    {1: 0.3333333333333333, 2: 0.6666666666666666}
    """
    ks = _check_ks(ks)
    n = _check_lengths("recall_at_k", ranked=ranked, gold=gold)
    hits = {k: 0 for k in ks}
    for cands, g in zip(ranked, gold):
        gold_ids = _gold_set(g)
        rank = next((i for i, c in enumerate(cands, 1) if _cid(c) in gold_ids), None)
        if rank is not None:
            for k in ks:
                hits[k] += rank <= k
    return {k: hits[k] / n for k in ks}


def _by_lang(mentions: Sequence[Mention]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(mentions):
        groups[m.lang or UNKNOWN_LANG].append(i)
    return dict(sorted(groups.items()))


def evaluate_candidates(mentions: Sequence[Mention], ranked: Sequence[Sequence[Candidate | str]],
                        gold: Sequence[Gold], ks: Iterable[int] = DEFAULT_KS) -> dict:
    """Recall@k pooled over all mentions and per ``Mention.lang`` (``"und"`` when unset).

    >>> ms = [Mention("fever", lang="en"), Mention("Fieber", lang="de"), Mention("toux", lang="fr")]
    >>> ranked = [[Candidate("C1", 0.9)], [Candidate("C7", 0.8), Candidate("C1", 0.5)], []]
    >>> r = evaluate_candidates(ms, ranked, ["C1", "C1", "C2"], ks=(1, 2))
    >>> r["per_lang"]
    {'de': {1: 0.0, 2: 1.0}, 'en': {1: 1.0, 2: 1.0}, 'fr': {1: 0.0, 2: 0.0}}
    >>> r["pooled"][2], r["n"], r["n_per_lang"]
    (0.6666666666666666, 3, {'de': 1, 'en': 1, 'fr': 1})
    """
    ks = _check_ks(ks)
    n = _check_lengths("evaluate_candidates", mentions=mentions, ranked=ranked, gold=gold)
    groups = _by_lang(mentions)
    return {
        "pooled": recall_at_k(ranked, gold, ks),
        "per_lang": {lang: recall_at_k([ranked[i] for i in idx], [gold[i] for i in idx], ks)
                     for lang, idx in groups.items()},
        "n": n,
        "n_per_lang": {lang: len(idx) for lang, idx in groups.items()},
    }


def _top1(prediction: Any) -> str | None:
    """A prediction is a concept id, None (NIL) or a ranked list whose head is taken."""
    if prediction is None or isinstance(prediction, str):
        return prediction or None
    if isinstance(prediction, Candidate):
        return prediction.concept_id
    for item in prediction:
        return _cid(item) or None
    return None


def accuracy_at_1(predicted: Sequence[str | None | Sequence[Candidate | str]],
                  gold: Sequence[Gold]) -> float:
    """Share of mentions whose (re-ranked) first prediction is a gold concept.

    A prediction is a concept id, ``None`` for NIL, or a ranked list (its head is taken;
    empty means NIL). NIL is correct only for NIL gold, and wrong for any other.

    >>> accuracy_at_1(["C1", None, [Candidate("C3", 2.0), Candidate("C1", 1.0)], []],
    ...               ["C1", "C2", {"C3", "C4"}, None])
    0.75
    """
    n = _check_lengths("accuracy_at_1", predicted=predicted, gold=gold)
    correct = 0
    for pred, g in zip(predicted, gold):
        top, gold_ids = _top1(pred), _gold_set(g)
        correct += (top in gold_ids) if gold_ids else top is None
    return correct / n


def evaluate_accuracy(mentions: Sequence[Mention],
                      predicted: Sequence[str | None | Sequence[Candidate | str]],
                      gold: Sequence[Gold]) -> dict:
    """:func:`accuracy_at_1` pooled and per ``Mention.lang``.

    >>> ms = [Mention("fever", lang="en"), Mention("Fieber", lang="de")]
    >>> evaluate_accuracy(ms, ["C1", None], ["C1", "C1"])
    {'pooled': 0.5, 'per_lang': {'de': 0.0, 'en': 1.0}, 'n': 2, 'n_per_lang': {'de': 1, 'en': 1}}
    """
    n = _check_lengths("evaluate_accuracy", mentions=mentions, predicted=predicted, gold=gold)
    groups = _by_lang(mentions)
    return {
        "pooled": accuracy_at_1(predicted, gold),
        "per_lang": {lang: accuracy_at_1([predicted[i] for i in idx], [gold[i] for i in idx])
                     for lang, idx in groups.items()},
        "n": n,
        "n_per_lang": {lang: len(idx) for lang, idx in groups.items()},
    }


def strict_prf(predicted: Iterable[tuple[Hashable, ...]],
               gold: Iterable[tuple[Hashable, ...]]) -> dict:
    """Strict P/R/F1 over ``(doc_id, start, end, concept_id)`` tuples: a prediction counts only
    if span and concept both match exactly. Duplicates count once; with nothing predicted
    (or no gold) precision (recall) is 0.0.

    >>> gold = [("d1", 0, 5, "C1"), ("d1", 10, 15, "C2"), ("d2", 3, 8, "C3")]
    >>> pred = [("d1", 0, 5, "C1"), ("d1", 10, 15, "C9"), ("d2", 3, 9, "C3")]
    >>> r = strict_prf(pred, gold)
    >>> (r["tp"], r["fp"], r["fn"], round(r["precision"], 4), round(r["f1"], 4))
    (1, 2, 2, 0.3333, 0.3333)
    """
    pred_set, gold_set = set(predicted), set(gold)
    tp = len(pred_set & gold_set)
    p = tp / len(pred_set) if pred_set else 0.0
    r = tp / len(gold_set) if gold_set else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "tp": tp, "fp": len(pred_set) - tp,
            "fn": len(gold_set) - tp, "n_pred": len(pred_set), "n_gold": len(gold_set)}


def entity_tuples(docs: Iterable[Document]) -> set[tuple[str, int, int, str]]:
    """``(doc_id, start, end, db_id)`` for every concept of every entity, for
    :func:`strict_prf` (a discontinuous entity spans its first start to its last end)."""
    return {(doc.id, e.start, e.end, db_id)
            for doc in docs for e in doc.entities for _, db_id in e.db_ids}


def error_analysis(mentions: Sequence[Mention], ranked: Sequence[Sequence[Candidate]],
                   gold: Sequence[Gold], k: int = 10) -> list[dict]:
    """One row per mention: text, context, gold, the top ``k`` candidates with scores and
    sources, the 1-based rank of the first gold candidate in the full list (None if absent)
    and ``found_by``: generator -> score for the gold candidate (its ``sources``).

    >>> rows = error_analysis([Mention("Fieber", lang="de", id="m1")],
    ...                       [[Candidate("C7", 0.9, {"tfidf": 0.9}),
    ...                         Candidate("C1", 0.5, {"dense": 0.8, "tfidf": 0.2})]], ["C1"], k=1)
    >>> rows[0]["gold_rank"], rows[0]["found_by"], [c["concept_id"] for c in rows[0]["top"]]
    (2, {'dense': 0.8, 'tfidf': 0.2}, ['C7'])
    """
    if not isinstance(k, int) or k < 1:
        raise InputError(Errors.E067.format(what="k", value=k, expected="Use a positive integer."))
    _check_lengths("error_analysis", mentions=mentions, ranked=ranked, gold=gold)
    rows = []
    for m, cands, g in zip(mentions, ranked, gold):
        gold_ids = _gold_set(g)
        rank, hit = next(((i, c) for i, c in enumerate(cands, 1) if _cid(c) in gold_ids),
                         (None, None))
        rows.append({
            "id": m.id, "mention": m.text, "lang": m.lang, "left": m.left, "right": m.right,
            "gold": sorted(gold_ids),
            "top": [_candidate_row(c) for c in cands[:k]],
            "gold_rank": rank,
            "correct": rank == 1 if gold_ids else not cands,
            "found_by": ({name: _num(v) for name, v in sorted(hit.sources.items())}
                         if isinstance(hit, Candidate) else {}),
        })
    return rows


def _candidate_row(c: Candidate | str) -> dict:
    if not isinstance(c, Candidate):
        return {"concept_id": c, "score": None, "sources": {}}
    return {"concept_id": c.concept_id, "score": _num(c.score),
            "sources": {name: _num(s) for name, s in sorted(c.sources.items())}}


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def write_error_analysis(rows: Iterable[dict], path) -> int:
    """Write rows as JSONL (temp file + rename: no half-written dump). Returns the count."""
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)
