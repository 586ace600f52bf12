"""Cross-lingual re-ranking on Mantra GSC: train the cross-encoder on some languages' documents,
evaluate accuracy@1 on the others (and the reverse split).

Candidates come from the ensemble generator (TF-IDF + me5-small); the dense half re-uses the
name index that bench_linking.py saved (XAPPS_BENCH_WORK) when it is there. CPU-sized by
default: a sample of training mentions, a short candidate list, one epoch.

    python benchmarks/bench_rerank.py [--train-examples 400] [--k 8] [--threads 2]

Writes benchmarks/results/rerank.json and the table in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from pathlib import Path

from readme_table import write_block

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("XAPPS_BENCH_WORK", "/tmp/xapps-bench-linking"))
SPLITS = [(("en", "es"), ("de", "fr")), (("de", "fr"), ("en", "es"))]


def candidates_for(kb, mentions, k: int):
    from xapps.linking.candidates import EnsembleGenerator, load_generator

    generator = EnsembleGenerator(generators=[{"kind": "tfidf", "k": 64},
                                              {"kind": "dense", "k": 64}])
    dense_dir = WORK / "dense-plain"
    generator.kb = kb
    generator.members[0][0].fit(kb)
    if (dense_dir / "cfg.json").exists():
        generator.members[1] = (load_generator(dense_dir, kb), generator.members[1][1])
    else:
        generator.members[1][0].fit(kb)
    return generator.generate(mentions, k)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--train-examples", type=int, default=400)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--generator-prior", type=float, default=20.0)
    parser.add_argument("--splits", default="0,1", help="which of the two splits to run")
    parser.add_argument("--out", default=str(HERE / "results" / "rerank.json"))
    args = parser.parse_args(argv)

    import torch

    from xapps import __version__
    from xapps.linking.data import doc_mentions, read_mantra
    from xapps.linking.evaluate import evaluate_accuracy, evaluate_candidates
    from xapps.linking.kb import load_kb
    from xapps.linking.rerank import (
        CrossEncoderReranker,
        RerankerConfig,
        TrainingExample,
        train_reranker,
    )
    from xapps.paths import data_root

    torch.set_num_threads(args.threads)
    root = data_root(args.data)
    if not (root / "mantra-gsc").is_dir():
        print(f"Mantra GSC not found under {root}; skipping.")
        return 0
    kb = load_kb(root / "mantra-gsc" / "kb_mantra_hpo.jsonl")
    pairs = [(m, g) for m, g in doc_mentions(read_mantra(root / "mantra-gsc")) if g]
    mentions = [m for m, _ in pairs]
    gold = [g for _, g in pairs]
    t0 = time.perf_counter()
    ranked = candidates_for(kb, mentions, args.k)
    cand_seconds = time.perf_counter() - t0
    runs = []
    for split in [SPLITS[int(i)] for i in args.splits.split(",")]:
        train_langs, test_langs = split
        train_idx = [i for i, m in enumerate(mentions) if m.lang in train_langs]
        test_idx = [i for i, m in enumerate(mentions) if m.lang in test_langs]
        random.Random(0).shuffle(train_idx)
        train_idx = train_idx[:args.train_examples]
        examples = [TrainingExample(mentions[i], ranked[i], sorted(gold[i])[0])
                    for i in train_idx]
        reranker = CrossEncoderReranker(RerankerConfig(
            backbone="me5-small", max_length=args.max_length,
            generator_prior=args.generator_prior))
        history = train_reranker(reranker, examples, kb, epochs=args.epochs, lr=args.lr,
                                 batch_size=args.batch_size, candidate_chunk=32,
                                 max_candidates=args.k)
        test_m = [mentions[i] for i in test_idx]
        test_g = [gold[i] for i in test_idx]
        test_c = [ranked[i] for i in test_idx]
        t0 = time.perf_counter()
        reranked = reranker.score(test_m, test_c, kb, batch_size=64)
        score_s = time.perf_counter() - t0
        before = evaluate_candidates(test_m, test_c, test_g, ks=(1, args.k))
        after = evaluate_accuracy(test_m, reranked, test_g)
        run = {"train_langs": list(train_langs), "test_langs": list(test_langs),
               "train_examples": len(examples), "test_mentions": len(test_m),
               "train_seconds": history["seconds"], "steps": history["steps"],
               "loss_first_last": [history["loss"][0], history["loss"][-1]],
               "generator_recall@1": before["pooled"][1],
               f"generator_recall@{args.k}": before["pooled"][args.k],
               "accuracy@1": after["pooled"], "accuracy@1_per_lang": after["per_lang"],
               "generator_recall@1_per_lang": {lang: v[1] for lang, v in
                                               before["per_lang"].items()},
               "rerank_mentions_per_s": len(test_m) / score_s}
        runs.append(run)
        print(json.dumps(run), flush=True)
    result = {"benchmark": "rerank_cross_lingual", "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": "python benchmarks/bench_rerank.py " + " ".join(argv or sys.argv[1:]),
              "xapps_version": __version__, "settings": vars(args),
              "candidate_seconds": cand_seconds,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "runs": runs}
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    write_table(result)
    return 0


def write_table(result: dict) -> None:
    s = result["settings"]
    lines = [f"Cross-lingual re-ranking, Mantra GSC; ensemble candidates k={s['k']}; "
             f"{s['train_examples']} training mentions, {s['epochs']} epoch(s), batch "
             f"{s['batch_size']}, lr {s['lr']}, max_length {s['max_length']}, generator prior "
             f"{s['generator_prior']}, frozen word embeddings, CPU {s['threads']} threads; "
             f"{result['date']}; `{result['command']}`",
             "", "| train -> test | generator R@1 | R@k | re-ranked acc@1 | per language | "
                 "train s | re-rank mentions/s |", "|---|---|---|---|---|---|---|"]
    for run in result["runs"]:
        per = ", ".join(f"{lang} {100 * v:.1f}" for lang, v in
                        sorted(run["accuracy@1_per_lang"].items()))
        rk = next(v for key, v in run.items() if key.startswith("generator_recall@")
                  and key != "generator_recall@1" and not key.endswith("per_lang"))
        lines.append(f"| {'+'.join(run['train_langs'])} -> {'+'.join(run['test_langs'])} | "
                     f"{100 * run['generator_recall@1']:.1f} | {100 * rk:.1f} | "
                     f"{100 * run['accuracy@1']:.1f} | {per} | {run['train_seconds']:.0f} | "
                     f"{run['rerank_mentions_per_s']:.1f} |")
    write_block("rerank", lines, "Cross-lingual re-ranking (Mantra GSC)")


if __name__ == "__main__":
    sys.exit(main())
