"""Compressed multi-vector (late-interaction, ColBERT) index in the style of PLAID.

A document is a matrix of token vectors and is scored against a query matrix by MaxSim: for
each query token the best inner product over the document's tokens, summed. Storing every
token vector in float32 is what makes ColBERT indexes large, so, like PLAID
(Santhanam et al., 2022), each token is stored as the id of its nearest k-means centroid plus
its residual quantised to ``nbits`` per dimension: 4 + dim*nbits/8 bytes per token instead of
4*dim. The codec (centroids, bucket cutoffs and weights) is trained once, on the first batch
or through :meth:`MultiVectorIndex.train`; later batches are encoded with it, never retrained,
so stored codes stay valid. Each add() appends its codes in O(batch) (see :class:`_Column`),
so a collection streamed in batches is built in O(total) time, holding the compressed index
plus one batch of float vectors.

Search runs in four vectorised stages like PLAID's, after one query x centroid matmul per
batch of queries: the ``nprobe`` best centroids of every query token pick candidate documents from
the centroid inverted lists; a sparse score from those hits alone keeps the best
``POOL_FACTOR * n_candidates``; a centroid-only MaxSim over all their tokens keeps the best
``n_candidates``; only those are decompressed (one table lookup per code byte) and ranked by
MaxSim.

Folder layout (besides the base class's manifest.json, ids.json, meta.jsonl), plain ``.npy``
files read without pickle and memory-mapped with ``mmap=True``::

    centroids.npy        float32 [n_centroids, dim]
    bucket_cutoffs.npy   float32 [dim, 2**nbits - 1]   residual quantiles per dimension
    bucket_weights.npy   float32 [dim, 2**nbits]       reconstruction value per bucket
    token_centroids.npy  int32   [n_tokens]
    residual_codes.npy   uint8   [n_tokens, dim*nbits/8]
    doc_offsets.npy      int64   [n_docs]   first token of each stored document
    doc_lengths.npy      int32   [n_docs]
    doc_internal.npy     int64   [n_docs]   the int64 id of each document, increasing
    tombstones.json      internal ids removed but not yet compacted away
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import faiss
import numpy as np

from ..errors import Errors, IndexMismatchError, InputError
from ..registry import indexes
from .base import Hit, VectorIndex, _is_int
from .manifest import METRICS, IndexManifest

logger = logging.getLogger(__name__)

NBITS = (1, 2, 4)
TOMBSTONES_FILE = "tombstones.json"
ARRAY_FILES = {
    "centroids": "centroids.npy",
    "cutoffs": "bucket_cutoffs.npy",
    "weights": "bucket_weights.npy",
    "token_centroids": "token_centroids.npy",
    "codes": "residual_codes.npy",
    "doc_offsets": "doc_offsets.npy",
    "doc_lengths": "doc_lengths.npy",
    "doc_internal": "doc_internal.npy",
}
#: Share of stored documents that are tombstones above which save() compacts first.
COMPACT_RATIO = 0.2
#: k-means trains on at most this many vectors per centroid (faiss's own default cap).
TRAIN_POINTS_PER_CENTROID = 256
#: k-means iterations of codec training, PLAID's own setting: on XQuAD-R's 353k tokens, 4
#: instead of 20 builds in 35 s instead of 142 s at the same recall (0.489 vs 0.493; results/
#: multivector_build.json).
KMEANS_NITER = 4
#: Tokens encoded (or scored) per block, so memory stays bounded for any batch size.
BLOCK_TOKENS = 1 << 16
#: Floats in one (query tokens x centroids) block of the query-centroid matmul.
BLOCK_SCORES = 1 << 22
#: Floats of (candidate tokens x query tokens) centroid scores max-reduced at once: about
#: an L2 cache.
CACHE_SCORES = 1 << 17
#: Tokens decompressed and scored at once in the last stage (512 KB of vectors at 128-d).
DECODE_TOKENS = 1 << 10
#: The sparse stage keeps POOL_FACTOR * n_candidates documents for the centroid-only MaxSim
#: (PLAID's ndocs; it decompresses ndocs / 4).
POOL_FACTOR = 4
#: Up to this many ranks, each query token's best centroids are found by repeated argmax
#: (one fast pass each; argpartition costs ~30 passes); beyond it, by one full sort.
ARGMAX_PROBES = 64
#: Centroids probed per query token by default: the sparse stage ranks the pool by the
#: probed hits, so more probes rank it better (8 reached the 2-bit codec's own top-10
#: agreement with exact MaxSim on a 10k-document synthetic set; 3 lost 3 points) ...
DEFAULT_NPROBE = 8
#: ... unless the probed inverted lists would hold more postings than this.
SPARSE_POSTINGS = 1 << 18
#: Least n_candidates by default: documents decompressed for MaxSim. PLAID decompresses 64
#: at k=10; on untrained 128-d ColBERT vectors of XQuAD-R (9,761 documents, 2 bits), 64 /
#: 128 / 256 agreed with exact MaxSim's top 10 on 66% / 70% / 73% of documents (all of them:
#: 78%), at 5 / 7 / 10 ms per query against exact MaxSim's 53 ms (2 threads).
DEFAULT_CANDIDATES = 128
#: The per-token and per-document tables, stored as append-only columns.
TABLES = ("token_centroids", "codes", "doc_offsets", "doc_lengths", "doc_internal")


def _save_parts(file: Path, parts: Sequence[np.ndarray]) -> None:
    """Write consecutive arrays as one ``.npy`` file (byte for byte what np.save writes for
    their concatenation), without building the concatenation."""
    header = {"descr": np.lib.format.dtype_to_descr(parts[0].dtype), "fortran_order": False,
              "shape": (sum(len(p) for p in parts), *parts[0].shape[1:])}
    with open(file, "wb") as out:
        np.lib.format.write_array_header_1_0(out, header)
        for part in parts:
            np.ascontiguousarray(part).tofile(out)


def _blocks_of(lengths: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Consecutive [start, stop) document ranges holding about ``budget`` tokens each."""
    start, total = 0, 0
    for row, n in enumerate(lengths.tolist()):
        total += n
        if total >= budget:
            yield start, row + 1
            start, total = row + 1, 0
    if start < len(lengths):
        yield start, len(lengths)


