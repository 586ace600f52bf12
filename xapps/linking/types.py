"""Plain data passed between the linking stages: mentions in, ranked candidates out."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Mention:
    """A mention to link, with the context the re-ranker reads.

    ``left``/``right`` are the text before and after the mention (already cut to a window
    by the caller); ``lang`` is an ISO code or None.
    """

    text: str
    lang: str | None = None
    left: str = ""
    right: str = ""
    id: str | None = None


@dataclass
class Candidate:
    """One proposed concept. ``sources`` keeps provenance: generator name -> its own score."""

    concept_id: str
    score: float
    sources: dict[str, float] = field(default_factory=dict)

    def as_tuple(self) -> tuple[str, float]:
        return (self.concept_id, float(self.score))
