"""Dense retrieval on XQuAD-R with the shared backbone and the FAISS index layer.

Quality (per language and pooled across the 8 languages): MRR@10, Recall@1/@10 and the
LAReQA mAP settings X-X, X-X-mono and X-Y. Speed on this machine: encode throughput,
index build time, search latency p50/p95 for flat and HNSW, peak RSS.

    python benchmarks/bench_dense_retrieval.py [--data DIR] [--threads N] [--limit N]

Writes benchmarks/results/dense_retrieval.json and the table in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from readme_table import write_block

HERE = Path(__file__).resolve().parent
LANGS = ["ar", "de", "en", "es", "hi", "ru", "vi", "zh"]
# LAReQA (Roy et al. 2020), mBERT baselines, mAP; the issue quotes these for comparison.
PUBLISHED_MAP = {"X-X": 0.23, "X-X-mono": 0.52, "X-Y": 0.66}


@dataclass
class Corpus:
    sentences: list[str]  # all languages, pooled
    sent_lang: np.ndarray  # language index per sentence
    questions: list[str]
    q_lang: np.ndarray
    q_key: list[str]  # question id, shared by the translations of one question
    gold: np.ndarray  # per question: its gold sentence (in its own language)
    gold_by_lang: np.ndarray  # (n_questions, n_langs): gold sentence of the same id per language


def load_xquad_r(root: Path, limit: int | None = None) -> Corpus:
    sentences, sent_lang, questions, q_lang, q_key, gold = [], [], [], [], [], []
    for li, lang in enumerate(LANGS):
        data = json.loads((root / f"{lang}.json").read_text(encoding="utf-8"))
        n_q = 0
        for article in data["data"]:
            for para in article["paragraphs"]:
                base = len(sentences)
                breaks = para["sentence_breaks"]
                sentences.extend(para["sentences"])
                sent_lang.extend([li] * len(para["sentences"]))
                for qa in para["qas"]:
                    if limit and n_q >= limit:
                        continue
                    start = qa["answers"][0]["answer_start"]
                    idx = next((i for i, (s, e) in enumerate(breaks) if s <= start <= e),
                               len(breaks) - 1)
                    questions.append(qa["question"])
                    q_lang.append(li)
                    q_key.append(qa["id"])
                    gold.append(base + idx)
                    n_q += 1
    q_lang_arr = np.asarray(q_lang)
    gold_arr = np.asarray(gold)
    by_key: dict[str, dict[int, int]] = {}
    for key, li, g in zip(q_key, q_lang, gold):
        by_key.setdefault(key, {})[li] = g
    gold_by_lang = np.full((len(questions), len(LANGS)), -1, dtype=np.int64)
    for qi, key in enumerate(q_key):
        for li, g in by_key[key].items():
            gold_by_lang[qi, li] = g
    return Corpus(sentences, np.asarray(sent_lang), questions, q_lang_arr, q_key, gold_arr,
                  gold_by_lang)


# ------------------------------------------------------------------ metrics (pure functions)

def ranks_of_relevant(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based ranks of the relevant candidates in a score vector (ties count against).

    >>> ranks_of_relevant(np.array([0.1, 0.9, 0.5]), np.array([0, 2])).tolist()
    [3, 2]
    """
    return np.array([int((scores > scores[r]).sum()) + 1 for r in relevant])


def average_precision(ranks: np.ndarray) -> float:
    """AP from the ranks of all relevant items.

    >>> average_precision(np.array([1, 3]))
    0.8333333333333333
    """
    r = np.sort(ranks)
    return float(np.mean(np.arange(1, len(r) + 1) / r)) if len(r) else 0.0


def summarise(rank_lists: list[np.ndarray]) -> dict:
    """MRR@10 (first relevant), Recall@1/@10 (share of relevant items in the top k), mAP."""
    mrr, r1, r10, ap = [], [], [], []
    for ranks in rank_lists:
        first = ranks.min()
        mrr.append(1.0 / first if first <= 10 else 0.0)
        r1.append(float((ranks <= 1).sum()) / len(ranks))
        r10.append(float((ranks <= 10).sum()) / len(ranks))
        ap.append(average_precision(ranks))
    return {"mrr@10": float(np.mean(mrr)), "recall@1": float(np.mean(r1)),
            "recall@10": float(np.mean(r10)), "map": float(np.mean(ap)), "n": len(rank_lists)}


def evaluate(corpus: Corpus, q_vecs: np.ndarray, s_vecs: np.ndarray) -> dict:
    return evaluate_scores(corpus, lambda q_idx: q_vecs[q_idx] @ s_vecs.T)


