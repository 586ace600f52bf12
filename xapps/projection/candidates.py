"""Target-span candidates: every run of whole target words up to a length limit, minus the
runs no annotator would mark (edges on punctuation other than a bracket the run closes,
unbalanced brackets)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .words import bracket_depths, closes, is_punctuation, opens


def max_candidate_words(source_words: int, extra: int) -> int:
    """Longest candidate for a source span of ``source_words`` words: twice as long plus
    ``extra`` covers "Cohesion Fund" -> "Fondo de Cohesión" and German/Romance articles."""
    return 2 * source_words + extra


class CandidateGrid:
    """All admissible [start, end) word runs of one target sentence, built once per sentence
    and filtered per source span by length."""

    def __init__(self, words: Sequence[str], max_len: int) -> None:
        n = len(words)
        punct = np.array([is_punctuation(w) for w in words], dtype=bool)
        can_start = ~punct | np.array([opens(w) for w in words], dtype=bool)
        can_end = ~punct | np.array([closes(w) for w in words], dtype=bool)
        depth = bracket_depths(words)
        before = np.concatenate([[0], depth[:-1]]) if n else depth
        starts, ends = [], []
        for k in np.nonzero(can_start)[0]:
            stop = min(n, k + max_len)
            m = np.arange(k + 1, stop + 1)
            # Balanced: depth returns to its level before k and never dips below it.
            running_min = np.minimum.accumulate(depth[k:stop])
            ok = can_end[m - 1] & (depth[m - 1] == before[k]) & (running_min >= before[k])
            starts.append(np.full(int(ok.sum()), k))
            ends.append(m[ok])
        self.starts = np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, np.int64)
        self.ends = np.concatenate(ends).astype(np.int64) if ends else np.zeros(0, np.int64)

    def up_to(self, max_len: int) -> tuple[np.ndarray, np.ndarray]:
        keep = self.ends - self.starts <= max_len
        return self.starts[keep], self.ends[keep]
