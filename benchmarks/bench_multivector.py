"""Multi-vector (ColBERT-style MaxSim) retrieval on XQuAD-R next to single-vector me5-small,
exact and through the PLAID-style compressed index, in one run.

Protocol: the foundation's dense benchmark (bench_dense_retrieval.py), with the same metric
code. All 9,761 sentences of the 8 languages are candidates; ``--limit`` questions per
language are asked (exact MaxSim over the whole collection costs a few GFLOP per query on
this CPU). Encoders: untrained MaxSim on me5-small's token states (raw, 384 dims) and through
the seeded orthogonal 128-dim projection (no trained projection or adapters exist yet).

    python benchmarks/bench_multivector.py [--data DIR] [--threads 2] [--limit 100]

Writes benchmarks/results/multivector.json and the table in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
from bench_dense_retrieval import LANGS, evaluate, evaluate_scores, load_xquad_r
from readme_table import write_block

HERE = Path(__file__).resolve().parent


def project(encoder, vectors: list[np.ndarray]) -> list[np.ndarray]:
    """Apply a 128-dim encoder's projection to raw normalised token vectors: the same as
    encoding with it (normalise(P h / |h|) = normalise(P h)), without a second forward pass."""
    import torch

    with torch.inference_mode():
        return [encoder.project(torch.from_numpy(v)).numpy() for v in vectors]


def cross_recall_mrr(corpus, q_idx: np.ndarray, ranked: list[list[int]]) -> dict:
    """Cross-lingual (pooled) Recall@10 over the 8 relevant sentences and MRR@10."""
    recall, mrr = [], []
    for qi, row in zip(q_idx, ranked):
        golds = set(corpus.gold_by_lang[qi][corpus.gold_by_lang[qi] >= 0].tolist())
        recall.append(len(set(row[:10]) & golds) / len(golds))
        first = next((r for r, s in enumerate(row[:10], 1) if s in golds), None)
        mrr.append(1.0 / first if first else 0.0)
    return {"recall@10": float(np.mean(recall)), "mrr@10": float(np.mean(mrr))}


def measure_index(name: str, docs: list[np.ndarray], queries: list[np.ndarray], corpus,
                  nbits: int, exact_top: list[list[int]], exact_latency_ms: float) -> dict:
    from xapps.index.multivector import MultiVectorIndex

    ids = [str(i) for i in range(len(docs))]
    t0 = time.perf_counter()
    index = MultiVectorIndex(dim=docs[0].shape[1], nbits=nbits)
    index.add(ids, docs)
    build_s = time.perf_counter() - t0
    latencies, ranked = [], []
    for q in queries:
        t = time.perf_counter()
        hits = index.search([q], 10)[0]
        latencies.append((time.perf_counter() - t) * 1000)
        ranked.append([int(h.id) for h in hits])
    overlap = np.mean([len(set(a) & set(b[:10])) / 10 for a, b in zip(ranked, exact_top)])
    stats = index.stats()
    p50 = float(np.percentile(latencies, 50))
    return {"encoder": name, "nbits": nbits, "build_s": build_s,
            "n_centroids": stats["n_centroids"], "bytes_per_token": stats["bytes_per_token"],
            "raw_bytes_per_token": stats["raw_bytes_per_token"],
            "index_mb": stats["index_bytes"] / 2**20,
            "raw_mb": stats["n_tokens"] * stats["raw_bytes_per_token"] / 2**20,
            "latency_ms_p50": p50, "latency_ms_p95": float(np.percentile(latencies, 95)),
            "speedup_vs_exact": exact_latency_ms / p50,
            "top10_overlap_with_exact": float(overlap),
            **{f"cross_{k}": v for k, v in cross_recall_mrr(
                corpus, np.arange(len(queries)), ranked).items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=100, help="questions per language")
    args = parser.parse_args(argv)

    import torch

    from xapps.backbone import load_backbone
    from xapps.index.multivector import ExactMaxSim
    from xapps.paths import data_root
    from xapps.retrieval import ColBERTConfig, ColBERTEncoder

    root = data_root(args.data) / "xquad-r"
    if not (root / "en.json").exists():
        print(f"XQuAD-R not found under {root}; pass --data or set XAPPS_DATA. Skipping.")
        return 0
    torch.set_num_threads(args.threads)
    corpus = load_xquad_r(root, limit=args.limit)
    print(f"{len(corpus.sentences)} sentences, {len(corpus.questions)} questions", flush=True)

    raw = ColBERTEncoder(ColBERTConfig(dim=None))
    proj = ColBERTEncoder(ColBERTConfig(dim=128))
    t0 = time.perf_counter()
    doc_raw = raw.encode_documents(corpus.sentences, batch_size=64, progress=True)
    doc_encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    q_raw = raw.encode_queries(corpus.questions)
    query_encode_s = time.perf_counter() - t0
    variants = {"maxsim me5 tokens (384, untrained)": (q_raw, doc_raw),
                "maxsim 128-d projection (untrained)": (project(proj, q_raw),
                                                        project(proj, doc_raw))}

    backbone = load_backbone("me5-small")
    s_vecs = backbone.encode(corpus.sentences, prompt="passage", batch_size=64, progress=True)
    q_vecs = backbone.encode(corpus.questions, prompt="query", batch_size=64)
    quality = {"dense me5-small": evaluate(corpus, q_vecs, s_vecs)}
    indexes, exact_speed = [], {}
    for name, (queries, docs) in variants.items():
        scorer = ExactMaxSim(docs)
        top10: dict[int, list[int]] = {}
        spent = [0.0]

        def rows(q_idx, scorer=scorer, queries=queries, top10=top10, spent=spent):
            t = time.perf_counter()
            scores = scorer.scores([queries[i] for i in q_idx])
            spent[0] += time.perf_counter() - t
            for qi, row in zip(q_idx.tolist(), scores):
                top10[qi] = np.argsort(-row)[:10].tolist()
            return scores

        quality[name] = evaluate_scores(corpus, rows)
        exact_ms = spent[0] * 1000 / len(queries)
        exact_speed[name] = {"latency_ms_mean": exact_ms, "tokens": len(scorer.tokens)}
        del scorer
        if "128" in name:
            exact_top = [top10[i] for i in range(len(queries))]
            for nbits in (2, 4):
                print(f"index {name} nbits={nbits}", flush=True)
                indexes.append(measure_index(name, docs, queries, corpus, nbits, exact_top,
                                             exact_ms))
    result = {
        "benchmark": "multivector_xquad_r", "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python benchmarks/bench_multivector.py " + " ".join(argv or sys.argv[1:]),
        "n_sentences": len(corpus.sentences), "n_questions": len(corpus.questions),
        "questions_per_language": args.limit, "threads": args.threads,
        "encode": {"documents_per_s": len(corpus.sentences) / doc_encode_s,
                   "queries_per_s": len(corpus.questions) / query_encode_s,
                   "tokens_per_document": float(np.mean([len(d) for d in doc_raw]))},
        "quality": quality, "exact_maxsim": exact_speed, "index": indexes,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "not_measured": ["trained projection / per-language adapters (no training yet)",
                         "pylate PLAID peer", "synthetic 10k/100k/1M-document scale run"],
    }
    out = HERE / "results" / "multivector.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    write_table(result)
    return 0


def write_table(result: dict) -> None:
    lines = [f"Multi-vector retrieval, XQuAD-R ({result['n_sentences']} sentences pooled over 8 "
             f"languages, {result['questions_per_language']} questions per language); "
             f"{result['date']}; `{result['command']}`", "",
             "| scorer | mono MRR@10 (" + "/".join(LANGS) + ") | mono MRR@10 mean | cross mAP "
             "(X-X) | cross R@10 | X-Y mAP | same-language share top 10 |",
             "|---|---|---|---|---|---|---|"]
    for name, q in result["quality"].items():
        mono = "/".join(f"{q['monolingual'][lang]['mrr@10']:.3f}" for lang in LANGS)
        lines.append(f"| {name} | {mono} | {q['monolingual']['all']['mrr@10']:.3f} | "
                     f"{q['lareqa_map']['X-X']:.3f} | "
                     f"{q['cross_lingual']['all']['recall@10']:.3f} | "
                     f"{q['lareqa_map']['X-Y']:.3f} | {q['same_language_share_top10']:.2f} |")
    lines += ["", "| compressed index (128-d) | build s | centroids | bytes/token (raw) | "
              "index MB (raw) | p50 / p95 ms | x exact | top-10 overlap with exact | "
              "cross R@10 |", "|---|---|---|---|---|---|---|---|---|"]
    for ix in result["index"]:
        lines.append(f"| {ix['nbits']} bits | {ix['build_s']:.1f} | {ix['n_centroids']} | "
                     f"{ix['bytes_per_token']} ({ix['raw_bytes_per_token']}) | "
                     f"{ix['index_mb']:.1f} ({ix['raw_mb']:.1f}) | {ix['latency_ms_p50']:.1f} / "
                     f"{ix['latency_ms_p95']:.1f} | {ix['speedup_vs_exact']:.1f} | "
                     f"{ix['top10_overlap_with_exact']:.3f} | {ix['cross_recall@10']:.3f} |")
    enc = result["encode"]
    exact = "; ".join(f"{name}: {v['latency_ms_mean']:.1f} ms/query over {v['tokens']} tokens"
                      for name, v in result["exact_maxsim"].items())
    lines += ["", f"Encoding: {enc['documents_per_s']:.0f} documents/s "
              f"({enc['tokens_per_document']:.1f} token vectors each), "
              f"{enc['queries_per_s']:.0f} queries/s. Exact MaxSim (numpy): {exact}. Peak RSS "
              f"{result['peak_rss_mb']:.0f} MB. Not measured yet: "
              + "; ".join(result["not_measured"]) + "."]
    write_block("multivector", lines, "Multi-vector retrieval (XQuAD-R)")


if __name__ == "__main__":
    sys.exit(main())