class _Column:
    """One append-only table of the index (a per-token or per-document array).

    ``append`` costs O(batch): batches wait in a list and move into one buffer only when the
    whole table is read (search, compact), into spare capacity when the buffer has some, else
    into a new buffer 1.5 times larger, so a stream of adds costs amortised O(total) copying.
    Each batch is dropped as soon as it is copied, so consolidating needs the table plus one
    batch, not twice the table (spare capacity is memory numpy has not touched yet). Stored
    rows never change, so views handed out stay valid. ``parts`` lets save() write the table
    without consolidating it."""

    def __init__(self, array: np.ndarray) -> None:
        self._buf = array  # may be a read-only memory map: then it is copied on first growth
        self._len = len(array)
        self._pending: list[np.ndarray] = []
        self._n_pending = 0

    def __len__(self) -> int:
        return self._len + self._n_pending

    @property
    def nbytes(self) -> int:
        return len(self) * self._buf.dtype.itemsize * int(np.prod(self._buf.shape[1:]))

    def append(self, rows: np.ndarray) -> None:
        if len(rows):
            self._pending.append(rows)
            self._n_pending += len(rows)

    def parts(self) -> list[np.ndarray]:
        return [self._buf[:self._len], *self._pending]

    def array(self) -> np.ndarray:
        if self._pending:
            self._consolidate()
        return self._buf[:self._len]

    def _consolidate(self) -> None:
        need = len(self)
        if not self._buf.flags.writeable or len(self._buf) < need:
            grown = np.empty((max(need, len(self._buf) * 3 // 2), *self._buf.shape[1:]),
                             dtype=self._buf.dtype)
            grown[:self._len] = self._buf[:self._len]
            self._buf = grown
        self._pending.reverse()
        while self._pending:
            rows = self._pending.pop()
            self._buf[self._len:self._len + len(rows)] = rows
            self._len += len(rows)
        self._n_pending = 0


# -- exact MaxSim on raw vectors (no index) -------------------------------------------------
def maxsim(query: Any, doc: Any) -> float:
    """Late-interaction score: the best inner product of each query token over the
    document's tokens, summed over query tokens (ColBERT's MaxSim).

    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> d = np.array([[0.6, 0.8], [1.0, 0.0]], dtype=np.float32)
    >>> round(maxsim(q, d), 4)  # 1.0 (2nd token) + 0.8 (1st token)
    1.8
    """
    q = _as_tokens(query, None, "maxsim", "query")
    d = _as_tokens(doc, q.shape[1], "maxsim", "doc")
    return float((q @ d.T).max(axis=1).sum())


def exact_search(queries: Any, docs: Sequence[Any], ids: Sequence[str], k: int = 10, *,
                 metric: str = "ip") -> list[list[Hit]]:
    """Brute-force MaxSim ranking of raw float documents: the reference the compressed index
    is measured against, and fast enough on its own for a few thousand documents.
    ``metric="cosine"`` L2-normalises query and document tokens first.

    >>> docs = [np.eye(2, dtype=np.float32), np.array([[0.0, 1.0]], dtype=np.float32)]
    >>> exact_search([np.array([[0.0, 1.0]])], docs, ["a", "b"], k=2)
    [[Hit(id='a', score=1.0), Hit(id='b', score=1.0)]]
    """
    k = _check_positive("exact_search", "k", k)
    if metric not in METRICS:
        raise InputError(Errors.E019.format(
            method="exact_search", what=f"metric={metric!r}",
            reason=f"expected one of {list(METRICS)}", fix="Use 'ip' or 'cosine'."))
    ids = list(ids)
    docs = list(docs)
    if len(ids) != len(docs):
        raise InputError(Errors.E043.format(method="exact_search", n=len(ids), m=len(docs)))
    qs = _as_queries(queries, None, "exact_search")
    if not docs or not qs:
        return [[] for _ in qs]
    dim = _as_tokens(qs[0], None, "exact_search", "query 0").shape[1]
    normalize = metric == "cosine"
    scorer = ExactMaxSim([_as_tokens(d, dim, "exact_search", f"document {i!r} (row {row})",
                                     normalize=normalize)
                          for row, (i, d) in enumerate(zip(ids, docs))])
    out = []
    for row, q in enumerate(qs):
        q = _as_tokens(q, dim, "exact_search", f"query {row}", normalize=normalize)
        scores = scorer.scores([q])[0]
        out.append([Hit(ids[i], float(scores[i])) for i in _top_k(scores, k)])
    return out


class ExactMaxSim:
    """All documents' raw token vectors as one table, scored against query matrices by MaxSim:
    the full (queries, documents) score matrix that :func:`exact_search` ranks and that
    benchmarks need for metrics beyond the top k. Documents are taken as given (validate and
    normalise them first, as :func:`exact_search` does)."""

    def __init__(self, docs: Sequence[np.ndarray]) -> None:
        self.tokens = np.ascontiguousarray(np.concatenate(docs), dtype=np.float32)
        lengths = np.array([len(d) for d in docs], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])

    def scores(self, queries: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(queries), len(self.starts)), dtype=np.float32)
        for i, q in enumerate(queries):
            out[i] = np.maximum.reduceat(q @ self.tokens.T, self.starts, axis=1).sum(axis=0)
        return out


