"""Multi-vector (late-interaction, ColBERT-style) retrieval on the shared backbone and the
PLAID-style index of :mod:`xapps.index.multivector`."""
from .colbert import ColBERTConfig, ColBERTEncoder
from .retriever import Retriever, build_multivector_index

__all__ = ["ColBERTConfig", "ColBERTEncoder", "Retriever", "build_multivector_index"]
