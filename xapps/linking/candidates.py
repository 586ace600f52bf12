"""Candidate generation for entity linking: character n-gram TF-IDF, dense bi-encoder and
their ensemble, behind one interface.

Every generator scores the KB's names (canonical names and aliases) and keeps, per concept,
its best-scoring name ("max over aliases"), so concepts with many synonyms are not favoured
by count. All of them save to plain files (JSON, .npz, a FAISS index folder); no pickle.
"""
from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..artifacts import read_component_cfg
from ..errors import Errors, InputError
from ..registry import candidate_generators
from .types import Candidate, Mention

logger = logging.getLogger("xapps")

CFG_FILE = "cfg.json"


class CandidateGenerator(ABC):
    """Proposes up to ``k`` concepts per mention, best first."""

    #: Registry name, also the key of ``Candidate.sources``.
    kind: str = ""

    def __init__(self, **cfg: Any) -> None:
        self.cfg = cfg
        self.kb = None
        self.build_seconds: float | None = None

    @property
    def name(self) -> str:
        return self.cfg.get("name") or self.kind

    def fit(self, kb) -> "CandidateGenerator":
        """Index the names of ``kb`` (an :class:`~xapps.linking.kb.KnowledgeBase`)."""
        start = time.perf_counter()
        self.kb = kb
        self._fit(kb)
        self.build_seconds = time.perf_counter() - start
        logger.info("%s: indexed %d concepts in %.1f s", self.name, len(kb), self.build_seconds)
        return self

    @abstractmethod
    def _fit(self, kb) -> None: ...

    @abstractmethod
    def generate(self, mentions: Sequence[Mention], k: int = 64) -> list[list[Candidate]]: ...

    def to_disk(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = {"kind": self.kind, **self.cfg, "kb_sha256": getattr(self.kb, "sha256", None)}
        (folder / CFG_FILE).write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        self._save(folder)

    @abstractmethod
    def _save(self, folder: Path) -> None: ...

    @abstractmethod
    def _load(self, folder: Path) -> None: ...

    @property
    def concept_ids(self) -> list[str]:
        """Concept id per KB position, cached: generators return ids, indexes store positions."""
        if getattr(self, "_concept_ids", None) is None or len(self._concept_ids) != len(self.kb):
            self._concept_ids = [c.concept_id for c in self.kb.concepts]
        return self._concept_ids

    def _check_fitted(self) -> None:
        if self.kb is None:
            raise InputError(Errors.E080.format(name=self.name))


def load_generator(folder: str | Path, kb) -> CandidateGenerator:
    """Restore a generator saved with ``to_disk`` for the same KB."""
    folder = Path(folder)
    cfg = read_component_cfg(folder, "xmen_linker candidate generator", cfg_name=CFG_FILE)
    if "kind" not in cfg:
        raise InputError(Errors.E145.format(path=folder, factory="xmen_linker candidate "
                                            "generator", reason=f"{CFG_FILE} has no 'kind'"))
    kind = cfg.pop("kind")
    saved_kb = cfg.pop("kb_sha256", None)
    if saved_kb and getattr(kb, "sha256", None) and saved_kb != kb.sha256:
        raise InputError(Errors.E081.format(path=folder, saved=saved_kb, given=kb.sha256))
    generator = make_generator(kind, **cfg)
    generator.kb = kb
    generator._load(folder)
    return generator


def make_generator(kind: str, **cfg: Any) -> CandidateGenerator:
    try:
        cls = candidate_generators.get(kind)
    except Exception:  # catalogue.RegistryError
        raise InputError(Errors.E082.format(value=kind, options=sorted(
            candidate_generators.get_all()))) from None
    return cls(**cfg)


def top_concepts(name_scores: np.ndarray, name_ids: np.ndarray, concept_of_name: np.ndarray,
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` concepts from scored names, keeping each concept's best name. Equal scores
    (one spelling under two concepts) go to the name listed first in the KB, so results do
    not depend on the search backend's tie order (measured on Mantra GSC: +1.2 R@1 over
    FAISS's order, because the KB lists its primary terminology first).

    >>> top_concepts(np.array([0.9, 0.8, 0.7]), np.array([0, 1, 2]), np.array([5, 5, 7]), 2)
    (array([5, 7]), array([0.9, 0.7], dtype=float32))
    >>> top_concepts(np.array([0.5, 0.5]), np.array([3, 1]), np.array([0, 1, 2, 3]), 2)[0]
    array([1, 3])
    """
    if len(name_ids) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    order = np.lexsort((name_ids, -name_scores))
    concepts = concept_of_name[name_ids[order]]
    _, first = np.unique(concepts, return_index=True)
    first.sort()  # positions of each concept's best name, in score order
    keep = order[first[:k]]
    return concept_of_name[name_ids[keep]].astype(np.int64), name_scores[keep].astype(np.float32)


class _MentionCache:
    """Mentions repeat a lot in clinical text ("patients", "pain"): cache per (text, k)."""

    def __init__(self, size: int = 100_000) -> None:
        self.size = size
        self.data: dict[tuple[str, int], list[Candidate]] = {}

    def get(self, key):
        hit = self.data.get(key)
        return None if hit is None else [Candidate(c.concept_id, c.score, dict(c.sources))
                                         for c in hit]

    def put(self, key, value: list[Candidate]) -> None:
        if len(self.data) >= self.size:
            self.data.pop(next(iter(self.data)))
        self.data[key] = value


def _generate_cached(generator, cache: _MentionCache, mentions: Sequence[Mention], k: int,
                     compute) -> list[list[Candidate]]:
    """Run ``compute(unique_texts, k)`` only on texts not cached, deduplicated."""
    keys = [(m.text, k) for m in mentions]
    todo = sorted({key[0] for key in keys if cache.get(key) is None})
    if todo:
        for text, cands in zip(todo, compute(todo, k)):
            cache.put((text, k), cands)
    return [cache.get(key) or [] for key in keys]


@candidate_generators.register("tfidf")
class TfidfGenerator(CandidateGenerator):
    """Character n-gram TF-IDF with exact sparse cosine search (scispaCy's and xMEN's
    representation, without nmslib): at tens of thousands of names an exact sparse product is
    faster to build than an ANN graph and has no recall loss."""

    kind = "tfidf"

    def __init__(self, ngram_min: int = 3, ngram_max: int = 3, min_df: int = 1,
                 batch_size: int = 512, name: str | None = None) -> None:
        super().__init__(ngram_min=ngram_min, ngram_max=ngram_max, min_df=min_df,
                         batch_size=batch_size, name=name)
        self._cache = _MentionCache()

    def _vectorizer(self, vocabulary=None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(analyzer="char_wb", lowercase=True, dtype=np.float32,
                               ngram_range=(self.cfg["ngram_min"], self.cfg["ngram_max"]),
                               min_df=self.cfg["min_df"] if vocabulary is None else 1,
                               vocabulary=vocabulary)

    def _fit(self, kb) -> None:
        table = kb.alias_table()
        self.concept_of_name = np.asarray(table.concept_index, dtype=np.int64)
        self.vectorizer = self._vectorizer()
        # Rows are L2-normalised by TfidfVectorizer, so a dot product is the cosine.
        self.name_matrix = self.vectorizer.fit_transform(table.names).tocsr()
        self._name_matrix_t = self.name_matrix.T.tocsr()
        self._cache = _MentionCache()

    def generate(self, mentions: Sequence[Mention], k: int = 64) -> list[list[Candidate]]:
        self._check_fitted()
        return _generate_cached(self, self._cache, mentions, k, self._compute)

    def _compute(self, texts: list[str], k: int) -> list[list[Candidate]]:
        out: list[list[Candidate]] = []
        ids = self.concept_ids
        for start in range(0, len(texts), self.cfg["batch_size"]):
            queries = self.vectorizer.transform(texts[start:start + self.cfg["batch_size"]])
            scores = (queries @ self._name_matrix_t).tocsr()
            for row in range(scores.shape[0]):
                lo, hi = scores.indptr[row], scores.indptr[row + 1]
                if hi == lo:  # no shared n-gram (or an empty query vector): no candidate
                    out.append([])
                    continue
                concepts, vals = top_concepts(scores.data[lo:hi], scores.indices[lo:hi],
                                              self.concept_of_name, k)
                out.append([Candidate(ids[c], float(v), {self.name: float(v)})
                            for c, v in zip(concepts, vals)])
        return out

    def _save(self, folder: Path) -> None:
        import scipy.sparse as sp

        vocab = {term: int(i) for term, i in self.vectorizer.vocabulary_.items()}
        (folder / "vocabulary.json").write_text(json.dumps(vocab, ensure_ascii=False),
                                                encoding="utf-8")
        np.save(folder / "idf.npy", self.vectorizer.idf_.astype(np.float32))
        np.save(folder / "concept_of_name.npy", self.concept_of_name)
        sp.save_npz(folder / "names.npz", self.name_matrix)

    def _load(self, folder: Path) -> None:
        import scipy.sparse as sp

        vocab = json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
        self.vectorizer = self._vectorizer(vocabulary=vocab)
        self.vectorizer.idf_ = np.load(folder / "idf.npy")
        self.concept_of_name = np.load(folder / "concept_of_name.npy")
        self.name_matrix = sp.load_npz(folder / "names.npz").tocsr()
        self._name_matrix_t = self.name_matrix.T.tocsr()
        self._cache = _MentionCache()


@candidate_generators.register("dense")
class DenseGenerator(CandidateGenerator):
    """Bi-encoder on the shared backbone and the shared FAISS index (SapBERT-style): names and
    mentions are encoded alike (e5's symmetric ``query:`` prompt), exact inner product by
    default, max over each concept's names.

    Speed on CPU: ``dtype="fast"`` runs bf16 where the CPU computes it natively (about 2x,
    same recall on Mantra GSC); ``quantize="int8"`` runs dynamic-int8 linear layers on any CPU
    (about 2x, but costs recall: see benchmarks/README.md). Both are ignored on a GPU, which
    runs bf16/fp16.
    """

    kind = "dense"

    def __init__(self, backbone: str = "me5-small", index_type: str = "flat",
                 batch_size: int = 128, overfetch: int = 4, prompt: str | None = "query",
                 dtype: str | None = None, quantize: str | None = None,
                 name: str | None = None) -> None:
        super().__init__(backbone=backbone, index_type=index_type, batch_size=batch_size,
                         overfetch=overfetch, prompt=prompt, dtype=dtype, quantize=quantize,
                         name=name)
        self._cache = _MentionCache()
        self._backbone = None

    @property
    def backbone(self):
        if self._backbone is None:
            from ..backbone import load_backbone

            self._backbone = load_backbone(self.cfg["backbone"], dtype=self.cfg.get("dtype"),
                                           quantize=self.cfg.get("quantize"))
        return self._backbone

    def _fit(self, kb) -> None:
        from ..index.dense import DenseIndex

        table = kb.alias_table()
        self.concept_of_name = np.asarray(table.concept_index, dtype=np.int64)
        vectors = self.backbone.encode(table.names, prompt=self.cfg["prompt"],
                                       batch_size=self.cfg["batch_size"],
                                       progress=len(table.names) > 2000)
        self.index = DenseIndex(dim=vectors.shape[1], metric="cosine",
                                index_type=self.cfg["index_type"],
                                backbone=self.backbone.identity)
        self.index.build([str(i) for i in range(len(table.names))], vectors)
        self._map_labels()
        self._cache = _MentionCache()

    def _map_labels(self) -> None:
        # The index stores name i under id str(i); map its int64 labels straight to name
        # positions so ranking never builds a Python object per hit.
        names = np.arange(len(self.concept_of_name))
        labels = self.index.labels([str(i) for i in names])
        self._name_of_label = np.full(int(labels.max(initial=-1)) + 1, -1, dtype=np.int64)
        self._name_of_label[labels] = names

    def generate(self, mentions: Sequence[Mention], k: int = 64) -> list[list[Candidate]]:
        self._check_fitted()
        return _generate_cached(self, self._cache, mentions, k, self._compute)

    def encode_mentions(self, texts: Sequence[str]) -> np.ndarray:
        return self.backbone.encode(list(texts), prompt=self.cfg["prompt"],
                                    batch_size=self.cfg["batch_size"], progress=False)

    def _compute(self, texts: list[str], k: int) -> list[list[Candidate]]:
        return self.search_vectors(self.encode_mentions(texts), k)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[Candidate]]:
        """Candidates for already-encoded mentions (lets a caller batch the backbone)."""
        ids, name = self.concept_ids, self.name
        fetch = max(1, min(len(self.index), k * self.cfg["overfetch"]))
        all_scores, labels = self.index.search_arrays(vectors, fetch)
        out = []
        for scores, row_labels in zip(all_scores, labels):
            live = row_labels >= 0
            concepts, vals = top_concepts(scores[live], self._name_of_label[row_labels[live]],
                                          self.concept_of_name, k)
            out.append([Candidate(ids[c], v, {name: v})
                        for c, v in zip(concepts.tolist(), vals.tolist())])
        return out

    def _save(self, folder: Path) -> None:
        np.save(folder / "concept_of_name.npy", self.concept_of_name)
        self.index.save(folder / "index")

    def _load(self, folder: Path) -> None:
        from ..index.dense import DenseIndex

        self.concept_of_name = np.load(folder / "concept_of_name.npy")
        self.index = DenseIndex.load(folder / "index", backbone=self.backbone.identity)
        self._map_labels()
        self._cache = _MentionCache()


NORMALISERS = ("none", "minmax", "rank")


def normalise(scores: np.ndarray, method: str) -> np.ndarray:
    """Per-mention score normalisation so generators on different scales can be combined.

    >>> normalise(np.array([0.5, 0.3, 0.1]), "minmax").round(2).tolist()
    [1.0, 0.5, 0.0]
    >>> normalise(np.array([0.5, 0.3]), "rank").tolist()
    [1.0, 0.5]
    """
    if len(scores) == 0 or method == "none":
        return scores.astype(np.float32)
    if method == "minmax":
        lo, hi = float(scores.min()), float(scores.max())
        return ((scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)).astype(np.float32)
    if method == "rank":
        return (1.0 / np.arange(1, len(scores) + 1)).astype(np.float32)
    raise InputError(Errors.E083.format(value=method, options=NORMALISERS))


@candidate_generators.register("ensemble")
class EnsembleGenerator(CandidateGenerator):
    """Union of several generators' candidates, each with its own k, weight and score
    normalisation; combined by the max or the weighted sum of normalised scores. Each
    candidate's ``sources`` says which generators proposed it and with what raw score."""

    kind = "ensemble"

    def __init__(self, generators: Sequence[dict] = ({"kind": "tfidf"}, {"kind": "dense"}),
                 combine: str = "max", name: str | None = None) -> None:
        if combine not in ("max", "sum"):
            raise InputError(Errors.E083.format(value=combine, options=("max", "sum")))
        specs = [dict(spec) for spec in generators]
        super().__init__(generators=specs, combine=combine, name=name)
        self.members: list[tuple[CandidateGenerator, dict]] = []
        for spec in specs:
            spec = dict(spec)
            opts = {key: spec.pop(key) for key in ("k", "weight", "normalise") if key in spec}
            opts.setdefault("weight", 1.0)
            # Raw cosines by default: measured on Mantra GSC, min-max normalising each list
            # lets every generator's top candidate tie at 1.0 and costs 13 points of R@1.
            opts.setdefault("normalise", "none")
            self.members.append((make_generator(spec.pop("kind"), **spec), opts))

    def _fit(self, kb) -> None:
        for generator, _ in self.members:
            generator.fit(kb)

    def generate(self, mentions: Sequence[Mention], k: int = 64) -> list[list[Candidate]]:
        self._check_fitted()
        per_member = [(g.generate(mentions, opts.get("k", k)), g.name, opts)
                      for g, opts in self.members]
        return [self._combine([(lists[i], name, opts) for lists, name, opts in per_member], k)
                for i in range(len(mentions))]

    def _combine(self, lists, k: int) -> list[Candidate]:
        merged: dict[str, Candidate] = {}
        for cands, name, opts in lists:
            norm = normalise(np.array([c.score for c in cands], dtype=np.float32),
                             opts["normalise"])
            for cand, value in zip(cands, norm):
                value = float(value) * opts["weight"]
                entry = merged.get(cand.concept_id)
                if entry is None:
                    merged[cand.concept_id] = Candidate(cand.concept_id, value, dict(cand.sources))
                    continue
                entry.sources.update(cand.sources)
                entry.score = (max(entry.score, value) if self.cfg["combine"] == "max"
                               else entry.score + value)
        ranked = sorted(merged.values(), key=lambda c: -c.score)
        return ranked[:k]

    def _save(self, folder: Path) -> None:
        for i, (generator, _) in enumerate(self.members):
            generator.to_disk(folder / f"{i}-{generator.name}")

    def _load(self, folder: Path) -> None:
        loaded = []
        for i, (generator, opts) in enumerate(self.members):
            loaded.append((load_generator(folder / f"{i}-{generator.name}", self.kb), opts))
        self.members = loaded
