"""Single-vector FAISS index with string ids: flat, HNSW or IVF-PQ, cosine or inner product.

Every type stores int64 ids inside FAISS (``IndexIDMap2`` around flat and HNSW, native ids
in IVF-PQ), so results map back to the caller's strings without a positional side table.
HNSW cannot delete, so removals there become persisted tombstones that search over-fetches
past, and a save rebuilds the graph once they exceed 20% of its vectors.
"""
from __future__ import annotations

import json
import logging
import math
import os
import weakref
from pathlib import Path
from typing import Any, Mapping, Sequence

import faiss
import numpy as np

from ..errors import Errors, IndexMismatchError, InputError
from ..registry import indexes
from .base import Hit, VectorIndex, _is_int
from .manifest import IndexManifest

logger = logging.getLogger(__name__)

INDEX_FILE = "index.faiss"
TOMBSTONES_FILE = "tombstones.json"
INDEX_TYPES = ("auto", "flat", "hnsw", "ivfpq")
#: "auto" picks flat below this many vectors (exact search is fast enough there) ...
FLAT_MAX = 50_000
#: ... HNSW below this (graph fits in memory), IVF-PQ above (compressed codes).
HNSW_MAX = 1_000_000
#: Share of tombstoned HNSW vectors above which save() rebuilds the graph.
COMPACT_RATIO = 0.2
HNSW_DEFAULTS = {"M": 32, "ef_construction": 80, "ef_search": 64}
IVFPQ_DEFAULTS = {"nbits": 8, "nprobe": 16}
IVFPQ_KEYS = ("nlist", "m", "nbits", "nprobe", "train_size")
_PARAM_KEYS = frozenset(HNSW_DEFAULTS) | frozenset(IVFPQ_KEYS)
_GPU_TYPES = ("flat", "ivfpq")  # FAISS has no GPU HNSW


