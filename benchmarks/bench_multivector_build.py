"""Build cost of the PLAID-style index against its quality: k-means iterations of codec
training, on the same trained 128-d XQuAD-R token vectors as bench_multivector.py (read from
its cache: run that first), with pylate's PLAID built over the same vectors in the same run,
so the build times share the machine's conditions.

    python benchmarks/bench_multivector_build.py [--niter 20,10,4] [--threads 2]

Writes results/multivector_build.json and the `multivector-build` table in
benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_dense_retrieval import LANGS, load_xquad_r
from bench_multivector import (
    cached_states,
    collection_means,
    cross_recall_mrr,
    exact_quality,
    run_peer,
    transform,
)
from readme_table import cpu_name, write_block

HERE = Path(__file__).resolve().parent


def build_and_search(docs, queries, corpus, nbits: int, niter: int,
                     exact_top: list[list[int]]) -> dict:
    from xapps.index.multivector import MultiVectorIndex

    ids = [str(i) for i in range(len(docs))]
    start = time.perf_counter()
    index = MultiVectorIndex(dim=docs[0].shape[1], nbits=nbits, kmeans_niter=niter)
    index.add(ids, docs)
    build_s = time.perf_counter() - start
    latencies, ranked = [], []
    for q in queries:
        t = time.perf_counter()
        ranked.append([int(h.id) for h in index.search([q], 10)[0]])
        latencies.append((time.perf_counter() - t) * 1000)
    return {"niter": niter, "nbits": nbits, "build_s": build_s,
            "n_centroids": index.stats()["n_centroids"],
            "latency_ms_p50": float(np.percentile(latencies, 50)),
            "top10_overlap_with_exact": float(np.mean(
                [len(set(a) & set(b)) / 10 for a, b in zip(ranked, exact_top)])),
            **{f"cross_{k}": v for k, v in cross_recall_mrr(
                corpus, np.arange(len(queries)), ranked).items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=100, help="questions per language")
    parser.add_argument("--niter", default="20,10,4")
    parser.add_argument("--nbits", type=int, default=2)
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(),
                                                        "xapps-bench-multivector"))
    parser.add_argument("--peer-python", default="/tmp/pylate-venv/bin/python")
    args = parser.parse_args(argv)

    import torch

    from xapps.paths import data_root
    from xapps.retrieval import ColBERTConfig, ColBERTEncoder

    root = data_root(args.data)
    cache = Path(args.cache)
    if not (root / "xquad-r" / "en.json").exists() or \
            not (cache / "trained-projection").exists():
        print(f"needs XQuAD-R under {root} and bench_multivector.py's cache in {cache} "
              "(run it first). Skipping.")
        return 0
    torch.set_num_threads(args.threads)
    corpus = load_xquad_r(root / "xquad-r", limit=args.limit)
    doc_langs = [LANGS[i] for i in corpus.sent_lang]
    q_langs = [LANGS[i] for i in corpus.q_lang]
    h_docs, h_queries, _, _ = cached_states(cache, corpus, ColBERTEncoder(ColBERTConfig(
        dim=None)))
    encoder = ColBERTEncoder.load(cache / "trained-projection")
    for lang, mean in collection_means(h_docs, doc_langs).items():
        encoder.set_language_mean(lang, mean)
    docs = transform(encoder, h_docs, doc_langs)
    queries = transform(encoder, h_queries, q_langs)
    _, exact_top, exact_ms = exact_quality(corpus, queries, docs)
    exact_recall = cross_recall_mrr(corpus, np.arange(len(queries)), exact_top)["recall@10"]
    runs = []
    for niter in (int(x) for x in args.niter.split(",")):
        print(f"xapps index, {niter} k-means iterations", flush=True)
        runs.append(build_and_search(docs, queries, corpus, args.nbits, niter, exact_top))
    peer = {"skipped": f"no python at {args.peer_python}"}
    if Path(args.peer_python).exists():
        print("peer: pylate PLAID", flush=True)
        peer = run_peer(args.peer_python, docs, queries, args.nbits, args.threads)
        ranked = peer.pop("ranked", None)
        peer.pop("index_metadata", None)
        if ranked is not None:
            peer.update({f"cross_{k}": v for k, v in cross_recall_mrr(
                corpus, np.arange(len(queries)), ranked).items()})
            peer["top10_overlap_with_exact"] = float(np.mean(
                [len(set(a[:10]) & set(b)) / 10 for a, b in zip(ranked, exact_top)]))
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "threads": args.threads,
              "cpu": cpu_name(), "load_1min": os.getloadavg()[0],
              "command": "python benchmarks/bench_multivector_build.py"
                         + (f" --niter {args.niter}" if args.niter != "20,10,4" else ""),
              "n_documents": len(docs), "n_tokens": int(sum(map(len, docs))),
              "exact": {"cross_recall@10": exact_recall, "latency_ms_mean": exact_ms},
              "xapps": runs, "peer": peer}
    (HERE / "results" / "multivector_build.json").write_text(json.dumps(result, indent=2) + "\n",
                                                             encoding="utf-8")
    write_table(result)
    return 0


def write_table(result: dict) -> None:
    lines = [f"PLAID-style index build vs k-means iterations, XQuAD-R trained 128-d vectors "
             f"({result['n_documents']} documents, {result['n_tokens']} tokens), "
             f"{result['threads']} threads, {result['cpu']}, 1-minute load "
             f"{result['load_1min']:.1f} after the run; {result['date']}; "
             f"`{result['command']}`", "",
             "| index | k-means iterations | build s | p50 ms | top-10 overlap with exact | "
             "cross R@10 (exact " f"{result['exact']['cross_recall@10']:.3f}) |",
             "|---|---|---|---|---|---|"]
    for run in result["xapps"]:
        lines.append(f"| xapps, {run['nbits']} bits, {run['n_centroids']} centroids | "
                     f"{run['niter']} | {run['build_s']:.1f} | {run['latency_ms_p50']:.1f} | "
                     f"{run['top10_overlap_with_exact']:.3f} | {run['cross_recall@10']:.3f} |")
    peer = result["peer"]
    if "build_s" in peer:
        lines.append(f"| pylate PLAID (stanford backend), {result['xapps'][0]['nbits']} bits | "
                     f"{peer['parameters']['pylate_plaid'].get('kmeans_niters')} | "
                     f"{peer['build_s']:.1f} | "
                     f"{peer['latency_ms_p50']:.1f} | {peer['top10_overlap_with_exact']:.3f} | "
                     f"{peer.get('cross_recall@10', float('nan')):.3f} |")
    else:
        lines.append(f"| pylate PLAID | - | not run: {peer} | | | |")
    write_block("multivector-build", lines, "Multi-vector index build cost")


if __name__ == "__main__":
    raise SystemExit(main())
