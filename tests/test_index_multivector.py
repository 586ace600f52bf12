"""MultiVectorIndex (PLAID-style compressed late interaction) against exact MaxSim.

Seeded synthetic token vectors only: documents draw their tokens around a few of 64 random
topic centres, shifted by a per-document offset (so documents of one topic differ) plus
noise, L2-normalised. No models, no network.
"""
from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import pytest

import xapps.index.multivector as multivector
from xapps.errors import IndexMismatchError, InputError, XappsError
from xapps.index import (
    DenseIndex,
    Hit,
    MultiVectorIndex,
    VectorIndex,
    exact_search,
    load_index,
    maxsim,
    read_manifest,
)
from xapps.index.base import registered_index
from xapps.index.manifest import sha256_file

DIM = 32
N_DOCS = 300
NPY = {"centroids.npy", "bucket_cutoffs.npy", "bucket_weights.npy", "token_centroids.npy",
       "residual_codes.npy", "doc_offsets.npy", "doc_lengths.npy", "doc_internal.npy"}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _docs(n: int = N_DOCS, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((64, DIM)) / np.sqrt(DIM)
    docs = []
    for _ in range(n):
        topics = rng.choice(64, 3, replace=False)
        own = rng.standard_normal((3, DIM)) / np.sqrt(DIM)
        which = rng.integers(3, size=int(rng.integers(8, 41)))
        noise = rng.standard_normal((len(which), DIM)) / np.sqrt(DIM)
        docs.append(_unit(centers[topics[which]] + 0.5 * own[which] + 0.3 * noise))
    return docs


def _queries(docs: list[np.ndarray], n: int = 50, seed: int = 5) -> list[np.ndarray]:
    """Eight noisy tokens of a random document each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        src = docs[int(rng.integers(len(docs)))]
        noise = rng.standard_normal((8, DIM)) / np.sqrt(DIM)
        out.append(_unit(src[rng.choice(len(src), 8)] + 0.3 * noise))
    return out


def _ids(n: int) -> list[str]:
    return [f"doc-{i}" for i in range(n)]


def _recall(approx: list[list[Hit]], exact: list[list[Hit]]) -> float:
    return float(np.mean([len({h.id for h in a} & {h.id for h in e}) / len(e)
                          for a, e in zip(approx, exact)]))


def _build(nbits: int = 2, n: int = N_DOCS, **kw) -> MultiVectorIndex:
    index = MultiVectorIndex(DIM, nbits=nbits, **kw)
    index.add(_ids(n), _docs()[:n])
    return index


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    docs = _docs()
    return _ids(len(docs)), docs, _queries(docs)


@pytest.fixture(scope="module")
def built() -> dict[int, MultiVectorIndex]:
    """One index per nbits, shared by the read-only tests (never mutate these)."""
    return {nbits: _build(nbits) for nbits in (2, 4)}


# -- exact reference -------------------------------------------------------------------------
def test_doctests_of_the_scoring_functions() -> None:
    result = doctest.testmod(multivector, raise_on_error=False)
    assert result.attempted >= 2 and result.failed == 0


def test_maxsim_and_exact_search_match_a_plain_loop(corpus) -> None:
    ids, docs, queries = corpus
    q, d = queries[0], docs[7]
    loop = sum(max(float(t @ u) for u in d) for t in q)
    assert maxsim(q, d) == pytest.approx(loop, rel=1e-5)
    hits = exact_search(queries[:3], docs, ids, k=5)
    for query, row in zip(queries[:3], hits):
        scores = sorted(((maxsim(query, doc), i) for i, doc in zip(ids, docs)),
                        key=lambda s: -s[0])[:5]
        assert [h.id for h in row] == [i for _, i in scores]
        np.testing.assert_allclose([h.score for h in row], [s for s, _ in scores], rtol=1e-5)
    # k beyond the collection returns all of it; cosine normalises raw vectors
    raw = [d * 3.0 for d in docs[:4]]
    cos = exact_search([queries[0] * 2.0], raw, ids[:4], k=10, metric="cosine")[0]
    assert len(cos) == 4
    assert [h.id for h in cos] == [h.id for h in exact_search([queries[0]], docs[:4], ids[:4],
                                                              k=10)[0]]
    with pytest.raises(InputError, match=r"E043.*3 ids and 4 documents"):
        exact_search(queries[:1], docs[:4], ids[:3], k=2)


# -- quality against exact ---------------------------------------------------------------------
@pytest.mark.parametrize("nbits", [2, 4])
def test_recall_at_10_against_exact_search(built, corpus, nbits: int) -> None:
    ids, docs, queries = corpus
    index = built[nbits]
    exact = exact_search(queries, docs, ids, k=10)
    assert _recall(index.search(queries, k=10), exact) >= 0.9
    # re-ranking budgets below the collection size run all four stages
    for budget in (16, 64):
        small = index.search(queries, k=10, n_candidates=budget)
        assert _recall(small, exact) >= 0.9
        assert [len(hits) for hits in small] == [10] * len(queries)
    # an explicit nprobe is honoured (all centroids probed: only the codec limits recall)
    full = index.search(queries, k=10, nprobe=index.n_centroids)
    assert _recall(full, exact) >= 0.9


def test_four_bits_are_closer_to_exact_than_two(built, corpus) -> None:
    ids, docs, queries = corpus
    exact = exact_search(queries, docs, ids, k=10)
    recall = {b: _recall(built[b].search(queries, k=10), exact) for b in (2, 4)}
    assert recall[4] >= recall[2]
    true = {h.id: h.score for row in exact for h in row[:1]}
    score_err = {b: np.mean([abs(row[0].score - true[row[0].id])
                             for row in built[b].search(queries, k=1) if row[0].id in true])
                 for b in (2, 4)}
    assert score_err[4] < score_err[2]
    recon = {b: np.mean([np.abs(built[b].decompress(i) - d).mean()
                         for i, d in zip(ids[:50], docs[:50])]) for b in (2, 4)}
    assert recon[4] < recon[2] < 0.05


def test_self_query_finds_the_document_first(built, corpus) -> None:
    ids, docs, _ = corpus
    for index in built.values():
        results = index.search(docs[:40], k=3)
        assert [hits[0].id for hits in results] == ids[:40]
        # cosine: each token's best match is itself, so the score is about n_tokens
        np.testing.assert_allclose([hits[0].score for hits in results],
                                   [len(d) for d in docs[:40]], rtol=0.05)
        assert all(type(h.score) is float and isinstance(h, Hit) for h in results[0])


def test_three_dim_queries_and_decompress(built, corpus) -> None:
    ids, docs, queries = corpus
    index = built[2]
    stacked = np.stack(queries[:5])
    assert index.search(stacked, k=4) == index.search(queries[:5], k=4)
    # queries are scored against the centroids in one batch: the same as one at a time
    assert index.search(queries[:5], k=4) == [index.search([q], k=4)[0] for q in queries[:5]]
    approx = index.decompress(ids[3])
    assert approx.shape == docs[3].shape and approx.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(approx, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(KeyError, match="nope"):
        index.decompress("nope")


def test_default_nprobe_shrinks_when_inverted_lists_are_long(built, corpus,
                                                            monkeypatch) -> None:
    ids, docs, queries = corpus
    index = built[2]
    offsets, _ = index._inverted_lists()
    qc = queries[0] @ index.centroids.T
    assert multivector._default_nprobe(multivector._CentroidRanking(qc), offsets) == 8
    monkeypatch.setattr(multivector, "SPARSE_POSTINGS", 1)  # not even one probe fits
    assert multivector._default_nprobe(multivector._CentroidRanking(qc), offsets) == 1
    # one probe per query token still widens to fill the pool, and finds the documents
    assert [hits[0].id for hits in index.search(docs[:20], k=3)] == ids[:20]
    exact = exact_search(queries, docs, ids, k=10)
    assert _recall(index.search(queries, k=10), exact) >= 0.9


def test_stats_report_compression(built, corpus) -> None:
    ids, docs, _ = corpus
    stats = built[2].stats()
    n_tokens = sum(len(d) for d in docs)
    assert stats["n_docs"] == len(ids) and stats["n_tokens"] == n_tokens
    assert stats["bytes_per_token"] == 4 + DIM * 2 // 8 == 12
    assert stats["raw_bytes_per_token"] == 4 * DIM
    assert stats["bytes_per_token"] < stats["raw_bytes_per_token"]
    assert stats["index_bytes"] < n_tokens * 4 * DIM
    assert built[4].stats()["bytes_per_token"] == 4 + DIM * 4 // 8


def test_default_codebook_size_follows_plaid(corpus) -> None:
    _, docs, _ = corpus
    n_tokens = sum(len(d) for d in docs)
    assert multivector.default_n_centroids(n_tokens) == 1024  # 16*sqrt(~7.4k) ~ 1370
    index = MultiVectorIndex(DIM)
    index.add("tiny", docs[0][:5])
    assert index.n_centroids == 5  # capped to the training vectors
    assert index.search([docs[0][:2]], k=3)[0][0].id == "tiny"


def test_ip_metric_keeps_raw_vectors(corpus) -> None:
    _, docs, _ = corpus
    scaled = [d * s for d, s in zip(docs[:80], np.linspace(0.5, 3.0, 80))]
    index = MultiVectorIndex(DIM, metric="ip")
    index.add(_ids(80), scaled)
    assert not index.normalized
    approx = index.decompress("doc-79")
    np.testing.assert_allclose(np.linalg.norm(approx, axis=1).mean(), 3.0, rtol=0.1)
    queries = [scaled[10], scaled[40]]
    for hits, best in zip(index.search(queries, k=1),
                          exact_search(queries, scaled, _ids(80), k=1, metric="ip")):
        assert hits[0].id == best[0].id
        assert hits[0].score == pytest.approx(best[0].score, rel=0.05)


# -- incremental adds ----------------------------------------------------------------------
def test_batches_encode_with_the_first_codec_and_match_one_batch(corpus) -> None:
    ids, docs, queries = corpus
    batched = MultiVectorIndex(DIM, nbits=2, n_centroids=128)
    batched.add(ids[:100], docs[:100])
    centroids = batched.centroids.copy()
    batched.add(ids[100:200], docs[100:200])
    batched.add(ids[200:], docs[200:])
    np.testing.assert_array_equal(batched.centroids, centroids)  # never retrained

    single = MultiVectorIndex(DIM, nbits=2, n_centroids=128)
    single.train(docs[:100])  # the codec the first batch trained
    single.add(ids, docs)
    np.testing.assert_array_equal(single.centroids, centroids)
    assert batched.ids() == single.ids() == ids
    assert batched.search(queries, k=10) == single.search(queries, k=10)
    for name in ("doc-5", "doc-150", "doc-299"):
        np.testing.assert_array_equal(batched.decompress(name), single.decompress(name))
    with pytest.raises(InputError, match=r"E045.*already trained"):
        batched.train(docs[:10])


def test_block_sizes_and_training_sample_do_not_change_results(corpus, monkeypatch) -> None:
    ids, docs, queries = corpus
    # 8 centroids train on a seeded sample of 2048 of the ~2.4k first-batch tokens
    whole = MultiVectorIndex(DIM, n_centroids=8).train(np.concatenate(docs[:100]))
    reference = MultiVectorIndex(DIM, n_centroids=8)
    reference.add(ids[:100], docs[:100])
    np.testing.assert_array_equal(whole.centroids, reference.centroids)
    expected = reference.search(queries, k=10, n_candidates=20)

    monkeypatch.setattr(multivector, "BLOCK_TOKENS", 97)  # encode/train in many blocks
    monkeypatch.setattr(multivector, "BLOCK_SCORES", 500)  # queries in many batches
    monkeypatch.setattr(multivector, "CACHE_SCORES", 500)  # centroid stage in many blocks
    blocked = MultiVectorIndex(DIM, n_centroids=8)
    blocked.add(ids[:100], docs[:100])
    np.testing.assert_array_equal(blocked.centroids, reference.centroids)
    assert blocked.search(queries, k=10, n_candidates=20) == expected


def _trained(docs: list[np.ndarray]) -> MultiVectorIndex:
    """An empty index with the codec every index of the streaming tests shares."""
    return MultiVectorIndex(DIM, nbits=2, n_centroids=128).train(docs[:100])


def _saved_files(folder: Path) -> dict[str, bytes]:
    """Every file of a saved index except the manifest (which records the save time)."""
    return {f.name: f.read_bytes() for f in folder.iterdir() if f.name != "manifest.json"}


def test_column_appends_without_copying_and_grows_geometrically() -> None:
    column = multivector._Column(np.zeros((0, 2), dtype=np.uint8))
    batches = [np.full((3, 2), i, dtype=np.uint8) for i in range(5)]
    for batch in batches:
        column.append(batch)
    assert len(column) == 15 and column.nbytes == 30
    assert all(a is b for a, b in zip(column.parts()[1:], batches))  # stored as given
    np.testing.assert_array_equal(column.array(), np.concatenate(batches))
    previous, reallocations = column.array(), 0
    for i in range(1000):  # a read after every add: into spare capacity, else 1.5x larger
        column.append(np.full((1, 2), i % 256, dtype=np.uint8))
        current = column.array()
        reallocations += not np.shares_memory(previous, current)
        previous = current
    assert 0 < reallocations <= 11  # log(1015 / 15) / log(1.5) = 10.4
    np.testing.assert_array_equal(column.array()[15:, 0], np.arange(1000) % 256)
    read_only = np.arange(4, dtype=np.int64)
    read_only.flags.writeable = False  # like a memory map: copied on growth, never written
    grown = multivector._Column(read_only)
    grown.append(np.array([4], dtype=np.int64))
    np.testing.assert_array_equal(grown.array(), np.arange(5))
    np.testing.assert_array_equal(read_only, np.arange(4))


def test_many_small_adds_equal_one_big_add(corpus, tmp_path: Path) -> None:
    ids, docs, queries = corpus
    metas = [{"row": i} if i % 3 == 0 else None for i in range(len(ids))]
    one = _trained(docs)
    one.add(ids, docs, metadata=metas)
    many = _trained(docs)
    for start in range(0, len(ids), 7):  # 7 documents (>= 56 tokens) per add
        many.add(ids[start:start + 7], docs[start:start + 7], metadata=metas[start:start + 7])
        if start in (70, 140):  # reads between adds consolidate, later adds append again
            assert len(many.search(queries[:2], k=3)[0]) == 3
    assert many.ids() == one.ids() == ids and many.stats() == one.stats()
    assert many.search(queries, k=10) == one.search(queries, k=10)
    assert many.get_metadata("doc-9") == {"row": 9} and many.get_metadata("doc-10") == {}
    many.save(tmp_path / "many")
    one.save(tmp_path / "one")
    assert _saved_files(tmp_path / "many") == _saved_files(tmp_path / "one")
    # saving streams the pending batches; it neither needs nor forces their consolidation
    streamed = _trained(docs)
    for start in range(0, len(ids), 50):
        streamed.add(ids[start:start + 50], docs[start:start + 50],
                     metadata=metas[start:start + 50])
    streamed.save(tmp_path / "streamed")
    assert len(streamed._tables["codes"].parts()) > 2  # still the batches as added
    assert _saved_files(tmp_path / "streamed") == _saved_files(tmp_path / "one")


def test_add_after_load_matches_an_index_built_in_memory(corpus, tmp_path: Path) -> None:
    ids, docs, queries = corpus
    index = _trained(docs)
    index.add(ids[:200], docs[:200])
    index.save(tmp_path / "ix")
    mapped = load_index(tmp_path / "ix", mmap=True)
    before = mapped.search(queries, k=10)
    with pytest.raises(XappsError, match=r"E017.*mmap=True.*read-only.*mmap=False"):
        mapped.add(ids[200:], docs[200:])
    assert mapped.ids() == ids[:200] and mapped.search(queries, k=10) == before
    loaded = MultiVectorIndex.load(tmp_path / "ix")  # mmap=False: the tables can grow
    loaded.add(ids[200:250], docs[200:250])
    assert loaded.search(queries, k=10)  # consolidated: the loaded arrays are copied once
    loaded.add(ids[250:], docs[250:])
    index.add(ids[200:], docs[200:])
    assert loaded.ids() == index.ids() == ids
    assert loaded.search(queries, k=10) == index.search(queries, k=10)
    loaded.save(tmp_path / "grown")
    index.save(tmp_path / "reference")
    assert _saved_files(tmp_path / "grown") == _saved_files(tmp_path / "reference")
    remapped = load_index(tmp_path / "grown", mmap=True)
    assert remapped.search(queries, k=10) == index.search(queries, k=10)


def test_add_after_remove_keeps_ids_metadata_and_results_consistent(corpus,
                                                                    tmp_path: Path) -> None:
    ids, docs, queries = corpus
    index = _trained(docs)
    index.add(ids[:200], docs[:200], metadata=[{"row": i} for i in range(200)])
    removed = ids[:200:5]
    index.remove(removed)
    # new documents, and a removed id coming back with other vectors
    index.add(ids[200:] + ["doc-0"], docs[200:] + [docs[250]],
              metadata=[{"row": i} for i in range(200, 300)] + [{"back": True}])
    live = [i for i in ids[:200] if i not in set(removed)] + ids[200:] + ["doc-0"]
    assert index.ids() == live and len(index) == len(live)
    assert index.get_metadata("doc-0") == {"back": True}
    assert index.get_metadata("doc-201") == {"row": 201}
    assert index.stats()["n_tombstones"] == len(removed)
    np.testing.assert_array_equal(index.decompress("doc-0"), index.decompress("doc-250"))
    # the same live documents added in the same order to a fresh index with the same codec
    reference = _trained(docs)
    rows = {i: row for row, i in enumerate(ids)}
    reference.add(live, [docs[rows[i]] for i in live[:-1]] + [docs[250]])
    expected = reference.search(queries, k=len(live))
    results = index.search(queries, k=len(live))
    assert results == expected
    gone = set(removed) - {"doc-0"}
    assert all(h.id not in gone for hits in results for h in hits)
    assert index.compact() == len(removed)
    assert index.search(queries, k=len(live)) == expected
    index.save(tmp_path / "ix")
    loaded = MultiVectorIndex.load(tmp_path / "ix")
    assert loaded.ids() == live and loaded.get_metadata("doc-0") == {"back": True}
    assert loaded.search(queries, k=len(live)) == expected


# -- removal, saving, loading --------------------------------------------------------------
def test_removed_ids_never_come_back(corpus, tmp_path: Path) -> None:
    ids, docs, queries = corpus
    index = _build(n_centroids=128)
    meta = {"lang": "de"}
    index.add("extra", docs[0], metadata=[meta])
    removed = ids[::4]
    gone = set(removed)
    assert index.remove(removed + ["not-there"]) == len(removed)
    assert index.remove(removed[:3]) == 0
    live = [i for i in ids if i not in gone] + ["extra"]
    self_queries = [docs[int(i.split("-")[1])] for i in removed[:20]]

    def check(idx: MultiVectorIndex) -> list[list[Hit]]:
        results = idx.search(queries + self_queries, k=len(ids))
        assert all(h.id not in gone for hits in results for h in hits)
        assert all(len(hits) == len(live) for hits in results)
        assert idx.ids() == live and len(idx) == len(live)
        assert not any(r in idx for r in removed)
        assert idx.get_metadata("extra") == meta
        assert idx.stats()["n_docs"] == len(live)
        return results

    before = check(index)
    index.save(tmp_path / "ix")  # a quarter removed is over 20%: the save compacts
    loaded = MultiVectorIndex.load(tmp_path / "ix")
    assert loaded.manifest.extra["tombstones"] == 0
    assert json.loads((tmp_path / "ix" / "tombstones.json").read_text()) == []
    assert check(loaded) == before == check(index)

    fresh = _build(n_centroids=128)
    fresh.remove(removed[:10])  # under the ratio: tombstones persist
    fresh.save(tmp_path / "few")
    kept = MultiVectorIndex.load(tmp_path / "few")
    assert kept.manifest.extra["tombstones"] == 10
    assert kept.stats()["n_stored_tokens"] == fresh.stats()["n_stored_tokens"]
    results = kept.search(queries, k=N_DOCS)
    assert results == fresh.search(queries, k=N_DOCS)
    assert all(h.id not in set(removed[:10]) for hits in results for h in hits)
    assert kept.compact() == 10 and kept.compact() == 0
    assert kept.stats()["n_stored_tokens"] == sum(
        len(d) for i, d in zip(ids, docs) if i not in set(removed[:10]))
    assert kept.search(queries, k=N_DOCS) == results
    kept.add(["late"], [docs[1]])  # ids keep growing after compaction
    assert kept.search([docs[1]], k=2)[0][0].id in {"late", "doc-1"}


def test_save_load_round_trip_and_manifest(built, corpus, tmp_path: Path) -> None:
    ids, _, queries = corpus
    index = built[2]
    index.save(tmp_path / "ix")
    loaded = MultiVectorIndex.load(tmp_path / "ix", backbone=None, dim=DIM)
    assert loaded.search(queries, k=10) == index.search(queries, k=10)
    assert loaded.ids() == ids and loaded.stats() == index.stats()
    manifest = read_manifest(tmp_path / "ix")
    assert (manifest.kind, manifest.index_type, manifest.metric) == ("multivector", "plaid",
                                                                     "cosine")
    assert manifest.params == {"nbits": 2, "n_centroids": index.n_centroids, "seed": 0,
                               "kmeans_niter": multivector.KMEANS_NITER}
    assert manifest.extra["n_tokens"] == index.stats()["n_tokens"]
    assert manifest.extra["tombstones"] == 0 and manifest.extra["faiss_version"]
    assert set(manifest.files) == NPY | {"ids.json", "meta.jsonl", "tombstones.json"}
    for name, digest in manifest.files.items():
        assert sha256_file(tmp_path / "ix" / name) == digest
    for name in NPY:  # plain arrays, readable without pickle
        np.load(tmp_path / "ix" / name, allow_pickle=False)


def test_mmap_load_gives_same_results_and_is_read_only(corpus, tmp_path: Path) -> None:
    ids, docs, queries = corpus
    index = _build(n_centroids=128)
    index.remove(ids[:5])
    index.save(tmp_path / "ix")
    mapped = load_index(tmp_path / "ix", mmap=True)
    assert isinstance(mapped, MultiVectorIndex) and mapped.mmap
    assert mapped.search(queries, k=10) == index.search(queries, k=10)
    maps = Path("/proc/self/maps")
    if maps.exists():  # the codes really are mapped, not read into memory
        assert str(tmp_path / "ix" / "residual_codes.npy") in maps.read_text()
    with pytest.raises(XappsError, match=r"E017.*mmap=True.*read-only"):
        mapped.add(["new"], docs[0])
    with pytest.raises(XappsError, match="E017"):
        mapped.remove(ids[10:12])
    with pytest.raises(XappsError, match="E017"):
        mapped.compact()
    assert mapped.ids() == ids[5:]
    mapped.save(tmp_path / "copy")
    assert load_index(tmp_path / "copy").search(queries, k=10) == index.search(queries, k=10)
    mapped.save(tmp_path / "ix")  # over its own source folder
    assert load_index(tmp_path / "ix").search(queries, k=10) == index.search(queries, k=10)


def test_load_index_dispatches_on_kind(corpus, tmp_path: Path) -> None:
    _, docs, _ = corpus
    index = MultiVectorIndex(DIM, backbone="me5-small", n_centroids=16)
    index.add(_ids(20), docs[:20], metadata=[{"n": i} for i in range(20)])
    index.save(tmp_path / "ix")
    assert registered_index("multivector") is MultiVectorIndex
    loaded = load_index(tmp_path / "ix", backbone="me5-small")
    assert type(loaded) is MultiVectorIndex and loaded.get_metadata("doc-7") == {"n": 7}
    assert type(VectorIndex.load(tmp_path / "ix")) is MultiVectorIndex
    with pytest.raises(IndexMismatchError, match=r"E011.*'multivector' index, not 'dense'"):
        DenseIndex.load(tmp_path / "ix")
    with pytest.raises(IndexMismatchError, match=r"E010.*'me5-small'.*'other'"):
        load_index(tmp_path / "ix", backbone="other")


def test_inconsistent_files_are_refused(corpus, tmp_path: Path) -> None:
    _, docs, _ = corpus
    index = MultiVectorIndex(DIM, n_centroids=16)
    index.add(_ids(20), docs[:20])
    index.save(tmp_path / "ix")
    np.save(tmp_path / "ix" / "doc_lengths.npy", np.ones(20, dtype=np.int32))
    with pytest.raises(IndexMismatchError, match=r"E011.*do not tile"):
        MultiVectorIndex.load(tmp_path / "ix", verify=False)
    with pytest.raises(IndexMismatchError, match=r"E012.*doc_lengths\.npy"):
        MultiVectorIndex.load(tmp_path / "ix")


# -- bad input -----------------------------------------------------------------------------
def _state(index: MultiVectorIndex, queries: list[np.ndarray]) -> tuple:
    return (index.ids(), index.stats(), index.trained,
            index.search(queries, k=5) if index.trained else None)


BAD_BATCHES = [
    ("wrong dim", lambda d: [d[0], np.ones((3, 16), np.float32)],
     r"E042.*document 'new-1' \(row 1\).*dimension 16.*\(n_tokens, 32\)"),
    ("1-D doc", lambda d: [d[0], d[1][0]], r"E042.*'new-1'.*1-D.*Reshape a single token"),
    ("empty doc", lambda d: [d[0], np.zeros((0, DIM), np.float32)],
     r"E042.*'new-1'.*no token vectors"),
    ("NaN", lambda d: [d[0], np.where(np.arange(DIM) == 3, np.nan, d[1])],
     r"E042.*'new-1'.*token row 0 contains NaN"),
    ("zero token", lambda d: [d[0], np.zeros((2, DIM), np.float32)],
     r"E042.*'new-1'.*zero vector.*metric='ip'"),
    ("count", lambda d: [d[0]], r"E043.*2 ids and 1 documents"),
]


@pytest.mark.parametrize("trained", [False, True], ids=["empty", "trained"])
@pytest.mark.parametrize("case", BAD_BATCHES, ids=[c[0] for c in BAD_BATCHES])
def test_bad_batches_add_nothing(case, trained: bool, corpus) -> None:
    _, docs, queries = corpus
    _, make, pattern = case
    index = MultiVectorIndex(DIM, n_centroids=16)
    if trained:
        index.add(_ids(20), docs[:20])
    before = _state(index, queries[:5])
    with pytest.raises(InputError, match=pattern):
        index.add(["new-0", "new-1"], make(docs))
    assert _state(index, queries[:5]) == before


def test_bad_ids_and_metadata_add_nothing(corpus) -> None:
    _, docs, queries = corpus
    index = MultiVectorIndex(DIM, n_centroids=16)
    index.add(_ids(20), docs[:20])
    before = _state(index, queries[:5])
    with pytest.raises(InputError, match=r"E016.*'doc-3' is already in the index"):
        index.add(["new", "doc-3"], docs[20:22])
    with pytest.raises(InputError, match=r"E016.*'twice'"):
        index.add(["twice", "twice"], docs[20:22])
    with pytest.raises(InputError, match=r"E019.*2 ids but 1 metadata"):
        index.add(["a", "b"], docs[20:22], metadata=[{"x": 1}])
    with pytest.raises(InputError, match=r"E019.*metadata for id 'b'.*JSON-serialisable"):
        index.add(["a", "b"], docs[20:22], metadata=[None, {"x": object()}])
    assert _state(index, queries[:5]) == before


def test_constructor_and_search_arguments_are_checked(corpus) -> None:
    _, docs, queries = corpus
    with pytest.raises(InputError, match=r"E040.*nbits=3.*\[1, 2, 4\]"):
        MultiVectorIndex(DIM, nbits=3)
    with pytest.raises(InputError, match=r"E041.*dim=12 with nbits=1.*12 bits.*in \[2, 4\]"):
        MultiVectorIndex(12, nbits=1)
    with pytest.raises(InputError, match=r"E045.*train: the codec cannot be trained on an emp"):
        MultiVectorIndex(DIM).train([])
    with pytest.raises(InputError, match=r"E044.*n_centroids=0"):
        MultiVectorIndex(DIM, n_centroids=0)
    with pytest.raises(InputError, match=r"E019.*metric='l2'"):
        MultiVectorIndex(DIM, metric="l2")
    index = MultiVectorIndex(DIM, n_centroids=16)
    index.add(_ids(20), docs[:20])
    with pytest.raises(InputError, match=r"E019.*k=0"):
        index.search(queries[:1], k=0)
    with pytest.raises(InputError, match=r"E019.*nprobe=-1"):
        index.search(queries[:1], nprobe=-1)
    with pytest.raises(InputError, match=r"E042.*one 2-D array is ambiguous.*search\(\[query\]\)"):
        index.search(queries[0])
    with pytest.raises(InputError, match=r"E042.*query 1.*dimension 16"):
        index.search([queries[0], np.ones((2, 16))])


def test_search_on_an_empty_index_returns_empty_lists(corpus) -> None:
    _, docs, queries = corpus
    index = MultiVectorIndex(DIM)
    assert index.search(queries[:3], k=5) == [[], [], []]
    assert index.search([], k=5) == []
    assert index.stats()["n_docs"] == 0 and not index.trained
    index.add(["a", "b"], docs[:2])
    index.remove(["a", "b"])
    assert index.search(queries[:2], k=5) == [[], []]
    assert index.compact() == 2 and index.search(queries[:2], k=5) == [[], []]


def test_kmeans_iterations_are_a_saved_setting(tmp_path, corpus) -> None:
    ids, docs, queries = corpus
    few = MultiVectorIndex(DIM, n_centroids=32, kmeans_niter=2)
    few.add(ids[:200], docs[:200])
    few.save(tmp_path / "few")
    loaded = load_index(tmp_path / "few")
    assert loaded._manifest_params()["kmeans_niter"] == 2
    assert [h.id for h in loaded.search(queries[:1], 5)[0]] == \
        [h.id for h in few.search(queries[:1], 5)[0]]
    with pytest.raises(InputError, match="kmeans_niter"):
        MultiVectorIndex(DIM, kmeans_niter=0)
