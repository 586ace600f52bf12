"""Building and searching a dense index over a corpus file: the functions behind
``xapps index build`` and ``xapps index search``."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..backbone import load_backbone
from ..corpus import read_records
from ..errors import Errors, IndexMismatchError, InputError
from ..fileio import ensure_writable
from .base import Hit
from .dense import DenseIndex
from .manifest import MANIFEST_NAME, check_replaceable

logger = logging.getLogger("xapps")


@dataclass
class BuildReport:
    path: Path
    count: int
    index_type: str
    encode_seconds: float
    index_seconds: float

    @property
    def docs_per_second(self) -> float:
        total = self.encode_seconds + self.index_seconds
        return self.count / total if total > 0 else float("inf")


def build_index(input_path: str | Path, out: str | Path, *, id_field: str = "id",
                text_field: str = "text", backbone: str = "me5-small", index_type: str = "auto",
                batch_size: int = 64, store_text: bool = True, device: str | None = None,
                progress: bool = True) -> BuildReport:
    """Encode every record of ``input_path`` as an e5 passage and save a dense index to ``out``.

    The input is validated completely before any encoding, and the index folder is written
    atomically, so a bad record or an interruption never leaves a half-written index.
    """
    # Before reading, loading or encoding anything: an unwritable --out must not cost the run.
    ensure_writable(out, fix="Pass an --out folder in a location you can write to.")
    check_replaceable(out, MANIFEST_NAME, "an index")
    records = list(read_records(input_path, id_field=id_field, text_field=text_field))
    if not records:
        raise InputError(Errors.E004.format(path=input_path, reason="it holds no records"))
    model = load_backbone(backbone, device=device)
    start = time.perf_counter()
    vectors = model.encode([r.text for r in records], prompt="passage", batch_size=batch_size,
                           progress=progress)
    encode_seconds = time.perf_counter() - start
    start = time.perf_counter()
    index = DenseIndex(dim=vectors.shape[1], metric="cosine", index_type=index_type,
                       backbone=model.identity)
    metadata = [dict(r.meta, text=r.text) if store_text else dict(r.meta) for r in records]
    index.build([r.id for r in records], vectors, metadata=metadata)
    index.save(out)
    index_seconds = time.perf_counter() - start
    report = BuildReport(Path(out), len(records), index.index_type, encode_seconds, index_seconds)
    logger.info("Indexed %d records in %.1f s (%.1f docs/s) as %s at %s", report.count,
                encode_seconds + index_seconds, report.docs_per_second, report.index_type, out)
    return report


class Searcher:
    """A loaded index with the backbone that encodes its queries."""

    def __init__(self, path: str | Path, *, backbone: str | None = None,
                 device: str | None = None, mmap: bool = False) -> None:
        from . import load_index
        from .manifest import check_compatible, read_manifest

        manifest = read_manifest(path)
        name = backbone or (manifest.backbone or {}).get("name")
        if not name:
            raise IndexMismatchError(Errors.E011.format(
                path=path, reason="its manifest names no backbone to encode queries with; "
                                  "pass --backbone"))
        self.model = load_backbone(name, device=device)
        # Checked before the (possibly large) index is read: the error names both backbones.
        check_compatible(manifest, backbone=self.model.identity, dim=self.model.hidden_size,
                         path=path)
        self.index = load_index(path, mmap=mmap)

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        vectors = self.model.encode(list(queries), prompt="query")
        return self.index.search(np.asarray(vectors, dtype=np.float32), k)

    def text(self, doc_id: str) -> str:
        return (self.index.get_metadata(doc_id) or {}).get("text") or ""


def search_index(path: str | Path, queries: Sequence[str], *, k: int = 10,
                 backbone: str | None = None, device: str | None = None) -> list[list[Hit]]:
    """Encode ``queries`` with the backbone the index was built with and search it."""
    return Searcher(path, backbone=backbone, device=device).search(queries, k)
