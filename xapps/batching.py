"""``__call__`` and ``pipe()`` for spaCy components that annotate Docs a batch at a time, so
every xapps component batches the same way (one model call per batch)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from spacy.tokens import Doc
from spacy.util import minibatch


class BatchedComponent:
    """Mixin: the component implements ``_annotate(docs)`` and keeps ``cfg["batch_size"]``."""

    cfg: dict

    def _annotate(self, docs: list[Doc]) -> None:
        raise NotImplementedError

    def __call__(self, doc: Doc) -> Doc:
        self._annotate([doc])
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int | None = None) -> Iterator[Doc]:
        for batch in minibatch(stream, size=batch_size or self.cfg["batch_size"]):
            self._annotate(batch)
            yield from batch
