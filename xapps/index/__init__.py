"""Vector indexes on FAISS: a dense index and a PLAID-style multi-vector (late-interaction)
index.

Both save to a folder with a JSON manifest and load through :func:`load_index`, which picks
the class from the manifest's ``kind`` via the ``xapps.registry.indexes`` registry.
"""
from __future__ import annotations

import os
from typing import Any

from .base import Hit, VectorIndex, registered_index
from .dense import DenseIndex
from .manifest import IndexManifest, atomic_directory, check_compatible, read_manifest
from .multivector import MultiVectorIndex, exact_search, maxsim

__all__ = ["DenseIndex", "Hit", "IndexManifest", "MultiVectorIndex", "VectorIndex",
           "atomic_directory", "check_compatible", "exact_search", "load_index", "maxsim",
           "read_manifest"]


def load_index(path: str | os.PathLike[str], *, backbone: Any = None, dim: int | None = None,
               mmap: bool = False, verify: bool = True) -> VectorIndex:
    """Load any saved xapps index; the manifest's ``kind`` picks the class."""
    manifest = read_manifest(path)
    cls = registered_index(manifest.kind, path)
    return cls.load(path, backbone=backbone, dim=dim, mmap=mmap, verify=verify)
