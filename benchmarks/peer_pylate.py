"""Peer measurement: PyLate's PLAID index built over GIVEN token vectors.

Runs in its own virtual environment (not the project's), so that pylate, fast-plaid and their
dependencies never touch the project venv. pylate's encoder is not used: the index gets the same
normalised token vectors our own MultiVectorIndex gets.

    PEER_PY benchmarks/peer_pylate.py --docs DOCS.npz --queries QUERIES.npz --out RESULT.json \
        [--k 10] [--threads 2] [--nbits 2] [--backend fast-plaid|stanford]

DOCS.npz:    ``vectors`` float32 (T, dim), all documents' tokens concatenated;
             ``lengths`` int64 (n_docs,), tokens per document, in order.
QUERIES.npz: ``vectors`` float32 (n_queries, query_len, dim); optional ``gold`` int64
             (n_queries,), the doc position each query should find (adds hit@1 / hit@k).

Backends (both are ``pylate.indexes.PLAID``):
  fast-plaid  use_fast=True, the Rust fast-plaid backend (pylate's default).  fast-plaid wheels
              are compiled against ONE torch release (the last part of the wheel version: .2110 =
              torch 2.11.0) and are not ABI-compatible with any other; with a mismatched torch
              they crash (segfault) on the first create().  This script checks that first and
              exits with status 3 and a message instead (``--allow-abi-mismatch`` skips the check).
  stanford    use_fast=False, the original Stanford PLAID code shipped inside pylate (deprecated
              there).  Its C++ kernels are JIT-compiled against the installed torch via
              torch.utils.cpp_extension (needs g++ and ninja; first use compiles them into
              ~/.cache/torch_extensions, ~1 min each on this machine).  They are loaded before
              the timed build, and the load time is reported apart (``extension_load_s``).

Every PLAID parameter stays at pylate's default except ``nbits``; the effective values are
written into RESULT.json.  Ranked results are doc positions (ints) in the docs file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", required=True, type=Path)
    p.add_argument("--queries", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nbits", type=int, default=2)
    p.add_argument("--backend", choices=["fast-plaid", "stanford"], default="fast-plaid")
    p.add_argument("--warmup", type=int, default=2,
                   help="untimed single-query searches before the timed ones (default 2)")
    p.add_argument("--allow-abi-mismatch", action="store_true",
                   help="run fast-plaid even when it was built for another torch release")
    return p.parse_args(argv)


def rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # KB on Linux


def version_of(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def fast_plaid_torch_tag(fp_version: str) -> str | None:
    """fast-plaid's wheel version ends with the torch release it was built for:
    1.7.0.2110 -> 2.11.0, 1.4.6.271 -> 2.7.1."""
    tag = fp_version.split(".")[-1]
    if len(tag) < 3 or not tag.isdigit():
        return None
    return f"{tag[0]}.{tag[1:-1]}.{tag[-1]}"


def abi_problem(torch_version: str) -> str | None:
    fp = version_of("fast-plaid")
    if fp is None:
        return "fast-plaid is not installed in this environment"
    built_for = fast_plaid_torch_tag(fp)
    have = torch_version.split("+")[0]
    if built_for and built_for.split(".")[:2] != have.split(".")[:2]:
        return (f"fast-plaid {fp} is compiled against torch {built_for}, but this environment "
                f"has torch {torch_version}; the native extension is not ABI-compatible across "
                f"torch releases (it segfaults in create()). Install torch {built_for} or use "
                f"--backend stanford.")
    return None


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def load_inputs(docs_path: Path, queries_path: Path):
    import numpy as np

    with np.load(docs_path) as z:
        vectors = np.ascontiguousarray(z["vectors"], dtype=np.float32)
        lengths = np.asarray(z["lengths"], dtype=np.int64)
    if vectors.ndim != 2 or lengths.sum() != vectors.shape[0]:
        raise SystemExit(f"{docs_path}: vectors {vectors.shape} do not match sum(lengths)="
                         f"{int(lengths.sum())}")
    if (lengths <= 0).any():
        raise SystemExit(f"{docs_path}: every document needs at least one token")
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    docs = [vectors[offsets[i]:offsets[i + 1]] for i in range(len(lengths))]
    with np.load(queries_path) as z:
        queries = np.ascontiguousarray(z["vectors"], dtype=np.float32)
        gold = np.asarray(z["gold"], dtype=np.int64) if "gold" in z.files else None
    if queries.ndim != 3 or queries.shape[2] != vectors.shape[1]:
        raise SystemExit(f"{queries_path}: expected (n_queries, query_len, {vectors.shape[1]}), "
                         f"got {queries.shape}")
    return vectors, lengths, docs, queries, gold


def prewarm_stanford() -> float:
    """Compile/load the Stanford backend's C++ kernels outside the timed build and search."""
    from pylate.indexes.stanford_nlp.modeling import colbert
    from pylate.indexes.stanford_nlp.search.index_storage import IndexScorer
    from pylate.indexes.stanford_nlp.search.strided_tensor import StridedTensor

    t0 = time.perf_counter()
    IndexScorer.try_load_torch_extensions(False)
    StridedTensor.try_load_torch_extensions(False)
    if getattr(colbert, "_segmented_maxsim", None) is None:
        colbert._segmented_maxsim = colbert.try_load_torch_extensions(False)
    return time.perf_counter() - t0


