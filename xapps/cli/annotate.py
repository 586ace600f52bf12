"""`xapps annotate`: run a pipeline over a large corpus as a resumable batch job, and
`xapps report`: an HTML page of what the job found."""
from __future__ import annotations

import sys

import click

from ..annotate.output import OUTPUT_FORMATS
from ..annotate.records import DEFAULT_MAX_CHARS, INPUT_FORMATS


@click.command("annotate")
@click.option("--pipeline", required=True,
              help="A saved spaCy pipeline folder (nlp.to_disk / spacy assemble) or a .cfg "
                   "(assembled and initialised once, saved in OUTPUT/pipeline).")
@click.option("--input", "inputs", required=True, multiple=True,
              help="JSONL (id, text, lang?, meta?), BigBIO .json/.jsonl, DocBin .spacy, a .txt "
                   "file (one record per line) or a folder of .txt files; .gz read "
                   "transparently; globs allowed (quote them). Repeatable.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output folder: shards/, errors/, manifest.json, summary.json. Re-running "
                   "with the same arguments resumes a stopped job.")
@click.option("--format", "fmt", type=click.Choice(OUTPUT_FORMATS), default="jsonl",
              show_default=True, help="Format of the output shards.")
@click.option("--input-format", type=click.Choice(INPUT_FORMATS), default="auto",
              show_default=True, help="Force the input format (default: from file names).")
@click.option("--batch-size", default=64, show_default=True, help="Records per nlp.pipe batch.")
@click.option("--shard-size", default=1000, show_default=True,
              help="Records per output shard (the unit of resume).")
@click.option("--n-process", type=int, default=None,
              help="Worker processes (local) or actors (ray). Default: one per GPU, else 1.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local",
              show_default=True, help="local: processes on this machine; ray: Ray Data "
                                      "(pip install 'xapps[ray]').")
@click.option("--ray-address", default=None,
              help="Address of an existing Ray cluster (e.g. ray://head:10001 or auto); "
                   "default: start Ray on this machine.")
@click.option("--id-field", default="id", show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option("--lang-field", default="lang", show_default=True)
@click.option("--max-chars", default=DEFAULT_MAX_CHARS, show_default=True,
              help="Longer texts go to the errors file.")
@click.option("--no-detect-lang", is_flag=True,
              help="Do not identify the language of records that do not give one.")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Config override when --pipeline is a .cfg (repeatable), e.g. "
                   "--set components.xmen_linker.kb=kb.jsonl")
@click.option("--code", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Python file registering custom components, imported in every worker "
                   "(as spaCy's --code). Repeatable.")
@click.option("--overwrite", is_flag=True,
              help="Start over: discard the completed shards, errors and summary of a previous "
                   "job in --output (other files there are kept).")
@click.option("--allow-empty", is_flag=True,
              help="Accept inputs with no records (default: an empty input is an error).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def annotate(pipeline, inputs, output, fmt, input_format, batch_size, shard_size, n_process,
             engine, ray_address, id_field, text_field, lang_field, max_chars, no_detect_lang,
             overrides, code, overwrite, allow_empty, quiet) -> None:
    """Annotate a corpus with a pipeline, in resumable shards.

    Bad records (invalid JSON, no text, too long, not UTF-8, a repeated id) go to
    OUTPUT/errors/ with the reason and line; the job goes on. Exit code 0: every record
    annotated; 1: finished, with some records in errors/; 2: refused before starting (bad
    input, pipeline or output; another job holds OUTPUT), nothing written.
    """
    from ..annotate.job import JobConfig, run_job
    from ..annotate.pipeline import parse_overrides
    from ..annotate.records import ReadOptions

    config = JobConfig(pipeline=pipeline, inputs=list(inputs), output=output, format=fmt,
                       batch_size=batch_size, shard_size=shard_size, n_process=n_process,
                       engine=engine, ray_address=ray_address,
                       read=ReadOptions(id_field, text_field, lang_field, max_chars,
                                        input_format),
                       overrides=parse_overrides(overrides), detect_lang=not no_detect_lang,
                       code=list(code),
                       overwrite=overwrite, allow_empty=allow_empty, progress=not quiet)
    summary = run_job(config)
    new = summary.records + summary.errors - summary.records_resumed
    click.echo(f"{summary.records:,} records annotated, {summary.errors:,} in errors/ "
               f"({summary.shards} shards; {new:,} this run in {summary.seconds:.1f} s, "
               f"{summary.records_per_second:.1f} records/s, {summary.engine} engine, "
               f"{summary.workers} worker(s)) -> {summary.output}")
    if summary.errors:
        click.echo(f"{summary.errors:,} bad records: see {summary.output}/errors/", err=True)
        sys.exit(1)


@click.command("report")
@click.argument("output", type=click.Path(exists=True, file_okay=False))
@click.option("--html", "html_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write the self-contained HTML page.")
@click.option("--examples", default=50, show_default=True,
              help="Records rendered with their entities and triples.")
def report(output, html_path, examples) -> None:
    """A self-contained HTML report of an `xapps annotate` output folder."""
    from ..annotate.report import write_report

    stats = write_report(output, html_path, examples=examples)
    click.echo(f"Report of {stats['records']:,} records ({stats['entities']:,} entities, "
               f"{stats['errors']:,} errors) -> {html_path}")
