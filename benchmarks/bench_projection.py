"""Annotation projection on Europarl NER (the T-Projection evaluation): English gold entities
projected onto the aligned Spanish and German sentences, scored against their gold (span
exact match, type included, micro P/R/F1), with SimAlign (the PyPI package, argmax, subwords,
the same me5-small layer) as the peer, run side by side in the same process.

    pip install simalign==0.4 --no-deps     # the peer; its dependencies are xapps' own
    python benchmarks/bench_projection.py [--threads 1] [--speed-pairs 200] [--repeats 3]
    python benchmarks/bench_projection.py --dev-grid     # how the defaults were chosen

The defaults of xapps.projection.ProjectionConfig were chosen on the first 200 sentence
pairs of each language (the "dev" column); "held-out" is the other 599, never looked at
while choosing. Rows: the default projector, ablations (alignment evidence alone, span
similarity alone, argmax links only, greedy instead of global assignment, the aligner rule
with xapps' own encoder: it must land within 0.5 F1 of the SimAlign row, which validates
the evaluation), the precision settings, and the peer. Speed: pairs/s over the first
--speed-pairs pairs of each language, median of --repeats runs, SimAlign and xapps
interleaved. Writes results/projection.json and the table in benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from readme_table import cpu_name, write_block

HERE = Path(__file__).resolve().parent
LANGS = ("es", "de")
DEV = 200

#: name -> ProjectionConfig overrides (the default projector first).
VARIANTS = {
    "xapps (default)": {},
    "alignment evidence only": {"similarity_weight": 0.0},
    "span similarity only": {"alignment_weight": 0.0},
    "argmax links only (no soft links)": {"alignment": "argmax"},
    "greedy assignment": {"assignment": "greedy"},
    "aligner rule, xapps encoder (ablation)": {"assignment": "rule", "alignment": "argmax"},
    "xapps (default), fp32": {"dtype": "float32"},
    "xapps, int8 linear layers": {"quantize": "int8", "dtype": "float32"},
}


def load(root: Path):
    from xapps.projection.io import read_conll, read_pairs

    data = {}
    for lang in LANGS:
        pairs = list(read_pairs(root / "en.conll", root / f"{lang}.conll", source_lang="en",
                                target_lang=lang))
        gold = [s.spans for s in read_conll(root / f"{lang}.conll")]
        src_tokens = [s.tokens for s in read_conll(root / "en.conll")]
        tgt_tokens = [s.tokens for s in read_conll(root / f"{lang}.conll")]
        data[lang] = (pairs, gold, src_tokens, tgt_tokens)
    return data


def scores(gold, predicted) -> dict:
    from xapps.projection.evaluate import span_scores

    full = span_scores(gold, predicted)
    return {"f1": full["f1"], "precision": full["precision"], "recall": full["recall"],
            "per_label": {k: v["f1"] for k, v in full["per_label"].items()},
            "f1_dev": span_scores(gold[:DEV], predicted[:DEV])["f1"],
            "f1_heldout": span_scores(gold[DEV:], predicted[DEV:])["f1"]}


def run_xapps(projector, pairs) -> tuple[list, float]:
    start = time.perf_counter()
    results = list(projector.project(pairs, progress=False))
    return results, time.perf_counter() - start


def simalign_predictions(aligner, pairs, src_tokens, tgt_tokens) -> tuple[list, float]:
    """SimAlign word alignments -> the aligner projection rule (xapps' alignment_rule, the
    rule the issue fixes for peers)."""
    from xapps.projection.assignment import alignment_rule
    from xapps.projection.types import LabeledSpan
    from xapps.projection.words import words_covering

    out, elapsed = [], 0.0
    for pair, src, tgt in zip(pairs, src_tokens, tgt_tokens):
        start = time.perf_counter()
        links_list = aligner.get_word_aligns(src, tgt)["inter"]
        elapsed += time.perf_counter() - start
        links = np.zeros((len(src), len(tgt)), dtype=np.float32)
        for i, j in links_list:
            links[i, j] = 1.0
        spans = [words_covering(pair.source_words, s.start, s.end) for s in pair.spans]
        words = pair.target_words
        out.append([LabeledSpan(words[c.start][0], words[c.end - 1][1],
                                pair.spans[c.source_index].label)
                    for c in alignment_rule(links, spans)])
    return out, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder holding europarl-ner/")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--speed-pairs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dev-grid", action="store_true",
                        help="only the search over layer, similarity weight and assignment "
                             "margin on the dev pairs (results/projection_dev_grid.json)")
    args = parser.parse_args(argv)

    import torch

    from xapps.backbone import cpu_has_native_bf16, load_backbone
    from xapps.models import store
    from xapps.paths import data_root
    from xapps.projection import AnnotationProjector

    root = data_root(args.data) / "europarl-ner"
    if not (root / "en.conll").exists():
        print(f"Europarl NER not found under {root.parent}; pass --data or set XAPPS_DATA. "
              "Skipping.")
        return 0
    torch.set_num_threads(args.threads)
    logging.getLogger("simalign").setLevel(logging.WARNING)
    data = load(root)
    if args.dev_grid:
        return dev_grid(data)
    model_path = load_backbone("me5-small").path or store.install("me5-small")
    results: dict = {"variants": {}, "speed": {}}

    for name, overrides in VARIANTS.items():
        projector = AnnotationProjector(**overrides)
        row = {"config": projector.config.to_dict()}
        for lang in LANGS:
            pairs, gold, _, _ = data[lang]
            run_xapps(projector, pairs[:8])  # warm-up: model load, first batch
            projected, seconds = run_xapps(projector, pairs)
            row[lang] = scores(gold, [[p.labeled for p in r.spans] for r in projected])
            row[lang]["pairs_per_s"] = len(pairs) / seconds
        row["avg_f1"] = statistics.mean(row[lang]["f1"] for lang in LANGS)
        results["variants"][name] = row
        print(f"{name}: " + ", ".join(f"{lang} {100 * row[lang]['f1']:.1f}" for lang in LANGS)
              + f", avg {100 * row['avg_f1']:.1f}", flush=True)

    try:
        from simalign import SentenceAligner
    except ImportError:
        print("simalign is not installed (pip install simalign==0.4 --no-deps): no peer row")
        SentenceAligner = None
    if SentenceAligner is not None:
        aligner = SentenceAligner(model=str(model_path), token_type="bpe",
                                  matching_methods="a", layer=6)
        row = {"config": {"model": "me5-small", "layer": 6, "token_type": "bpe",
                          "matching": "argmax"}}
        for lang in LANGS:
            pairs, gold, src_tokens, tgt_tokens = data[lang]
            predicted, seconds = simalign_predictions(aligner, pairs, src_tokens, tgt_tokens)
            row[lang] = scores(gold, predicted)
            row[lang]["pairs_per_s"] = len(pairs) / seconds
        row["avg_f1"] = statistics.mean(row[lang]["f1"] for lang in LANGS)
        results["variants"]["SimAlign argmax, subwords (peer)"] = row
        print(f"SimAlign: avg {100 * row['avg_f1']:.1f}", flush=True)

        # Speed side by side: the same pairs, interleaved, median of repeats.
        contenders = {"xapps (default)": AnnotationProjector(),
                      "xapps (default), fp32": AnnotationProjector(dtype="float32")}
        timings: dict[str, list[float]] = {name: [] for name in [*contenders, "SimAlign"]}
        subset = [(lang, i) for lang in LANGS for i in range(args.speed_pairs)]
        for _ in range(args.repeats):
            for name, projector in contenders.items():
                pairs = [data[lang][0][i] for lang, i in subset]
                timings[name].append(len(pairs) / run_xapps(projector, pairs)[1])
            start = time.perf_counter()
            for lang, i in subset:
                aligner.get_word_aligns(data[lang][2][i], data[lang][3][i])
            timings["SimAlign"].append(len(subset) / (time.perf_counter() - start))
        speed = {name: statistics.median(v) for name, v in timings.items()}
        results["speed"] = {"pairs_per_s_median": speed, "runs": timings,
                            "pairs": len(subset), "repeats": args.repeats,
                            "ratio_vs_simalign": {n: speed[n] / speed["SimAlign"]
                                                  for n in contenders}}
        print("speed:", json.dumps(results["speed"]["pairs_per_s_median"]), flush=True)

    results.update(
        date=datetime.now().strftime("%Y-%m-%d %H:%M"), threads=args.threads,
        cpu=cpu_name(), native_bf16=cpu_has_native_bf16(),
        command="python benchmarks/bench_projection.py" + (f" --threads {args.threads}"
                                                          if args.threads != 1 else ""),
        pairs={lang: len(data[lang][0]) for lang in LANGS}, dev_pairs=DEV)
    out = HERE / "results" / "projection.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_table(results)
    return 0


def dev_grid(data) -> int:
    """Average dev F1 (first DEV pairs of each language) over the settings the defaults were
    chosen from; ties broken towards the simpler / earlier value."""
    import itertools

    from xapps.projection import AnnotationProjector

    rows = []
    for layer, sim, margin in itertools.product((5, 6, 7, 8), (0.2, 0.3, 0.4), (0.5, 0.7, 0.9)):
        projector = AnnotationProjector(layer=layer, similarity_weight=sim,
                                        alignment_weight=round(1 - sim, 2),
                                        assignment_margin=margin)
        row = {"layer": layer, "similarity_weight": sim, "assignment_margin": margin}
        for lang in LANGS:
            pairs, gold, _, _ = data[lang]
            projected, _ = run_xapps(projector, pairs[:DEV])
            row[lang] = scores(gold[:DEV], [[p.labeled for p in r.spans]
                                            for r in projected])["f1"]
        row["avg_f1"] = statistics.mean(row[lang] for lang in LANGS)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = HERE / "results" / "projection_dev_grid.json"
    out.write_text(json.dumps({"date": datetime.now().strftime("%Y-%m-%d %H:%M"),
                               "dev_pairs": DEV, "rows": rows}, indent=1) + "\n",
                   encoding="utf-8")
    return 0


def write_table(results: dict) -> None:
    rows = results["variants"]
    lines = [f"Annotation projection, Europarl NER EN->ES / EN->DE ({results['pairs']['es']} "
             f"sentence pairs each), me5-small layer 6, {results['threads']} thread(s), "
             f"{results['cpu']}; {results['date']}; `{results['command']}`", "",
             "| method | EN->ES F1 | EN->DE F1 | avg F1 | avg F1 dev (first 200) | avg F1 "
             "held-out (599) | pairs/s (full run, es / de) |",
             "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        dev = statistics.mean(row[lang]["f1_dev"] for lang in LANGS)
        held = statistics.mean(row[lang]["f1_heldout"] for lang in LANGS)
        lines.append(f"| {name} | {100 * row['es']['f1']:.1f} | {100 * row['de']['f1']:.1f} | "
                     f"{100 * row['avg_f1']:.1f} | {100 * dev:.1f} | {100 * held:.1f} | "
                     f"{row['es']['pairs_per_s']:.1f} / {row['de']['pairs_per_s']:.1f} |")
    main_row = rows["xapps (default)"]
    labels = sorted(main_row["es"]["per_label"])
    lines += ["", "Per-label F1 of the default projector: " + "; ".join(
        f"{lab} es {100 * main_row['es']['per_label'][lab]:.1f} / de "
        f"{100 * main_row['de']['per_label'][lab]:.1f}" for lab in labels) + "."]
    speed = results.get("speed")
    if speed:
        med = speed["pairs_per_s_median"]
        lines += ["", f"Speed side by side ({speed['pairs']} pairs, median of "
                      f"{speed['repeats']} interleaved runs): " + ", ".join(
                          f"{name} {value:.1f} pairs/s" for name, value in med.items())
                  + "; xapps / SimAlign = " + ", ".join(
                      f"{ratio:.2f}x ({name})"
                      for name, ratio in speed["ratio_vs_simalign"].items()) + "."]
    write_block("projection", lines, "Annotation projection (Europarl NER)")


if __name__ == "__main__":
    raise SystemExit(main())
