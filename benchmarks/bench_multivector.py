"""Multi-vector (ColBERT-style MaxSim) retrieval on XQuAD-R next to single-vector me5-small,
untrained and trained, exact and through the PLAID-style compressed index, with pylate's PLAID
as the peer index, in one run.

Protocol: the foundation's dense benchmark (bench_dense_retrieval.py), with the same metric
code. All 9,761 sentences of the 8 languages are candidates; ``--limit`` questions per
language are asked. Encoders, all on me5-small's token states:

- untrained MaxSim: raw 384-d states, and the seeded orthogonal 128-d projection;
- language centering: each language's mean token state subtracted (fitted on the indexed
  sentences themselves: unlabeled, no question or relevance label is read);
- a 128-d projection trained with ``xapps.retrieval.training`` on translation pairs from the
  parallel data in ../shared/data (parallel_pairs.py; XQuAD-R is never trained on), with the
  means of the training languages fitted on that data's own text, then the collection's.

Every variant is computed from one pass of hidden states (``hidden_*`` below) transformed
exactly as the encoder does (centering, projection, normalisation), so no variant needs its
own forward pass. Per-language LoRA adapters exist (xapps.adapters) but are not trained here:
backpropagating through the backbone for 8 languages does not fit a 2-core CPU benchmark run.

    python benchmarks/bench_multivector.py [--data DIR] [--threads 2] [--limit 100]
        [--steps 300] [--cache DIR] [--peer-python /tmp/pylate-venv/bin/python]

Writes benchmarks/results/multivector.json and the table in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_dense_retrieval import LANGS, evaluate, evaluate_scores, load_xquad_r
from parallel_pairs import monolingual_texts, training_rows, translation_pairs
from readme_table import write_block

HERE = Path(__file__).resolve().parent


def hidden_documents(encoder, texts: list[str]) -> list[np.ndarray]:
    """Each document's kept subword states (windowed, skiplist), before centering and
    projection: what ``encode_documents`` projects."""
    embedded = encoder.backbone.embed_tokens(texts, prompt=encoder.config.doc_prompt,
                                             batch_size=64, progress=True,
                                             max_length=encoder.config.doc_max_length)
    return [np.ascontiguousarray(encoder._kept(emb), dtype=np.float32) for emb in embedded]


def hidden_queries(encoder, texts: list[str]) -> list[np.ndarray]:
    import torch

    rows = encoder.query_token_ids(texts)
    out = []
    with torch.inference_mode():
        for start in range(0, len(rows), 64):
            ids = torch.tensor(rows[start:start + 64])
            out.extend(encoder.backbone.run(ids, torch.ones_like(ids)).numpy())
    return out


def transform(encoder, states: list[np.ndarray], langs: list[str]) -> list[np.ndarray]:
    """What ``encoder`` gives for these hidden states: its language centering, projection and
    normalisation (the same code path as encoding)."""
    import torch

    with torch.inference_mode():
        return [encoder.project(encoder._center(torch.from_numpy(v), lang)).numpy()
                for v, lang in zip(states, langs)]


def cached_states(cache: Path, corpus, encoder) -> tuple[list[np.ndarray], list[np.ndarray],
                                                         float, float]:
    """Hidden states of all sentences and of the questions asked, from ``cache`` when it
    holds them (with the seconds their encoding took)."""
    cache.mkdir(parents=True, exist_ok=True)
    doc_path = cache / f"xquad_r_docs_{len(corpus.sentences)}.npz"
    query_path = cache / f"xquad_r_queries_{len(corpus.questions)}.npz"
    if not doc_path.exists():
        t0 = time.perf_counter()
        docs = hidden_documents(encoder, corpus.sentences)
        np.savez(doc_path, docs=np.concatenate(docs), lengths=[len(d) for d in docs],
                 seconds=time.perf_counter() - t0)
    if not query_path.exists():
        t0 = time.perf_counter()
        queries = hidden_queries(encoder, corpus.questions)
        np.savez(query_path, queries=np.stack(queries), seconds=time.perf_counter() - t0)
    z, zq = np.load(doc_path), np.load(query_path)
    docs = np.split(z["docs"], np.cumsum(z["lengths"])[:-1])
    return docs, list(zq["queries"]), float(z["seconds"]), float(zq["seconds"])


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


def normalise_per_language(scores: np.ndarray, doc_lang: np.ndarray, top: int = 20) -> np.ndarray:
    """Analysis only (not in the library): subtract, per query and document language, the mean
    of that language's ``top`` best scores, as when merging per-language result lists."""
    out = scores.copy()
    for lang in np.unique(doc_lang):
        cols = doc_lang == lang
        best = -np.sort(-scores[:, cols], axis=1)[:, :top]
        out[:, cols] -= best.mean(1, keepdims=True)
    return out


