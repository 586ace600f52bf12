"""Build cost, memory and latency of the PLAID-style MultiVectorIndex at 10k to 1M documents.

Synthetic "random but clustered" token vectors: 4,096 random unit cluster centres in 128-d;
each document draws its 64 tokens around 4 of them (centre + Gaussian noise, L2-normalised).
Documents are generated block by block from the seed (block b of GEN_DOCS documents from
``default_rng([seed, b])``, so a document does not depend on --batch-docs), and streamed
through ``MultiVectorIndex.add`` one batch of --batch-docs documents at a time: the
collection's floats never exist at once. Each size runs in a fresh subprocess, so its peak
RSS (``ru_maxrss``) is its own.

Per size: k-means training on a bounded sample (at most TRAIN_SAMPLE = 256k token vectors,
drawn from the first batch), streaming add, the inverted lists built by the first query,
index bytes, bytes per token, and the latency of QUERIES queries searched one at a time
(32 tokens each: half of a random document's tokens plus noise). Up to --exact-max-docs
documents, exact MaxSim (streamed over the regenerated collection) gives each query's true
top 10, for the index's top-10 overlap; above it, only whether the source document comes
first is reported.

Codebook cap. Training costs KMEANS_NITER * sample * K * 2 * dim flops and assigning every
token to its nearest centroid n_tokens * K * 2 * dim; at 1M documents x 64 tokens PLAID's
codebook (K = 2**floor(log2(16 * sqrt(64M))) = 131,072) would need ~2,100 TFLOP of
assignment, most of a week on a 2-core CPU (faiss ran k-means at ~70 and the assignment at
~95 GFLOP/s on this 2-core EPYC). So unless --n-centroids is given, K is PLAID's size capped
to the largest power of two whose training plus assignment fits --build-tflop (default 40
TFLOP, ~8 minutes at those rates): 8,192 at 10k and 100k documents and 2,048 at 1M, which
keeps a 1M-document run (36 TFLOP, plus generating and encoding 64M tokens) within about 20
minutes on 2 cores. The price of the cap is longer inverted lists (31k tokens per centroid at
1M instead of PLAID's ~500), so the default search probes fewer centroids per query token
and scores more documents per probe: latency and top-10 agreement at 1M measure the capped
codebook, not PLAID's.

    python benchmarks/bench_multivector_scale.py [--sizes 10000,100000,1000000]
        [--batch-docs 20000] [--threads 2] [--n-centroids K] [--build-tflop 40]

Writes benchmarks/results/multivector_scale.json and the "multivector-scale" table in
benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from readme_table import cpu_name, write_block

HERE = Path(__file__).resolve().parent
DIM = 128
TOKENS = 64
N_CENTRES = 4096
TOPICS_PER_DOC = 4
NOISE = 0.5  # per-token noise norm around its centre (cosine to the centre ~0.9)
GEN_DOCS = 1000  # documents per seeded generation block
TRAIN_SAMPLE = 256 * 1024
QUERIES = 20
QUERY_TOKENS = 32
QUERY_NOISE = 0.3
NBITS = 2
KMEANS_NITER = 20


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


def centres(seed: int) -> np.ndarray:
    return _unit(np.random.default_rng([seed, 1 << 30]).standard_normal(
        (N_CENTRES, DIM), dtype=np.float32))


def generate(seed: int, centre: np.ndarray, first_doc: int, n_docs: int) -> np.ndarray:
    """Documents ``first_doc`` .. ``first_doc + n_docs`` as one (n_docs, TOKENS, DIM)
    float32 array, built block by block (each block from its own seeded generator)."""
    out = np.empty((n_docs, TOKENS, DIM), dtype=np.float32)
    done = 0
    while done < n_docs:
        block, skip = divmod(first_doc + done, GEN_DOCS)
        rng = np.random.default_rng([seed, block])
        topics = rng.integers(N_CENTRES, size=(GEN_DOCS, TOPICS_PER_DOC))
        which = rng.integers(TOPICS_PER_DOC, size=(GEN_DOCS, TOKENS))
        noise = rng.standard_normal((GEN_DOCS, TOKENS, DIM), dtype=np.float32)
        take = min(GEN_DOCS - skip, n_docs - done)
        part = noise[skip:skip + take]
        part *= NOISE / math.sqrt(DIM)
        part += centre[np.take_along_axis(topics, which, axis=1)[skip:skip + take]]
        out[done:done + take] = _unit(part)
        done += take
    return out


def make_queries(seed: int, docs: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """QUERIES queries, each QUERY_TOKENS noisy tokens of a random document of ``docs``
    (the first batch); returns them and their source documents."""
    rng = np.random.default_rng([seed, 1 << 31])
    sources = rng.choice(len(docs), QUERIES, replace=False)
    queries = []
    for src in sources:
        tokens = docs[src, rng.choice(TOKENS, QUERY_TOKENS, replace=False)]
        noise = rng.standard_normal(tokens.shape, dtype=np.float32)
        queries.append(_unit(tokens + QUERY_NOISE / math.sqrt(DIM) * noise))
    return queries, sources


def n_centroids_for(n_tokens: int, budget_tflop: float) -> int:
    """PLAID's codebook size, capped to the largest power of two whose k-means training and
    token assignment fit ``budget_tflop`` (see the module docstring)."""
    from xapps.index.multivector import default_n_centroids

    sample = min(TRAIN_SAMPLE, n_tokens)
    per_centroid = (KMEANS_NITER * sample + n_tokens) * 2 * DIM
    cap = 2 ** int(math.floor(math.log2(max(budget_tflop * 1e12 / per_centroid, 1))))
    return min(default_n_centroids(n_tokens), cap)


def exact_top10(seed: int, centre: np.ndarray, n_docs: int, batch_docs: int,
                queries: list[np.ndarray]) -> list[set[int]]:
    """Each query's true top 10 by exact MaxSim, streamed over the regenerated collection."""
    q = np.concatenate(queries)  # (queries * QUERY_TOKENS, DIM)
    scores = np.empty((len(queries), n_docs), dtype=np.float32)
    for first in range(0, n_docs, batch_docs):
        docs = generate(seed, centre, first, min(batch_docs, n_docs - first))
        for lo in range(0, len(docs), GEN_DOCS):
            block = docs[lo:lo + GEN_DOCS]
            best = (q @ block.reshape(-1, DIM).T).reshape(len(q), len(block), TOKENS).max(-1)
            scores[:, first + lo:first + lo + len(block)] = best.reshape(
                len(queries), QUERY_TOKENS, len(block)).sum(axis=1)
    return [set(np.argsort(-row, kind="stable")[:10].tolist()) for row in scores]


