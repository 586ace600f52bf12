"""`xapps f2t`: train, run and evaluate fact-to-text generators."""
from __future__ import annotations

import json
import sys
import time

import click

from ..errors import Errors, InputError


def _examples(paths, langs):
    from ..fact2text.data import read_examples

    out = []
    for path in paths:
        for lang in langs or [None]:
            out += read_examples(path, lang=lang, langs=[lang] if lang else None)
    return out


@click.group("f2t")
def f2t() -> None:
    """Fact-to-text generation (XF2T-style)."""


def _vocab_texts(specs) -> dict[str, list[str]]:
    """``--vocab-text LANG:FILE`` values -> {lang: non-empty lines of FILE}."""
    from pathlib import Path

    out: dict[str, list[str]] = {}
    for spec in specs:
        lang, sep, path = spec.partition(":")
        if not sep or not lang or not path:
            raise click.BadParameter(
                f"{spec!r} is not LANG:FILE; write e.g. --vocab-text cy:welsh.txt (one "
                "sentence per line)", param_hint="--vocab-text")
        if not Path(path).is_file():
            raise click.BadParameter(f"{path!r} (for {lang}) is not a file; give a plain-text "
                                     "file, one sentence per line", param_hint="--vocab-text")
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise click.BadParameter(f"{path!r} (for {lang}) is not UTF-8 text ({exc.reason} "
                                     f"at byte {exc.start}); save it as UTF-8",
                                     param_hint="--vocab-text") from None
        out.setdefault(lang, []).extend(line for line in lines if line.strip())
    return out


@f2t.command("train")
@click.option("--train", "train_paths", required=True, multiple=True,
              type=click.Path(),
              help="Examples: XAlign/WebNLG JSONL, WebNLG XML, Hindi JSON. Repeatable.")
@click.option("--lang", "langs", multiple=True,
              help="Target language(s) to keep (and, for WebNLG XML, the references to read). "
                   "Repeatable; default: every language in the files.")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--kind", type=click.Choice(["retrieval", "seq2seq"]), default="retrieval",
              show_default=True,
              help="retrieval: retrieve-and-relexicalise (no training); seq2seq: train a "
                   "generator (warm-started from an encoder, or an mT5/mBART checkpoint).")
@click.option("--backbone", default="me5-small", show_default=True,
              help="retrieval: encoder of the fact-set index; seq2seq: an encoder to "
                   "warm-start from, or a seq2seq checkpoint (e.g. google/mt5-base).")
@click.option("--steps", default=2000, show_default=True, help="seq2seq: training steps.")
@click.option("--batch-size", default=16, show_default=True, help="seq2seq: batch size.")
@click.option("--lr", default=1e-4, show_default=True, help="seq2seq: learning rate.")
@click.option("--decoder-layers", default=6, show_default=True,
              help="seq2seq warm start: decoder layers taken from the encoder's first ones.")
@click.option("--no-trim-vocab", is_flag=True, help="seq2seq: keep the full vocabulary.")
@click.option("--vocab-text", "vocab_text", multiple=True, metavar="LANG:FILE",
              help="seq2seq: unpaired text (one sentence per line) in a target language with "
                   "no training example (zero-shot), whose subwords the trimmed vocabulary "
                   "must keep. Repeatable.")
@click.option("--script-unification", is_flag=True,
              help="seq2seq: train Indic-script targets in Devanagari (shared subwords) and "
                   "write the output back in each language's script.")
@click.option("--force-entities", is_flag=True,
              help="seq2seq: decoding may not end before every subject/object is written "
                   "(force-copy); default: beams reranked by how many they contain.")
