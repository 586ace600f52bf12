"""`xapps kb build|info`."""
from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import click

from ..errors import Errors, InputError
from ..fileio import ensure_writable
from ..linking.kb import load_kb, name_from_path, read_kb_manifest, save_kb
from ..linking.kb_builders import Source, build_kb

logger = logging.getLogger("xapps")

#: Source options, merged in the order they appear on the command line.
_SOURCE_OPTIONS = ("--jsonl", "--tsv", "--obo", "--bigbio")
_ORDER_KEY = "xapps.kb.source_order"


class _OrderedSources(click.Command):
    """click groups the values of each repeated option, losing how different options were
    interleaved; the merge order (first canonical name wins) needs it, so record it here."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        order = []
        for arg in args:
            if arg == "--":
                break
            option = arg.split("=", 1)[0]
            if option in _SOURCE_OPTIONS:
                order.append(option[2:])
        ctx.meta[_ORDER_KEY] = order
        return super().parse_args(ctx, args)


@click.group()
def kb() -> None:
    """Build and inspect entity-linking knowledge bases."""


@kb.command("build", cls=_OrderedSources)
@click.option("--out", required=True, type=click.Path(),
              help="A .jsonl file, or a folder for the compact, fast-loading form.")
@click.option("--name", default=None, help="Knowledge base name (default: from --out).")
@click.option("--jsonl", multiple=True, type=click.Path(),
              help="scispaCy/xMEN JSONL dictionary, or a compact KB folder.")
@click.option("--tsv", multiple=True, type=click.Path(), help="TSV of names, one per row.")
@click.option("--id-col", multiple=True,
              help="Concept id column of each --tsv (name or 0-based number; once for all).")
@click.option("--name-col", multiple=True, help="Name column of each --tsv (once for all).")
@click.option("--tsv-lang", default=None, help="Language of the --tsv names.")
@click.option("--obo", multiple=True, type=click.Path(), help="OBO ontology (hp.obo, ...).")
@click.option("--obo-ids", multiple=True, type=click.Choice(["native", "umls"]),
              help="Key OBO concepts by their own ids or by UMLS CUIs (per --obo, or once "
              "for all; default native).")
@click.option("--bigbio", multiple=True, type=click.Path(),
              help="BigBIO KB-schema documents (.json or .jsonl): db_id -> mention texts.")
@click.option("--bigbio-lang", default=None,
              help="Language of --bigbio documents that do not state one.")
@click.option("--translations", multiple=True, type=click.Path(),
              help="Table of translated names (hpo_id, lang, term_type, text, status, ...).")
@click.option("--translations-obo", type=click.Path(), default=None,
              help="OBO whose UMLS xrefs map the table's ids to CUIs (else ids are used "
              "as they are).")
@click.option("--langs", default=None, help="Only these translation languages, e.g. es,fr.")
@click.option("--statuses", default=None,
              help="Only translation rows with these statuses, e.g. OFFICIAL.")
@click.option("--allow-empty", is_flag=True,
              help="Accept a source without concepts (by default an empty source is an error, "
                   "exit 2, nothing written).")
@click.pass_context
def build(ctx, out, name, jsonl, tsv, id_col, name_col, tsv_lang, obo, obo_ids, bigbio,
          bigbio_lang, translations, translations_obo, langs, statuses, allow_empty) -> None:
    """Build a knowledge base from several sources, merged in the order given.

    Exit codes: 0 written; 2 bad input (a missing, malformed or empty source, named with
    its file and line) or an unwritable --out, and nothing is written."""
    ensure_writable(out, fix="Pass --out a .jsonl file or a folder in a place you can write "
                             "to.")
    grouped = (["jsonl"] * len(jsonl) + ["tsv"] * len(tsv) + ["obo"] * len(obo)
               + ["bigbio"] * len(bigbio))
    order = ctx.meta.get(_ORDER_KEY)
    if order is None or Counter(order) != Counter(grouped):
        if order is not None:
            logger.warning("Could not tell the order of the source options from the command "
                           "line; merging --jsonl, --tsv, --obo, --bigbio sources in that order")
        order = grouped
    if not translations and (translations_obo or langs or statuses):
        raise InputError(Errors.E058.format(
            what="--translations", value=None, expected="a table when --translations-obo, "
            "--langs or --statuses is given", fix="Add --translations TABLE or drop them."))
    id_cols = _per_source(id_col, len(tsv), "--id-col", "--tsv", default="0")
    name_cols = _per_source(name_col, len(tsv), "--name-col", "--tsv", default="1")
    obo_kinds = _per_source(obo_ids, len(obo), "--obo-ids", "--obo", default="native")
    queues = {"jsonl": [Source("jsonl", p) for p in jsonl],
              "tsv": [Source("tsv", p, {"id_col": i, "name_col": n, "lang": tsv_lang})
                      for p, i, n in zip(tsv, id_cols, name_cols, strict=True)],
              "obo": [Source("obo", p, {"id_as": k})
                      for p, k in zip(obo, obo_kinds, strict=True)],
              "bigbio": [Source("bigbio", p, {"lang": bigbio_lang}) for p in bigbio]}
    sources = [queues[kind].pop(0) for kind in order]
    kb_, report = build_kb(sources, name=name or name_from_path(Path(out)),
                           translations=translations, translations_obo=translations_obo,
                           langs=_split(langs), statuses=_split(statuses),
                           allow_empty=allow_empty)
    for s in report.sources:
        extra = ""
        if "terms" in s:
            extra = f" ({s['terms']} terms, {s['obsolete']} obsolete"
            if "terms_without_cui" in s:
                extra += (f", {s['terms_without_cui']} without a CUI dropped, "
                          f"{len(s['malformed_xrefs'])} malformed xrefs skipped")
            extra += ")"
        click.echo(f"{s['kind']:<7} {s['path']}: {s['concepts']} concepts{extra}")
    for t in report.translations:
        added = ", ".join(f"{lang} +{v['added']} ({v['concepts']} concepts)"
                          for lang, v in t["by_lang"].items())
        click.echo(f"translations {t['path']}: {added or 'nothing added'}; rows without a "
                   f"mapped id: {t['rows_not_in_map']}, ids not in the KB: "
                   f"{t['rows_not_in_kb']}")
    save_kb(kb_, out)
    cov = report.coverage
    click.echo(f"Wrote {cov['name']} to {out}: {cov['concepts']} concepts, {cov['names']} names")
    click.echo(format_coverage(cov))


@kb.command("info")
@click.argument("path", type=click.Path())
def info(path) -> None:
    """Print a knowledge base's size, sha256 and coverage per language (JSON)."""
    kb_ = load_kb(path)
    cov = kb_.coverage()
    out = {"path": str(path), "form": "compact" if Path(path).is_dir() else "jsonl",
           "name": kb_.name, "concepts": cov["concepts"], "names": cov["names"],
           "aliases": sum(len(c.aliases) for c in kb_), "sha256": kb_.sha256,
           "by_lang": cov["by_lang"]}
    if Path(path).is_dir():
        manifest = read_kb_manifest(path)
        out["manifest"] = {k: manifest.get(k) for k in ("format_version", "xapps_version",
                                                         "created_at", "files")}
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


def format_coverage(coverage: dict) -> str:
    """The per-language table printed after a build."""
    lines = ["Coverage per language (und = no language: canonical names, untagged aliases):",
             f"  {'lang':<6}{'concepts':>10}{'%':>8}{'names':>10}"]
    for lang, v in coverage["by_lang"].items():
        lines.append(f"  {lang:<6}{v['concepts']:>10}{v['pct']:>8.1f}{v['names']:>10}")
    return "\n".join(lines)


def _per_source(values: tuple[str, ...], n: int, option: str, source: str,
                default: str) -> list[str]:
    """One value per source: none (the default), one for all, or exactly one each."""
    if not values:
        return [default] * n
    if len(values) == 1:
        return list(values) * n
    if len(values) != n:
        raise InputError(Errors.E058.format(
            what=f"the number of {option} values", value=len(values),
            expected=f"0, 1 or one per {source} ({n})",
            fix=f"Give {option} once for all {source} files or once after each."))
    return list(values)


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None
