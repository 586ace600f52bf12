"""`xapps f2t`: train, run and evaluate fact-to-text generators."""
from __future__ import annotations

import json
import time

import click


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
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        out.setdefault(lang, []).extend(line for line in lines if line.strip())
    return out


@f2t.command("train")
@click.option("--train", "train_paths", required=True, multiple=True,
              type=click.Path(exists=True, dir_okay=False),
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
    vocab_texts = _vocab_texts(vocab_text)
    examples = _examples(train_paths, list(langs))
    if langs:
        examples = [ex for ex in examples if ex.lang in langs]
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


@f2t.command("generate")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--facts", "facts_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Fact sets: JSONL lines with 'facts' (or 'triples'), any reader format.")
@click.option("--lang", required=True, help="Language to generate in.")
@click.option("--output", default="-", type=click.Path(dir_okay=False, allow_dash=True),
              help="JSONL of {id, lang, facts, text}; '-' for stdout.")
@decoding_options
def generate(model, facts_path, lang, output, force_entities, beams) -> None:
    """Verbalise fact sets in --lang."""
    from ..fact2text.data import read_examples
    from ..fileio import atomic_write_text

    generator = _load(model, force_entities, beams)
    examples = read_examples(facts_path, lang=lang, langs=[lang, "en"])
    texts = generator.generate([ex.facts for ex in examples], lang)
    lines = "".join(json.dumps({"id": ex.id, "lang": lang, "facts": [f.to_json() for f in
                                                                      ex.facts],
                                "text": text}, ensure_ascii=False) + "\n"
                    for ex, text in zip(examples, texts))
    if output == "-":
        click.echo(lines, nl=False)
    else:
        atomic_write_text(output, lines)
        click.echo(f"{len(texts):,} texts -> {output}", err=True)


@f2t.command("eval")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--test", "test_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--lang", required=True, help="Language of the references (and of the output).")
@click.option("--predictions", default=None, type=click.Path(dir_okay=False),
              help="Also write the generated texts (JSONL).")
@decoding_options
def evaluate(model, test_path, lang, predictions, force_entities, beams) -> None:
    """BLEU, chrF++, fact coverage, hallucination rate and the share of outputs in --lang,
    on a test set."""
    from ..fact2text.data import read_examples
    from ..fact2text.evaluate import score
    from ..fileio import atomic_write_text

    generator = _load(model, force_entities, beams)
    examples = [ex for ex in read_examples(test_path, lang=lang, langs=[lang]) if ex.texts]
    t0 = time.perf_counter()
    texts = generator.generate([ex.facts for ex in examples], lang)
    seconds = time.perf_counter() - t0
    result = score([ex.facts for ex in examples], texts, [ex.texts for ex in examples],
                   lang).to_dict()
    result["fact_sets_per_second"] = round(len(texts) / seconds, 1) if seconds else None
    if predictions:
        atomic_write_text(predictions, "".join(json.dumps(
            {"id": ex.id, "text": t, "references": ex.texts}, ensure_ascii=False) + "\n"
            for ex, t in zip(examples, texts)))
    click.echo(json.dumps(result, indent=2))
