"""What every xapps vector index shares: string ids, metadata, the manifest and atomic saves.

FAISS only knows int64 ids, and only some index types can delete. The base class owns the
mapping from the caller's string ids to int64 internal ids, the per-id metadata and the
folder format, so that a dense index (one vector per id) and a multi-vector index (many token
vectors per id, ColBERT/PLAID style) differ only in how they store and score vectors.

Folder layout written by :meth:`VectorIndex.save`::

    manifest.json   kind, dim, metric, backbone, counts, versions, sha256 of every other file
    ids.json        {"ids": [...], "internal": [...], "next": n}   (no pickle anywhere)
    meta.jsonl      one {"id": ..., "meta": {...}} per id that has metadata
    ...             the subclass's own files (e.g. index.faiss)
"""
from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, NamedTuple, Sequence, TypeVar

import catalogue
import numpy as np

from ..errors import Errors, IndexMismatchError, InputError, XappsError
from ..registry import indexes
from .manifest import (
    MANIFEST_NAME,
    METRICS,
    IndexManifest,
    atomic_directory,
    check_compatible,
    checksum_folder,
    normalize_backbone,
    read_manifest,
    utc_now,
    verify_files,
    write_manifest,
)

logger = logging.getLogger(__name__)

IDS_FILE = "ids.json"
META_FILE = "meta.jsonl"

_T = TypeVar("_T", bound="VectorIndex")


class Hit(NamedTuple):
    """One search result: the caller's id and a plain-float score (higher is closer)."""

    id: str
    score: float


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