def _pq_m(dim: int) -> int:
    """Sub-quantizers for PQ: the largest divisor of ``dim`` giving sub-vectors of >= 4 dims,
    at most 64 (8-bit codes then take ``m`` bytes per vector)."""
    cap = max(1, min(64, dim // 4))
    return max(m for m in range(1, cap + 1) if dim % m == 0)


def _l2_normalize(x: np.ndarray, method: str, ids: Sequence[str] | None = None) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if len(zero):
        row = int(zero[0])
        what = f"row {row}" + (f" (id {ids[row]!r})" if ids is not None else "")
        raise InputError(Errors.E019.format(
            method=method, what=what, reason="it is a zero vector, which has no direction for "
                                             "cosine similarity",
            fix="Drop that row, or use metric='ip'."))
    return (x / norms).astype(np.float32, copy=False)


@indexes.register("dense")
class DenseIndex(VectorIndex):
    """One vector per id in a FAISS index.

    ``metric="cosine"`` L2-normalises vectors on add and queries on search and ranks by inner
    product (scores in [-1, 1]); ``"ip"`` uses the raw inner product. ``index_type="auto"``
    picks flat / HNSW / IVF-PQ from the size of the first batch (see :meth:`build`).
    ``params``: HNSW ``M``, ``ef_construction``, ``ef_search``; IVF-PQ ``nlist``, ``m``,
    ``nbits``, ``nprobe``, ``train_size``.
    """

    kind = "dense"

    def __init__(self, dim: int, metric: str = "cosine", index_type: str = "auto",
                 params: Mapping[str, Any] | None = None, backbone: Any = None) -> None:
        super().__init__(dim, metric, backbone=backbone)
        if index_type not in INDEX_TYPES:
            raise InputError(Errors.E015.format(value=index_type, options=list(INDEX_TYPES)))
        self._user_params = self._check_params(params)
        m = self._user_params.get("m")
        if m is not None and self.dim % m:
            options = [d for d in range(1, self.dim + 1) if self.dim % d == 0]
            raise InputError(Errors.E019.format(
                method="DenseIndex", what=f"params['m']={m}",
                reason=f"the PQ sub-quantizer count must divide dim {self.dim}",
                fix=f"Use one of {options}."))
        self._type: str | None = None if index_type == "auto" else index_type
        self._params: dict[str, Any] = {}
        self._index: Any = None  # the CPU index; the only one ever saved
        self._tombstones: set[int] = set()
        self._tomb_array: np.ndarray | None = None
        self._searcher: tuple[Any, bool] | None = None
        self._device_msg: str | None = None
        self._source_fd: int | None = None
        if self._type in ("flat", "hnsw"):
            self._params = self._resolve_params(self._type, 0)
            self._index = self._new_index(self._type, self._params)

    # -- configuration -----------------------------------------------------------------
    @staticmethod
    def _check_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
        params = dict(params or {})
        for key, value in params.items():
            if key not in _PARAM_KEYS:
                raise InputError(Errors.E019.format(
                    method="DenseIndex", what=f"params[{key!r}]", reason="unknown parameter",
                    fix=f"Use only {sorted(_PARAM_KEYS)}."))
            if value is not None and (not _is_int(value) or value < 1):
                raise InputError(Errors.E019.format(
                    method="DenseIndex", what=f"params[{key!r}]={value!r}",
                    reason="it must be a positive integer", fix="Pass a positive integer."))
        return params

    def _auto_type(self, n: int) -> str:
        kind = "flat" if n < FLAT_MAX else "hnsw" if n < HNSW_MAX else "ivfpq"
        logger.info("index_type='auto' chose %s for %d vectors", kind, n)
        return kind

    def _resolve_params(self, kind: str, n: int) -> dict[str, Any]:
        user = {k: v for k, v in self._user_params.items() if v is not None}
        if kind == "hnsw":
            return {**HNSW_DEFAULTS, **{k: user[k] for k in HNSW_DEFAULTS if k in user}}
        if kind != "ivfpq":
            return {}
        nbits = user.get("nbits", IVFPQ_DEFAULTS["nbits"])
        nlist = user.get("nlist", max(1, int(round(4 * math.sqrt(max(n, 1))))))
        m = user.get("m", _pq_m(self.dim))
        # FAISS asks for >= 39 training points per centroid; cap so large builds stay quick.
        train = user.get("train_size", max(39 * nlist, 39 * 2 ** nbits))
        return {"nlist": nlist, "m": m, "nbits": nbits, "train_size": train,
                "nprobe": min(user.get("nprobe", IVFPQ_DEFAULTS["nprobe"]), nlist)}

    def _new_index(self, kind: str, params: Mapping[str, Any]) -> Any:
        d = self.dim
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(d, params["M"], faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = params["ef_construction"]
            hnsw.hnsw.efSearch = params["ef_search"]
            return faiss.IndexIDMap2(hnsw)
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFPQ(quantizer, d, params["nlist"], params["m"], params["nbits"],
                               faiss.METRIC_INNER_PRODUCT)
        ivf.nprobe = params["nprobe"]
        return ivf

    def _create_for(self, x: np.ndarray) -> None:
        """Create (and for IVF-PQ train) the FAISS index once the first batch is known."""
        n = len(x)
        kind = self._type or self._auto_type(n)
        params = self._resolve_params(kind, n)
        index = self._new_index(kind, params)
        if kind == "ivfpq":
            need = max(params["nlist"], 2 ** params["nbits"])
            if n < need:
                why = (f"nlist={params['nlist']} coarse centroids and 2**nbits="
                       f"{2 ** params['nbits']} codes per sub-quantizer")
                raise InputError(Errors.E018.format(need=need, why=why, found=n))
            sample = x
            if n > params["train_size"]:
                rows = np.random.default_rng(0).choice(n, params["train_size"], replace=False)
                sample = x[np.sort(rows)]
            logger.info("Training IVF-PQ (nlist=%d, m=%d, nbits=%d) on %d vectors",
                        params["nlist"], params["m"], params["nbits"], len(sample))
            index.train(sample)
        self._type, self._params, self._index = kind, params, index

    @property
    def index_type(self) -> str:
        """"flat", "hnsw" or "ivfpq"; "auto" until the first batch decides."""
        return self._type or "auto"

    @property
    def params(self) -> dict[str, Any]:
        """Resolved type parameters once the FAISS index exists, the given ones before."""
        return dict(self._params) if self._index is not None else dict(self._user_params)

    @property
    def nprobe(self) -> int | None:
        """IVF lists visited per query (IVF-PQ only): higher is slower and more accurate."""
        return self._knob("nprobe", "ivfpq")

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._set_knob("nprobe", value, "ivfpq")

    @property
    def ef_search(self) -> int | None:
        """HNSW candidate list size per query (HNSW only): higher is slower and more accurate."""
        return self._knob("ef_search", "hnsw")

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._set_knob("ef_search", value, "hnsw")

    def _knob(self, name: str, owner: str) -> int | None:
        if self._type not in (None, owner):
            return None
        return self.params.get(name)

    def _set_knob(self, name: str, value: int, owner: str) -> None:
        if not _is_int(value) or value < 1:
            raise InputError(Errors.E019.format(
                method=name, what=f"{name}={value!r}", reason="it must be a positive integer",
                fix="Pass a positive integer."))
        if self._type not in (None, owner):
            raise InputError(Errors.E019.format(
                method=name, what=f"{name}={value!r}",
                reason=f"it applies to {owner} indexes, this one is {self._type}",
                fix="Set nprobe on IVF-PQ and ef_search on HNSW indexes only."))
        if self._index is None:
            self._user_params[name] = int(value)
            return
        self._params[name] = int(value)
        if owner == "ivfpq":
            self._index.nprobe = int(value)
        else:
            faiss.downcast_index(self._index.index).hnsw.efSearch = int(value)

    # -- adding and removing -----------------------------------------------------------
    def _as_matrix(self, vectors: Any, method: str,
                   ids: Sequence[str] | None = None) -> np.ndarray:
        try:
            x = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise InputError(Errors.E019.format(
                method=method, what="vectors", reason=f"they are not a numeric array ({err})",
                fix="Pass a float array of shape (n, dim).")) from None
        if x.ndim == 1:
            x = x.reshape(1, -1) if x.size else x.reshape(0, self.dim)
        if x.ndim != 2:
            raise InputError(Errors.E019.format(
                method=method, what=f"vectors of shape {x.shape}",
                reason="expected a 2-D array (n, dim)", fix="Stack the vectors into one array."))
        if x.shape[1] != self.dim:
            raise InputError(Errors.E013.format(found=x.shape[1], expected=self.dim))
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if len(bad):
            row = int(bad[0])
            what = f"row {row}" + (f" (id {ids[row]!r})" if ids is not None and row < len(ids)
                                   else "")
            raise InputError(Errors.E019.format(
                method=method, what=what, reason="it contains NaN or infinity",
                fix="Fix or drop that row."))
        if self.normalized and len(x):
            x = _l2_normalize(x, method, ids)
        return np.ascontiguousarray(x, dtype=np.float32)

    def add(self, ids: str | Sequence[str], vectors: Any,
            metadata: Sequence[Mapping[str, Any] | None] | None = None) -> None:
        """Add one vector per new id. Everything is validated first, so a bad batch adds
        nothing; with ``index_type="auto"`` the first batch's size picks the type."""
        self._check_writable("add")
        ids = self._check_new_ids(ids)
        x = self._as_matrix(vectors, "add", ids)
        if len(ids) != len(x):
            raise InputError(Errors.E014.format(n=len(ids), m=len(x)))
        metas = self._check_metadata(ids, metadata)
        if not ids:
            return
        if self._index is None:
            self._create_for(x)
        internal = self._reserve(len(ids))
        self._index.add_with_ids(x, internal)
        self._commit(ids, internal, metas)

    def build(self, ids: Sequence[str], vectors: Any,
              metadata: Sequence[Mapping[str, Any] | None] | None = None) -> DenseIndex:
        """Fill an empty index in one call, so "auto" sees the full corpus size when it
        chooses the type (and IVF-PQ trains on a sample of all of it)."""
        ntotal = self._index.ntotal if self._index is not None else 0
        if len(self) or ntotal:
            raise InputError(Errors.E019.format(
                method="build", what="the index", reason=f"it already holds {ntotal} vectors",
                fix="Use add() to extend it, or build a new DenseIndex."))
        self.add(ids, vectors, metadata)
        return self

    def _remove_internal(self, internal: np.ndarray) -> None:
        if self._type == "hnsw":
            self._tombstones.update(internal.tolist())
            self._tomb_array = None
        else:
            self._index.remove_ids(internal)

    def _changed(self) -> None:
        super()._changed()
        self._searcher = None

    def compact(self) -> int:
        """Rebuild an HNSW graph without its tombstoned vectors; returns how many were
        dropped (0 for flat and IVF-PQ, which delete in place)."""
        if self._type != "hnsw" or not self._tombstones:
            return 0
        self._check_writable("compact")
        labels = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = faiss.downcast_index(self._index.index).reconstruct_n(0, len(labels))
        keep = ~np.isin(labels, self._tombstone_array())
        index = self._new_index("hnsw", self._params)
        if keep.any():
            index.add_with_ids(np.ascontiguousarray(vectors[keep]), labels[keep])
        dropped = len(self._tombstones)
        self._index, self._tombstones, self._tomb_array = index, set(), None
        self._changed()
        logger.info("Compacted HNSW index: dropped %d removed vectors, %d remain", dropped,
                    index.ntotal)
        return dropped

    def _tombstone_array(self) -> np.ndarray:
        if self._tomb_array is None:
            self._tomb_array = np.array(sorted(self._tombstones), dtype=np.int64)
        return self._tomb_array

    def reconstruct(self, id: str) -> np.ndarray:
        """The stored vector of ``id`` (normalised for cosine; approximate for IVF-PQ,
        decoded from its PQ code)."""
        key = self._internal(id)
        if self._type == "ivfpq" and self._index.direct_map.type == faiss.DirectMap.NoMap:
            self._index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return np.asarray(self._index.reconstruct(key), dtype=np.float32)

    # -- searching ---------------------------------------------------------------------
    def _search_target(self) -> tuple[Any, bool]:
        """The index to search and whether it is on GPU, decided at call time: FAISS on
        every GPU it sees for flat and IVF-PQ, on CPU otherwise."""
        if self._searcher is not None:
            return self._searcher
        target, on_gpu = self._index, False
        num_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        message = "FAISS on CPU"
        if num_gpus > 0 and self._type in _GPU_TYPES and not self._mmap:
            try:
                target, on_gpu = faiss.index_cpu_to_all_gpus(self._index), True
                message = f"FAISS on {num_gpus} GPU(s)"
            except (AttributeError, RuntimeError) as err:
                logger.warning("FAISS sees %d GPU(s) but could not move the %s index there "
                               "(%s); searching on CPU", num_gpus, self._type, err)
        elif num_gpus > 0:
            message += (" (memory-mapped index)" if self._mmap
                        else f" ({self._type} has no FAISS GPU version)")
        if message != self._device_msg:
            logger.info(message)
            self._device_msg = message
        self._searcher = (target, on_gpu)
        return self._searcher

    def _search_params(self, target: Any, on_gpu: bool, nprobe: int | None,
                       ef_search: int | None) -> Any:
        if self._type == "ivfpq":
            value = int(nprobe or self._params["nprobe"])
            if not on_gpu:
                return faiss.SearchParametersIVF(nprobe=value)
            if hasattr(faiss, "GpuParameterSpace"):
                faiss.GpuParameterSpace().set_index_parameter(target, "nprobe", value)
        elif self._type == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=int(ef_search or
                                                           self._params["ef_search"]))
        return None

    def search(self, queries: Any, k: int = 10, *, nprobe: int | None = None,
               ef_search: int | None = None) -> list[list[Hit]]:
        """Best ``k`` hits per query row, best first, as ``Hit(id, score)``.

        Fewer than ``k`` hits come back when the index holds fewer live vectors (or IVF-PQ
        probes too few lists). ``nprobe`` / ``ef_search`` override the defaults for this call
        and are ignored by index types that do not use them.
        """
        scores, labels = self.search_arrays(queries, k, nprobe=nprobe, ef_search=ef_search)
        names = self._int_to_id
        return [[Hit(names[label], score) for score, label in zip(row_s, row_l) if label in names]
                for row_s, row_l in zip(scores.tolist(), labels.tolist())]

    def search_arrays(self, queries: Any, k: int = 10, *, nprobe: int | None = None,
                      ef_search: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` as two (n_queries, k) arrays, for callers that rank millions of
        hits: float32 scores (-inf where no hit) and int64 labels (-1 where no hit). A label
        is the stable key :meth:`labels` gives an id; map it back with your own table."""
        if not _is_int(k) or k < 1:
            raise InputError(Errors.E019.format(
                method="search", what=f"k={k!r}", reason="k must be a positive integer",
                fix="Pass k >= 1."))
        for name, value in (("nprobe", nprobe), ("ef_search", ef_search)):
            if value is not None and (not _is_int(value) or value < 1):
                raise InputError(Errors.E019.format(
                    method="search", what=f"{name}={value!r}",
                    reason="it must be a positive integer", fix="Pass a positive integer."))
        q = self._as_matrix(queries, "search")
        out_scores = np.full((len(q), k), -np.inf, dtype=np.float32)
        out_labels = np.full((len(q), k), -1, dtype=np.int64)
        if len(self) == 0 or self._index is None or len(q) == 0:
            return out_scores, out_labels
        target, on_gpu = self._search_target()
        params = self._search_params(target, on_gpu, nprobe, ef_search)
        pending = np.arange(len(q))
        ntotal = self._index.ntotal
        # Over-fetch past tombstones: enough for all of them when there are few, else
        # doubling for the rows that came back short.
        fetch = min(ntotal, k + min(len(self._tombstones), max(2 * k, 64)))
        while len(pending):
            batch = q[pending]
            if params is None:
                scores, labels = target.search(batch, fetch)
            else:
                scores, labels = target.search(batch, fetch, params=params)
            live = labels >= 0
            if self._tombstones:
                live &= ~np.isin(labels, self._tombstone_array())
            # Live hits first, in score order (a stable sort keeps FAISS's ranking).
            order = np.argsort(~live, axis=1, kind="stable")[:, :k]
            rows = np.arange(len(pending))[:, None]
            found = live[rows, order]
            width = order.shape[1]
            out_scores[pending, :width] = np.where(found, scores[rows, order], -np.inf)
            out_labels[pending, :width] = np.where(found, labels[rows, order], -1)
            exhausted = (labels[:, -1] < 0) | (fetch >= ntotal)
            short = (found.sum(1) < k) & ~exhausted
            pending = pending[short]
            fetch = min(ntotal, fetch * 2)
        return out_scores, out_labels

    # -- saving and loading ------------------------------------------------------------
    def _manifest_params(self) -> dict[str, Any]:
        return self.params

    def _manifest_extra(self) -> dict[str, Any]:
        return {"ntotal": int(self._index.ntotal) if self._index is not None else 0,
                "tombstones": len(self._tombstones), "faiss_version": faiss.__version__}

    def _before_save(self) -> None:
        if (self._type == "hnsw" and not self._mmap and self._tombstones
                and len(self._tombstones) > COMPACT_RATIO * self._index.ntotal):
            self.compact()

    def _write_payload(self, folder: Path) -> None:
        if self._index is not None:
            if self._source_fd is not None:
                # A mapped IVF index would be written as a pointer to its source file, so
                # copy the bytes it was mapped from (unchanged: mapped indexes are read-only).
                _copy_fd(self._source_fd, folder / INDEX_FILE)
            else:
                faiss.write_index(self._index, str(folder / INDEX_FILE))
        if self._type == "hnsw":
            (folder / TOMBSTONES_FILE).write_text(json.dumps(sorted(self._tombstones)),
                                                  encoding="utf-8")

    @classmethod
    def _from_saved(cls, manifest: IndexManifest, folder: Path, *, mmap: bool) -> DenseIndex:
        def bad(reason: str) -> IndexMismatchError:
            return IndexMismatchError(Errors.E011.format(path=folder, reason=reason))

        if manifest.index_type not in INDEX_TYPES:
            raise bad(f"index_type {manifest.index_type!r} is not one of {list(INDEX_TYPES)}")
        if manifest.normalized != (manifest.metric == "cosine"):
            raise bad(f"normalized={manifest.normalized} contradicts metric "
                      f"{manifest.metric!r}")
        try:
            index = cls(manifest.dim, manifest.metric, index_type=manifest.index_type,
                        params=manifest.params, backbone=manifest.backbone)
        except InputError as err:
            raise bad(f"its settings are invalid ({err})") from None
        file = folder / INDEX_FILE
        if index._type in ("flat", "hnsw") or INDEX_FILE in manifest.files:
            index._read_faiss(file, manifest, mmap=mmap)
        if index._type == "hnsw":
            try:
                tombs = json.loads((folder / TOMBSTONES_FILE).read_text(encoding="utf-8"))
                index._tombstones = {int(t) for t in tombs}
            except (OSError, ValueError, TypeError) as err:
                raise bad(f"{TOMBSTONES_FILE} is missing or malformed ({err})") from None
        return index

    def _read_faiss(self, file: Path, manifest: IndexManifest, *, mmap: bool) -> None:
        folder = file.parent
        if not file.is_file():
            raise IndexMismatchError(Errors.E011.format(path=folder, reason=f"{INDEX_FILE} is "
                                                        "missing"))
        # Which flag maps what (faiss 1.15): IO_FLAG_MMAP maps IVF inverted lists (read-only
        # OnDiskInvertedLists); IO_FLAG_MMAP_IFC maps flat codes, incl. HNSW's flat storage.
        flag = (faiss.IO_FLAG_MMAP if self._type == "ivfpq" else faiss.IO_FLAG_MMAP_IFC)
        fd = os.open(file, os.O_RDONLY) if mmap else None
        index = None
        if mmap:
            try:
                index = faiss.read_index(str(file), flag)
            except RuntimeError as err:
                logger.warning("%s (%s) cannot be memory-mapped by faiss %s (%s); loading it "
                               "into memory", file, self._type, faiss.__version__,
                               str(err).strip().splitlines()[-1])
                os.close(fd)
                fd = None
        if index is None:
            try:
                index = faiss.read_index(str(file))
            except RuntimeError as err:
                raise IndexMismatchError(Errors.E011.format(
                    path=folder, reason=f"faiss {faiss.__version__} cannot read {INDEX_FILE} "
                                        f"({str(err).strip().splitlines()[-1]})")) from None
        if index.d != manifest.dim:
            if fd is not None:
                os.close(fd)
            raise IndexMismatchError(Errors.E011.format(
                path=folder,
                reason=f"{INDEX_FILE} has dim {index.d}, the manifest {manifest.dim}"))
        self._index, self._params = index, dict(manifest.params)
        if self._type == "ivfpq":
            index.nprobe = self._params["nprobe"]
        elif self._type == "hnsw":
            faiss.downcast_index(index.index).hnsw.efSearch = self._params["ef_search"]
        if fd is not None:
            self._mmap, self._source_fd = True, fd
            weakref.finalize(self, os.close, fd)

    def _after_load(self, manifest: IndexManifest, folder: Path) -> None:
        if self._index is None:
            return
        expected = len(self) + len(self._tombstones)
        if self._index.ntotal != expected:
            raise IndexMismatchError(Errors.E011.format(
                path=folder, reason=f"{INDEX_FILE} holds {self._index.ntotal} vectors but the "
                                    f"ids and tombstones account for {expected}"))


def _copy_fd(fd: int, dest: Path, chunk: int = 1 << 22) -> None:
    offset = 0
    with open(dest, "wb") as out:
        while data := os.pread(fd, chunk, offset):
            out.write(data)
            offset += len(data)
