"""The data that annotation projection reads and writes: labelled character spans on a
source sentence, its translation, and the spans carried onto the translation."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabeledSpan:
    """A labelled [start, end) character span of a text (an entity, a term, an argument)."""

    start: int
    end: int
    label: str


@dataclass
class ProjectionPair:
    """One source sentence with its labelled spans and its translation.

    ``source_words`` / ``target_words`` are word [start, end) character offsets when the
    input fixes a tokenisation (CoNLL): projected spans then start and end on those words,
    and written CoNLL keeps them. ``None`` lets the projector tokenise (spaCy's rules for
    the language, or the backbone's subwords for a language written without spaces).
    """

    source: str
    target: str
    spans: list[LabeledSpan] = field(default_factory=list)
    source_words: list[tuple[int, int]] | None = None
    target_words: list[tuple[int, int]] | None = None
    id: str | None = None
    source_lang: str | None = None
    target_lang: str | None = None
    # "file:line" of the source record, for messages; not part of the pair's value
    where: str | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ProjectedSpan:
    """A span carried onto the target text: its label, the index of the source span it came
    from (in ``ProjectionPair.spans``) and the combined score that chose it."""

    start: int
    end: int
    label: str
    source_index: int
    score: float

    @property
    def labeled(self) -> LabeledSpan:
        return LabeledSpan(self.start, self.end, self.label)


@dataclass
class ProjectionResult:
    """The projection of one pair: spans on ``pair.target``, word offsets used for the
    target, and the source spans that found no counterpart (every score below threshold)."""

    pair: ProjectionPair
    spans: list[ProjectedSpan]
    target_words: list[tuple[int, int]]
    unprojected: list[int] = field(default_factory=list)
