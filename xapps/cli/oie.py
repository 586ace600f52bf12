"""`xapps oie train|extract`: open information extraction (subject, relation, objects)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click


@click.group()
def oie() -> None:
    """Train open-IE taggers and extract (subject, relation, object) triples."""


@oie.command("train")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help='Training JSONL: {"sentence": str, "tuples": [{"arg0", "pred", "pred_head" '
                   '(optional), "args": [...]}]} per line (oie_train_unified.jsonl).')
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the trained tagger (pass it to `xapps oie extract --model`).")
@click.option("--backbone", default="me5-small", show_default=True,
              help="Installed model name, local model folder or hub name.")
@click.option("--epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=float, default=5e-5, show_default=True,
              help="Learning rate of the encoder (the heads use 1e-3).")
@click.option("--average-last", type=click.IntRange(min=1), default=1, show_default=True,
              help="Average the weights of the last N epochs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if present).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's).")
@click.option("--no-resume", is_flag=True, help="Start over instead of resuming OUT.partial.")
def train(data_path, out, backbone, epochs, batch_size, lr, average_last, seed, device,
          threads, no_resume) -> None:
    """Train a two-stage (predicate, then arguments) open-IE tagger on tuples given as
    strings; an interrupted run resumes after its last finished epoch."""
    from ..oie.data import read_oie_jsonl
    from ..oie.model import OIEConfig
    from ..oie.training import OIETrainingConfig, train_oie

    stats: dict = {}
    sentences = list(read_oie_jsonl(data_path, stats=stats))
    if threads:
        import torch

        torch.set_num_threads(threads)
    config = OIETrainingConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                               average_last=average_last, seed=seed)
    record = train_oie(sentences, out, config, model_config=OIEConfig(backbone=backbone),
                       device=device, resume=not no_resume)
    summary = {"out": out, "sentences": record["sentences"], "tuples": stats["tuples"],
               "dropped_tuples": stats["dropped_tuples"],
               "untagged_arguments": stats["untagged_arguments"], "epochs": record["epoch"],
               "steps": record["step"], "final_loss": record["loss"][-1],
               "seconds": round(record["seconds"], 1)}
    click.echo(json.dumps(summary, indent=2))


@oie.command("extract")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False),
              help="A tagger folder from `xapps oie train`.")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True),
              help="Sentences: .txt (one per line), .jsonl or .tsv with a text field (.gz read "
                   "too), or a folder of .txt files (one sentence per file).")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help='JSONL, one line per input sentence: {"id", "text", "triples": [...]}; '
                   "written atomically.")
@click.option("--text-field", default="text", show_default=True,
              help="The JSONL/TSV field that holds the sentence.")
@click.option("--id-field", default="id", show_default=True,
              help="The JSONL/TSV field that holds the id (a .txt line's id is its number).")
@click.option("--lang", default=None,
              help="Language code of the input: spaCy's tokenizer for it gives the words the "
                   "tagger labels (default: language-neutral rules, 'xx').")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Sentences per encoder pass.")
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=0.0,
              show_default=True, help="Leave out triples below this confidence.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's).")
def extract(model, input_path, output, text_field, id_field, lang, batch_size, min_confidence,
            threads) -> None:
    """Extract (subject, relation, objects) triples with character offsets from each
    sentence, e.g. `xapps oie extract --model oie-de --input de.txt --output de.jsonl --lang
    de`."""
    from tqdm.auto import tqdm

    from .. import factories  # noqa: F401  (registers oie_extractor)
    from ..corpus import read_records
    from ..fileio import atomic_file
    from ..languages import blank

    _check_paths(Path(input_path), Path(output))
    try:
        nlp = blank(lang or "xx")
    except (ValueError, ImportError) as exc:
        raise click.BadParameter(str(exc), param_hint="--lang") from None
    if threads:
        import torch

        torch.set_num_threads(threads)
    extractor = nlp.add_pipe("oie_extractor", config={
        "model": str(model), "batch_size": batch_size, "min_confidence": min_confidence})
    extractor.initialize(nlp=nlp)  # loads the tagger (nlp.initialize would log two lines)
    records = read_records(input_path, id_field=id_field, text_field=text_field)
    sentences = triples = 0
    started = time.perf_counter()
    with atomic_file(output) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh, \
            tqdm(desc="extracting open IE", unit=" sentences") as bar:
        pairs = ((record.text, record) for record in records)
        for doc, record in nlp.pipe(pairs, as_tuples=True, batch_size=batch_size):
            fh.write(json.dumps({"id": record.id, "text": record.text,
                                 "triples": doc._.triples}, ensure_ascii=False) + "\n")
            sentences += 1
            triples += len(doc._.triples)
            bar.update(1)
        fh.flush()
        os.fsync(fh.fileno())
    seconds = time.perf_counter() - started
    rate = sentences / max(seconds, 1e-9)
    click.echo(f"extracted {triples} triples from {sentences} sentences in {seconds:.1f} s "
               f"({rate:.{1 if rate >= 1 else 3}f} sentences/s); wrote {output}", err=True)


def _check_paths(source: Path, out: Path) -> None:
    """Refuse an output that would replace the input, before the model loads."""
    if source.resolve() == out.resolve():
        raise click.UsageError(f"--output {out} is the --input file; write the triples to "
                               "another file.")
    if out.is_dir():
        raise click.UsageError(f"--output {out} is a folder; give a file name such as "
                               f"{out / 'triples.jsonl'}.")
