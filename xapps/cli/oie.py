"""`xapps oie train|extract`: open information extraction (subject, relation, objects)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from ..errors import Errors, InputError
from ..fileio import ensure_writable
from .limits import exit_if_skipped, within_limit

#: Longest sentence `oie extract` takes by default: the tagger reads 128 subwords of a
#: sentence, so a text this long is a document, not a sentence (split it first).
DEFAULT_MAX_CHARS = 10_000
ALLOW_EMPTY = "Fix the input, or pass --allow-empty to accept an empty result."


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
@click.option("--init", "init_model", default=None, type=click.Path(exists=True, file_okay=False),
              help="Start from this trained tagger (e.g. the English one) instead of a new "
                   "one on --backbone.")
@click.option("--languages", default=None,
              help="Comma-separated codes (e.g. de,es): give the tagger LoRA language modules "
                   "for them, mixed by a learned gate; records route by their \"lang\".")
@click.option("--relation-style", type=click.Choice(["as-given", "carb"]), default="carb",
              show_default=True,
              help="English training relations as annotated, or moved to CaRB's convention "
                   "(auxiliaries and a leading preposition of the object join the relation) "
                   "where OIE2016/OpenIE4 annotate otherwise: the test sets use CaRB's.")
@click.option("--modules-only", is_flag=True,
              help="Train only the language modules; the shared encoder and heads stay as "
                   "--init has them (stage 2: target-language data on an English tagger).")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lr", type=float, default=1e-4, show_default=True,
              help="Learning rate of the encoder (the heads use 1e-3).")
@click.option("--average-last", type=click.IntRange(min=1), default=2, show_default=True,
              help="Average the weights of the last N epochs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if present).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's).")
@click.option("--no-resume", is_flag=True, help="Start over instead of resuming OUT.partial.")
def train(data_path, out, backbone, init_model, languages, relation_style, modules_only, epochs,
          batch_size, lr, average_last, seed, device, threads, no_resume) -> None:
    """Train a two-stage (predicate, then arguments) open-IE tagger on tuples given as
    strings; an interrupted run resumes after its last finished epoch. With --init,
    --languages and --modules-only it adds language modules to a trained tagger and trains
    only them on target-language records."""
    from ..oie.data import read_oie_jsonl
    from ..oie.model import OIEConfig, OIETagger
    from ..oie.training import OIETrainingConfig, train_oie

    ensure_writable(out, fix="Pass --out a folder you can write to.")
    codes = [c.strip().lower() for c in languages.split(",") if c.strip()] if languages else []
    no_modules = click.UsageError("--modules-only trains language modules on a trained "
                                  "tagger: give --init DIR and --languages (unless DIR has "
                                  "modules).")
    if modules_only and not init_model:
        raise no_modules

    stats: dict = {}
    sentences = list(read_oie_jsonl(data_path, stats=stats, relation_style=relation_style))
    if threads:
        import torch

        torch.set_num_threads(threads)
    config = OIETrainingConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                               average_last=average_last, seed=seed,
                               train="language_modules" if modules_only else "all")
    tagger = None
    if init_model:
        tagger = OIETagger.load(init_model, device=device)
        if codes and tagger.modules is None:
            tagger.add_language_modules(codes)
        elif codes and codes != tagger.modules.languages:
            raise click.UsageError(f"--init {init_model} has language modules for "
                                   f"{','.join(tagger.modules.languages)}; leave --languages "
                                   "out or give the same list.")
        if modules_only and tagger.modules is None:
            raise no_modules
    record = train_oie(sentences, out, config,
                       model_config=OIEConfig(backbone=backbone, languages=codes),
                       tagger=tagger, device=device, resume=not no_resume)
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
@click.option("--max-chars", type=click.IntRange(min=1), default=DEFAULT_MAX_CHARS,
              show_default=True,
              help="Longer sentences are skipped (reported with file:line; exit 1).")
@click.option("--allow-empty", is_flag=True,
              help="Accept an input without sentences (by default an error, exit 2).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's).")
def extract(model, input_path, output, text_field, id_field, lang, batch_size, min_confidence,
            max_chars, allow_empty, threads) -> None:
    """Extract (subject, relation, objects) triples with character offsets from each
    sentence, e.g. `xapps oie extract --model oie-de --input de.txt --output de.jsonl --lang
    de`.

    Exit codes: 0 every sentence written; 1 finished, but sentences over --max-chars were
    skipped (each named with its file:line, the others written); 2 bad input (named with
    its file:line), an empty input or an unwritable --output, and nothing is written."""
    from tqdm.auto import tqdm

    from .. import factories  # noqa: F401  (registers oie_extractor)
    from ..corpus import read_records
    from ..fileio import atomic_file
    from ..languages import blank

    _check_paths(Path(input_path), Path(output))
    ensure_writable(output, fix="Pass --output a file in a folder you can write to.")
    try:
        nlp = blank(lang or "xx")
    except (ValueError, ImportError) as exc:
        raise click.BadParameter(str(exc), param_hint="--lang") from None
    # One reading pass before the model loads: a bad line or an empty input fails in
    # seconds, not after the model has loaded (reading is cheap next to extracting).
    total = within = 0
    for record in read_records(input_path, id_field=id_field, text_field=text_field):
        total += 1
        within += len(record.text) <= max_chars
    if not total and not allow_empty:
        raise InputError(Errors.E251.format(path=input_path, what="sentences",
                                            fix=ALLOW_EMPTY))
    if threads:
        import torch

        torch.set_num_threads(threads)
    nlp.max_length = max(nlp.max_length, max_chars + 1)  # --max-chars decides, not spaCy
    extractor = nlp.add_pipe("oie_extractor", config={
        "model": str(model), "batch_size": batch_size, "min_confidence": min_confidence})
    extractor.initialize(nlp=nlp)  # loads the tagger (nlp.initialize would log two lines)
    skipped: list[str] = []
    records = within_limit(read_records(input_path, id_field=id_field, text_field=text_field),
                           max_chars, skipped, lambda r: [("the sentence", r.text)],
                           lambda i, r: r.where or r.id)
    sentences = triples = 0
    started = time.perf_counter()
    with atomic_file(output) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh, \
            tqdm(total=within, desc="extracting open IE", unit=" sentences") as bar:
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
    exit_if_skipped(skipped, sentences, output)


@oie.command("project")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False),
              help="A tagger trained on the source language (`xapps oie train`).")
@click.option("--source", "source_path", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Source-language sentences, one per line (.txt, .gz read too).")
@click.option("--target", "target_path", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="Their translations, line for line.")
@click.option("--source-lang", default="en", show_default=True)
@click.option("--target-lang", required=True, help="Code of the translations' language.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Training JSONL for `xapps oie train` (written atomically).")
@click.option("--min-confidence", type=click.FloatRange(0.0, 1.0), default=0.0,
              show_default=True, help="Project only triples at least this confident.")
@click.option("--projection-backbone", default="me5-small", show_default=True,
              help="Encoder whose word alignments carry the spans over.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
def project(model, source_path, target_path, source_lang, target_lang, out, min_confidence,
            projection_backbone, batch_size, threads) -> None:
    """Make target-language training data: extract triples from the source sentences and
    project each triple's relation and arguments onto the translation, e.g. `xapps oie
    project --model oie-en --source europarl.en --target europarl.de --target-lang de --out
    de.jsonl`, then `xapps oie train --init oie-en --languages de --modules-only --data
    de.jsonl --out oie-de`."""
    from tqdm.auto import tqdm

    from ..fileio import atomic_file
    from ..oie.extract import Extractor
    from ..oie.model import OIETagger
    from ..oie.silver import ParallelSentence, project_triples
    from ..projection import AnnotationProjector
    from ..projection.words import spacy_words, tokenizer_for

    if Path(out).resolve() in (Path(source_path).resolve(), Path(target_path).resolve()):
        raise click.UsageError(f"--out {out} is an input file; write the records elsewhere.")
    ensure_writable(out, fix="Pass --out a file in a folder you can write to.")
    source_lines = _sentence_lines(Path(source_path))
    target_lines = _sentence_lines(Path(target_path))
    if len(source_lines) != len(target_lines):
        raise InputError(Errors.E134.format(source=source_path, n=len(source_lines),
                                            target=target_path, m=len(target_lines)))
    try:
        tokenizer_for(source_lang), tokenizer_for(target_lang)
    except (ValueError, ImportError) as exc:
        raise click.BadParameter(str(exc), param_hint="--source-lang/--target-lang") from None
    if threads:
        import torch

        torch.set_num_threads(threads)

    pairs = (ParallelSentence(s, spacy_words(s, source_lang), t, spacy_words(t, target_lang))
             for s, t in zip(source_lines, target_lines))
    stats: dict = {}
    extractor = Extractor(OIETagger.load(model), batch_size=16)
    projector = AnnotationProjector(backbone=projection_backbone)
    with atomic_file(out) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh, \
            tqdm(total=len(source_lines), desc="projecting triples", unit=" sentences") as bar:
        for record in project_triples(extractor, projector, pairs, source_lang=source_lang,
                                      target_lang=target_lang, min_confidence=min_confidence,
                                      batch_size=batch_size, stats=stats):
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            bar.n = stats["sentences"]
            bar.refresh()
        bar.n = stats["sentences"]
    click.echo(f"projected {stats['kept']} of {stats['triples']} triples from "
               f"{stats['sentences']} sentence pairs; wrote {out}", err=True)


def _sentence_lines(path: Path) -> list[str]:
    from ..fileio import iter_lines

    def error(where: str, reason: str) -> InputError:
        return InputError(Errors.E059.format(path=where, reason=reason,
                                             expected="UTF-8 text, one sentence per line"))

    lines = [line.strip() for _, line in iter_lines(path, error)]
    if not any(lines):
        raise InputError(Errors.E251.format(path=path, what="sentences",
                                            fix="Pass a file with one sentence per line."))
    return lines


@oie.command("eval")
@click.option("--benchmark", "benchmarks", required=True, multiple=True,
              type=click.Choice(["benchie-en", "benchie-de", "carb", "reoie2016-en",
                                 "reoie2016-es"]),
              help="Test set to score on; repeat for several.")
@click.option("--model", type=click.Path(exists=True, file_okay=False), default=None,
              help="A tagger folder from `xapps oie train`: extract from the benchmark's "
                   "sentences, then score.")
@click.option("--extractions", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Score this output of `xapps oie extract` (run on the benchmark's sentence "
                   "file) instead of running a model.")
@click.option("--data", "data_root", default=None, type=click.Path(file_okay=False),
              help="Folder holding benchie/ and oie/ (default: $XAPPS_DATA, else ../shared/data).")
@click.option("--lang", default=None,
              help="Language whose modules the tagger uses (default: the benchmark's).")
@click.option("--output", default=None, type=click.Path(dir_okay=False),
              help="Also write the scores as JSON here (atomically).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's).")
def evaluate(benchmarks, model, extractions, data_root, lang, output, batch_size,
             threads) -> None:
    """Score a tagger (or saved extractions) on BenchIE, CaRB or Re-OIE2016, e.g. `xapps oie
    eval --model oie-en --benchmark benchie-de --benchmark carb`. Prints precision, recall,
    F1 (and AUC for CaRB and Re-OIE2016) per benchmark."""
    from ..fileio import atomic_write_text
    from ..oie.benchmarks import evaluate_extractor, evaluate_records, get_benchmark
    from ..paths import data_root as default_root

    if (model is None) == (extractions is None):
        raise click.UsageError("Give exactly one of --model (extract, then score) and "
                               "--extractions (score a saved `xapps oie extract` output).")
    if output:
        ensure_writable(output, fix="Pass --output a file in a folder you can write to.")
    root = default_root(data_root)
    for name in benchmarks:
        get_benchmark(name).paths(root)  # missing data fails before the model loads
    results: dict = {}
    if model is not None:
        from ..oie.extract import Extractor
        from ..oie.model import OIETagger

        if threads:
            import torch

            torch.set_num_threads(threads)
        extractor = Extractor(OIETagger.load(model), batch_size=batch_size)
        for name in benchmarks:
            results[name] = evaluate_extractor(extractor, name, root, lang=lang,
                                               progress=True)
    else:
        records = _read_extractions(Path(extractions))
        for name in benchmarks:
            results[name] = evaluate_records(name, root, records)
    for name, s in results.items():
        auc = f"  AUC {s['auc']:.3f}" if "auc" in s else ""
        click.echo(f"{name:13s} P {s['precision']:.3f}  R {s['recall']:.3f}  "
                   f"F1 {s['f1']:.3f}{auc}")
    if output:
        atomic_write_text(Path(output), json.dumps(results, indent=2) + "\n")


def _read_extractions(path: Path) -> dict[str, list]:
    """Triples per sentence text from the JSONL that `xapps oie extract` writes."""
    from ..fileio import iter_json_lines, iter_lines

    def error(where: str, reason: str) -> InputError:
        return InputError(Errors.E059.format(path=where, reason=reason, expected=expected))

    expected = ('one JSON object per line as `xapps oie extract` writes: {"id", "text", '
                '"triples": [{"relation": {"text"}, "arguments": [{"role", "text"}], '
                '"confidence"}]}')
    records: dict[str, list] = {}
    for where, obj in iter_json_lines(path, iter_lines(path, error)):
        try:
            found = []
            for t in obj["triples"]:
                args = {a["role"]: a["text"] for a in t["arguments"]}
                objects = [args[r] for r in ("ARG1", "ARG2", "ARG3") if r in args]
                found.append((args.get("ARG0", ""), t["relation"]["text"], objects,
                              float(t.get("confidence", 1.0))))
            records[obj["text"]] = found
        except (KeyError, TypeError, ValueError) as exc:
            raise error(where, f"missing or malformed field ({exc})") from None
    if not records:
        raise InputError(Errors.E251.format(
            path=path, what="extractions", fix="Pass the output of `xapps oie extract` run on "
                                               "the benchmark's sentence file."))
    return records


def _check_paths(source: Path, out: Path) -> None:
    """Refuse an output that would replace the input, before the model loads."""
    if source.resolve() == out.resolve():
        raise click.UsageError(f"--output {out} is the --input file; write the triples to "
                               "another file.")
    if out.is_dir():
        raise click.UsageError(f"--output {out} is a folder; give a file name such as "
                               f"{out / 'triples.jsonl'}.")