def evaluate_scores(corpus: Corpus, score_rows) -> dict:
    """All metrics from ``score_rows(question indexes) -> (n, all sentences)`` scores, so a
    multi-vector scorer is evaluated exactly like the single-vector one."""
    n_l = len(LANGS)
    results: dict = {"monolingual": {}, "cross_lingual": {}, "lareqa_map": {}}
    xy = np.zeros((n_l, n_l))
    xx_mono_aps, same_lang_top10 = [], []
    for li, lang in enumerate(LANGS):
        q_idx = np.nonzero(corpus.q_lang == li)[0]
        scores = score_rows(q_idx)  # (n_q, all sentences)
        mono, pooled = [], []
        for row, qi in enumerate(q_idx):
            sc = scores[row]
            golds = corpus.gold_by_lang[qi][corpus.gold_by_lang[qi] >= 0]
            # X-X: all 8 translations of the answer sentence are relevant.
            pooled.append(ranks_of_relevant(sc, golds))
            top10 = np.argpartition(-sc, 10)[:10]
            same_lang_top10.append(float((corpus.sent_lang[top10] == li).mean()))
            # X-X-mono: pooled candidates without the other languages' answers; 1 relevant.
            masked = sc.copy()
            others = golds[golds != corpus.gold[qi]]
            masked[others] = -np.inf
            xx_mono_aps.append(average_precision(ranks_of_relevant(masked, corpus.gold[[qi]])))
            # X-Y: candidates of one language y only; the answer in y is relevant.
            for lj in range(n_l):
                g = corpus.gold_by_lang[qi, lj]
                if g < 0:
                    continue
                cand = corpus.sent_lang == lj
                sub = np.where(cand, sc, -np.inf)
                rank = ranks_of_relevant(sub, np.array([g]))
                xy[li, lj] += average_precision(rank)
                if lj == li:
                    mono.append(rank)
        xy[li] /= len(q_idx)
        results["monolingual"][lang] = summarise(mono)
        results["cross_lingual"][lang] = summarise(pooled)
    results["cross_lingual"]["all"] = {
        k: float(np.mean([results["cross_lingual"][lang][k] for lang in LANGS]))
        for k in ("mrr@10", "recall@1", "recall@10", "map")}
    results["monolingual"]["all"] = {
        k: float(np.mean([results["monolingual"][lang][k] for lang in LANGS]))
        for k in ("mrr@10", "recall@1", "recall@10", "map")}
    off_diag = xy[~np.eye(n_l, dtype=bool)]
    results["lareqa_map"] = {
        "X-X": results["cross_lingual"]["all"]["map"],
        "X-X-mono": float(np.mean(xx_mono_aps)),
        "X-Y": float(xy.mean()),
        "X-Y (x != y only)": float(off_diag.mean()),
        "X-Y matrix": {LANGS[i]: {LANGS[j]: round(float(xy[i, j]), 4) for j in range(n_l)}
                       for i in range(n_l)},
        "published_mbert": PUBLISHED_MAP,
    }
    results["same_language_share_top10"] = float(np.mean(same_lang_top10))
    return results


# ------------------------------------------------------------------ speed

def measure_index(kind: str, ids: list[str], s_vecs: np.ndarray, q_vecs: np.ndarray,
                  corpus: Corpus, n_latency: int) -> dict:
    from xapps.index.dense import DenseIndex

    start = time.perf_counter()
    index = DenseIndex(dim=s_vecs.shape[1], metric="cosine", index_type=kind)
    index.build(ids, s_vecs)
    build_s = time.perf_counter() - start
    lat = []
    for q in q_vecs[:n_latency]:
        t = time.perf_counter()
        index.search(q[None], 10)
        lat.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    hits = index.search(q_vecs, 10)
    batch_s = time.perf_counter() - t
    # Cross-lingual recall@10 through this index, to see what the approximation costs.
    pos = {sid: i for i, sid in enumerate(ids)}
    recall = []
    for qi, row in enumerate(hits):
        golds = set(corpus.gold_by_lang[qi][corpus.gold_by_lang[qi] >= 0].tolist())
        found = {pos[h.id] for h in row} & golds
        recall.append(len(found) / len(golds))
    return {"build_s": build_s, "latency_ms_p50": float(np.percentile(lat, 50)),
            "latency_ms_p95": float(np.percentile(lat, 95)),
            "batch_queries_per_s": len(q_vecs) / batch_s,
            "cross_lingual_recall@10": float(np.mean(recall)), "n_vectors": len(ids)}


