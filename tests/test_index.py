"""Index layer: DenseIndex (flat / HNSW / IVF-PQ), manifest, atomic saves, load_index.

Random seeded vectors only; no models, no network.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import catalogue
import faiss
import numpy as np
import pytest

from xapps.errors import IndexMismatchError, InputError, XappsError
from xapps.index import DenseIndex, Hit, VectorIndex, load_index
from xapps.index.manifest import (
    IndexManifest,
    atomic_directory,
    check_compatible,
    read_manifest,
    sha256_file,
)

DIM = 32
IVF_N = 2000
TYPES = ["flat", "hnsw", "ivfpq"]


def _vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _ids(n: int) -> list[str]:
    return [f"doc-{i}" for i in range(n)]


def _n_for(kind: str) -> int:
    return IVF_N if kind == "ivfpq" else 300


@pytest.fixture(scope="module")
def ivf_data() -> tuple[list[str], np.ndarray]:
    return _ids(IVF_N), _vectors(IVF_N, seed=1)


def _built(kind: str, n: int | None = None, **kw) -> tuple[DenseIndex, list[str], np.ndarray]:
    n = n or _n_for(kind)
    ids, x = _ids(n), _vectors(n, seed=1)
    index = DenseIndex(DIM, index_type=kind, **kw)
    index.build(ids, x)
    return index, ids, x


def test_flat_cosine_exact_self_retrieval_with_unicode_ids() -> None:
    ids = ["naïve", "Ελληνικά", "中文-文档", "emoji 🚀", "ʻōlelo", "tab\tand\nnewline"]
    ids += [f"ру-{i}" for i in range(94)]
    x = _vectors(100) * np.linspace(0.5, 5, 100, dtype=np.float32)[:, None]  # varied norms
    index = DenseIndex(DIM, metric="cosine", index_type="flat")
    index.add(ids, x)
    results = index.search(x, k=3)
    assert [hits[0].id for hits in results] == ids
    assert all(isinstance(h, Hit) and type(h.score) is float for h in results[0])
    np.testing.assert_allclose([hits[0].score for hits in results], 1.0, atol=1e-5)
    assert "中文-文档" in index and "missing" not in index and 3 not in index
    assert index.ids() == ids


def test_ip_metric_keeps_raw_scores() -> None:
    x = _vectors(10)
    index = DenseIndex(DIM, metric="ip", index_type="flat")
    index.add(_ids(10), x)
    hits = index.search(x[:1], k=10)[0]
    expected = sorted((float(x[0] @ v) for v in x), reverse=True)
    np.testing.assert_allclose([h.score for h in hits], expected, rtol=1e-5)
    assert not index.normalized


def test_hnsw_recall_against_flat() -> None:
    x, q = _vectors(500, seed=2), _vectors(50, seed=3)
    flat, hnsw = DenseIndex(DIM, index_type="flat"), DenseIndex(DIM, index_type="hnsw")
    for index in (flat, hnsw):
        index.add(_ids(500), x)
    exact, approx = flat.search(q, k=10), hnsw.search(q, k=10)
    recall = np.mean([len({h.id for h in a} & {h.id for h in e}) / 10
                      for a, e in zip(approx, exact)])
    assert recall >= 0.9


@pytest.mark.parametrize("kind", TYPES)
def test_removed_ids_never_come_back_even_after_save_and_load(kind: str, tmp_path: Path) -> None:
    index, ids, x = _built(kind)
    removed = ids[::3]
    assert index.remove(removed + ["not-there"]) == len(removed)
    assert index.remove(removed[:5]) == 0
    assert len(index) == len(ids) - len(removed)
    gone = set(removed)

    def check(idx: DenseIndex) -> list[list[Hit]]:
        results = idx.search(x[:200], k=20, nprobe=32)
        assert all(h.id not in gone for hits in results for h in hits)
        assert all(len(hits) == 20 for hits in results)
        assert not any(r in idx for r in removed)
        return results

    check(index)
    index.save(tmp_path / "ix")  # HNSW: a third removed is over 20%, so this compacts
    loaded = DenseIndex.load(tmp_path / "ix")
    assert check(loaded) == check(index)
    assert len(loaded) == len(index)
    if kind == "hnsw":
        assert loaded.manifest.extra["tombstones"] == 0
        assert loaded.manifest.extra["ntotal"] == len(loaded)


def test_hnsw_tombstones_persist_below_compaction_threshold(tmp_path: Path) -> None:
    index, ids, x = _built("hnsw")
    index.remove(ids[:10])
    index.save(tmp_path / "ix")
    assert json.loads((tmp_path / "ix" / "tombstones.json").read_text()) == list(range(10))
    loaded = DenseIndex.load(tmp_path / "ix")
    assert loaded.manifest.extra == {**loaded.manifest.extra, "tombstones": 10,
                                     "ntotal": len(ids)}
    # k and ef_search cover every vector: tombstoned ones must still not leak
    hits = loaded.search(x[:10], k=len(ids), ef_search=1000)
    assert all(len(h) == len(ids) - 10 and not set(ids[:10]) & {x.id for x in h} for h in hits)
    assert loaded.compact() == 10 and loaded.manifest.extra["ntotal"] == len(ids) - 10
    assert [h[0].id for h in loaded.search(x[10:30], k=1)] == ids[10:30]


def test_hnsw_over_fetch_with_many_tombstones() -> None:
    index, ids, x = _built("hnsw", n=400)
    index.remove(ids[:300])  # far more tombstones than one over-fetch covers
    results = index.search(x[:20], k=50, ef_search=400)
    assert all(len(hits) == 50 for hits in results)
    assert all(int(h.id.split("-")[1]) >= 300 for hits in results for h in hits)


@pytest.mark.parametrize("kind", TYPES)
def test_search_arrays_agree_with_search_and_map_back_through_labels(kind: str,
                                                                      tmp_path: Path) -> None:
    index, ids, x = _built(kind)
    index.remove(ids[:5])
    hits = index.search(x[:8], k=10)
    scores, labels = index.search_arrays(x[:8], k=10)
    assert scores.shape == labels.shape == (8, 10) and scores.dtype == np.float32
    id_of = {int(key): i for key, i in zip(index.labels(ids[5:]), ids[5:])}
    for row_hits, row_scores, row_labels in zip(hits, scores, labels):
        live = row_labels >= 0
        assert [id_of[int(key)] for key in row_labels[live]] == [h.id for h in row_hits]
        np.testing.assert_allclose(row_scores[live], [h.score for h in row_hits], rtol=1e-6)
        assert np.isneginf(row_scores[~live]).all()
    index.save(tmp_path / "ix")
    assert (DenseIndex.load(tmp_path / "ix").labels(ids[5:]) == index.labels(ids[5:])).all()
    with pytest.raises(KeyError, match="doc-0"):
        index.labels(["doc-0"])


def test_search_arrays_pad_when_the_index_is_small() -> None:
    index = DenseIndex(dim=DIM).build(_ids(3), _vectors(3))
    scores, labels = index.search_arrays(_vectors(2, seed=1), k=5)
    assert (labels[:, :3] >= 0).all() and (labels[:, 3:] == -1).all()
    assert np.isneginf(scores[:, 3:]).all()
    empty_scores, empty_labels = DenseIndex(dim=DIM).search_arrays(_vectors(2), k=4)
    assert empty_labels.shape == (2, 4) and (empty_labels == -1).all()


@pytest.mark.parametrize("kind", TYPES)
def test_save_load_round_trip_is_identical(kind: str, tmp_path: Path) -> None:
    index, ids, x = _built(kind, backbone={"name": "me5-small", "sha256": "ab" * 32})
    index.save(tmp_path / "ix")
    loaded = load_index(tmp_path / "ix", backbone="me5-small")
    assert isinstance(loaded, DenseIndex) and loaded.index_type == kind
    assert loaded.search(x[:50], k=5) == index.search(x[:50], k=5)
    assert loaded.ids() == ids and loaded.params == index.params
    np.testing.assert_allclose(loaded.reconstruct(ids[7]), index.reconstruct(ids[7]))


def test_metadata_round_trip(tmp_path: Path) -> None:
    ids = ["a", "b", "c"]
    meta = [{"text": "Grüße aus Köln", "lang": "de", "tags": ("x", "y")}, None,
            {"text": "你好", "score": 0.5, "nested": {"n": [1, 2]}}]
    index = DenseIndex(DIM, index_type="flat")
    index.add(ids, _vectors(3), metadata=meta)
    expected = [{"text": "Grüße aus Köln", "lang": "de", "tags": ["x", "y"]}, {},
                {"text": "你好", "score": 0.5, "nested": {"n": [1, 2]}}]
    assert [index.get_metadata(i) for i in ids] == expected
    index.get_metadata("a")["text"] = "changed"  # a copy: the index is unaffected
    index.save(tmp_path / "ix")
    loaded = DenseIndex.load(tmp_path / "ix")
    assert [loaded.get_metadata(i) for i in ids] == expected
    loaded.remove("a")
    with pytest.raises(KeyError, match="'a'"):
        loaded.get_metadata("a")
    with pytest.raises(InputError, match=r"E019.*metadata for id 'd'.*JSON-serialisable"):
        loaded.add(["d"], _vectors(1), metadata=[{"bad": object()}])
    with pytest.raises(InputError, match=r"E019.*2 ids but 1 metadata"):
        loaded.add(["d", "e"], _vectors(2), metadata=[{}])
    assert "d" not in loaded


def test_manifest_contents(tmp_path: Path) -> None:
    index, ids, _ = _built("hnsw", backbone={"name": "me5-small", "sha256": "cd" * 32},
                           params={"M": 16})
    index.save(tmp_path / "ix")
    raw = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    manifest = read_manifest(tmp_path / "ix")
    assert raw == manifest.to_dict()
    assert (manifest.kind, manifest.dim, manifest.metric, manifest.normalized) == (
        "dense", DIM, "cosine", True)
    assert manifest.index_type == "hnsw" and manifest.count == len(ids)
    assert manifest.params == {"M": 16, "ef_construction": 80, "ef_search": 64}
    assert manifest.backbone == {"name": "me5-small", "sha256": "cd" * 32}
    assert manifest.xapps_version and manifest.created_at
    assert set(manifest.files) == {"index.faiss", "ids.json", "meta.jsonl", "tombstones.json"}
    for name, digest in manifest.files.items():
        assert sha256_file(tmp_path / "ix" / name) == digest
    assert IndexManifest.from_json(manifest.to_json()) == manifest


def test_mismatched_backbone_or_dim_is_refused(tmp_path: Path) -> None:
    index, _, _ = _built("flat", backbone="me5-small")
    index.save(tmp_path / "ix")
    with pytest.raises(IndexMismatchError, match=r"'me5-small'.*'xlm-roberta-base'"):
        DenseIndex.load(tmp_path / "ix", backbone="xlm-roberta-base")
    with pytest.raises(IndexMismatchError, match=r"E010.*dim = 32, but 768"):
        load_index(tmp_path / "ix", dim=768)
    manifest = read_manifest(tmp_path / "ix")
    manifest.backbone = {"name": "me5-small", "sha256": "00" * 32}
    with pytest.raises(IndexMismatchError, match="sha256"):
        check_compatible(manifest, {"name": "me5-small", "sha256": "11" * 32})
    check_compatible(manifest, "me5-small", DIM)  # no sha given: the name is enough


def test_search_with_vectors_of_another_dim_fails() -> None:
    index, _, _ = _built("flat")
    with pytest.raises(InputError, match=r"E013.*dimension 16.*expects 32"):
        index.search(_vectors(2, dim=16), k=3)


def test_corrupted_file_is_detected(tmp_path: Path) -> None:
    index, _, _ = _built("flat")
    index.save(tmp_path / "ix")
    file = tmp_path / "ix" / "index.faiss"
    data = bytearray(file.read_bytes())
    data[-5] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(IndexMismatchError, match=r"E012.*index\.faiss"):
        DenseIndex.load(tmp_path / "ix")
    (tmp_path / "ix" / "ids.json").unlink()
    with pytest.raises(IndexMismatchError, match=r"E012.*ids\.json.*<missing>"):
        DenseIndex.load(tmp_path / "ix")


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"kind": "dense"}'])
def test_missing_or_garbled_manifest(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "ix"
    folder.mkdir()
    if content:
        (folder / "manifest.json").write_text(content)
    with pytest.raises(IndexMismatchError, match=r"E011.*not an xapps index"):
        load_index(folder)


def test_failing_save_leaves_no_folder_and_keeps_older_index(tmp_path: Path,
                                                             monkeypatch) -> None:
    old, _, x = _built("flat")
    old.save(tmp_path / "ix")
    before = sorted(p.name for p in tmp_path.iterdir())
    expected = old.search(x[:5], k=3)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken)
    new, _, _ = _built("flat", n=50)
    with pytest.raises(RuntimeError, match="disk full"):
        new.save(tmp_path / "fresh")
    with pytest.raises(RuntimeError, match="disk full"):
        new.save(tmp_path / "ix")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temp or new folder
    monkeypatch.undo()
    assert DenseIndex.load(tmp_path / "ix").search(x[:5], k=3) == expected


def test_save_replaces_an_index_but_never_another_folder(tmp_path: Path) -> None:
    index, _, _ = _built("flat", n=20)
    index.save(tmp_path / "ix")
    index.remove(["doc-0"])
    index.save(tmp_path / "ix")
    assert read_manifest(tmp_path / "ix").count == 19
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match=r"E017.*notes.*not an xapps index"):
        index.save(tmp_path / "notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_atomic_directory_removes_temp_folder_on_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        with atomic_directory(tmp_path / "out") as tmp:
            (tmp / "half.bin").write_bytes(b"x")
            raise ValueError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "whole.bin").write_bytes(b"y")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert (tmp_path / "out" / "whole.bin").read_bytes() == b"y"


class ToyMultiVectorIndex(VectorIndex):
    """Exact MaxSim over token vectors: proves the base serves a many-vectors-per-id index."""

    kind = "toy-multivector"

    def __init__(self, dim: int, metric: str = "cosine", *, backbone=None) -> None:
        super().__init__(dim, metric, backbone=backbone)
        self._docs: dict[int, np.ndarray] = {}

    @property
    def index_type(self) -> str:
        return "exact"

    def add(self, ids, vectors, metadata=None) -> None:
        ids = self._check_new_ids(ids)
        metas = self._check_metadata(ids, metadata)
        internal = self._reserve(len(ids))
        for key, tokens in zip(internal.tolist(), vectors):
            self._docs[key] = np.asarray(tokens, dtype=np.float32)
        self._commit(ids, internal, metas)

    def search(self, queries, k: int = 10) -> list[list[Hit]]:
        out = []
        for q in queries:
            scores = {self._int_to_id[key]: float((q @ d.T).max(axis=1).sum())
                      for key, d in self._docs.items()}
            out.append([Hit(i, s) for i, s in sorted(scores.items(), key=lambda t: -t[1])[:k]])
        return out

    def _remove_internal(self, internal: np.ndarray) -> None:
        for key in internal.tolist():
            del self._docs[key]

    def _write_payload(self, folder: Path) -> None:
        keys = sorted(self._docs)
        np.save(folder / "tokens.npy", np.concatenate([self._docs[key] for key in keys]))
        np.save(folder / "doclens.npy", np.array([len(self._docs[key]) for key in keys]))
        np.save(folder / "keys.npy", np.array(keys, dtype=np.int64))

    @classmethod
    def _from_saved(cls, manifest, folder, *, mmap):
        index = cls(manifest.dim, manifest.metric, backbone=manifest.backbone)
        tokens = np.load(folder / "tokens.npy", mmap_mode="r" if mmap else None)
        starts = np.cumsum(np.load(folder / "doclens.npy"))
        for key, chunk in zip(np.load(folder / "keys.npy").tolist(),
                              np.split(tokens, starts[:-1])):
            index._docs[key] = chunk
        return index


def test_load_index_dispatches_on_kind(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(catalogue.REGISTRY, ("xapps", "indexes", ToyMultiVectorIndex.kind),
                        ToyMultiVectorIndex)
    docs = [_vectors(n, dim=8, seed=n) for n in (3, 5, 2)]
    multi = ToyMultiVectorIndex(8, backbone="me5-small")
    multi.add(["x", "y", "z"], docs, metadata=[{"t": 1}, None, None])
    multi.remove("z")
    multi.save(tmp_path / "multi")
    dense, _, x = _built("flat")
    dense.save(tmp_path / "dense")

    loaded_multi = load_index(tmp_path / "multi", backbone="me5-small")
    assert type(loaded_multi) is ToyMultiVectorIndex and loaded_multi.ids() == ["x", "y"]
    assert loaded_multi.search([docs[1]], k=2) == multi.search([docs[1]], k=2)
    assert loaded_multi.get_metadata("x") == {"t": 1}
    assert type(VectorIndex.load(tmp_path / "dense")) is DenseIndex
    with pytest.raises(IndexMismatchError, match=r"E011.*'toy-multivector' index, not 'dense'"):
        DenseIndex.load(tmp_path / "multi")
    monkeypatch.undo()
    with pytest.raises(IndexMismatchError, match=r"kind 'toy-multivector' is not a registered"):
        load_index(tmp_path / "multi")


@pytest.mark.parametrize("kind", TYPES)
def test_mmap_load_gives_same_results_and_is_read_only(kind: str, tmp_path: Path) -> None:
    index, ids, x = _built(kind)
    index.remove(ids[:5])
    index.save(tmp_path / "ix")
    mapped = load_index(tmp_path / "ix", mmap=True)
    assert mapped.mmap
    assert mapped.search(x[:50], k=5) == index.search(x[:50], k=5)
    maps = Path("/proc/self/maps")
    if maps.exists():  # the FAISS file really is mapped, not read into memory
        assert str(tmp_path / "ix" / "index.faiss") in maps.read_text()
    with pytest.raises(XappsError, match=r"E017.*mmap=True.*read-only"):
        mapped.add(["new"], _vectors(1))
    with pytest.raises(XappsError, match="E017"):
        mapped.remove(ids[10:12])
    mapped.save(tmp_path / "copy")  # writes the mapped bytes, not a pointer to them
    assert DenseIndex.load(tmp_path / "copy").search(x[:50], k=5) == index.search(x[:50], k=5)
    mapped.save(tmp_path / "ix")  # over its own source folder
    assert DenseIndex.load(tmp_path / "ix").search(x[:50], k=5) == index.search(x[:50], k=5)


def test_auto_type_follows_build_size(monkeypatch) -> None:
    import xapps.index.dense as dense

    monkeypatch.setattr(dense, "FLAT_MAX", 100)
    monkeypatch.setattr(dense, "HNSW_MAX", 1000)
    chosen = []
    for n in (50, 500, IVF_N):
        index = DenseIndex(DIM)
        assert index.index_type == "auto"
        index.build(_ids(n), _vectors(n))
        chosen.append(index.index_type)
    assert chosen == ["flat", "hnsw", "ivfpq"]
    assert index.params["nlist"] == round(4 * IVF_N ** 0.5) and DIM % index.params["m"] == 0
    with pytest.raises(InputError, match=r"E019.*build.*already holds"):
        index.build(["again"], _vectors(1))


def test_ivfpq_needs_enough_training_vectors() -> None:
    index = DenseIndex(DIM, index_type="ivfpq")
    with pytest.raises(InputError, match=r"E018.*at least 256.*100 were given.*'flat'"):
        index.add(_ids(100), _vectors(100))
    assert len(index) == 0 and index.index_type == "ivfpq"


def test_search_knobs(ivf_data) -> None:
    ids, x = ivf_data
    index = DenseIndex(DIM, index_type="ivfpq", params={"nlist": 32, "nprobe": 1})
    index.add(ids, x)
    narrow = index.search(x[:200], k=1)
    full = index.search(x[:200], k=1, nprobe=32)
    hit_rate = [np.mean([h[0].id == i for h, i in zip(r, ids)]) for r in (narrow, full)]
    assert hit_rate[1] >= hit_rate[0] and hit_rate[1] > 0.8
    index.nprobe = 32
    assert index.search(x[:200], k=1) == full and index.nprobe == 32
    with pytest.raises(InputError, match=r"E019.*ef_search.*hnsw indexes, this one is ivfpq"):
        index.ef_search = 10
    assert np.linalg.norm(index.reconstruct(ids[0]) - x[0] / np.linalg.norm(x[0])) < 0.8


def test_input_errors_leave_index_unchanged() -> None:
    index, ids, x = _built("flat", n=10)
    with pytest.raises(InputError, match=r"E016.*'doc-3'"):
        index.add(["new", "doc-3"], _vectors(2))
    with pytest.raises(InputError, match=r"E016.*'twice'"):
        index.add(["twice", "twice"], _vectors(2))
    with pytest.raises(InputError, match=r"E013.*dimension 8.*expects 32"):
        index.add(["new"], _vectors(1, dim=8))
    with pytest.raises(InputError, match=r"E014.*2 ids and 3 vectors"):
        index.add(["n1", "n2"], _vectors(3))
    bad = _vectors(2)
    bad[1, 4] = np.nan
    with pytest.raises(InputError, match=r"E019.*row 1 \(id 'n2'\).*NaN"):
        index.add(["n1", "n2"], bad)
    with pytest.raises(InputError, match=r"E019.*zero vector"):
        index.add(["n1"], np.zeros((1, DIM)))
    with pytest.raises(InputError, match=r"E019.*k=0"):
        index.search(x[:1], k=0)
    with pytest.raises(InputError, match=r"E015.*'ivf'"):
        DenseIndex(DIM, index_type="ivf")
    with pytest.raises(InputError, match=r"E019.*params\['m'\]=5.*divide dim 32"):
        DenseIndex(DIM, index_type="ivfpq", params={"m": 5})
    with pytest.raises(InputError, match=r"E019.*params\['efSearch'\]"):
        DenseIndex(DIM, params={"efSearch": 10})
    assert index.ids() == ids and len(index) == 10
    assert len(index.search(x[:1], k=100)[0]) == 10  # k > count: only real hits
    assert DenseIndex(DIM).search(x[:2], k=3) == [[], []]


def test_device_is_chosen_at_search_time(monkeypatch, caplog) -> None:
    index, _, x = _built("flat", n=50)
    expected = index.search(x[:5], k=3)
    index._changed()  # as after an add: the device is decided again at the next search
    moved = []
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    monkeypatch.setattr(faiss, "index_cpu_to_all_gpus",
                        lambda cpu: moved.append(cpu) or cpu, raising=False)
    with caplog.at_level(logging.INFO, logger="xapps"):
        assert index.search(x[:5], k=3) == expected
    assert moved and "FAISS on 2 GPU(s)" in caplog.text
    hnsw, _, _ = _built("hnsw", n=50)
    with caplog.at_level(logging.INFO, logger="xapps"):
        hnsw.search(x[:1], k=1)
    assert "FAISS on CPU (hnsw has no FAISS GPU version)" in caplog.text and len(moved) == 1


def test_cpu_search_logs_cpu(monkeypatch, caplog) -> None:
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 0)
    index, _, x = _built("flat", n=20)
    with caplog.at_level(logging.INFO, logger="xapps"):
        index.search(x[:1], k=1)
    assert "FAISS on CPU" in caplog.text


def test_manifest_files_cleared_once_index_changes(tmp_path: Path) -> None:
    index, ids, _ = _built("flat", n=20)
    assert index.manifest.files == {}
    index.save(tmp_path / "ix")
    assert set(index.manifest.files) >= {"index.faiss", "ids.json"}
    index.remove(ids[0])
    assert index.manifest.files == {} and index.manifest.count == 19



def test_mmap_falls_back_with_a_warning_when_faiss_cannot_map(tmp_path: Path, monkeypatch,
                                                              caplog) -> None:
    index, _, x = _built("flat", n=30)
    index.save(tmp_path / "ix")
    real_read = faiss.read_index

    def no_mmap(path, flags=0):
        if flags:
            raise RuntimeError("mmap not supported for this index")
        return real_read(path)

    monkeypatch.setattr(faiss, "read_index", no_mmap)
    with caplog.at_level(logging.WARNING, logger="xapps"):
        loaded = DenseIndex.load(tmp_path / "ix", mmap=True)
    assert "cannot be memory-mapped" in caplog.text and not loaded.mmap
    assert loaded.search(x[:5], k=3) == index.search(x[:5], k=3)
    loaded.add(["new"], _vectors(1))  # loaded into memory, so writable


@pytest.mark.parametrize("kind", ["auto", "ivfpq"])
def test_empty_untyped_index_saves_and_decides_later(kind: str, tmp_path: Path,
                                                     ivf_data) -> None:
    DenseIndex(DIM, index_type=kind, params={"nprobe": 4}).save(tmp_path / "ix")
    assert "index.faiss" not in read_manifest(tmp_path / "ix").files
    loaded = DenseIndex.load(tmp_path / "ix")
    assert loaded.index_type == kind and len(loaded) == 0 and loaded.nprobe == 4
    assert loaded.search(_vectors(1), k=2) == [[]]
    loaded.add(*ivf_data)
    assert loaded.index_type in ("flat", "ivfpq") and len(loaded) == IVF_N