def exact_quality(corpus, queries: list[np.ndarray], docs: list[np.ndarray],
                  normalise: bool = False) -> tuple:
    """Quality of exact MaxSim, each question's top 10 (for the index overlap), and the mean
    latency per query."""
    from xapps.index.multivector import ExactMaxSim

    scorer = ExactMaxSim(docs)
    top10: dict[int, list[int]] = {}
    spent = [0.0]

    def rows(q_idx):
        t = time.perf_counter()
        scores = scorer.scores([queries[i] for i in q_idx])
        spent[0] += time.perf_counter() - t
        if normalise:
            scores = normalise_per_language(scores, corpus.sent_lang)
        for qi, row in zip(q_idx.tolist(), scores):
            top10[qi] = np.argsort(-row)[:10].tolist()
        return scores

    quality = evaluate_scores(corpus, rows)
    return quality, [top10[i] for i in range(len(queries))], spent[0] * 1000 / len(queries)


def collection_means(states: list[np.ndarray], langs: list[str]) -> dict[str, np.ndarray]:
    """Each language's mean token state over the indexed sentences (unlabeled text)."""
    out = {}
    for lang in sorted(set(langs)):
        out[lang] = np.concatenate([s for s, x in zip(states, langs) if x == lang]).mean(0)
    return out


