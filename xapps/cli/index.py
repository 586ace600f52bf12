"""`xapps index build|search|info` for dense indexes and multi-vector retrievers."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import Errors, InputError
from ..index import build as index_build


@click.group()
def index() -> None:
    """Build, search and inspect vector indexes."""


@index.command("build")
@click.option("--input", "input_path", required=True, type=click.Path(),
              help="A .jsonl or .tsv file (optionally .gz), or a folder of .txt files.")
@click.option("--out", required=True, type=click.Path(), help="Index folder to write.")
@click.option("--id-field", default="id", show_default=True)
@click.option("--text-field", default="text", show_default=True)
@click.option("--backbone", default="me5-small", show_default=True,
              help="Installed model name, local model folder or hub name.")
@click.option("--index-type", type=click.Choice(["auto", "flat", "hnsw", "ivfpq"]),
              default="auto", show_default=True, help="auto: flat < 50k, HNSW < 1M, else IVF-PQ.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64,
              show_default=True)
@click.option("--no-text", is_flag=True, help="Do not store the texts in the index metadata.")
@click.option("--device", default=None, help="torch device (default: cuda when present).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's).")
@click.option("--kind", type=click.Choice(["dense", "multivector"]), default="dense",
              show_default=True, help="dense: one vector per document; multivector: ColBERT "
                                      "token vectors in a PLAID-style compressed index.")
@click.option("--encoder", default=None, type=click.Path(),
              help="multivector: a saved ColBERT encoder (default: untrained on --backbone).")
@click.option("--dim", type=click.IntRange(min=0), default=128,
              show_default=True,
              help="multivector: token projection size (0: the backbone's hidden size).")
@click.option("--nbits", type=click.Choice(["1", "2", "4"]), default="2", show_default=True,
              help="multivector: bits per dimension of the compressed residuals.")
@click.option("--lang-field", default=None,
              help="multivector: the records' language field, which routes each document to "
                   "its language adapter / mean (default: detected when the encoder has any).")
def build(input_path, out, id_field, text_field, backbone, index_type, batch_size, no_text,
          device, threads, kind, encoder, dim, nbits, lang_field) -> None:
    """Encode a corpus and save a dense or multi-vector index."""
    _check_build_options(click.get_current_context(), kind, encoder)
    _set_threads(threads)
    if kind == "multivector":
        from ..retrieval.retriever import build_multivector_index

        explicit = _explicit(click.get_current_context())
        report = build_multivector_index(
            input_path, out, id_field=id_field, text_field=text_field, encoder=encoder,
            backbone=backbone, dim=dim or None, nbits=int(nbits), batch_size=batch_size,
            store_text=not no_text, device=device, lang_field=lang_field,
            # with a saved --encoder, an explicit --backbone says where its backbone is now
            encoder_backbone=backbone if encoder and "backbone" in explicit else None)
        total = report.encode_seconds + report.index_seconds
        click.echo(f"Indexed {report.count} documents ({report.tokens} token vectors, "
                   f"{report.bytes_per_token:.0f} bytes each) into {report.path} (multivector) "
                   f"in {total:.1f} s: {report.docs_per_second:.1f} docs/s")
        return
    report = index_build.build_index(input_path, out, id_field=id_field, text_field=text_field,
                                     backbone=backbone, index_type=index_type,
                                     batch_size=batch_size, store_text=not no_text,
                                     device=device)
    total = report.encode_seconds + report.index_seconds
    click.echo(f"Indexed {report.count} documents into {report.path} ({report.index_type}) in "
               f"{total:.1f} s: {report.docs_per_second:.1f} docs/s")


@index.command("search")
@click.argument("path", type=click.Path())
@click.argument("queries", nargs=-1, required=True)
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Hits per query.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per query.")
@click.option("--backbone", default=None,
              help="Override the backbone named in the manifest (multivector: where the "
                   "encoder's backbone weights are now; they must be the same weights).")
@click.option("--mmap", is_flag=True, help="Memory-map the index files instead of reading them.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads.")
@click.option("--lang", default=None,
              help="multivector: the queries' language (routes adapters / centering; default: "
                   "detected per query when the encoder has any).")
def search(path, queries, k, as_json, backbone, mmap, threads, lang) -> None:
    """Search an index with one or more queries."""
    _set_threads(threads)
    from ..retrieval.retriever import Retriever, is_retriever

    if is_retriever(path):
        # --backbone: where the encoder's backbone is now (the recorded path moved); the
        # weights must be those it was saved with.
        searcher = Retriever.load(path, mmap=mmap, backbone=backbone)
        results = searcher.search(list(queries), k, languages=lang)
    else:
        if lang:
            raise InputError(Errors.E228.format(
                options="--lang", reason=f"'{path}' is a dense index, whose queries are "
                                         "encoded the same in every language",
                fix="Drop --lang (it routes multi-vector retrievers' adapters)."))
        searcher = index_build.Searcher(path, backbone=backbone, mmap=mmap)
        results = searcher.search(list(queries), k)
    for query, hits in zip(queries, results):
        rows = [{"rank": r, "id": h.id, "score": round(h.score, 4), "text": searcher.text(h.id)}
                for r, h in enumerate(hits, start=1)]
        if as_json:
            click.echo(json.dumps({"query": query, "hits": rows}, ensure_ascii=False))
            continue
        click.echo(f"query: {query}")
        for row in rows:
            text = (row["text"] or "").replace("\n", " ")
            text = text if len(text) <= 90 else text[:87] + "..."
            click.echo(f"  {row['rank']:>3}. {row['score']:.4f}  {row['id']}  {text}")


@index.command("info")
@click.argument("path", type=click.Path())
@click.option("--no-verify", is_flag=True,
              help="Skip checking the files against their sha256 (fast on huge indexes).")
def info(path, no_verify) -> None:
    """Print an index's manifest (a multi-vector retriever's index manifest), after checking
    its files against their checksums."""
    from ..index.manifest import read_manifest, verify_files
    from ..retrieval.retriever import is_retriever, verify_retriever

    retriever = is_retriever(path)
    if retriever and not no_verify:
        verify_retriever(path)
    folder = Path(path) / "index" if retriever else Path(path)
    manifest = read_manifest(folder)
    if not no_verify:
        verify_files(manifest, folder)
    click.echo(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False))


def _explicit(ctx: click.Context) -> set[str]:
    """The options given on the command line (not defaults)."""
    return {name for name in ctx.params
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}


def _check_build_options(ctx: click.Context, kind: str, encoder: str | None) -> None:
    """Refuse options that the chosen kind would silently ignore (E228), before any work."""
    given = _explicit(ctx)
    names = {"encoder": "--encoder", "dim": "--dim", "nbits": "--nbits",
             "lang_field": "--lang-field", "index_type": "--index-type"}

    def refuse(keys, reason: str, fix: str):
        options = ", ".join(names[k] for k in sorted(keys))
        raise InputError(Errors.E228.format(options=options, reason=reason, fix=fix))

    if kind == "dense":
        ignored = given & {"encoder", "dim", "nbits", "lang_field"}
        if ignored:
            refuse(ignored, "only multi-vector indexes use these options, and --kind is dense",
                   "Add --kind multivector, or drop them for a dense index.")
    else:
        if "index_type" in given:
            refuse({"index_type"}, "a multi-vector index is always PLAID-style (centroids and "
                                   "compressed residuals); --index-type picks a dense FAISS "
                                   "index", "Drop it (size the codes with --nbits).")
        if encoder and "dim" in given:
            refuse({"dim"}, "--dim sizes the projection of a new encoder, and the saved "
                            "--encoder keeps the size it was trained with",
                   "Drop --dim, or drop --encoder to build with a new (untrained) encoder.")


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
