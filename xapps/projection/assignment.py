"""Choosing one target span per source span, or none, so that chosen spans never overlap.

``global`` maximises the summed gain (score minus a margin) of all choices in a sentence (an
integer program over each source span's best candidates, solved with HiGHS through scipy; in
most sentences the best candidates do not collide and no solver runs); ``greedy`` takes the best-scoring
(source, candidate) pair first, then the next that does not collide, as an ablation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ASSIGNMENTS = ("global", "greedy")


@dataclass(frozen=True)
class Choice:
    source_index: int
    start: int  # target word
    end: int
    score: float


def assign(options: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *, threshold: float,
           margin: float = 0.5, top_k: int = 8, method: str = "global") -> list[Choice]:
    """``options[i]`` = (starts, ends, scores) of source span i's candidates. Candidates
    scoring below ``threshold`` are never chosen; a span whose every candidate does is left
    unprojected. Where the best candidates collide, ``global`` maximises the summed
    ``score - margin`` of the choices."""
    pool: list[Choice] = []
    for i, (starts, ends, scores) in enumerate(options):
        keep = np.nonzero(scores >= threshold)[0]
        best = keep[np.argsort(-scores[keep], kind="stable")[:top_k]]
        pool.extend(Choice(i, int(starts[j]), int(ends[j]), float(scores[j])) for j in best)
    if not pool:
        return []
    if method == "greedy":
        return _greedy(pool)
    firsts = {}
    for c in pool:  # pool is sorted by score within each source
        firsts.setdefault(c.source_index, c)
    tops = list(firsts.values())
    if not _any_overlap(tops):
        return tops
    return _integer_program(pool, margin)


def _greedy(pool: list[Choice]) -> list[Choice]:
    chosen: list[Choice] = []
    done: set[int] = set()
    for c in sorted(pool, key=lambda c: (-c.score, c.source_index, c.start)):
        if c.source_index in done or any(_overlap(c, d) for d in chosen):
            continue
        chosen.append(c)
        done.add(c.source_index)
    return chosen


def _integer_program(pool: list[Choice], margin: float) -> list[Choice]:
    from scipy.optimize import Bounds, LinearConstraint, milp

    n = len(pool)
    n_sources = max(c.source_index for c in pool) + 1
    n_words = max(c.end for c in pool)
    a = np.zeros((n_sources + n_words, n))
    for j, c in enumerate(pool):
        a[c.source_index, j] = 1.0  # at most one span per source span
        a[n_sources + c.start:n_sources + c.end, j] = 1.0  # at most one span per word
    # Gain over the margin: a choice adds to the objective only when it is more likely right
    # than wrong, so the program never splits "Sri Lanka" into two doubtful spans to place
    # two source spans where one confident span was.
    result = milp(-(np.array([c.score for c in pool]) - margin), integrality=np.ones(n),
                  bounds=Bounds(0, 1), constraints=LinearConstraint(a, 0, 1))
    if result.x is None:  # cannot happen for this feasible 0/1 program; stay safe
        return _greedy(pool)
    return [c for c, x in zip(pool, result.x) if x > 0.5]


def _overlap(a: Choice, b: Choice) -> bool:
    return a.start < b.end and b.start < a.end


def _any_overlap(choices: list[Choice]) -> bool:
    ordered = sorted(choices, key=lambda c: c.start)
    return any(x.end > y.start for x, y in zip(ordered, ordered[1:]))


def alignment_rule(links: np.ndarray, spans: list[tuple[int, int]]) -> list[Choice]:
    """The word-aligner projection rule (the baseline T-Projection compares against): each
    source span goes to the target words aligned to any of its words, from the first to the
    last (gaps filled); no aligned word -> dropped; overlaps resolved longer first, then
    earlier. Score 1.0 for every kept span."""
    proposals = []
    for i, (s, e) in enumerate(spans):
        hit = np.nonzero(links[s:e].sum(axis=0))[0] if e > s else np.zeros(0, np.int64)
        if len(hit):
            proposals.append(Choice(i, int(hit.min()), int(hit.max()) + 1, 1.0))
    chosen: list[Choice] = []
    for c in sorted(proposals, key=lambda c: (-(c.end - c.start), c.start)):
        if not any(_overlap(c, d) for d in chosen):
            chosen.append(c)
    return chosen
