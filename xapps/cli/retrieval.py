"""`xapps retrieval train`."""
from __future__ import annotations

import json

import click

from ..errors import Errors, InputError
from ..fileio import ensure_writable
from ..index.manifest import check_replaceable
from ..retrieval.colbert import CONFIG_FILE


def _codes(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


@click.group()
def retrieval() -> None:
    """Train multi-vector (ColBERT-style) retrievers."""


@retrieval.command("train")
@click.option("--data", "data_path", type=click.Path(), default=None,
              help='JSONL of {"query", "positive", "negatives": [...]} rows (optional "lang").')
@click.option("--unlabeled", type=click.Path(), default=None,
              help="Unlabeled corpus (.jsonl/.tsv/.txt folder) to make pseudo-pairs from "
                   "(use with --teacher).")
@click.option("--pseudo", type=click.Choice(["ict", "title"]), default="ict", show_default=True,
              help="Pseudo-pairs from --unlabeled: inverse cloze or title -> text.")
@click.option("--title-field", default="title", show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option("--id-field", default="id", show_default=True)
@click.option("--out", required=True, type=click.Path(),
              help="Folder for the trained encoder (pass it to `xapps index build --encoder`).")
@click.option("--encoder", "encoder_path", type=click.Path(), default=None,
              help="A saved encoder to continue from; default: a new one on --backbone.")
@click.option("--backbone", default="me5-small", show_default=True)
@click.option("--dim", type=click.IntRange(min=1), default=128,
              show_default=True,
              help="Projection size of a new encoder.")
@click.option("--train", "train", type=click.Choice(["projection", "adapters",
                                                      "projection+adapters"]),
              default="projection", show_default=True)
@click.option("--adapter-langs", default=None,
              help="Comma-separated languages that get a LoRA adapter (with --train adapters).")
@click.option("--teacher", default=None,
              help="Single-vector model to distil scores from, e.g. me5-small.")
@click.option("--distill-weight", default=1.0, show_default=True)
@click.option("--steps", type=click.IntRange(min=1), default=500,
              show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=32,
              show_default=True)
@click.option("--negatives", "n_negatives", default=1, show_default=True,
              help="Hard negatives per example.")
@click.option("--lr", default=1e-3, show_default=True, help="Projection learning rate.")
@click.option("--adapter-lr", default=3e-4, show_default=True)
@click.option("--temperature", default=1.0, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=100,
              show_default=True)
@click.option("--average-last", default=1, show_default=True,
              help="Average the trainable weights of the last N checkpoints.")
@click.option("--seed", default=0, show_default=True)
@click.option("--no-resume", is_flag=True, help="Start over instead of resuming OUT.partial.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if present).")
@click.option("--threads", type=click.IntRange(min=1), default=None)
def train(data_path, unlabeled, pseudo, title_field, text_field, id_field, out, encoder_path,
          backbone, dim, train, adapter_langs, teacher, distill_weight, steps, batch_size,
          n_negatives, lr, adapter_lr, temperature, checkpoint_every, average_last, seed,
          no_resume, device, threads) -> None:
    """Train a ColBERT encoder's projection and/or per-language adapters (contrastive with
    in-batch and hard negatives, optional distillation from a single-vector teacher)."""
    from ..corpus import read_records
    from ..retrieval.colbert import ColBERTConfig, ColBERTEncoder
    from ..retrieval.training import (
        RetrievalTrainingConfig,
        pseudo_pairs,
        read_examples,
        train_retriever,
    )

    if not data_path and not unlabeled:
        raise click.UsageError("Give --data (labelled JSONL) and/or --unlabeled (pseudo-pairs).")
    _check_train_options(click.get_current_context(), encoder_path, unlabeled, teacher)
    # OUT and its OUT.partial checkpoints go beside each other: check before any model loads.
    ensure_writable(out, fix="Pass an --out folder in a location you can write to.")
    check_replaceable(out, CONFIG_FILE, "a ColBERT encoder")
    if threads:
        import torch

        torch.set_num_threads(threads)
    config = RetrievalTrainingConfig(
        steps=steps, batch_size=batch_size, n_negatives=n_negatives, lr=lr,
        adapter_lr=adapter_lr, temperature=temperature, train=train,
        adapter_languages=_codes(adapter_langs), teacher=teacher, distill_weight=distill_weight,
        checkpoint_every=checkpoint_every, average_last=average_last, seed=seed)
    examples = read_examples(data_path) if data_path else []
    if unlabeled:
        records = read_records(unlabeled, id_field=id_field, text_field=text_field)
        examples += pseudo_pairs(list(records), pseudo, title_field=title_field, seed=seed)
    if encoder_path:
        # an explicit --backbone says where the saved encoder's backbone is now (same weights)
        moved = backbone if "backbone" in _explicit(click.get_current_context()) else None
        encoder = ColBERTEncoder.load(encoder_path, device=device, dtype="float32",
                                      backbone=moved)
    else:
        encoder = ColBERTEncoder(ColBERTConfig(backbone=backbone, dim=dim, seed=seed),
                                 device=device, dtype="float32")
    record = train_retriever(examples, out, config, encoder=encoder, device=device,
                             resume=not no_resume)
    summary = {k: record[k] for k in ("step", "seconds", "examples", "averaged")}
    summary["first_loss"], summary["final_loss"] = record["loss"][0], record["loss"][-1]
    click.echo(json.dumps({"out": out, **summary}, indent=2))


def _explicit(ctx: click.Context) -> set[str]:
    """The options given on the command line (not defaults)."""
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}


def _check_train_options(ctx: click.Context, encoder_path, unlabeled, teacher) -> None:
    """Refuse options that would be silently ignored (E228), before any work."""
    given = _explicit(ctx)
    # (the options are ignored when ..., options, why, fix)
    checks = (
        (bool(encoder_path), {"dim": "--dim"}, "--dim sizes a new encoder's projection; the "
         "saved --encoder keeps its own", "Drop --dim, or drop --encoder to start a new "
         "encoder."),
        (not unlabeled, {"pseudo": "--pseudo", "title_field": "--title-field",
                         "text_field": "--text-field", "id_field": "--id-field"},
         "they describe the --unlabeled corpus, and none was given",
         "Add --unlabeled CORPUS, or drop them."),
        (not teacher, {"distill_weight": "--distill-weight"}, "there is no --teacher to "
         "distil from", "Add --teacher MODEL (e.g. me5-small), or drop it."),
    )
    for ignored_when, options, reason, fix in checks:
        ignored = sorted(flag for name, flag in options.items() if name in given)
        if ignored_when and ignored:
            raise InputError(Errors.E228.format(options=", ".join(ignored), reason=reason,
                                                fix=fix))