# -- shared helpers ---------------------------------------------------------------------------
def _check_positive(method: str, name: str, value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise InputError(Errors.E019.format(
            method=method, what=f"{name}={value!r}", reason="it must be a positive integer",
            fix="Pass a positive integer."))
    return int(value)


def _as_tokens(x: Any, dim: int | None, method: str, what: str, *,
               normalize: bool = False) -> np.ndarray:
    """One document or query as a float32 (n_tokens, dim) matrix, or an E042 naming it."""
    shown = dim if dim is not None else "dim"

    def bad(reason: str, fix: str) -> InputError:
        return InputError(Errors.E042.format(method=method, what=what, reason=reason,
                                             dim=shown, fix=fix))

    try:
        m = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise bad(f"it is not a numeric array ({err})",
                  "Pass one float array per document.") from None
    if m.ndim != 2:
        fix = ("Reshape a single token vector to (1, dim)." if m.ndim == 1 else
               "Pass a list of 2-D arrays, one per document or query.")
        raise bad(f"it is {m.ndim}-D with shape {m.shape}", fix)
    if dim is not None and m.shape[1] != dim:
        raise bad(f"its token vectors have dimension {m.shape[1]}",
                  "Encode with the backbone the index was built with.")
    if len(m) == 0:
        raise bad("it has no token vectors", "Drop it, or encode at least one token.")
    finite = np.isfinite(m).all(axis=1)
    if not finite.all():
        raise bad(f"token row {int(np.flatnonzero(~finite)[0])} contains NaN or infinity",
                  "Fix or drop that token.")
    if normalize:
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        if (norms == 0).any():
            raise bad(f"token row {int(np.flatnonzero(norms[:, 0] == 0)[0])} is a zero vector, "
                      "which has no direction for cosine similarity",
                      "Drop that token, or use metric='ip'.")
        m = m / norms
    return np.ascontiguousarray(m, dtype=np.float32)


def _as_queries(queries: Any, dim: int | None, method: str) -> list[Any]:
    if isinstance(queries, np.ndarray) and queries.ndim == 2:
        raise InputError(Errors.E042.format(
            method=method, what=f"queries of shape {queries.shape}",
            reason="one 2-D array is ambiguous (one query, or one token per query?)",
            dim=dim if dim is not None else "dim",
            fix="Pass a list of queries, e.g. search([query]) for one, or a 3-D array."))
    try:
        return list(queries)
    except TypeError:
        raise InputError(Errors.E042.format(
            method=method, what="queries", reason=f"a {type(queries).__name__} is not a "
                                                  "sequence", dim=dim if dim is not None else "dim",
            fix="Pass a list of 2-D arrays (one per query) or a 3-D array.")) from None


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best scores, best first; ties go to the lower position."""
    n = len(scores)
    part = np.arange(n) if k >= n else np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + length)`` for every pair, without a Python loop."""
    lengths = lengths.astype(np.int64, copy=False)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = starts.astype(np.int64) - (np.cumsum(lengths) - lengths)
    return np.arange(total, dtype=np.int64) + np.repeat(shift, lengths)


def default_n_centroids(n_tokens: int) -> int:
    """PLAID's codebook size: 2**floor(log2(16*sqrt(n_tokens))), at least 1."""
    if n_tokens < 1:
        return 1
    return max(1, 2 ** int(math.floor(math.log2(16 * math.sqrt(n_tokens)))))


def _distinct(rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(rows, return_inverse=True) for values in [0, n_rows), through a mask and a
    slot table over all rows instead of a sort (3-10x faster on 260k postings)."""
    seen = np.zeros(n_rows, dtype=bool)
    seen[rows] = True
    distinct = np.flatnonzero(seen)
    slot = np.empty(n_rows, dtype=np.int64)  # only the distinct rows' slots are written
    slot[distinct] = np.arange(len(distinct))
    return distinct, slot[rows]


def _batches(queries: Sequence[np.ndarray], max_tokens: int) -> Iterator[list[np.ndarray]]:
    """Consecutive queries holding at most ``max_tokens`` tokens together (or one query)."""
    batch: list[np.ndarray] = []
    tokens = 0
    for q in queries:
        if batch and tokens + len(q) > max_tokens:
            yield batch
            batch, tokens = [], 0
        batch.append(q)
        tokens += len(q)
    if batch:
        yield batch


class _CentroidRanking:
    """Each query token's centroids by decreasing score, ranked only as far as asked: one
    vectorised argmax pass per rank for the usual few probes, a full sort beyond
    ARGMAX_PROBES. Ties go to the lower centroid id."""

    def __init__(self, qc: np.ndarray) -> None:
        self._qc = qc
        self._rest: np.ndarray | None = None  # scores with the ranked centroids at -inf
        self._ranked: list[np.ndarray] = []
        self._sorted: np.ndarray | None = None

    def best(self, m: int) -> np.ndarray:
        """(query tokens, min(m, centroids)) centroid ids, best first."""
        m = min(m, self._qc.shape[1])
        if m > ARGMAX_PROBES:
            if self._sorted is None:
                self._sorted = np.argsort(-self._qc, axis=1, kind="stable")
            return self._sorted[:, :m]
        if self._rest is None:
            self._rest = self._qc.copy()
        rows = np.arange(len(self._qc))
        while len(self._ranked) < m:
            best = self._rest.argmax(axis=1)
            self._rest[rows, best] = -np.inf
            self._ranked.append(best)
        return np.stack(self._ranked[:m], axis=1)


def _default_nprobe(ranking: _CentroidRanking, offsets: np.ndarray) -> int:
    """DEFAULT_NPROBE centroids per query token, fewer (down to 1) where their inverted
    lists would hold more than SPARSE_POSTINGS postings in all (a coarse codebook over a
    large collection), so the sparse stage stays bounded."""
    ranked = ranking.best(DEFAULT_NPROBE)
    postings = np.cumsum((offsets[ranked + 1] - offsets[ranked]).sum(axis=0))
    return max(1, int(np.searchsorted(postings, SPARSE_POSTINGS, side="right")))


@indexes.register("multivector")
class MultiVectorIndex(VectorIndex):
    """Many token vectors per id, compressed PLAID-style and ranked by MaxSim.

    ``metric="cosine"`` L2-normalises token vectors on add and query tokens on search (the
    usual ColBERT setup); ``"ip"`` keeps raw vectors. ``nbits`` (1, 2 or 4) is the residual
    code size per dimension; ``n_centroids`` the codebook size (None: sized from the first
    batch like PLAID); ``seed`` makes training reproducible; ``kmeans_niter`` the k-means
    iterations of codec training (the build's main cost).
    """

    kind = "multivector"

    def __init__(self, dim: int, metric: str = "cosine", *, backbone: Any = None,
                 nbits: int = 2, n_centroids: int | None = None, seed: int = 0,
                 kmeans_niter: int = KMEANS_NITER) -> None:
        super().__init__(dim, metric, backbone=backbone)
        if not _is_int(nbits) or nbits not in NBITS:
            raise InputError(Errors.E040.format(value=nbits, options=list(NBITS)))
        if (self.dim * nbits) % 8:
            options = [b for b in NBITS if (self.dim * b) % 8 == 0]
            fix = (f"Use nbits in {options}." if options else
                   "No nbits fits an odd dim: pad the vectors with a zero column.")
            raise InputError(Errors.E041.format(dim=self.dim, nbits=nbits,
                                                bits=self.dim * nbits, fix=fix))
        if n_centroids is not None and (not _is_int(n_centroids) or n_centroids < 1):
            raise InputError(Errors.E044.format(value=n_centroids,
                                                reason="it is not a positive integer"))
        if not _is_int(seed) or seed < 0:
            raise InputError(Errors.E019.format(
                method="MultiVectorIndex", what=f"seed={seed!r}",
                reason="it must be a non-negative integer", fix="Pass a seed such as 0."))
        if not _is_int(kmeans_niter) or kmeans_niter < 1:
            raise InputError(Errors.E019.format(
                method="MultiVectorIndex", what=f"kmeans_niter={kmeans_niter!r}",
                reason="it must be a positive integer",
                fix=f"Pass e.g. {KMEANS_NITER} (the default)."))
        self._kmeans_niter = int(kmeans_niter)
        self._nbits = int(nbits)
        self._requested_centroids = int(n_centroids) if n_centroids is not None else None
        self._seed = int(seed)
        self._centroids: np.ndarray | None = None
        self._cutoffs: np.ndarray | None = None
        self._weights: np.ndarray | None = None
        self._lut: np.ndarray | None = None
        self._tables: dict[str, _Column] = {}
        self._set_tables(token_centroids=np.zeros(0, dtype=np.int32),
                         codes=np.zeros((0, self.code_bytes), dtype=np.uint8),
                         doc_offsets=np.zeros(0, dtype=np.int64),
                         doc_lengths=np.zeros(0, dtype=np.int32),
                         doc_internal=np.zeros(0, dtype=np.int64))
        self._tombstones: set[int] = set()
        self._tomb_array: np.ndarray | None = None
        self._ivf: tuple[np.ndarray, np.ndarray] | None = None

    # -- the stored tables (each read consolidates batches added since the last read) ---
    def _set_tables(self, **arrays: np.ndarray) -> None:
        self._tables = {key: _Column(arrays[key]) for key in TABLES}

    @property
    def _token_centroids(self) -> np.ndarray:
        """int32 centroid id of every stored token."""
        return self._tables["token_centroids"].array()

    @property
    def _codes(self) -> np.ndarray:
        """uint8 packed residual codes, one row per stored token."""
        return self._tables["codes"].array()

    @property
    def _doc_offsets(self) -> np.ndarray:
        """int64 first token of every stored document."""
        return self._tables["doc_offsets"].array()

    @property
    def _doc_lengths(self) -> np.ndarray:
        """int32 token count of every stored document."""
        return self._tables["doc_lengths"].array()

    @property
    def _doc_internal(self) -> np.ndarray:
        """int64 internal id of every stored document, increasing."""
        return self._tables["doc_internal"].array()

    def _n_stored(self, key: str) -> int:
        """Rows of a table, without consolidating it."""
        return len(self._tables[key])

    # -- what the index is -------------------------------------------------------------
    @property
    def index_type(self) -> str:
        return "plaid"

    @property
    def nbits(self) -> int:
        return self._nbits

    @property
    def code_bytes(self) -> int:
        """Bytes of packed residual code per token."""
        return self.dim * self._nbits // 8

    @property
    def trained(self) -> bool:
        return self._centroids is not None

    @property
    def n_centroids(self) -> int | None:
        """Codebook size: the trained one, else the requested one (None: from first batch)."""
        return len(self._centroids) if self._centroids is not None else self._requested_centroids

    @property
    def centroids(self) -> np.ndarray | None:
        """A read-only view of the trained centroids (None before training)."""
        if self._centroids is None:
            return None
        view = self._centroids.view()
        view.flags.writeable = False
        return view

    def stats(self) -> dict[str, Any]:
        """Sizes of the stored index; bytes are those of the compressed arrays in memory or
        on disk (codec, tokens and per-document tables), tombstoned tokens included."""
        codec = [a for a in (self._centroids, self._cutoffs, self._weights) if a is not None]
        return {
            "n_docs": len(self),
            "n_tokens": int(self._doc_lengths[self._live_rows()].sum()),
            "n_stored_tokens": self._n_stored("token_centroids"),
            "n_tombstones": len(self._tombstones),
            "n_centroids": self.n_centroids,
            "nbits": self._nbits,
            "bytes_per_token": 4 + self.code_bytes,
            "raw_bytes_per_token": 4 * self.dim,
            "index_bytes": int(sum(a.nbytes for a in codec)
                               + sum(t.nbytes for t in self._tables.values())),
        }

    # -- the codec -----------------------------------------------------------------------
    def train(self, sample: Any) -> MultiVectorIndex:
        """Train the codec on token vectors: a (n, dim) array, or a sequence of documents.

        Without this call the first :meth:`add` trains on its own batch. Training is refused
        once documents are stored, because their codes depend on the codec."""
        self._check_writable("train")
        if self._n_stored("token_centroids"):
            raise InputError(Errors.E045.format(
                method="train",
                reason=f"is already trained and encodes {self._n_stored('token_centroids')} "
                       "stored tokens",
                fix="Add more documents with add() (they use this codec), or build a new "
                    "MultiVectorIndex to train another codec."))
        if isinstance(sample, np.ndarray) and sample.ndim == 2:
            docs, names = [sample], ["the training sample"]
        else:
            try:
                docs = list(sample)
            except TypeError:
                docs = [sample]
            names = [f"training document {row}" for row in range(len(docs))]
        if not docs:
            raise InputError(Errors.E045.format(
                method="train", reason="cannot be trained on an empty sample",
                fix="Pass token vectors of the collection: a (n, dim) array or a list of "
                    "documents."))
        self._train(docs, names, self._check_docs(docs, names, "train"), "train")
        return self

    def _train(self, docs: Sequence[Any], names: Sequence[str], lengths: np.ndarray,
               method: str) -> None:
        """Fit the codec on a seeded sample of the documents' tokens, gathered block by
        block into one array so that only the sample (at most ~256 per centroid) is held in
        float32; the residual statistics then reuse that array instead of copying it."""
        n = int(lengths.sum())
        requested = self._requested_centroids or default_n_centroids(n)
        n_centroids = max(1, min(requested, n))
        if n_centroids < requested:
            logger.warning("n_centroids=%d capped to the %d training vectors", requested, n)
        limit = TRAIN_POINTS_PER_CENTROID * n_centroids
        rows = (None if n <= limit else
                np.sort(np.random.default_rng(self._seed).choice(n, limit, replace=False)))
        sample = np.empty((n if rows is None else len(rows), self.dim), dtype=np.float32)
        first = filled = 0
        for start, stop in self._blocks(lengths):
            x = self._tokens_of(docs, names, start, stop, method)
            if rows is not None:
                lo, hi = np.searchsorted(rows, [first, first + len(x)])
                x, first = x[rows[lo:hi] - first], first + len(x)
            sample[filled:filled + len(x)] = x
            filled += len(x)
        gpu = faiss.get_num_gpus() > 0 if hasattr(faiss, "get_num_gpus") else False
        logger.info("Training PLAID codec: %d centroids on %d of %d token vectors (%s), "
                    "nbits=%d", n_centroids, len(sample), n, "GPU" if gpu else "CPU",
                    self._nbits)
        kmeans = faiss.Kmeans(self.dim, n_centroids, niter=self._kmeans_niter,
                              seed=self._seed % 2 ** 31, spherical=self.normalized,
                              min_points_per_centroid=1,
                              max_points_per_centroid=TRAIN_POINTS_PER_CENTROID,
                              verbose=False, **({"gpu": True} if gpu else {}))
        kmeans.train(sample)
        centroids = np.ascontiguousarray(kmeans.centroids, dtype=np.float32)
        # Residual statistics on the same sample (turned into its residuals in place, block
        # by block): per-dimension quantile cutoffs, and the mean residual inside each
        # bucket as its reconstruction value.
        assign = self._assign(sample, centroids)
        for lo in range(0, len(sample), BLOCK_TOKENS):
            sample[lo:lo + BLOCK_TOKENS] -= centroids[assign[lo:lo + BLOCK_TOKENS]]
        buckets = 2 ** self._nbits
        cutoffs = np.empty((self.dim, buckets - 1), dtype=np.float32)
        weights = np.empty((self.dim, buckets), dtype=np.float32)
        for d in range(self.dim):  # per dimension, vectorised over tokens
            residuals = sample[:, d].copy()
            cutoffs[d] = np.quantile(residuals, np.arange(1, buckets) / buckets)
            fallback = np.quantile(residuals, (np.arange(buckets) + 0.5) / buckets)
            codes = np.searchsorted(cutoffs[d], residuals, side="right")
            counts = np.bincount(codes, minlength=buckets)
            sums = np.bincount(codes, weights=residuals, minlength=buckets)
            weights[d] = np.where(counts > 0, sums / np.maximum(counts, 1), fallback)
        self._centroids, self._cutoffs, self._weights = centroids, cutoffs, weights
        self._lut = None
        self._changed()

    def _codec(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centroids, bucket cutoffs and bucket weights of the trained codec."""
        if self._centroids is None or self._cutoffs is None or self._weights is None:
            raise InputError(Errors.E045.format(
                method=type(self).__name__, reason="is not trained yet",
                fix="Call train(sample) or add() documents first."))
        return self._centroids, self._cutoffs, self._weights

    @staticmethod
    def _assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
        """Nearest centroid in L2 (the smallest residual) of every row, as int32."""
        flat = faiss.IndexFlatL2(centroids.shape[1])
        flat.add(centroids)
        out = np.empty(len(x), dtype=np.int32)
        for start in range(0, len(x), BLOCK_TOKENS):
            block = np.ascontiguousarray(x[start:start + BLOCK_TOKENS], dtype=np.float32)
            out[start:start + len(block)] = flat.search(block, 1)[1][:, 0]
        return out

    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centroid ids (int32) and packed residual codes (uint8) of token vectors."""
        centroids, cutoffs, _ = self._codec()
        assign = self._assign(x, centroids)
        residuals = x - centroids[assign]
        # A residual's bucket is the number of its dimension's (sorted) cutoffs at or below
        # it: 2**nbits - 1 whole-block comparisons instead of a search per dimension.
        codes = np.zeros(residuals.shape, dtype=np.uint8)
        for cut in cutoffs.T:
            codes += residuals >= cut
        return assign, self._pack(codes)

    def _pack(self, codes: np.ndarray) -> np.ndarray:
        """uint8 bucket codes (tokens, dim) packed 8 // nbits per byte, the first dimension
        in the high bits; one shift-or pass per position in the byte (a reduce over the
        short last axis was several times slower)."""
        per_byte = 8 // self._nbits
        packed = np.zeros((len(codes), self.code_bytes), dtype=np.uint8)
        for t in range(per_byte):
            packed |= codes[:, t::per_byte] << np.uint8(self._nbits * (per_byte - 1 - t))
        return packed

    def _residual_table(self) -> np.ndarray:
        """The bucket weights of every (code byte position, byte value) pair, as rows
        ``position * 256 + value`` of 8 // nbits floats (the dimensions that byte packs, in
        :meth:`_pack`'s order): decoding is then one row gather per code byte, not one
        lookup per dimension. Built once per codec."""
        if self._lut is None:
            weights = self._codec()[2]
            per_byte = 8 // self._nbits
            shifts = (self._nbits * np.arange(per_byte - 1, -1, -1)).astype(np.uint8)
            buckets = (np.arange(256, dtype=np.uint8)[:, None] >> shifts) & (2 ** self._nbits - 1)
            grouped = weights.reshape(self.code_bytes, per_byte, -1)
            table = grouped[:, np.arange(per_byte)[None, :], buckets]  # (bytes, 256, per_byte)
            self._lut = np.ascontiguousarray(table.reshape(-1, per_byte), dtype=np.float32)
        return self._lut

    def _decode(self, tokens: np.ndarray) -> np.ndarray:
        """Approximate vectors of stored token rows: centroid + bucket weights (normalised
        again for cosine, as the originals were)."""
        centroids = self._codec()[0]
        rows = self._codes[tokens].astype(np.intp)
        rows += np.arange(0, 256 * self.code_bytes, 256)
        x = self._residual_table().take(rows, axis=0).reshape(len(rows), self.dim)
        x += centroids[self._token_centroids[tokens]]
        if self.normalized:
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x

    # -- adding and removing -----------------------------------------------------------
    def add(self, ids: str | Sequence[str], docs: Any,
            metadata: Sequence[Mapping[str, Any] | None] | None = None) -> None:
        """Add one document (an (n_tokens, dim) array) per new id. Everything is validated
        first, so a bad batch adds nothing; the first batch trains the codec unless
        :meth:`train` was called."""
        self._check_writable("add")
        if isinstance(ids, str):  # one id, one document
            docs = [docs]
        ids = self._check_new_ids(ids)
        try:
            docs = list(docs)
        except TypeError:
            raise InputError(Errors.E042.format(
                method="add", what="docs", reason=f"a {type(docs).__name__} is not a sequence",
                dim=self.dim, fix="Pass a list of 2-D arrays, one per id.")) from None
        if len(ids) != len(docs):
            raise InputError(Errors.E043.format(method="add", n=len(ids), m=len(docs)))
        names = [f"document {id!r} (row {row})" for row, id in enumerate(ids)]
        lengths = self._check_docs(docs, names, "add")
        metas = self._check_metadata(ids, metadata)
        if not ids:
            return
        if self._centroids is None:
            self._train(docs, names, lengths, "add")
        # Encode every block before storing any, so a failure part-way stores nothing.
        encoded = [self._encode(self._tokens_of(docs, names, start, stop, "add"))
                   for start, stop in self._blocks(lengths)]
        internal = self._reserve(len(ids))
        first = self._n_stored("token_centroids")
        tables = self._tables
        for assign, codes in encoded:
            tables["token_centroids"].append(assign)
            tables["codes"].append(codes)
        tables["doc_offsets"].append(
            first + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
        tables["doc_lengths"].append(lengths.astype(np.int32))
        tables["doc_internal"].append(internal)
        self._commit(ids, internal, metas)

    def _check_docs(self, docs: Sequence[Any], names: Sequence[str], method: str) -> np.ndarray:
        """Validate every document up front (keeping none of them) and return their lengths."""
        return np.array([len(_as_tokens(doc, self.dim, method, name, normalize=self.normalized))
                         for doc, name in zip(docs, names)], dtype=np.int64)

    def _tokens_of(self, docs: Sequence[Any], names: Sequence[str], start: int, stop: int,
                   method: str) -> np.ndarray:
        """The (normalised) tokens of documents ``start:stop`` as one float32 block."""
        return np.concatenate([_as_tokens(docs[row], self.dim, method, names[row],
                                          normalize=self.normalized)
                               for row in range(start, stop)])

    @staticmethod
    def _blocks(lengths: np.ndarray) -> Iterator[tuple[int, int]]:
        """Consecutive document ranges of about BLOCK_TOKENS tokens each."""
        return _blocks_of(lengths, BLOCK_TOKENS)

    def _remove_internal(self, internal: np.ndarray) -> None:
        self._tombstones.update(internal.tolist())

    def _changed(self) -> None:
        super()._changed()
        self._tomb_array = None
        self._ivf = None

    def _tombstone_array(self) -> np.ndarray:
        if self._tomb_array is None:
            self._tomb_array = np.array(sorted(self._tombstones), dtype=np.int64)
        return self._tomb_array

    def _live_rows(self) -> np.ndarray:
        if not self._tombstones:
            return np.arange(len(self._doc_internal))
        return np.flatnonzero(~np.isin(self._doc_internal, self._tombstone_array()))

    def compact(self) -> int:
        """Drop the tokens of removed documents for good; returns how many were dropped."""
        if not self._tombstones:
            return 0
        self._check_writable("compact")
        keep = ~np.isin(self._doc_internal, self._tombstone_array())
        tokens = _ranges(self._doc_offsets[keep], self._doc_lengths[keep])
        lengths = np.asarray(self._doc_lengths[keep])
        self._set_tables(
            token_centroids=self._token_centroids[tokens], codes=self._codes[tokens],
            doc_offsets=np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
            doc_lengths=lengths.astype(np.int32),
            doc_internal=np.asarray(self._doc_internal[keep], dtype=np.int64))
        dropped = len(self._tombstones)
        self._tombstones = set()
        self._changed()
        logger.info("Compacted multi-vector index: dropped %d removed documents, %d remain",
                    dropped, len(self._doc_internal))
        return dropped

    def decompress(self, id: str) -> np.ndarray:
        """Approximate token vectors of ``id`` as stored: (n_tokens, dim) float32."""
        key = self._internal(id)
        row = int(np.searchsorted(self._doc_internal, key))
        start, n = int(self._doc_offsets[row]), int(self._doc_lengths[row])
        return self._decode(np.arange(start, start + n))

    # -- searching ---------------------------------------------------------------------
    def _inverted_lists(self) -> tuple[np.ndarray, np.ndarray]:
        """Centroid -> live document rows (positions in the doc tables, which map to the
        internal ids through doc_internal), as CSR offsets and int32 rows, each list
        increasing; cached until a change. Built block by block as sorted
        ``centroid << 32 | row`` keys, so it needs about 12 bytes per distinct (centroid,
        document) pair on top of the index."""
        if self._ivf is None:
            n_c = len(self._codec()[0])
            live = self._live_rows()
            starts, lengths = self._doc_offsets, self._doc_lengths
            token_centroids = self._token_centroids
            keys = np.empty(int(lengths[live].sum()), dtype=np.int64)
            filled = 0
            for lo, hi in _blocks_of(lengths[live], BLOCK_TOKENS):
                rows = live[lo:hi]
                cents = token_centroids[_ranges(starts[rows], lengths[rows])].astype(np.int64)
                block = np.unique((cents << 32) | np.repeat(rows, lengths[rows]))
                keys[filled:filled + len(block)] = block
                filled += len(block)
            keys = keys[:filled]
            keys.sort()
            counts = np.bincount(keys >> 32, minlength=n_c)
            self._ivf = (np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                         (keys & 0xFFFFFFFF).astype(np.int32))
        return self._ivf

    def search(self, queries: Any, k: int = 10, *, nprobe: int | None = None,
               n_candidates: int | None = None) -> list[list[Hit]]:
        """Best ``k`` documents per query (each an (n_tokens, dim) array), best first, as
        ``Hit(id, score)`` with the MaxSim score on the decompressed vectors.

        ``nprobe``: centroids probed per query token. The default (DEFAULT_NPROBE, fewer
        where the inverted lists are long) doubles while fewer than POOL_FACTOR *
        n_candidates documents turn up; a given value doubles only while fewer than ``k``
        do. ``n_candidates``: documents decompressed and ranked by MaxSim (default
        max(4*k, DEFAULT_CANDIDATES); more is closer to exact and slower); the centroid-only
        MaxSim picks them from the POOL_FACTOR * n_candidates documents whose probed
        centroids score best. Queries are scored against the centroids in batches (one
        matmul each), so passing many queries at once is faster than one call per query.
        """
        k = _check_positive("search", "k", k)
        if nprobe is not None:
            nprobe = _check_positive("search", "nprobe", nprobe)
        if n_candidates is not None:
            n_candidates = _check_positive("search", "n_candidates", n_candidates)
        qs = [_as_tokens(q, self.dim, "search", f"query {row}", normalize=self.normalized)
              for row, q in enumerate(_as_queries(queries, self.dim, "search"))]
        if not len(self) or self._centroids is None:
            return [[] for _ in qs]
        centroids = self._centroids
        n_c = len(centroids)
        keep = max(n_candidates or max(4 * k, DEFAULT_CANDIDATES), k)
        # The default nprobe widens until the pool fills the centroid stages (small or
        # fine-grained collections); an explicit one widens only to find k documents.
        want = min(POOL_FACTOR * keep if nprobe is None else k, len(self))
        out: list[list[Hit]] = []
        for batch in _batches(qs, max(1, BLOCK_SCORES // n_c)):
            qc = np.concatenate(batch) @ centroids.T  # one matmul for the batch's tokens
            first = 0
            for q in batch:
                out.append(self._search_one(q, qc[first:first + len(q)], k, nprobe, keep,
                                            want))
                first += len(q)
        return out

    def _search_one(self, q: np.ndarray, qc: np.ndarray, k: int, nprobe: int | None,
                    keep: int, want: int) -> list[Hit]:
        """One query's stages; ``qc`` holds its (query tokens, centroids) scores."""
        offsets, lists = self._inverted_lists()
        n_q, n_c = qc.shape
        tokens = np.arange(n_q)
        ranking = _CentroidRanking(qc)
        nprobe = min(nprobe or _default_nprobe(ranking, offsets), n_c)
        # Stage 1: candidates from the inverted lists of each query token's best centroids,
        # doubling nprobe while fewer than ``want`` documents turn up.
        while True:
            ranked = ranking.best(nprobe + 1)  # one more: its score bounds the unprobed
            probed = ranked[:, :nprobe]
            starts = offsets[probed].ravel()
            counts = offsets[probed + 1].ravel() - starts
            cands, which = _distinct(lists[_ranges(starts, counts)], len(self._doc_internal))
            if len(cands) >= want or nprobe >= n_c:
                break
            nprobe = min(2 * nprobe, n_c)
        if not len(cands):
            return []
        # Stage 2: score the pool from the probed hits alone, without touching its tokens:
        # per query token, a document's best probed centroid score minus that of the best
        # unprobed centroid (an upper bound for the tokens the probes missed, as in XTR's
        # imputation), summed over query tokens.
        if len(cands) > POOL_FACTOR * keep:
            floor = qc[tokens, ranked[:, -1]]
            gain = (qc[tokens[:, None], probed] - floor[:, None]).ravel()
            best = np.zeros(n_q * len(cands), dtype=np.float32)
            entry = np.repeat(np.repeat(tokens, nprobe) * len(cands), counts) + which
            np.maximum.at(best, entry, np.repeat(gain, counts))
            approx = best.reshape(n_q, len(cands)).sum(axis=0)
            cands = np.sort(cands[_top_k(approx, POOL_FACTOR * keep)])
        # Stage 3: centroid-only MaxSim over all tokens of the survivors.
        if len(cands) > keep:
            approx = self._centroid_scores(np.ascontiguousarray(qc.T), cands)
            cands = np.sort(cands[_top_k(approx, keep)])
        # Stage 4: decompress the survivors and rank by MaxSim.
        scores = self._maxsim_scores(q, cands)
        names, internal = self._int_to_id, self._doc_internal
        return [Hit(names[int(internal[cands[i]])], float(scores[i]))
                for i in _top_k(scores, k)]

    def _centroid_scores(self, qc_rows: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Approximate MaxSim of documents from their tokens' centroids alone. ``qc_rows``:
        (centroids, query tokens) scores, token-major so that each document token gathers
        one contiguous row.

        Documents go in blocks of about CACHE_SCORES gathered scores: numpy's segmented max
        (reduceat) over the rows of a block is fast while the block stays in cache (4x faster
        than padding documents to a common length, at 256 documents of 36 tokens)."""
        out = np.empty(len(rows), dtype=np.float32)
        lengths, starts = self._doc_lengths[rows], self._doc_offsets[rows]
        token_centroids = self._token_centroids
        for lo, hi in _blocks_of(lengths, max(1, CACHE_SCORES // qc_rows.shape[1])):
            block = lengths[lo:hi]
            scores = qc_rows[token_centroids[_ranges(starts[lo:hi], block)]]
            first = np.concatenate([[0], np.cumsum(block)[:-1]])
            out[lo:hi] = np.maximum.reduceat(scores, first, axis=0).sum(axis=1)
        return out

    def _maxsim_scores(self, q: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """MaxSim of documents on their decompressed vectors, decoded and scored in blocks of
        about DECODE_TOKENS tokens whose vectors stay in cache (2x faster than decoding 256
        documents at once)."""
        out = np.empty(len(rows), dtype=np.float32)
        lengths, starts = self._doc_lengths[rows], self._doc_offsets[rows]
        for lo, hi in _blocks_of(lengths, DECODE_TOKENS):
            block = lengths[lo:hi]
            vectors = self._decode(_ranges(starts[lo:hi], block))
            first = np.concatenate([[0], np.cumsum(block)[:-1]])
            out[lo:hi] = np.maximum.reduceat(vectors @ q.T, first, axis=0).sum(axis=1)
        return out

    # -- saving and loading ------------------------------------------------------------
    def _manifest_params(self) -> dict[str, Any]:
        return {"nbits": self._nbits, "n_centroids": self.n_centroids, "seed": self._seed,
                "kmeans_niter": self._kmeans_niter}

    def _manifest_extra(self) -> dict[str, Any]:
        return {"n_tokens": self._n_stored("token_centroids"),
                "n_docs_stored": self._n_stored("doc_internal"),
                "tombstones": len(self._tombstones),
                "trained": self.trained, "faiss_version": faiss.__version__}

    def _before_save(self) -> None:
        if (not self._mmap and self._tombstones
                and len(self._tombstones) > COMPACT_RATIO * self._n_stored("doc_internal")):
            self.compact()

    def _write_payload(self, folder: Path) -> None:
        empty_codec = self._centroids is None
        buckets = 2 ** self._nbits
        codec = {
            "centroids": (np.zeros((0, self.dim), np.float32) if empty_codec
                          else self._centroids),
            "cutoffs": (np.zeros((self.dim, buckets - 1), np.float32) if empty_codec
                        else self._cutoffs),
            "weights": (np.zeros((self.dim, buckets), np.float32) if empty_codec
                        else self._weights),
        }
        for key, array in codec.items():
            np.save(folder / ARRAY_FILES[key], np.ascontiguousarray(array), allow_pickle=False)
        for key, column in self._tables.items():
            _save_parts(folder / ARRAY_FILES[key], column.parts())
        (folder / TOMBSTONES_FILE).write_text(json.dumps(sorted(self._tombstones)),
                                              encoding="utf-8")

    @classmethod
    def _from_saved(cls, manifest: IndexManifest, folder: Path, *,
                    mmap: bool) -> MultiVectorIndex:
        def bad(reason: str) -> IndexMismatchError:
            return IndexMismatchError(Errors.E011.format(path=folder, reason=reason))

        if manifest.index_type != "plaid":
            raise bad(f"index_type {manifest.index_type!r} is not 'plaid'")
        if manifest.normalized != (manifest.metric == "cosine"):
            raise bad(f"normalized={manifest.normalized} contradicts metric "
                      f"{manifest.metric!r}")
        params = manifest.params
        try:
            index = cls(manifest.dim, manifest.metric, backbone=manifest.backbone,
                        nbits=params.get("nbits"), n_centroids=params.get("n_centroids"),
                        seed=params.get("seed", 0),
                        kmeans_niter=params.get("kmeans_niter", KMEANS_NITER))
        except InputError as err:
            raise bad(f"its settings are invalid ({err})") from None
        loaded: dict[str, np.ndarray] = {}
        for key, name in ARRAY_FILES.items():
            small = key in ("centroids", "cutoffs", "weights")
            try:
                loaded[key] = np.load(folder / name, allow_pickle=False,
                                      mmap_mode="r" if mmap and not small else None)
            except (OSError, ValueError) as err:
                raise bad(f"{name} is missing or unreadable ({err})") from None
        try:
            tombs = json.loads((folder / TOMBSTONES_FILE).read_text(encoding="utf-8"))
            index._tombstones = {int(t) for t in tombs}
        except (OSError, ValueError, TypeError) as err:
            raise bad(f"{TOMBSTONES_FILE} is missing or malformed ({err})") from None
        index._check_arrays(loaded, bad)
        if len(loaded["centroids"]):
            index._centroids = np.ascontiguousarray(loaded["centroids"], dtype=np.float32)
            index._cutoffs = np.ascontiguousarray(loaded["cutoffs"], dtype=np.float32)
            index._weights = np.ascontiguousarray(loaded["weights"], dtype=np.float32)
        index._set_tables(**{key: loaded[key] for key in TABLES})
        index._mmap = mmap
        return index

    def _check_arrays(self, a: Mapping[str, np.ndarray], bad: Any) -> None:
        """Shapes and dtypes of the loaded files against each other and the manifest."""
        buckets, dim = 2 ** self._nbits, self.dim
        expected = {"centroids": (np.float32, 2), "cutoffs": (np.float32, 2),
                    "weights": (np.float32, 2), "token_centroids": (np.int32, 1),
                    "codes": (np.uint8, 2), "doc_offsets": (np.int64, 1),
                    "doc_lengths": (np.int32, 1), "doc_internal": (np.int64, 1)}
        for key, (dtype, ndim) in expected.items():
            if a[key].dtype != dtype or a[key].ndim != ndim:
                raise bad(f"{ARRAY_FILES[key]} holds {a[key].dtype} of shape {a[key].shape}, "
                          f"expected {ndim}-D {np.dtype(dtype).name}")
        n_c = len(a["centroids"])
        if (a["centroids"].shape[1] != dim or a["cutoffs"].shape != (dim, buckets - 1)
                or a["weights"].shape != (dim, buckets)):
            raise bad(f"the codec arrays do not fit dim={dim}, nbits={self._nbits}")
        if n_c and self._requested_centroids not in (None, n_c):
            raise bad(f"{ARRAY_FILES['centroids']} holds {n_c} centroids, the manifest records "
                      f"{self._requested_centroids}")
        n_tok = len(a["token_centroids"])
        if a["codes"].shape != (n_tok, self.code_bytes):
            raise bad(f"{ARRAY_FILES['codes']} has shape {a['codes'].shape}, expected "
                      f"({n_tok}, {self.code_bytes})")
        if n_tok and not n_c:
            raise bad(f"{n_tok} tokens are stored but there are no centroids")
        n_docs = len(a["doc_internal"])
        if len(a["doc_offsets"]) != n_docs or len(a["doc_lengths"]) != n_docs:
            raise bad("doc_offsets, doc_lengths and doc_internal differ in length")
        lengths = np.asarray(a["doc_lengths"], dtype=np.int64)
        if n_docs and ((lengths < 1).any() or int(lengths.sum()) != n_tok or not np.array_equal(
                a["doc_offsets"], np.concatenate([[0], np.cumsum(lengths)[:-1]]))):
            raise bad("doc_offsets and doc_lengths do not tile the stored tokens")
        if not n_docs and n_tok:
            raise bad(f"{n_tok} tokens are stored but no documents")
        if n_docs > 1 and (np.diff(a["doc_internal"]) <= 0).any():
            raise bad(f"{ARRAY_FILES['doc_internal']} is not strictly increasing")
        if n_tok and (int(a["token_centroids"].min()) < 0
                      or int(a["token_centroids"].max()) >= n_c):
            raise bad(f"{ARRAY_FILES['token_centroids']} refers to centroids outside 0..{n_c - 1}")

    def _after_load(self, manifest: IndexManifest, folder: Path) -> None:
        def bad(reason: str) -> IndexMismatchError:
            return IndexMismatchError(Errors.E011.format(path=folder, reason=reason))

        stored = set(self._doc_internal.tolist())
        live = set(self._int_to_id)
        if self._tombstones & live:
            raise bad(f"{TOMBSTONES_FILE} lists ids that are still in ids.json")
        if stored != live | self._tombstones:
            raise bad(f"the stored documents ({len(stored)}) are not the ids in ids.json "
                      f"({len(live)}) plus the tombstones ({len(self._tombstones)})")
        n_tokens = manifest.extra.get("n_tokens")
        if n_tokens is not None and n_tokens != len(self._token_centroids):
            raise bad(f"{ARRAY_FILES['token_centroids']} holds {len(self._token_centroids)} "
                      f"tokens, the manifest records {n_tokens}")