def effective_params(index, backend: str) -> dict:
    inner = index._index
    if backend == "fast-plaid":
        names = ["nbits", "kmeans_niters", "max_points_per_centroid", "n_samples_kmeans", "seed",
                 "use_triton", "n_ivf_probe", "n_full_scores", "batch_size", "num_threads"]
        return {n: getattr(inner, n, None) for n in names}
    cfg = inner.config
    names = ["nbits", "kmeans_niters", "ncells", "ndocs", "centroid_score_threshold",
             "index_bsize", "search_batch_size", "nranks", "avoid_fork_if_possible",
             "load_index_with_mmap"]
    return {n: getattr(cfg, n, None) for n in names}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before torch loads; spawned children inherit it

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)

    if args.backend == "fast-plaid" and not args.allow_abi_mismatch:
        problem = abi_problem(torch.__version__)
        if problem:
            print(f"peer_pylate: {problem}", file=sys.stderr)
            return 3

    vectors, lengths, docs, queries, gold = load_inputs(args.docs, args.queries)
    rss_after_load = rss_mb()

    from pylate import indexes

    extension_load_s = prewarm_stanford() if args.backend == "stanford" else 0.0

    workdir = Path(tempfile.mkdtemp(prefix="peer_pylate_"))
    try:
        t0 = time.perf_counter()
        index = indexes.PLAID(
            index_folder=str(workdir), index_name="peer", override=True,
            use_fast=args.backend == "fast-plaid", nbits=args.nbits, device="cpu",
            show_progress=False, num_threads=args.threads)
        index.add_documents(documents_ids=[str(i) for i in range(len(docs))],
                            documents_embeddings=docs)
        build_s = time.perf_counter() - t0
        rss_after_build = rss_mb()
        index_bytes = dir_bytes(workdir)
        index_metadata = {str(f.relative_to(workdir)): json.loads(f.read_text())
                          for f in sorted(workdir.rglob("metadata.json"))}

        qlist = [q for q in queries]
        for q in qlist[:args.warmup]:
            index([q], k=args.k)
        latencies, ranked = [], []
        for q in qlist:
            t = time.perf_counter()
            hits = index([q], k=args.k)[0]
            latencies.append((time.perf_counter() - t) * 1000.0)
            ranked.append([int(h["id"]) for h in hits])
        t = time.perf_counter()
        batch_hits = index(qlist, k=args.k)
        batch_s = time.perf_counter() - t
        batch_ranked = [[int(h["id"]) for h in row] for row in batch_hits]
        params = effective_params(index, args.backend)
        del index
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    same = float(np.mean([a == b for a, b in zip(ranked, batch_ranked)])) if ranked else 0.0
    result = {
        "peer": "pylate.indexes.PLAID",
        "backend": args.backend,
        "versions": {"pylate": version_of("pylate"), "fast-plaid": version_of("fast-plaid"),
                     "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "parameters": {"k": args.k, "threads": args.threads, "warmup_queries": args.warmup,
                       "device": "cpu", "pylate_plaid": params,
                       "note": "pylate defaults except nbits"},
        "data": {"n_docs": len(docs), "n_tokens": int(vectors.shape[0]),
                 "dim": int(vectors.shape[1]), "mean_doc_len": float(lengths.mean()),
                 "n_queries": int(queries.shape[0]), "query_len": int(queries.shape[1])},
        "extension_load_s": extension_load_s,
        "build_s": build_s,
        "index_bytes": index_bytes,
        "index_mb": index_bytes / 2**20,
        "index_metadata": index_metadata,
        "raw_mb": vectors.nbytes / 2**20,
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "latency_ms_mean": float(np.mean(latencies)),
        "batch_search_s": batch_s,
        "batch_ms_per_query": batch_s * 1000.0 / max(1, len(qlist)),
        "batch_equals_single": same,
        "rss_mb_after_load": rss_after_load,
        "peak_rss_mb_after_build": rss_after_build,
        "peak_rss_mb": rss_mb(),
        "peak_rss_mb_children": rss_mb(resource.RUSAGE_CHILDREN),
        "ranked": ranked,
    }
    if gold is not None:
        result["hit@1"] = float(np.mean([bool(r) and r[0] == g for r, g in zip(ranked, gold)]))
        result[f"hit@{args.k}"] = float(np.mean([g in r for r, g in zip(ranked, gold)]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    summary = {k: v for k, v in result.items() if k != "ranked"}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