def run_peer(python: str, docs: list[np.ndarray], queries: list[np.ndarray], nbits: int,
             threads: int) -> dict:
    """pylate's PLAID (stanford backend) over the same token vectors, in its own venv."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "docs.npz", vectors=np.concatenate(docs),
                 lengths=np.array([len(d) for d in docs], dtype=np.int64))
        np.savez(tmp / "queries.npz", vectors=np.stack(queries))
        cmd = [python, str(HERE / "peer_pylate.py"), "--docs", str(tmp / "docs.npz"),
               "--queries", str(tmp / "queries.npz"), "--out", str(tmp / "peer.json"),
               "--threads", str(threads), "--nbits", str(nbits), "--backend", "stanford"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:] or [done.returncode]}
        return json.loads((tmp / "peer.json").read_text())


def train_adapters(args, student, examples, h_docs, h_queries, doc_langs, q_langs, corpus,
                   cache: Path) -> dict:
    """Train LoRA adapters for ``args.adapter_langs`` on top of the trained projection (only
    the rows that involve those languages), then replace those languages' hidden states
    (and collection means) with the adapted ones; other languages are untouched."""
    from xapps.retrieval.training import RetrievalTrainingConfig, train_retriever

    langs = set(args.adapter_langs)
    rows = [e for e in examples if e.query_lang in langs or e.positive_lang in langs]
    config = RetrievalTrainingConfig(steps=args.adapter_steps, batch_size=min(16, len(rows)),
                                     train="adapters", adapter_languages=sorted(langs),
                                     checkpoint_every=max(1, args.adapter_steps // 3))
    t0 = time.perf_counter()
    record = train_retriever(rows, cache / "trained-adapters", config, encoder=student,
                             resume=False)
    seconds = time.perf_counter() - t0
    for lang in sorted(langs):
        doc_rows = [i for i, x in enumerate(doc_langs) if x == lang]
        q_rows = [i for i, x in enumerate(q_langs) if x == lang]
        with student._use(lang):
            adapted = hidden_documents(student, [corpus.sentences[i] for i in doc_rows])
            adapted_q = hidden_queries(student, [corpus.questions[i] for i in q_rows])
        for i, v in zip(doc_rows, adapted):
            h_docs[i] = v
        for i, v in zip(q_rows, adapted_q):
            h_queries[i] = v
        student.set_language_mean(lang, np.concatenate(adapted).mean(0))
    return {"languages": sorted(langs), "examples": len(rows), "seconds": seconds,
            "steps": record["step"], "first_loss": record["loss"][0],
            "final_loss": record["loss"][-1], "config": record["config"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=100, help="questions per language")
    parser.add_argument("--steps", type=int, default=300, help="projection training steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pairs-per-language", type=int, default=600)
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(),
                                                        "xapps-bench-multivector"),
                        help="hidden states and the trained encoder are kept here")
    parser.add_argument("--adapter-langs", type=lambda v: [x for x in v.split(",") if x],
                        default=[], help="languages that get a LoRA adapter, e.g. hi")
    parser.add_argument("--adapter-steps", type=int, default=60)
    parser.add_argument("--peer-python", default="/tmp/pylate-venv/bin/python",
                        help="python of a venv with pylate (peer_pylate.py); skipped if absent")
    args = parser.parse_args(argv)

    import torch

    from xapps.backbone import load_backbone
    from xapps.paths import data_root
    from xapps.retrieval import ColBERTConfig, ColBERTEncoder
    from xapps.retrieval.training import (
        Example,
        RetrievalTrainingConfig,
        train_retriever,
    )

    root = data_root(args.data)
    if not (root / "xquad-r" / "en.json").exists():
        print(f"XQuAD-R not found under {root}; pass --data or set XAPPS_DATA. Skipping.")
        return 0
    torch.set_num_threads(args.threads)
    cache = Path(args.cache)
    corpus = load_xquad_r(root / "xquad-r", limit=args.limit)
    doc_langs = [LANGS[i] for i in corpus.sent_lang]
    q_langs = [LANGS[i] for i in corpus.q_lang]
    print(f"{len(corpus.sentences)} sentences, {len(corpus.questions)} questions", flush=True)

    raw = ColBERTEncoder(ColBERTConfig(dim=None))
    h_docs, h_queries, doc_s, query_s = cached_states(cache, corpus, raw)
    means = collection_means(h_docs, doc_langs)

    dense_path = cache / f"xquad_r_dense_{len(corpus.questions)}.npz"
    if not dense_path.exists():
        backbone = load_backbone("me5-small")
        np.savez(dense_path, s=backbone.encode(corpus.sentences, prompt="passage", batch_size=64,
                                               progress=True),
                 q=backbone.encode(corpus.questions, prompt="query", batch_size=64))
    s_vecs, q_vecs = np.load(dense_path)["s"], np.load(dense_path)["q"]
    quality = {"dense me5-small": evaluate(corpus, q_vecs, s_vecs)}
    exact_speed: dict[str, dict] = {}
    tops: dict[str, list[list[int]]] = {}
    vectors: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def measure(name: str, encoder) -> None:
        print(f"exact MaxSim: {name}", flush=True)
        queries = transform(encoder, h_queries, q_langs)
        docs = transform(encoder, h_docs, doc_langs)
        quality[name], tops[name], latency = exact_quality(corpus, queries, docs)
        exact_speed[name] = {"latency_ms_mean": latency, "tokens": int(sum(map(len, docs)))}
        vectors[name] = (queries, docs)

    measure("maxsim 384 (untrained)", raw)
    measure("maxsim 128 projection (untrained)", ColBERTEncoder(ColBERTConfig(dim=128)))
    centered = ColBERTEncoder(ColBERTConfig(dim=None))
    for lang, mean in means.items():
        centered.set_language_mean(lang, mean)
    measure("maxsim 384 + centering", centered)

    # The projection, trained on translation pairs (never on XQuAD-R).
    pairs = translation_pairs(root, args.pairs_per_language)
    examples = [Example(**row) for row in training_rows(pairs)]
    student = ColBERTEncoder(ColBERTConfig(dim=128), dtype="float32")
    student.fit_language_means(monolingual_texts(root, args.pairs_per_language))
    train_config = RetrievalTrainingConfig(steps=args.steps, batch_size=args.batch_size,
                                           checkpoint_every=max(1, args.steps // 6),
                                           average_last=3 if args.steps >= 6 else 1)
    t0 = time.perf_counter()
    record = train_retriever(examples, cache / "trained-projection", train_config,
                             encoder=student, resume=False)
    train_s = time.perf_counter() - t0
    measure("maxsim 128 trained projection + centering (training-text means)", student)
    for lang, mean in means.items():
        student.set_language_mean(lang, mean)
    best = "maxsim 128 trained projection + centering"
    measure(best, student)
    analysis = f"{best} + per-language score normalisation (analysis)"
    quality[analysis] = exact_quality(corpus, *vectors[best], normalise=True)[0]
    adapter_record = None
    if args.adapter_langs:
        adapter_record = train_adapters(args, student, examples, h_docs, h_queries, doc_langs,
                                        q_langs, corpus, cache)
        name = f"{best} + LoRA adapters ({','.join(args.adapter_langs)})"
        measure(name, student)

    queries, docs = vectors[best]
    indexes = []
    for nbits in (2, 4):
        print(f"index nbits={nbits}", flush=True)
        indexes.append(measure_index(best, docs, queries, corpus, nbits, tops[best],
                                     exact_speed[best]["latency_ms_mean"]))
    peer = {"skipped": f"no python at {args.peer_python}"}
    if Path(args.peer_python).exists():
        print("peer: pylate PLAID", flush=True)
        peer = run_peer(args.peer_python, docs, queries, 2, args.threads)
        if "ranked" in peer:
            ranked = peer.pop("ranked")
            peer.update({f"cross_{k}": v for k, v in cross_recall_mrr(
                corpus, np.arange(len(queries)), ranked).items()})
            peer["top10_overlap_with_exact"] = float(np.mean(
                [len(set(a[:10]) & set(b)) / 10 for a, b in zip(ranked, tops[best])]))
    result = {
        "benchmark": "multivector_xquad_r", "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python benchmarks/bench_multivector.py " + " ".join(argv or sys.argv[1:]),
        "n_sentences": len(corpus.sentences), "n_questions": len(corpus.questions),
        "questions_per_language": args.limit, "threads": args.threads,
        "encode": {"documents_per_s": len(corpus.sentences) / doc_s,
                   "queries_per_s": len(corpus.questions) / query_s,
                   "tokens_per_document": float(np.mean([len(d) for d in h_docs]))},
        "training": {"pairs": len(pairs), "examples": len(examples), "seconds": train_s,
                     "steps": record["step"], "first_loss": record["loss"][0],
                     "final_loss": record["loss"][-1], "averaged": record["averaged"],
                     "config": record["config"]},
        "quality": quality, "exact_maxsim": exact_speed, "index": indexes, "peer": peer,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "adapters": adapter_record,
        "not_measured": [] if adapter_record else ["per-language LoRA adapters"],
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
    lines += ["", "| index over the trained 128-d vectors | build s | centroids | bytes/token "
              "(raw) | index MB (raw) | p50 / p95 ms | x exact | top-10 overlap with exact | "
              "cross R@10 (exact) | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    exact_recall = result["quality"][result["index"][0]["encoder"]]["cross_lingual"]["all"]
    for ix in result["index"]:
        lines.append(f"| xapps PLAID-style, {ix['nbits']} bits | {ix['build_s']:.1f} | "
                     f"{ix['n_centroids']} | {ix['bytes_per_token']} "
                     f"({ix['raw_bytes_per_token']}) | {ix['index_mb']:.1f} "
                     f"({ix['raw_mb']:.1f}) | {ix['latency_ms_p50']:.1f} / "
                     f"{ix['latency_ms_p95']:.1f} | {ix['speedup_vs_exact']:.1f} | "
                     f"{ix['top10_overlap_with_exact']:.3f} | {ix['cross_recall@10']:.3f} "
                     f"({exact_recall['recall@10']:.3f}) | - |")
    peer = result["peer"]
    if "build_s" in peer:
        exact_ms = result["exact_maxsim"][result["index"][0]["encoder"]]["latency_ms_mean"]
        lines.append(f"| pylate {peer.get('versions', {}).get('pylate', '')} PLAID (stanford "
                     f"backend), 2 bits | {peer['build_s']:.1f} | - | - | "
                     f"{peer.get('index_mb', float('nan')):.1f} | {peer['latency_ms_p50']:.1f} / "
                     f"{peer['latency_ms_p95']:.1f} | "
                     f"{exact_ms / peer['latency_ms_p50']:.1f} | "
                     f"{peer['top10_overlap_with_exact']:.3f} | {peer['cross_recall@10']:.3f} | "
                     f"{peer['peak_rss_mb']:.0f} |")
    else:
        lines.append(f"| pylate PLAID | not measured: {peer} |")
    enc, train = result["encode"], result["training"]
    exact = "; ".join(f"{name}: {v['latency_ms_mean']:.1f} ms/query over {v['tokens']} tokens"
                      for name, v in result["exact_maxsim"].items())
    lines += ["", f"Training (xapps.retrieval.training, projection only): {train['examples']} "
              f"rows from {train['pairs']} translation pairs, {train['steps']} steps in "
              f"{train['seconds']:.0f} s, loss {train['first_loss']:.2f} -> "
              f"{train['final_loss']:.2f}, averaged {len(train['averaged'])} checkpoints."]
    if result.get("adapters"):
        ad = result["adapters"]
        lines.append(f"LoRA adapters ({', '.join(ad['languages'])}): {ad['examples']} rows, "
                     f"{ad['steps']} steps in {ad['seconds']:.0f} s, loss "
                     f"{ad['first_loss']:.2f} -> {ad['final_loss']:.2f}.")
    lines += ["", f"Encoding: {enc['documents_per_s']:.0f} documents/s "
              f"({enc['tokens_per_document']:.1f} token vectors each), "
              f"{enc['queries_per_s']:.0f} queries/s. Exact MaxSim (numpy): {exact}. Peak RSS "
              f"{result['peak_rss_mb']:.0f} MB."
              + (" Not measured: " + "; ".join(result["not_measured"]) + "."
                 if result["not_measured"] else "")]
    write_block("multivector", lines, "Multi-vector retrieval (XQuAD-R)")


if __name__ == "__main__":
    sys.exit(main())
