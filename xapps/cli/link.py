"""`xapps link eval|train|align-encoder`."""
from __future__ import annotations

import json

import click

from ..fileio import ensure_writable
from ..linking import run


def _langs(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.group()
def link() -> None:
    """Evaluate and train the entity linker."""


@link.command("eval")
@click.option("--kb", "kb_path", type=click.Path(exists=True), default=None,
              help="KB .jsonl or saved KB folder (not needed with --pipeline).")
@click.option("--data", "source", default=None,
              help="BigBIO KB-schema file; default: Mantra GSC under the data root.")
@click.option("--langs", default=None, help="Comma-separated language codes, e.g. de,fr.")
@click.option("--candidates", type=click.Choice(sorted(run.GENERATOR_PRESETS)),
              default="ensemble", show_default=True)
@click.option("--reranker", type=click.Path(exists=True), default=None,
              help="A trained re-ranker folder (xapps link train).")
@click.option("-k", default=64, show_default=True)
@click.option("--errors", "errors_path", type=click.Path(), default=None,
              help="Write an error-analysis JSONL here.")
@click.option("--pipeline", type=click.Path(exists=True), default=None,
              help="A saved spaCy pipeline with NER + xmen_linker: report strict P/R/F1 "
                   "(spans from the NER) instead of the gold-span setting.")
@click.option("--json", "as_json", is_flag=True)
def eval_(kb_path, source, langs, candidates, reranker, k, errors_path, pipeline,
          as_json) -> None:
    """Recall@1/5/16/64 per language (gold spans given), accuracy@1 after re-ranking; or
    strict P/R/F1 of a whole pipeline with --pipeline."""
    if errors_path:
        ensure_writable(errors_path, fix="Pass --errors a path in a folder you can write to.")
    if pipeline:
        report = run.evaluate_pipeline(pipeline, source=source, langs=_langs(langs))
        strict = report["strict"]
        click.echo(json.dumps(report, indent=2) if as_json else
                   f"strict P {100 * strict['precision']:.1f}  R {100 * strict['recall']:.1f}  "
                   f"F1 {100 * strict['f1']:.1f}  ({strict['n_pred']} predicted, "
                   f"{strict['n_gold']} gold, {report['n_docs']} documents)")
        return
    if not kb_path:
        raise click.UsageError("--kb is required unless --pipeline is given.")
    report = run.evaluate_linking(kb_path, source=source, langs=_langs(langs),
                                  candidates=candidates, reranker=reranker, k=k,
                                  errors_path=errors_path)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    rec = report["recall"]
    ks = sorted(rec["pooled"])
    click.echo(f"{report['n']} mentions, {report['candidates']} candidates "
               f"({report['mentions_per_s']:.0f} mentions/s)")
    click.echo("lang    " + "  ".join(f"R@{k:<4}" for k in ks))
    for lang, values in sorted(rec["per_lang"].items()) + [("pooled", rec["pooled"])]:
        click.echo(f"{lang:<8}" + "  ".join(f"{100 * values[k]:6.1f}" for k in ks))
    if "accuracy@1" in report:
        acc = report["accuracy@1"]
        per = ", ".join(f"{lang} {100 * v:.1f}" for lang, v in sorted(acc["per_lang"].items()))
        click.echo(f"accuracy@1 after re-ranking: {100 * acc['pooled']:.1f} ({per})")


@link.command("train")
@click.option("--kb", "kb_path", required=True, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path())
@click.option("--data", "source", default=None,
              help="BigBIO KB-schema file; default: Mantra GSC under the data root.")
@click.option("--langs", default="en,es", show_default=True,
              help="Training languages (evaluate on the others for the cross-lingual case).")
@click.option("--backbone", default="me5-small", show_default=True)
@click.option("--candidates", type=click.Choice(sorted(run.GENERATOR_PRESETS)),
              default="tfidf", show_default=True)
@click.option("-k", default=16, show_default=True, help="Candidates per mention.")
@click.option("--max-examples", type=int, default=None)
@click.option("--epochs", default=1, show_default=True)
@click.option("--lr", default=2e-5, show_default=True)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--grad-accum", default=1, show_default=True)
@click.option("--candidate-chunk", default=16, show_default=True)
@click.option("--max-length", default=64, show_default=True)
@click.option("--rank-reg-weight", default=1.0, show_default=True)
@click.option("--generator-prior", default=20.0, show_default=True,
              help="Add this times the generator score to each logit (0: plain xMEN).")
@click.option("--threads", type=int, default=None)
def train(kb_path, out, source, langs, backbone, candidates, k, max_examples, epochs, lr,
          batch_size, grad_accum, candidate_chunk, max_length, rank_reg_weight, generator_prior,
          threads) -> None:
    """Train the cross-encoder re-ranker on annotated documents."""
    ensure_writable(out, fix="Pass --out a folder you can write to.")
    if threads:
        import torch

        torch.set_num_threads(threads)
    report = run.train_linking(kb_path, out, source=source, langs=_langs(langs),
                               backbone=backbone, candidates=candidates, k=k,
                               max_examples=max_examples, epochs=epochs, lr=lr,
                               batch_size=batch_size, grad_accum=grad_accum,
                               candidate_chunk=candidate_chunk, max_length=max_length,
                               rank_reg_weight=rank_reg_weight,
                               generator_prior=generator_prior)
    click.echo(json.dumps(report, indent=2))


@link.command("align-encoder")
@click.option("--kb", "kb_path", required=True, type=click.Path(exists=True),
              help="KB .jsonl or saved KB folder; its synonyms and translated aliases are the "
                   "training data (build one with `xapps kb build ... --translations`).")
@click.option("--out", required=True, type=click.Path(),
              help="Folder for the aligned model; pass it as the dense generator's backbone.")
@click.option("--backbone", default="me5-small", show_default=True)
@click.option("--steps", default=400, show_default=True)
@click.option("--batch-size", default=64, show_default=True, help="Concepts per step.")
@click.option("--lr", default=2e-5, show_default=True)
@click.option("--temperature", default=0.05, show_default=True)
@click.option("--max-length", default=32, show_default=True)
@click.option("--cross-lingual", default=0.7, show_default=True,
              help="Share of pairs drawn across two languages when a concept has several.")
@click.option("--train-embeddings", is_flag=True,
              help="Also train the word-embedding matrix (frozen by default).")
@click.option("--seed", default=0, show_default=True)
@click.option("--no-resume", is_flag=True, help="Start over instead of resuming OUT.partial.")
@click.option("--threads", type=int, default=None)
def align_encoder(kb_path, out, backbone, steps, batch_size, lr, temperature, max_length,
                  cross_lingual, train_embeddings, seed, no_resume, threads) -> None:
    """Fine-tune the dense generator's encoder on the KB's synonyms (SapBERT-style)."""
    from ..linking.kb import load_kb

    from ..linking.synonym_training import AlignmentConfig, train_alignment

    ensure_writable(out, fix="Pass --out a folder you can write to.")

    if threads:
        import torch

        torch.set_num_threads(threads)
    config = AlignmentConfig(backbone=backbone, steps=steps, batch_size=batch_size, lr=lr,
                             temperature=temperature, max_length=max_length,
                             cross_lingual=cross_lingual, freeze_embeddings=not train_embeddings,
                             seed=seed)
    record = train_alignment(load_kb(kb_path), out, config, resume=not no_resume)
    losses = record["loss"]
    click.echo(f"aligned {backbone} on {record['concepts']} concepts ({record['names']} names): "
               f"{record['step']} steps in {record['seconds']:.0f} s, loss {losses[0]:.3f} -> "
               f"{losses[-1]:.3f}; saved to {out}")