def encode_speed(backbone, texts: list[str], threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    backbone.encode(texts[:32], prompt="passage")  # warm-up
    cpu0, t0 = time.process_time(), time.perf_counter()
    backbone.encode(texts, prompt="passage", batch_size=32, progress=False)
    wall = time.perf_counter() - t0
    return {"threads": threads, "sentences": len(texts), "wall_s": wall,
            "cpu_s": time.process_time() - cpu0, "sentences_per_s": len(texts) / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="data root (default $XAPPS_DATA or "
                                                     "../shared/data)")
    parser.add_argument("--backbone", default="me5-small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="questions per language")
    parser.add_argument("--speed-sample", type=int, default=1000)
    parser.add_argument("--out", default=str(HERE / "results" / "dense_retrieval.json"))
    args = parser.parse_args(argv)

    import torch

    from xapps import __version__
    from xapps.backbone import load_backbone
    from xapps.paths import data_root

    root = data_root(args.data) / "xquad-r"
    if not root.is_dir():
        print(f"XQuAD-R not found at {root}; pass --data or set XAPPS_DATA. Skipping.")
        return 0
    corpus = load_xquad_r(root, args.limit)
    backbone = load_backbone(args.backbone)
    speed = {"encode": [encode_speed(backbone, corpus.sentences[:args.speed_sample], t)
                        for t in (1, 2)]}
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    s_vecs = backbone.encode(corpus.sentences, prompt="passage", batch_size=32, progress=True)
    speed["encode_all_sentences_s"] = time.perf_counter() - t0
    q_vecs = backbone.encode(corpus.questions, prompt="query", batch_size=32, progress=True)
    quality = evaluate(corpus, q_vecs, s_vecs)
    ids = [f"s{i}" for i in range(len(corpus.sentences))]
    speed["index"] = {kind: measure_index(kind, ids, s_vecs, q_vecs, corpus, 1000)
                      for kind in ("flat", "hnsw")}
    speed["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "benchmark": "dense_retrieval", "data": "XQuAD-R (8 languages)",
        "command": "python benchmarks/bench_dense_retrieval.py " + " ".join(argv or sys.argv[1:]),
        "backbone": backbone.identity, "xapps_version": __version__,
        "machine": {"cpu_count": __import__("os").cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "threads": args.threads},
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "n_sentences": len(corpus.sentences), "n_questions": len(corpus.questions),
        "quality": quality, "speed": speed,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    write_table(result)
    print(json.dumps({"lareqa_map": {k: v for k, v in quality["lareqa_map"].items()
                                     if k != "X-Y matrix"},
                      "cross_lingual": quality["cross_lingual"]["all"],
                      "monolingual": quality["monolingual"]["all"]}, indent=2))
    return 0


def write_table(result: dict) -> None:
    q, s = result["quality"], result["speed"]
    lines = [f"Dense retrieval, XQuAD-R, {result['backbone']['name']} "
             f"({result['n_sentences']} sentences, {result['n_questions']} questions; "
             f"{result['date']}; `{result['command']}`)", "",
             "| language | mono MRR@10 | mono R@1 | mono R@10 | cross MRR@10 | cross R@10 "
             "| cross mAP |", "|---|---|---|---|---|---|---|"]
    for lang in LANGS + ["all"]:
        m, c = q["monolingual"][lang], q["cross_lingual"][lang]
        lines.append(f"| {lang} | {m['mrr@10']:.3f} | {m['recall@1']:.3f} | {m['recall@10']:.3f} "
                     f"| {c['mrr@10']:.3f} | {c['recall@10']:.3f} | {c['map']:.3f} |")
    lm = q["lareqa_map"]
    lines += ["", "| LAReQA mAP | xapps | published mBERT |", "|---|---|---|"]
    for key in ("X-X", "X-X-mono", "X-Y"):
        lines.append(f"| {key} | {lm[key]:.3f} | {PUBLISHED_MAP[key]:.2f} |")
    lines += ["", f"Same-language share of the pooled top 10: "
                  f"{q['same_language_share_top10']:.2f}", "",
              "| speed (CPU) | value |", "|---|---|"]
    for enc in s["encode"]:
        lines.append(f"| encode, {enc['threads']} thread(s) | {enc['sentences_per_s']:.0f} "
                     f"sentences/s ({enc['sentences']} sentences) |")
    for kind, r in s["index"].items():
        lines.append(f"| {kind}: build / p50 / p95 / recall@10 | {r['build_s']:.2f} s / "
                     f"{r['latency_ms_p50']:.3f} ms / {r['latency_ms_p95']:.3f} ms / "
                     f"{r['cross_lingual_recall@10']:.3f} |")
    lines += [f"| peak RSS | {s['peak_rss_mb']:.0f} MB |"]
    write_block("dense_retrieval", lines, "Dense retrieval (XQuAD-R)")


if __name__ == "__main__":
    sys.exit(main())
