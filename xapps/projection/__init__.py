"""Annotation projection across languages (T-Projection-style): labelled spans of a source
sentence carried onto its translation, to make training data for a low-resource language."""
from .evaluate import span_scores
from .io import read_pairs, write_results
from .projector import AnnotationProjector, ProjectionConfig
from .types import LabeledSpan, ProjectedSpan, ProjectionPair, ProjectionResult

__all__ = ["AnnotationProjector", "LabeledSpan", "ProjectedSpan", "ProjectionConfig",
           "ProjectionPair", "ProjectionResult", "read_pairs", "span_scores", "write_results"]
