"""Frozen backbone vectors of news texts, encoded once and kept in the shared index layer.

A news platform scores the same item for thousands of users, and a benchmark re-trains the
head many times over the same news: the backbone pass is the expensive part, so its output
is cached in a :class:`~xapps.index.DenseIndex` keyed by a hash of the exact text encoded
(and the model), so a changed title or a second language is a new entry, never a stale one.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import Errors, InputError

logger = logging.getLogger("xapps")

#: e5 models want a prefix; news-to-news similarity is a symmetric task ("query: ")
PROMPT = "query"


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


class NewsVectorCache:
    """``cache.vectors(texts)`` -> (n, hidden) L2-normalised backbone vectors; texts not
    seen before are encoded (batched, with a progress bar) and added. ``folder`` makes the
    cache persistent: loaded when present, written by :meth:`save`."""

    def __init__(self, backbone: str = "me5-small", folder: str | os.PathLike | None = None,
                 *, batch_size: int = 64, writable: bool = True) -> None:
        self.backbone_name = backbone
        self.folder = Path(folder) if folder is not None else None
        #: False: vectors already in the folder are read, new ones are not written back (a
        #: read-only cache must not stop a command that only reads)
        self.writable = writable
        self.batch_size = batch_size
        self._backbone = None
        self._index = None
        self._dirty = False

    @property
    def backbone(self):
        if self._backbone is None:
            from ..backbone import load_backbone

            self._backbone = load_backbone(self.backbone_name)
        return self._backbone

    @property
    def index(self):
        if self._index is None:
            from ..index import DenseIndex, load_index

            if self.folder is not None and (self.folder / "manifest.json").is_file():
                self._index = load_index(self.folder, backbone=self.backbone)
            else:
                self._index = DenseIndex(self.backbone.hidden_size, metric="cosine",
                                         index_type="flat", backbone=self.backbone)
        return self._index

    @property
    def dim(self) -> int:
        return self.backbone.hidden_size

    def vectors(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(Errors.E196.format(
                    what=f"news text #{i}", value=type(text).__name__,
                    reason="it is not a string", fix="Pass the title (and abstract) as text."))
        keys = [text_key(t) for t in texts]
        index = self.index
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in index and key not in missing:
                missing[key] = text
        if missing:
            logger.info("news: encoding %d new texts with %s", len(missing), self.backbone_name)
            # a bar on a terminal only: logs and pipes get the one line above
            show = progress if progress is not None else (len(missing) > 256
                                                          and sys.stderr.isatty())
            vecs = self.backbone.encode(list(missing.values()), prompt=PROMPT,
                                        batch_size=self.batch_size, progress=show)
            index.add(list(missing), vecs)
            self._dirty = True
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([index.reconstruct(k) for k in keys]).astype(np.float32)

    def save(self) -> None:
        """Write the cache to its folder (atomically), if it has one, may write it, and
        anything changed."""
        if self.folder is not None and self._dirty and self.writable:
            self.index.save(self.folder)
            self._dirty = False


__all__ = ["NewsVectorCache", "PROMPT", "text_key"]