class VectorIndex(ABC):
    """Abstract base of the dense and multi-vector indexes.

    Subclasses set ``kind`` (the registry name recorded in the manifest), store vectors
    under the int64 ids handed out by :meth:`_reserve`, and implement ``add``, ``search``,
    ``index_type``, ``_remove_internal``, ``_write_payload`` and ``_from_saved``.
    """

    kind: ClassVar[str] = ""

    def __init__(self, dim: int, metric: str = "cosine", *, backbone: Any = None) -> None:
        name = type(self).__name__
        if not _is_int(dim) or int(dim) < 1:
            raise InputError(Errors.E019.format(
                method=name, what=f"dim={dim!r}", reason="it is not a positive integer",
                fix="Pass the vector size of the backbone, e.g. 384 for me5-small."))
        if metric not in METRICS:
            raise InputError(Errors.E019.format(
                method=name, what=f"metric={metric!r}", reason=f"expected one of {list(METRICS)}",
                fix="Use 'cosine' (vectors are L2-normalised) or 'ip' (raw inner product)."))
        self._dim = int(dim)
        self._metric = metric
        self._backbone = normalize_backbone(backbone)
        self._id_to_int: dict[str, int] = {}
        self._int_to_id: dict[int, str] = {}
        self._next_int = 0
        self._meta: dict[str, dict[str, Any]] = {}
        self._files: dict[str, str] = {}
        self._created_at: str | None = None
        self._path: Path | None = None
        self._mmap = False

    # -- what the index is -------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def normalized(self) -> bool:
        """Whether stored and query vectors are L2-normalised (cosine via inner product)."""
        return self._metric == "cosine"

    @property
    def backbone(self) -> dict[str, str | None] | None:
        return dict(self._backbone) if self._backbone else None

    @property
    def mmap(self) -> bool:
        """True when the vectors are memory-mapped from disk; such an index is read-only."""
        return self._mmap

    @property
    @abstractmethod
    def index_type(self) -> str:
        """The storage layout, e.g. "flat", "hnsw", "ivfpq" or "plaid"."""

    @property
    def manifest(self) -> IndexManifest:
        """The manifest describing the current state; ``files`` is filled only while the
        index is unchanged since it was saved or loaded."""
        return IndexManifest(
            kind=self.kind, dim=self._dim, metric=self._metric, normalized=self.normalized,
            index_type=self.index_type, params=self._manifest_params(),
            backbone=self.backbone, count=len(self), files=dict(self._files),
            created_at=self._created_at or utc_now(), extra=self._manifest_extra())

    def __len__(self) -> int:
        return len(self._id_to_int)

    def __contains__(self, id: object) -> bool:
        return isinstance(id, str) and id in self._id_to_int

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(dim={self._dim}, metric={self._metric!r}, "
                f"index_type={self.index_type!r}, count={len(self)})")

    def ids(self) -> list[str]:
        """Ids in insertion order."""
        return list(self._id_to_int)

    def get_metadata(self, id: str) -> dict[str, Any]:
        """A copy of the metadata stored for ``id`` ({} if none); KeyError if ``id`` is absent."""
        if id not in self._id_to_int:
            raise KeyError(f"Id {id!r} is not in the index")
        return json.loads(json.dumps(self._meta.get(id, {})))

    # -- what subclasses implement -----------------------------------------------------
    @abstractmethod
    def add(self, ids: Sequence[str], vectors: Any,
            metadata: Sequence[Mapping[str, Any] | None] | None = None) -> None:
        """Add new ids with their vectors (and optional metadata)."""

    @abstractmethod
    def search(self, queries: Any, k: int = 10) -> list[list[Hit]]:
        """Best ``k`` hits per query, best first."""

    @abstractmethod
    def _remove_internal(self, internal: np.ndarray) -> None:
        """Drop the vectors stored under these int64 ids."""

    @abstractmethod
    def _write_payload(self, folder: Path) -> None:
        """Write the subclass's own files (vectors, FAISS index) into ``folder``."""

    @classmethod
    @abstractmethod
    def _from_saved(cls: type[_T], manifest: IndexManifest, folder: Path, *,
                    mmap: bool) -> _T:
        """Construct an index from a manifest and read the subclass's own files."""

    def _manifest_params(self) -> dict[str, Any]:
        return {}

    def _manifest_extra(self) -> dict[str, Any]:
        return {}

    def _before_save(self) -> None:
        """Hook to tidy the in-memory state before writing (e.g. compact tombstones)."""

    def _after_load(self, manifest: IndexManifest, folder: Path) -> None:
        """Hook to cross-check the subclass's files against the loaded ids."""

    def _changed(self) -> None:
        """Called after every mutation: saved checksums no longer describe the index."""
        self._files = {}

    # -- shared id and metadata bookkeeping ----------------------------------------------
    def _check_writable(self, action: str) -> None:
        if self._mmap:
            raise XappsError(Errors.E017.format(
                path=self._path, reason=f"it was loaded with mmap=True and is read-only, so "
                                        f"{action} is not possible",
                fix="Load it with mmap=False to add or remove ids, then save it again."))

    def _check_new_ids(self, ids: str | Iterable[str]) -> list[str]:
        """Validate ids to add without changing anything (so a bad batch adds nothing)."""
        ids = [ids] if isinstance(ids, str) else list(ids)
        seen: set[str] = set()
        for row, id in enumerate(ids):
            if not isinstance(id, str) or not id:
                raise InputError(Errors.E019.format(
                    method="add", what=f"id {id!r} at row {row}",
                    reason="ids must be non-empty strings",
                    fix="Convert ids with str() or drop the row."))
            if id in self._id_to_int or id in seen:
                raise InputError(Errors.E016.format(id=id))
            seen.add(id)
        return ids

    def _check_metadata(self, ids: Sequence[str],
                        metadata: Sequence[Mapping[str, Any] | None] | None,
                        ) -> list[dict[str, Any] | None]:
        """JSON-normalised copies of the metadata, so what is stored equals what loads."""
        if metadata is None:
            return [None] * len(ids)
        if isinstance(metadata, Mapping):
            metadata = [metadata] if len(ids) == 1 else metadata
        metadata = list(metadata)
        if len(metadata) != len(ids):
            row = min(len(ids), len(metadata))
            what = f"metadata for id {ids[row]!r}" if row < len(ids) else "the metadata list"
            raise InputError(Errors.E019.format(
                method="add", what=what,
                reason=f"{len(ids)} ids but {len(metadata)} metadata entries were given",
                fix="Pass one dict (or None) per id, in the order of the ids."))
        out: list[dict[str, Any] | None] = []
        for id, meta in zip(ids, metadata):
            if meta is None:
                out.append(None)
                continue
            reason = None
            if not isinstance(meta, Mapping):
                reason = f"it is a {type(meta).__name__}, not a dict"
            elif not all(isinstance(key, str) for key in meta):
                reason = "its keys must be strings"
            else:
                try:
                    meta = json.loads(json.dumps(dict(meta), ensure_ascii=False,
                                                 allow_nan=False))
                except (TypeError, ValueError) as err:
                    reason = f"it is not JSON-serialisable ({err})"
            if reason:
                raise InputError(Errors.E019.format(
                    method="add", what=f"metadata for id {id!r}", reason=reason,
                    fix="Pass a dict of str keys and JSON values (str, number, bool, None, "
                        "list, dict)."))
            out.append(meta or None)
        return out

    def _reserve(self, n: int) -> np.ndarray:
        """The next ``n`` int64 ids; nothing is committed until :meth:`_commit`."""
        return np.arange(self._next_int, self._next_int + n, dtype=np.int64)

    def _commit(self, ids: Sequence[str], internal: np.ndarray,
                metadata: Sequence[dict[str, Any] | None]) -> None:
        for id, key, meta in zip(ids, internal.tolist(), metadata):
            self._id_to_int[id] = key
            self._int_to_id[key] = id
            if meta:
                self._meta[id] = meta
        if len(internal):
            self._next_int = max(self._next_int, int(internal.max()) + 1)
        self._changed()

    def _internal(self, id: str) -> int:
        try:
            return self._id_to_int[id]
        except (KeyError, TypeError):
            raise KeyError(f"Id {id!r} is not in the index") from None

    def labels(self, ids: Sequence[str]) -> np.ndarray:
        """The int64 key under which each id is stored, as :meth:`search_arrays` reports it;
        stable until the id is removed (saving and loading keep it)."""
        return np.array([self._internal(i) for i in ids], dtype=np.int64)

    def remove(self, ids: str | Iterable[str]) -> int:
        """Remove ids (unknown ones are skipped) and return how many were removed."""
        self._check_writable("remove")
        ids = [ids] if isinstance(ids, str) else list(ids)
        known = list(dict.fromkeys(i for i in ids if i in self))
        if len(known) < len(ids):
            logger.debug("remove: %d of %d ids were not in the index", len(ids) - len(known),
                         len(ids))
        if not known:
            return 0
        internal = np.array([self._id_to_int[i] for i in known], dtype=np.int64)
        self._remove_internal(internal)
        for id, key in zip(known, internal.tolist()):
            del self._id_to_int[id]
            del self._int_to_id[key]
            self._meta.pop(id, None)
        self._changed()
        return len(known)

    # -- saving and loading ------------------------------------------------------------
    @staticmethod
    def _check_save_target(folder: Path) -> None:
        """Saving replaces the target folder, so only ever replace an xapps index."""
        reason = None
        if folder.is_file() or (folder.is_symlink() and not folder.is_dir()):
            reason = "it is a file"
        elif folder.is_dir() and any(folder.iterdir()) and not (folder / MANIFEST_NAME).is_file():
            reason = f"it is a non-empty folder without {MANIFEST_NAME}, so not an xapps index"
        if reason:
            raise InputError(Errors.E017.format(
                path=folder, reason=reason,
                fix="Save to a new or empty folder, or delete that one first."))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the index folder atomically: a failed save leaves any older index intact."""
        folder = Path(path)
        self._check_save_target(folder)
        self._before_save()
        manifest = self.manifest
        with atomic_directory(folder) as tmp:
            self._write_payload(tmp)
            self._write_ids(tmp)
            self._write_metadata(tmp)
            manifest.files = checksum_folder(tmp)
            manifest.created_at = utc_now()
            write_manifest(manifest, tmp)
        self._files = dict(manifest.files)
        self._created_at = manifest.created_at
        logger.info("Saved %s index (%s, %d ids) to %s", self.kind, self.index_type, len(self),
                    folder)
        return folder

    def _write_ids(self, folder: Path) -> None:
        data = {"ids": list(self._id_to_int), "internal": list(self._id_to_int.values()),
                "next": self._next_int}
        (folder / IDS_FILE).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")

    def _write_metadata(self, folder: Path) -> None:
        with open(folder / META_FILE, "w", encoding="utf-8") as out:
            for id in self._id_to_int:
                if id in self._meta:
                    out.write(json.dumps({"id": id, "meta": self._meta[id]},
                                         ensure_ascii=False) + "\n")

    @classmethod
    def load(cls: type[_T], path: str | os.PathLike[str], *, backbone: Any = None,
             dim: int | None = None, mmap: bool = False, verify: bool = True) -> _T:
        """Load a saved index, refusing one built for another backbone or dimension.

        ``verify`` re-hashes every file against the manifest (reads each file once);
        ``mmap`` maps the vectors from disk instead of reading them into memory.
        """
        folder = Path(path)
        manifest = read_manifest(folder)
        if manifest.kind != cls.kind:
            if not cls.kind:  # VectorIndex.load: dispatch like load_index
                return registered_index(manifest.kind, folder).load(  # type: ignore[return-value]
                    folder, backbone=backbone, dim=dim, mmap=mmap, verify=verify)
            raise IndexMismatchError(Errors.E011.format(
                path=folder, reason=f"it is a {manifest.kind!r} index, not {cls.kind!r}; load "
                                    f"it with xapps.index.load_index"))
        check_compatible(manifest, backbone, dim, path=folder)
        if verify:
            verify_files(manifest, folder)
        index = cls._from_saved(manifest, folder, mmap=mmap)
        index._path = folder
        index._read_ids(folder)
        index._read_metadata(folder)
        if len(index) != manifest.count:
            raise IndexMismatchError(Errors.E011.format(
                path=folder, reason=f"{IDS_FILE} holds {len(index)} ids but the manifest "
                                    f"records count {manifest.count}"))
        index._after_load(manifest, folder)
        index._files = dict(manifest.files)
        index._created_at = manifest.created_at
        logger.info("Loaded %s index (%s, %d ids%s) from %s", manifest.kind,
                    manifest.index_type, len(index), ", memory-mapped" if index._mmap else "",
                    folder)
        return index

    def _read_ids(self, folder: Path) -> None:
        try:
            data = json.loads((folder / IDS_FILE).read_text(encoding="utf-8"))
            ids, internal, nxt = data["ids"], data["internal"], data["next"]
            if (len(ids) != len(internal) or len(set(ids)) != len(ids)
                    or len(set(internal)) != len(internal)
                    or not all(isinstance(i, str) for i in ids)
                    or not all(_is_int(i) and 0 <= i < nxt for i in internal)):
                raise ValueError("ids and internal ids must be unique and aligned")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise IndexMismatchError(Errors.E011.format(
                path=folder, reason=f"{IDS_FILE} is missing or malformed ({err})")) from None
        self._id_to_int = dict(zip(ids, internal))
        self._int_to_id = dict(zip(internal, ids))
        self._next_int = int(nxt)

    def _read_metadata(self, folder: Path) -> None:
        file = folder / META_FILE
        self._meta = {}
        if not file.exists():
            return
        with open(file, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    id, meta = record["id"], record["meta"]
                    if id not in self._id_to_int or not isinstance(meta, dict):
                        raise ValueError(f"unknown id {id!r} or non-object meta")
                except (ValueError, KeyError, TypeError) as err:
                    raise IndexMismatchError(Errors.E011.format(
                        path=folder, reason=f"{META_FILE}:{number} is malformed ({err})")
                    ) from None
                self._meta[id] = meta


def registered_index(kind: str, path: str | os.PathLike[str] = "<index>") -> type[VectorIndex]:
    """The index class registered under ``kind`` (e.g. "dense", "multivector")."""
    # Importing the modules registers "dense" and "multivector" even if only base was imported.
    from . import dense, multivector  # noqa: F401

    try:
        return indexes.get(kind)
    except catalogue.RegistryError:
        known = sorted(indexes.get_all())
        raise IndexMismatchError(Errors.E011.format(
            path=path, reason=f"its kind {kind!r} is not a registered index kind "
                              f"(known: {known}); install the package that provides it")
        ) from None