def run_size(n_docs: int, args: argparse.Namespace) -> dict:
    """One size, in this (fresh) process."""
    import faiss

    from xapps.index.multivector import MultiVectorIndex

    faiss.omp_set_num_threads(args.threads)
    n_tokens = n_docs * TOKENS
    n_c = args.n_centroids or n_centroids_for(n_tokens, args.build_tflop)
    centre = centres(args.seed)
    index = MultiVectorIndex(DIM, nbits=NBITS, n_centroids=n_c, seed=args.seed)
    add_s = gen_s = 0.0
    t0 = time.perf_counter()
    for first in range(0, n_docs, args.batch_docs):
        t = time.perf_counter()
        docs = generate(args.seed, centre, first, min(args.batch_docs, n_docs - first))
        gen_s += time.perf_counter() - t
        if first == 0:
            queries, sources = make_queries(args.seed, docs)
            flat = docs.reshape(-1, DIM)
            rows = np.random.default_rng(args.seed).choice(
                len(flat), min(TRAIN_SAMPLE, len(flat)), replace=False)
            t = time.perf_counter()
            index.train(flat[np.sort(rows)])
            train_s = time.perf_counter() - t
            del flat
        t = time.perf_counter()
        index.add([str(first + i) for i in range(len(docs))], list(docs))
        add_s += time.perf_counter() - t
        del docs
        print(f"  {len(index):,} / {n_docs:,} documents, "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    index.search(queries[:1], k=10)  # builds the inverted lists
    first_query_s = time.perf_counter() - t
    latencies, results = [], []
    for q in queries:
        t = time.perf_counter()
        results.append(index.search([q], k=10)[0])
        latencies.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    index.search(queries, k=10)
    batched_ms = (time.perf_counter() - t) * 1000 / len(queries)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    stats = index.stats()
    found = [[int(h.id) for h in hits] for hits in results]
    out = {
        "n_docs": n_docs, "n_tokens": stats["n_tokens"], "n_centroids": stats["n_centroids"],
        "nbits": NBITS, "batch_docs": args.batch_docs, "threads": args.threads,
        "train_sample": min(TRAIN_SAMPLE, n_tokens), "train_s": train_s, "add_s": add_s,
        "generate_s": gen_s, "build_s": train_s + add_s, "first_query_s": first_query_s,
        "index_bytes": stats["index_bytes"], "bytes_per_token_codes": stats["bytes_per_token"],
        "bytes_per_token": stats["index_bytes"] / stats["n_tokens"],
        "raw_bytes_per_token": stats["raw_bytes_per_token"],
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "batched_ms_per_query": batched_ms,
        "source_first": float(np.mean([row[0] == src for row, src in zip(found, sources)])),
        "peak_rss_build_mb": build_rss, "peak_rss_mb": peak_rss,
        # other processes on the machine make every time above longer: say how busy it was
        "load_average_1min": os.getloadavg()[0],
    }
    if n_docs <= args.exact_max_docs:  # after the RSS reading: it is not the index's memory
        exact = exact_top10(args.seed, centre, n_docs, args.batch_docs, queries)
        out["top10_overlap_with_exact"] = float(np.mean(
            [len(set(row) & truth) / 10 for row, truth in zip(found, exact)]))
    return out


def _positive_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"--sizes {text!r} is not a comma-separated list of positive document counts; "
            "pass e.g. --sizes 10000,100000")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_positive_sizes, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch-docs", type=int, default=20_000,
                        help=f"documents per add() call (a multiple of {GEN_DOCS})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-centroids", type=int, default=None,
                        help="codebook size for every size (default: PLAID's, capped by "
                             "--build-tflop)")
    parser.add_argument("--build-tflop", type=float, default=40.0,
                        help="k-means + assignment budget that caps the default codebook")
    parser.add_argument("--exact-max-docs", type=int, default=100_000,
                        help="largest size whose exact MaxSim top 10 is computed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch_docs < GEN_DOCS or args.batch_docs % GEN_DOCS:
        parser.error(f"--batch-docs {args.batch_docs} is not a positive multiple of "
                     f"{GEN_DOCS} (documents are generated in seeded blocks of {GEN_DOCS}); "
                     f"pass e.g. --batch-docs 20000")
    for name in ("threads", "n_centroids", "exact_max_docs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} {value} must be a positive integer")
    if args.build_tflop <= 0:
        parser.error(f"--build-tflop {args.build_tflop} must be positive, e.g. 20")
    if args.child is not None:
        print(json.dumps(run_size(args.child, args)))
        return 0

    own = list(argv if argv is not None else sys.argv[1:])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    sizes = []
    for n_docs in args.sizes:
        print(f"{n_docs:,} documents", flush=True)
        proc = subprocess.run([sys.executable, __file__, *own, "--child", str(n_docs)],
                              env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            print(f"the {n_docs:,}-document run failed (exit {proc.returncode}); see above",
                  file=sys.stderr)
            return proc.returncode
        sizes.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(sizes[-1]), flush=True)
    result = {"benchmark": "multivector_scale", "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": "python benchmarks/bench_multivector_scale.py " + " ".join(own),
              "cpu": cpu_name(), "threads": args.threads, "dim": DIM, "tokens_per_doc": TOKENS,
              "n_centres": N_CENTRES,
              "queries": QUERIES, "query_tokens": QUERY_TOKENS, "sizes": sizes}
    out = HERE / "results" / "multivector_scale.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    write_table(result)
    return 0


def write_table(result: dict) -> None:
    lines = [f"Multi-vector index at scale: synthetic clustered tokens ({result['dim']}-d, "
             f"{result['tokens_per_doc']} per document, {result['n_centres']} centres), 2-bit "
             f"residuals, streamed in batches; {result['cpu']}; {result['date']}; "
             f"`{result['command']}`", "",
             "| documents | tokens | centroids | train s | add s | first query s (lists) | "
             "peak RSS MB | index MB | bytes/token (codes) | p50 / p95 ms | batched ms/query | "
             "top-10 overlap with exact | source first | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in result["sizes"]:
        overlap = s.get("top10_overlap_with_exact")
        lines.append(
            f"| {s['n_docs']:,} | {s['n_tokens']:,} | {s['n_centroids']:,} | "
            f"{s['train_s']:.0f} | {s['add_s']:.0f} | {s['first_query_s']:.1f} | "
            f"{s['peak_rss_mb']:.0f} | {s['index_bytes'] / 2**20:.0f} | "
            f"{s['bytes_per_token']:.1f} ({s['bytes_per_token_codes']}) | "
            f"{s['latency_ms_p50']:.1f} / {s['latency_ms_p95']:.1f} | "
            f"{s['batched_ms_per_query']:.1f} | "
            f"{'-' if overlap is None else f'{overlap:.3f}'} | {s['source_first']:.2f} | "
            f"{s['load_average_1min']:.1f} |")
    lines += ["", f"{result['queries']} queries of {result['query_tokens']} tokens, searched one "
              "at a time (k=10, default nprobe / n_candidates) after a first query that builds "
              "the inverted lists; raw float32 would be "
              f"{4 * result['dim']} bytes per token. Codebook: PLAID's size capped by the "
              "k-means + assignment budget (see the script's docstring). Load: the machine's "
              f"1-minute load average after the run ({result['threads']} threads asked of "
              "a machine with that load: above the core count, times are inflated)."]
    write_block("multivector-scale", lines, "Multi-vector index at scale (synthetic)")


if __name__ == "__main__":
    sys.exit(main())