@click.option("--seed", default=0, show_default=True)
def train(train_paths, langs, out, kind, backbone, steps, batch_size, lr, decoder_layers,
          no_trim_vocab, vocab_text, script_unification, force_entities, seed) -> None:
    """Fit (retrieval) or train (seq2seq) a generator on examples and save it to --out."""
    from ..fileio import ensure_writable

    ensure_writable(out, fix="Pass an --out folder in a place you can write to.")
    vocab_texts = _vocab_texts(vocab_text)
    examples = _examples(train_paths, list(langs))
    if langs:
        examples = [ex for ex in examples if ex.lang in langs]
    if not any(ex.facts and ex.texts for ex in examples):
        where = ", ".join(train_paths)
        if not examples and not langs:
            raise InputError(Errors.E236.format(
                path=where, what="training examples",
                fix="Pass files with fact sets and their reference texts."))
        raise InputError(Errors.E190.format(
            where=where, reason=f"no example with facts and a reference text"
                                f"{' in ' + ', '.join(langs) if langs else ''} "
                                f"({len(examples)} read)",
            expected="training examples with facts and texts in the --lang languages"))
    t0 = time.perf_counter()
    if kind == "retrieval":
        from ..fact2text.retrieval import RetrievalGenerator

        generator = RetrievalGenerator(backbone=backbone).fit(examples)
        generator.save(out)
        click.echo(f"retrieval generator: {len(generator.examples):,} examples in "
                   f"{', '.join(generator.languages)}; fitted in "
                   f"{time.perf_counter() - t0:.1f} s -> {out}")
        return
    import torch

    from ..fact2text.seq2seq import Seq2SeqConfig, Seq2SeqGenerator
    from ..fileio import atomic_write_text

    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(backbone=backbone, decoder_layers=decoder_layers,
                        trim_vocab=not no_trim_vocab, script_unification=script_unification,
                        force_entities=force_entities)
    generator = Seq2SeqGenerator.create(cfg, examples, langs=list(langs), vocab_texts=vocab_texts)
    stats = generator.train(examples, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    generator.save(out)
    stats.update(examples=len(examples), languages=sorted({ex.lang for ex in examples}),
                 vocab=len(generator.vocab) if generator.vocab is not None else None,
                 backbone=backbone, decoder_layers=decoder_layers)
    atomic_write_text(f"{out}/training.json", json.dumps(stats, indent=2))
    click.echo(f"seq2seq generator: {stats['pairs']:,} pairs, {steps} steps in "
               f"{stats['seconds']:.0f} s, loss {stats['loss_first']:.2f} -> "
               f"{stats['loss_last']:.2f} -> {out}")


def decoding_options(func):
    """Decoding settings of a trained (seq2seq) generator, overriding those it was saved with."""
    func = click.option("--beams", type=click.IntRange(min=1), default=None,
                        help="seq2seq: beam size (default: as saved, 4).")(func)
    return click.option("--force-entities/--no-force-entities", default=None,
                        help="seq2seq: decoding may not end before every subject/object is "
                             "written (default: as saved).")(func)


def _load(model: str, force_entities: bool | None, beams: int | None):
    from ..fact2text import load_generator
    from ..fact2text.seq2seq import Seq2SeqGenerator

    generator = load_generator(model)
    if force_entities is None and beams is None:
        return generator
    if not isinstance(generator, Seq2SeqGenerator):
        raise click.UsageError(f"--force-entities / --beams apply to seq2seq generators; "
                               f"{model} is a {type(generator).__name__}: drop them.")
    if force_entities is not None:
        generator.cfg.force_entities = force_entities
    if beams is not None:
        generator.cfg.num_beams = beams
    return generator


def _read_facts(path, lang: str, allow_empty: bool = False):
    """The fact sets of ``path``, read and checked before any model loads: a bad line is
    found in a second, not after the generator's 10-40 s of loading."""
    from ..fact2text.data import read_examples

    examples = read_examples(path, lang=lang, langs=[lang, "en"])
    if not examples and not allow_empty:
        raise InputError(Errors.E236.format(
            path=path, what="fact sets",
            fix="Pass a file with one fact set per line ({\"facts\": [[subject, predicate, "
                "object], ...]}), or --allow-empty to write an empty output."))
    return examples


def _generate(generator, examples, lang: str, quiet: bool, chunk: int = 64):
    """Generations in chunks, with a progress bar on a terminal."""
    from tqdm.auto import tqdm

    from ..fact2text import generate_detailed

    out = []
    with tqdm(total=len(examples), desc=f"verbalising ({lang})", unit=" fact sets",
              disable=quiet or not sys.stderr.isatty()) as bar:
        for start in range(0, len(examples), chunk):
            part = examples[start:start + chunk]
            out += generate_detailed(generator, [ex.facts for ex in part], lang)
            bar.update(len(part))
    return out


@f2t.command("generate")
@click.option("--model", required=True, type=click.Path())
@click.option("--facts", "facts_path", required=True, type=click.Path(),
              help="Fact sets: JSONL lines with 'facts' (or 'triples'), any reader format.")
@click.option("--lang", required=True, help="Language to generate in.")
@click.option("--output", default="-", type=click.Path(dir_okay=False, allow_dash=True),
              help="JSONL of {id, lang, facts, text, fallback, foreign_entities}; '-' for "
                   "stdout. fallback: predicates written as plain 'subject predicate "
                   "object.' (no template in --lang); foreign_entities: entities of the "
                   "retrieved reference that are not in the input.")
@click.option("--allow-empty", is_flag=True,
              help="An empty --facts file writes an empty output instead of failing.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@decoding_options
def generate(model, facts_path, lang, output, allow_empty, quiet, force_entities,
             beams) -> None:
    """Verbalise fact sets in --lang."""
    from ..fileio import atomic_write_text, ensure_writable

    if output != "-":
        ensure_writable(output, fix="Pass an --output in a folder you can write to, or '-' "
                                    "for stdout.")
    examples = _read_facts(facts_path, lang, allow_empty)
    generator = _load(model, force_entities, beams) if examples else None
    generations = _generate(generator, examples, lang, quiet) if examples else []
    lines = "".join(json.dumps({"id": ex.id, "lang": lang, "facts": [f.to_json() for f in
                                                                      ex.facts],
                                "text": g.text, **g.to_json()}, ensure_ascii=False) + "\n"
                    for ex, g in zip(examples, generations))
    fallbacks = sum(bool(g.fallback) for g in generations)
    if fallbacks:
        click.echo(f"{fallbacks:,} of {len(generations):,} texts write some facts as plain "
                   f"'subject predicate object.' (no {lang} template; marked \"fallback\")",
                   err=True)
    if output == "-":
        click.echo(lines, nl=False)
    else:
        atomic_write_text(output, lines)
        click.echo(f"{len(generations):,} texts -> {output}", err=True)


def _test_examples(path, lang: str):
    """The scorable test examples of ``path`` and what was skipped, checked before any model
    loads."""
    from ..fact2text.data import read_examples

    examples = read_examples(path, lang=lang, langs=[lang])
    if not examples:
        raise InputError(Errors.E236.format(
            path=path, what="test examples",
            fix=f"Pass a test file with fact sets and reference texts in {lang}."))
    other = [ex for ex in examples if ex.lang != lang]
    no_ref = [ex for ex in examples if ex.lang == lang and not ex.texts]
    usable = [ex for ex in examples if ex.lang == lang and ex.texts]
    if not usable:
        reasons = []
        if no_ref:
            reasons.append(f"{len(no_ref)} have no reference text (e.g. id {no_ref[0].id!r})")
        if other:
            reasons.append(f"{len(other)} are in another language (e.g. id {other[0].id!r} "
                           f"in {other[0].lang!r})")
        raise InputError(Errors.E237.format(path=path, n=len(examples), lang=lang,
                                            reason="; ".join(reasons)))
    skipped = {"without_reference": len(no_ref), "other_language": len(other)}
    examples_of = {"without_reference": [ex.id for ex in no_ref[:5]],
                   "other_language": [ex.id for ex in other[:5]]}
    return usable, skipped, examples_of


@f2t.command("eval")
@click.option("--model", required=True, type=click.Path())
@click.option("--test", "test_path", required=True, type=click.Path())
@click.option("--lang", required=True, help="Language of the references (and of the output).")
@click.option("--predictions", default=None, type=click.Path(dir_okay=False),
              help="Also write the generated texts (JSONL).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@decoding_options
def evaluate(model, test_path, lang, predictions, quiet, force_entities, beams) -> None:
    """BLEU, chrF++, fact coverage, hallucination rate and the share of outputs in --lang,
    on a test set. Records that cannot be scored (no reference, another language) are
    skipped and counted ("skipped" in the JSON); the exit code is then 1."""
    from ..fact2text.evaluate import score
    from ..fileio import atomic_write_text, ensure_writable

    if predictions:
        ensure_writable(predictions, fix="Pass a --predictions path in a folder you can "
                                         "write to.")
    examples, skipped, skipped_ids = _test_examples(test_path, lang)
    generator = _load(model, force_entities, beams)
    t0 = time.perf_counter()
    generations = _generate(generator, examples, lang, quiet)
    seconds = time.perf_counter() - t0
    texts = [g.text for g in generations]
    reported = generations if hasattr(generator, "generate_detailed") else None
    result = score([ex.facts for ex in examples], texts, [ex.texts for ex in examples],
                   lang, reported).to_dict()
    result["fact_sets_per_second"] = round(len(texts) / seconds, 1) if seconds else None
    result["skipped"] = skipped
    if predictions:
        atomic_write_text(predictions, "".join(json.dumps(
            {"id": ex.id, "text": g.text, "references": ex.texts, **g.to_json()},
            ensure_ascii=False) + "\n" for ex, g in zip(examples, generations)))
    click.echo(json.dumps(result, indent=2))
    n_skipped = sum(skipped.values())
    if n_skipped:
        parts = [f"{n} {what.replace('_', ' ')} (e.g. {', '.join(skipped_ids[what])})"
                 for what, n in skipped.items() if n]
        click.echo(f"scored {len(examples):,} records; skipped {n_skipped:,}: "
                   f"{'; '.join(parts)}", err=True)
        raise SystemExit(1)
