"""`xapps project`: carry labelled spans from source sentences onto their translations."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from ..errors import Errors, InputError
from ..fileio import ensure_writable
from .limits import exit_if_skipped, within_limit
from ..projection.alignment import ALIGN_METHODS
from ..projection.projector import PROJECTION_METHODS, ProjectionConfig
from ..projection.types import ProjectionResult

logger = logging.getLogger("xapps")

_DEFAULTS = ProjectionConfig()

#: Longest source or target text `xapps project` takes by default (a long document; the
#: projector windows anything over ProjectionConfig.window_words, so the cost is linear).
DEFAULT_MAX_CHARS = 100_000

#: CLI option -> ProjectionConfig field, for the options that --config can also set.
_SETTINGS = {"backbone": "backbone", "layer": "layer", "alignment": "alignment",
             "threshold": "threshold", "assignment": "assignment",
             "alignment_weight": "alignment_weight", "similarity_weight": "similarity_weight",
             "translation_weight": "translation_weight", "mt_model": "mt_model",
             "mt_src_lang": "mt_source_lang", "mt_tgt_lang": "mt_target_lang",
             "batch_size": "batch_size", "device": "device", "dtype": "dtype",
             "quantize": "quantize", "generator_model": "generator_model",
             "generator_weight": "generator_weight"}


def _help(field: str, text: str) -> str:
    """Help with ProjectionConfig's default: the options themselves default to None, so that
    only the ones given override --config."""
    return f"{text}  [default: {getattr(_DEFAULTS, field)}]"


@click.command("project")
@click.option("--src", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Labelled source: CoNLL (.conll/.bio/.iob/.tsv), span JSONL (.jsonl), "
                   "BigBIO KB (.json/.bigbio.jsonl) or spaCy DocBin (.spacy); .gz read too.")
@click.option("--tgt", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Translations, one per source sentence in order: text (.txt, one per "
                   "line), CoNLL or JSONL. Default: the source's own (JSONL 'translation', "
                   "DocBin doc._.translation), or translated with --mt-model.")
@click.option("--out", required=True, type=click.Path(),
              help="Projected output: CoNLL, JSONL, BigBIO or DocBin (format from the "
                   "ending or --out-format); written atomically.")
@click.option("--src-format", default=None,
              help="conll, jsonl, bigbio or docbin (default: from the file name).")
@click.option("--tgt-format", default=None,
              help="txt, conll or jsonl (default: from the file name).")
@click.option("--out-format", default=None,
              help="conll, jsonl, bigbio or docbin (default: from the file name).")
@click.option("--src-lang", default=None,
              help="Source language code (tokenisation; BigBIO documents carry their own).")
@click.option("--tgt-lang", default=None,
              help="Target language code: spaCy's tokenizer for it splits the target words "
                   "(default: language-neutral rules).")
@click.option("--include-source", is_flag=True,
              help="JSONL output: also write each source text and its spans.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              default=None, help="JSON object of ProjectionConfig fields; the options below "
                                 "override it.")
@click.option("--backbone", default=None,
              help=_help("backbone", "Installed model name, local model folder or hub name."))
@click.option("--layer", type=int, default=None,
              help=_help("layer", "Backbone layer whose subword vectors align the words."))
@click.option("--alignment", type=click.Choice(ALIGN_METHODS), default=None,
              help=_help("alignment", "How subword similarities become word alignments."))
@click.option("--threshold", type=float, default=None,
              help=_help("threshold", "A source span is projected only if its best candidate "
                                      "scores above this (the weighted score)."))
@click.option("--assignment", type=click.Choice(PROJECTION_METHODS), default=None,
              help=_help("assignment", "global: the best non-overlapping candidates per "
                                       "sentence; greedy: best first; rule: the aligner rule "
                                       "without candidates (ablation)."))
@click.option("--alignment-weight", type=float, default=None,
              help=_help("alignment_weight", "Weight of the word-alignment evidence."))
@click.option("--similarity-weight", type=float, default=None,
              help=_help("similarity_weight", "Weight of the contextual span similarity."))
@click.option("--translation-weight", type=float, default=None,
              help=_help("translation_weight", "Weight of the MT model's span translation "
                                               "probability (used with --mt-model only)."))
@click.option("--mt-model", default=None,
              help="Hugging Face MT model (NLLB, M2M100, Marian): translates sources that have "
                   "no target (translate-train) and scores span translations.")
@click.option("--generator-model", default=None,
              help="A span generator fine-tuned with `xapps projection train-generator`: its "
                   "proposals become candidates (T-Projection's candidate step).")
@click.option("--generator-weight", type=float, default=None,
              help=_help("generator_weight", "Weight of the generator's probability (used "
                                             "with --generator-model only)."))
@click.option("--mt-src-lang", default=None, help="The MT model's source language code.")
@click.option("--mt-tgt-lang", default=None, help="The MT model's target language code.")
@click.option("--batch-size", type=int, default=None,
              help=_help("batch_size", "Sentences per backbone forward pass."))
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if present).")
@click.option("--dtype", default=None,
              help=_help("dtype", "fast (bf16 where the CPU or GPU computes it natively, same "
                                  "F1 as fp32 on Europarl), float32, bfloat16 or float16."))
@click.option("--quantize", type=click.Choice(["none", "int8"]), default=None,
              help=_help("quantize", "int8: dynamic int8 linear layers on CPU (faster, about "
                                     "1 F1 lower on Europarl)."))
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's).")
@click.option("--max-chars", type=click.IntRange(min=1), default=DEFAULT_MAX_CHARS,
              show_default=True,
              help="A pair whose source or translation is longer is skipped (reported with "
                   "file:line; exit 1).")
@click.option("--allow-empty", is_flag=True,
              help="Accept a source without sentences (by default an error, exit 2).")
def project(src, tgt, out, src_format, tgt_format, out_format, src_lang, tgt_lang,
            include_source, config_path, threads, max_chars, allow_empty, **settings) -> None:
    """Project labelled spans (entities, terms) from a source file onto its translations,
    e.g. `xapps project --src en.conll --tgt de.txt --out de.conll`.

    Exit codes: 0 every pair projected and written; 1 finished, but pairs over --max-chars
    were skipped (each named with its file:line, the others written); 2 bad input (named with
    its file:line; mismatched --src/--tgt counts), an empty source or an unwritable --out,
    and nothing is written."""
    from ..projection.io import output_format, read_pairs, write_results
    from ..projection.projector import AnnotationProjector

    _check_paths(Path(src), None if tgt is None else Path(tgt), Path(out))
    ensure_writable(out, fix="Pass --out a file in a folder you can write to.")
    fmt = output_format(out, out_format)
    if include_source and fmt != "jsonl":
        raise click.UsageError(f"--include-source applies to JSONL output only; {out} is "
                               f"written as {fmt}.")
    config = _config(config_path, settings)

    def read():  # checks formats and, unless an MT model will translate, the targets
        return read_pairs(src, tgt, source_format=src_format, target_format=tgt_format,
                          source_lang=src_lang, target_lang=tgt_lang,
                          require_target=tgt is not None or not config.mt_model)

    # One reading pass before the model loads: a bad line, an empty source or --src/--tgt
    # counts that differ fail in seconds (reading is cheap next to projecting).
    total = sum(1 for _ in read())
    if not total and not allow_empty:
        raise InputError(Errors.E251.format(
            path=src, what="sentences or documents",
            fix="Fix the input, or pass --allow-empty to accept an empty result."))
    skipped: list[str] = []
    pairs = within_limit(read(), max_chars, skipped,
                         lambda p: [("the source", p.source), ("the translation", p.target)],
                         lambda i, p: p.where or p.id or f"pair {i}")
    if threads:
        import torch

        torch.set_num_threads(threads)
    logger.debug("projection settings: %s", json.dumps(config.to_dict()))
    projector = AnnotationProjector(config)
    tally = _Tally()
    started = time.perf_counter()
    written = write_results(tally.count(projector.project(pairs, progress=True)), out, fmt,
                            include_source=include_source)
    seconds = time.perf_counter() - started
    rate = written / max(seconds, 1e-9)
    click.echo(f"projected {written} pairs: {tally.source_spans} source spans, "
               f"{tally.projected} projected, {tally.unprojected} unprojected in "
               f"{seconds:.1f} s ({rate:.{1 if rate >= 1 else 3}f} pairs/s); wrote {out} "
               f"({fmt})", err=True)
    exit_if_skipped(skipped, written, out)


def _check_paths(src: Path, tgt: Path | None, out: Path) -> None:
    """Refuse an output that would replace an input or a folder, before any model loads."""
    target = out.resolve()
    for option, path in (("--src", src), ("--tgt", tgt)):
        if path is not None and path.resolve() == target:
            raise click.UsageError(f"--out {out} is the {option} file; write the projection "
                                   "to another file.")
    if out.is_dir():
        raise click.UsageError(f"--out {out} is a folder; give a file name such as "
                               f"{out / 'projected.conll'}.")


def _config(path: str | None, settings: dict) -> ProjectionConfig:
    """ProjectionConfig from the --config file, overridden by the options given."""
    data: dict = {}
    if path is not None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"cannot read {path}: {exc}",
                                     param_hint="--config") from None
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{path}:{exc.lineno} is not valid JSON ({exc.msg}).",
                                     param_hint="--config") from None
        if not isinstance(data, dict):
            raise click.BadParameter(f"{path} holds a JSON {type(data).__name__}; expected an "
                                     'object of ProjectionConfig fields, such as {"layer": 8}.',
                                     param_hint="--config")
    data.update({_SETTINGS[name]: value for name, value in settings.items()
                 if value is not None})
    return ProjectionConfig.from_dict(data)


@dataclass
class _Tally:
    """Counts for the summary line, taken as the results stream past."""

    pairs: int = 0
    source_spans: int = 0
    projected: int = 0
    unprojected: int = 0

    def count(self, results: Iterable[ProjectionResult]) -> Iterator[ProjectionResult]:
        for result in results:
            self.pairs += 1
            self.source_spans += len(result.pair.spans)
            self.projected += len(result.spans)
            self.unprojected += len(result.unprojected)
            yield result


@click.group("projection")
def projection() -> None:
    """Models for annotation projection (`xapps project` runs it)."""


@projection.command("train-generator")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True),
              help="Labelled source-language sentences: CoNLL, span JSONL, BigBIO or DocBin.")
@click.option("--data-format", default=None, help="conll, jsonl, bigbio or docbin.")
@click.option("--model", required=True,
              help="The seq2seq model to fine-tune (an mT5 / mBART folder or hub name).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the fine-tuned generator (pass it to --generator-model).")
@click.option("--steps", type=int, default=1000, show_default=True)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--lr", type=float, default=3e-4, show_default=True)
@click.option("--checkpoint-every", type=int, default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu, cuda ... (default: GPU if present).")
@click.option("--no-resume", is_flag=True, help="Start over instead of resuming OUT.partial.")
def train_generator_command(data_path, data_format, model, out, steps, batch_size, lr,
                            checkpoint_every, seed, device, no_resume) -> None:
    """Fine-tune a seq2seq model to write the spans of a label in a sentence, on labelled
    source-language data; it then proposes target-language spans for `xapps project`."""
    from ..projection.generator import (
        GeneratorTrainingConfig,
        generator_examples,
        train_generator,
    )
    from ..projection.io import read_pairs

    ensure_writable(out, fix="Pass --out a folder you can write to.")
    pairs = read_pairs(data_path, source_format=data_format, require_target=False)
    examples = generator_examples((p.source, p.spans) for p in pairs)
    config = GeneratorTrainingConfig(steps=steps, batch_size=batch_size, lr=lr,
                                     checkpoint_every=checkpoint_every, seed=seed)
    record = train_generator(examples, model, out, config, device=device,
                             resume=not no_resume)
    click.echo(f"trained on {record['examples']} examples for {record['step']} steps "
               f"(last loss {record['loss'][-1]:.3f}); wrote {out}", err=True)
