"""Documents with entity annotations for the linker: brat standoff (Mantra GSC), BigBIO KB
JSON/JSONL, and the Mantra benchmark mention list the peers were measured with.

Offsets are character offsets into ``Document.text`` exactly as read from disk (no newline
translation: the German Mantra files end in ``\\r\\n`` and keep it). Discontinuous mentions
keep one ``(start, end)`` pair per fragment; their ``text`` is the fragments joined by one
space, as brat writes it.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import fileio
from ..errors import Errors, InputError
from ..paths import data_root
from .types import Mention

logger = logging.getLogger("xapps")

#: Mantra GSC folder names -> ISO 639-1 codes (Dutch is in the corpus, not in the benchmark).
MANTRA_LANGS = {"English": "en", "French": "fr", "German": "de", "Spanish": "es", "Dutch": "nl"}
MANTRA_DIR = "mantra-gsc"
BENCHMARK_FILE = "mentions_en_fr_de_es.jsonl"

#: UMLS semantic groups (McCray et al.), the last field of a Mantra note.
SEMANTIC_GROUPS = frozenset({"ACTI", "ANAT", "CHEM", "CONC", "DEVI", "DISO", "GENE", "GEOG",
                             "LIVB", "OBJC", "OCCU", "ORGA", "PHEN", "PHYS", "PROC"})
_CUI = re.compile(r"C\d{7}")
_QUOTED = re.compile(r'"([^"]*)"')
# BigBIO top-level keys that are not kept in Document.meta
_BIGBIO_CORE = ("document_id", "passages", "entities", "lang")
_BIGBIO_LISTS = ("events", "coreferences", "relations")


@dataclass
class Entity:
    """One annotated mention. ``db_ids`` are ``(db_name, db_id)`` pairs, in file order."""

    id: str
    text: str
    offsets: list[tuple[int, int]]
    type: str | None = None
    db_ids: list[tuple[str, str]] = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.offsets[0][0]

    @property
    def end(self) -> int:
        return self.offsets[-1][1]

    @property
    def discontinuous(self) -> bool:
        return len(self.offsets) > 1


@dataclass
class Document:
    """A text with its entities. ``meta`` holds JSON-serialisable extras (Mantra: ``corpus``,
    ``language`` and parsed AnnotatorNotes under ``notes``)."""

    id: str
    text: str
    lang: str | None = None
    entities: list[Entity] = field(default_factory=list)
    meta: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------- brat


def read_brat(folder_or_file: str | os.PathLike, *, lang: str | None = None,
              db_name: str = "UMLS") -> Iterator[Document]:
    """Yield documents from brat standoff: a ``.txt``/``.ann`` pair or a folder of pairs
    (recursive; document id = path relative to the folder, without suffix).

    Read: ``T`` lines (``;``-separated fragments), ``N`` normalisation lines
    (``Reference T1 DB:ID``) and ``AnnotatorNotes``. A ``T`` type that is a UMLS CUI (Mantra
    puts the CUI there) becomes a ``(db_name, CUI)`` pair; CUIs in a note are added too.
    Mantra notes (``"CUI", "name", "semantic types", "GROUP"``) also set ``Entity.type`` to
    the semantic group and are kept, parsed, in ``meta["notes"][T-id]``. Other line kinds
    (R, E, A, M, *) are valid brat and skipped. Errors name file:line.
    """
    path = Path(folder_or_file)
    if not path.exists():
        raise InputError(Errors.E062.format(path=path, reason="no such file or folder"))
    if path.is_dir():
        txts = sorted(p for p in path.rglob("*.txt") if p.is_file())
        anns = {p.with_suffix("") for p in path.rglob("*.ann") if p.is_file()}
        if not txts:
            raise InputError(Errors.E062.format(path=path, reason="the folder has no .txt files"))
        orphans = sorted(anns - {p.with_suffix("") for p in txts})
        if orphans:
            raise InputError(Errors.E062.format(
                path=orphans[0].with_suffix(".ann"), reason="there is no .txt file beside it"))
        for txt in txts:
            doc_id = txt.relative_to(path).with_suffix("").as_posix()
            yield _read_brat_pair(txt, doc_id, lang, db_name)
    else:
        if path.suffix.lower() not in (".txt", ".ann"):
            raise InputError(Errors.E062.format(
                path=path, reason=f"unknown file type {path.suffix or '(none)'!r}"))
        txt = path.with_suffix(".txt")
        if not txt.is_file():
            raise InputError(Errors.E062.format(path=txt, reason="no such file"))
        yield _read_brat_pair(txt, txt.stem, lang, db_name)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(Errors.E062.format(path=path,
                                            reason=f"not UTF-8 text ({exc.reason})")) from exc
    except OSError as exc:
        raise InputError(Errors.E062.format(path=path, reason=exc.strerror or str(exc))) from exc


def _ann_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(Errors.E062.format(path=path, reason=exc.strerror or str(exc))) from exc
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise InputError(Errors.E062.format(path=f"{path}:{lineno}",
                                                reason=f"not UTF-8 text ({exc.reason})")) from exc
        yield lineno, (line.lstrip("\ufeff") if lineno == 1 else line)


def _read_brat_pair(txt: Path, doc_id: str, lang: str | None, db_name: str) -> Document:
    text = _read_text(txt)
    ann = txt.with_suffix(".ann")
    if not ann.is_file():
        raise InputError(Errors.E062.format(
            path=ann, reason="no such file (every .txt needs its .ann; an unannotated "
                             "document has an empty one)"))
    entities: dict[str, Entity] = {}
    first_seen: dict[str, str] = {}
    refs: list[tuple[str, str, str, Any]] = []  # (where, kind, ref id, payload)
    for lineno, line in _ann_lines(ann):
        if not line.strip():
            continue
        where = f"{ann}:{lineno}"
        fields = line.split("\t")
        ann_id = fields[0]
        if ann_id in first_seen and ann_id != "*":  # equivalences all have the id '*'
            raise InputError(Errors.E005.format(where=where, id=ann_id, first=first_seen[ann_id]))
        first_seen.setdefault(ann_id, where)
        kind = ann_id[:1]
        if kind == "T":
            entities[ann_id] = _parse_t_line(fields, where, text, txt, db_name)
        elif kind == "N":
            if len(fields) < 2:
                raise InputError(Errors.E060.format(where=where,
                                                    reason="an N line needs at least 2 fields"))
            info = fields[1].split()
            if len(info) != 3 or ":" not in info[2]:
                raise InputError(Errors.E060.format(
                    where=where, reason=f"normalisation {fields[1]!r} is not 'TYPE REF DB:ID'"))
            db, _, db_id = info[2].partition(":")
            if not db or not db_id:
                raise InputError(Errors.E060.format(
                    where=where, reason=f"{info[2]!r} is not 'DB:ID'"))
            refs.append((where, "normalisation", info[1], (db, db_id)))
        elif kind == "#":
            info = fields[1].split() if len(fields) > 1 else []
            if len(info) != 2:
                raise InputError(Errors.E060.format(
                    where=where, reason="a note needs 'AnnotatorNotes REF' in its second field"))
            refs.append((where, "note", info[1], fields[2] if len(fields) > 2 else ""))
        elif kind in ("R", "A", "E", "M", "*"):
            logger.debug("%s: skipped brat %s line", where, kind)
        else:
            raise InputError(Errors.E060.format(
                where=where, reason=f"unknown annotation id {ann_id!r} (brat ids start with "
                                    "T, N, R, E, A, M, * or #)"))
    notes: dict[str, dict] = {}
    for where, kind, ref, payload in refs:
        if ref not in first_seen:
            raise InputError(Errors.E063.format(where=where, kind=kind, ref=ref,
                                                available=", ".join(entities) or "(none)"))
        entity = entities.get(ref)
        if kind == "normalisation":
            if entity is not None:
                _add_db_id(entity, payload)
            continue
        parsed = _parse_note(payload)
        if ref in notes:  # several notes on one annotation: keep all their text
            notes[ref]["text"] += "\n" + payload
        else:
            notes[ref] = parsed
        if entity is None:
            continue
        cuis = parsed.get("cuis") or _CUI.findall(payload)
        for cui in cuis:
            _add_db_id(entity, (db_name, cui))
        if entity.type is None and parsed.get("group"):
            entity.type = parsed["group"]
    meta = {"notes": notes} if notes else {}
    return Document(doc_id, text, lang, list(entities.values()), meta)


def _parse_t_line(fields: list[str], where: str, text: str, txt: Path, db_name: str) -> Entity:
    if len(fields) != 3:
        raise InputError(Errors.E060.format(
            where=where, reason=f"a T line has 3 tab-separated fields, found {len(fields)}"))
    ann_id, middle, mention = fields
    type_, _, span_str = middle.partition(" ")
    if not type_ or not span_str.strip():
        raise InputError(Errors.E060.format(where=where,
                                            reason=f"{middle!r} is not 'TYPE START END'"))
    offsets: list[tuple[int, int]] = []
    for frag in span_str.split(";"):
        parts = frag.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise InputError(Errors.E060.format(
                where=where, reason=f"offsets {span_str!r} are not 'START END[;START END...]' "
                                    "with non-negative integers"))
        start, end = int(parts[0]), int(parts[1])
        if start >= end or end > len(text) or (offsets and start < offsets[-1][1]):
            raise InputError(Errors.E060.format(
                where=where, reason=f"fragment {start} {end} is empty, out of order or past "
                                    f"the end of {txt.name} ({len(text)} characters)"))
        offsets.append((start, end))
    found = " ".join(text[s:e] for s, e in offsets)
    if found != mention:
        raise InputError(Errors.E061.format(where=where, id=ann_id, span=span_str, txt=txt.name,
                                            found=found, expected=mention))
    if _CUI.fullmatch(type_):
        return Entity(ann_id, mention, offsets, None, [(db_name, type_)])
    return Entity(ann_id, mention, offsets, type_, [])


def _parse_note(note: str) -> dict:
    """Mantra's note: ``"C1721214", "protelos", "Organic Chemical" ,"CHEM"``. Two notes in the
    corpus lack the CUI (3 fields); 25 give the group before the semantic type. Other notes
    are kept as plain text."""
    out: dict[str, Any] = {"text": note}
    fields = _QUOTED.findall(note)
    if len(fields) in (3, 4) and _QUOTED.sub("", note).replace(",", "").strip() == "":
        if len(fields) == 4:
            out["cuis"] = _CUI.findall(fields[0])
            fields = fields[1:]
        name, types, group = fields
        if not _is_group(group) and _is_group(types):  # 25 Mantra notes swap the two
            types, group = group, types
        out["name"], out["group"] = name, group
        out["semantic_types"] = [t for t in types.split("|") if t]
    return out


def _is_group(value: str) -> bool:
    return bool(value) and all(part in SEMANTIC_GROUPS for part in value.split("|"))


def _add_db_id(entity: Entity, pair: tuple[str, str]) -> None:
    if pair not in entity.db_ids:
        if entity.db_ids:
            logger.debug("entity %s gets a second concept %s (has %s)", entity.id, pair,
                         entity.db_ids)
        entity.db_ids.append(pair)


# ---------------------------------------------------------------------------------- Mantra


def _mantra_lang(name: str) -> tuple[str, str]:
    """'English' or 'en' -> ('English', 'en')."""
    for folder, code in MANTRA_LANGS.items():
        if name in (folder, code):
            return folder, code
    raise InputError(Errors.E067.format(
        what="Mantra language", value=name,
        expected=f"Use one of {', '.join(MANTRA_LANGS)} or their codes "
                 f"{', '.join(MANTRA_LANGS.values())}."))


def read_mantra(root: str | os.PathLike | None = None,
                langs: Iterable[str] = ("English", "French", "German", "Spanish"),
                ) -> list[Document]:
    """All Mantra GSC documents of ``langs`` (folder names or codes), sorted by id.

    Ids are ``Language/corpus/doc`` (``English/EMEA_ec22-cui-best_man/0001_d327.u53``), so
    ``f"{doc.id}/{entity.id}"`` is the mention id of the benchmark file. ``lang`` is the ISO
    code; ``meta`` has ``language``, ``corpus`` and ``notes``.
    """
    root = Path(root) if root is not None else data_root() / MANTRA_DIR
    if not root.is_dir():
        raise InputError(Errors.E065.format(path=root, reason="no such folder"))
    docs: list[Document] = []
    for name in langs:
        folder, code = _mantra_lang(name)
        if not (root / folder).is_dir():
            raise InputError(Errors.E065.format(path=root / folder, reason="no such folder"))
        for doc in read_brat(root / folder, lang=code):
            corpus = doc.id.split("/", 1)[0] if "/" in doc.id else ""
            doc.id = f"{folder}/{doc.id}"
            doc.meta = {"language": folder, "corpus": corpus, **doc.meta}
            docs.append(doc)
    return docs


def concept_names(docs: Iterable[Document]) -> dict[str, str]:
    """CUI -> English preferred name, from the AnnotatorNotes of Mantra documents."""
    names: dict[str, str] = {}
    for doc in docs:
        notes = doc.meta.get("notes", {})
        for entity in doc.entities:
            note = notes.get(entity.id, {})
            if "name" in note:
                for _, cui in entity.db_ids:
                    names.setdefault(cui, note["name"])
    return names


def read_benchmark_mentions(path: str | os.PathLike | None = None, *,
                            window: int | None = None) -> list[tuple[Mention, str]]:
    """The Mantra benchmark mentions as ``(Mention, gold CUI)``, in file order.

    ``Mention.lang`` is the ISO code, ``Mention.id`` the file's id
    (``Language/corpus/doc/T-id``). The file has no context; with ``window`` the left/right
    context is cut from the ``.txt`` files of the corpus beside it.
    """
    path = Path(path) if path is not None else data_root() / MANTRA_DIR / BENCHMARK_FILE
    if not path.is_file():
        raise InputError(Errors.E065.format(path=path, reason="the benchmark mention file "
                                                              f"{BENCHMARK_FILE} is missing"))
    texts: dict[str, str] = {}
    out: list[tuple[Mention, str]] = []
    for where, row in fileio.iter_json_lines(path, _lines(path, "Mantra GSC mention JSONL "
                                                                 "(UTF-8, one object per line)")):
        missing = [k for k in ("id", "lang", "cui", "text") if not isinstance(row, dict)
                   or not isinstance(row.get(k), str) or not row[k]]
        if missing:
            raise InputError(Errors.E064.format(
                where=where, reason=f"field(s) {', '.join(missing)} missing or empty",
                expected="an object with string fields id, lang, cui, text (and offsets for "
                         "context)"))
        _, code = _mantra_lang(row["lang"])
        left = right = ""
        if window is not None:
            doc_key = row["id"].rsplit("/", 1)[0]
            if doc_key not in texts:
                texts[doc_key] = _read_text(path.parent / f"{doc_key}.txt")
            spans = _parse_offsets(row.get("offsets"), where)
            left, right = _context(texts[doc_key], spans[0][0], spans[-1][1], window)
        out.append((Mention(row["text"], lang=code, left=left, right=right, id=row["id"]),
                    row["cui"]))
    return out


def _parse_offsets(value: Any, where: str) -> list[tuple[int, int]]:
    try:
        spans = [tuple(int(x) for x in frag.split()) for frag in str(value).split(";")]
        if spans and all(len(s) == 2 for s in spans):
            return spans  # type: ignore[return-value]
    except ValueError:
        pass
    raise InputError(Errors.E064.format(where=where, reason=f"offsets {value!r} are unreadable",
                                        expected="'START END[;START END...]'"))


# ---------------------------------------------------------------------------------- mentions


def _context(text: str, start: int, end: int, window: int) -> tuple[str, str]:
    if window < 0:
        raise InputError(Errors.E067.format(what="window", value=window,
                                            expected="Use 0 or a positive number of characters."))
    return text[max(0, start - window):start], text[end:end + window]


def mention_context(doc: Document, entity: Entity, window: int = 64) -> Mention:
    """The entity as a :class:`Mention` with up to ``window`` characters of context each side
    (around the whole mention for a discontinuous one); id ``doc.id/entity.id``."""
    left, right = _context(doc.text, entity.start, entity.end, window)
    return Mention(entity.text, lang=doc.lang, left=left, right=right,
                   id=f"{doc.id}/{entity.id}")


def doc_mentions(docs: Iterable[Document], window: int = 64) -> list[tuple[Mention, set[str]]]:
    """Every entity of ``docs`` as ``(Mention, set of gold db_ids)``, for evaluation."""
    return [(mention_context(doc, e, window), {db_id for _, db_id in e.db_ids})
            for doc in docs for e in doc.entities]


# ---------------------------------------------------------------------------------- BigBIO


def read_bigbio_kb(path: str | os.PathLike) -> Iterator[Document]:
    """Yield documents from a BigBIO KB file: ``.jsonl`` (one document per line) or ``.json``
    (a list of documents, or one).

    ``Document.id`` is ``document_id``; the text is rebuilt from the passages (gaps between
    passages become spaces). Entity text lists are joined with one space. Top-level keys
    other than document_id/passages/entities/lang go to ``meta`` (``id`` only when it differs
    from ``document_id``, events/coreferences/relations only when non-empty), and the passage
    layout to ``meta["passages"]``, so :func:`write_bigbio_kb` writes the document back.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(Errors.E059.format(path=path, reason="no such file",
                                            expected=_BIGBIO_FILE))
    kind = [s.lower() for s in path.suffixes if s.lower() != ".gz"][-1:] or [""]
    if kind[0] in (".jsonl", ".ndjson"):
        records = _jsonl_objects(path)
    elif kind[0] == ".json":
        records = _json_objects(path)
    else:
        raise InputError(Errors.E059.format(path=path, expected=_BIGBIO_FILE,
                                            reason=f"unknown file type {kind[0] or '(none)'!r}"))
    seen: dict[str, str] = {}
    for where, obj in records:
        doc = bigbio_document(obj, where)
        if doc.id in seen:
            raise InputError(Errors.E005.format(where=where, id=doc.id, first=seen[doc.id]))
        seen[doc.id] = where
        yield doc


def _jsonl_objects(path: Path) -> Iterator[tuple[str, Any]]:
    for lineno, line in _lines(path):
        if line.strip():
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(Errors.E001.format(where=where, reason=exc.msg)) from None


def _json_objects(path: Path) -> Iterator[tuple[str, Any]]:
    raw = "".join(line for _, line in _lines(path))
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(Errors.E064.format(
            where=f"{path}:{exc.lineno}", reason=f"not valid JSON ({exc.msg})",
            expected="a JSON list of BigBIO KB documents")) from None
    items = data if isinstance(data, list) else [data]
    for i, obj in enumerate(items):
        yield f"{path}[{i}]", obj


_BIGBIO_FILE = ("BigBIO KB-schema documents: a .json file (a list of documents, or one) or a "
                ".jsonl file (one document per line), UTF-8, .gz read too")


def _lines(path: Path, expected: str = _BIGBIO_FILE) -> Iterator[tuple[int, str]]:
    """Lines of a UTF-8 file; a decode or read error names file:line and ``expected``."""
    return fileio.iter_lines(path, lambda where, reason: InputError(
        Errors.E059.format(path=where, reason=reason, expected=expected)))


_EXPECTED_KB = ("a BigBIO KB document {id, document_id, passages: [{id, type, text: [...], "
                "offsets: [[s, e], ...]}], entities: [{id, type, text: [...], offsets, "
                "normalized: [{db_name, db_id}]}]}")


def _bad(where: str, reason: str) -> InputError:
    return InputError(Errors.E064.format(where=where, reason=reason, expected=_EXPECTED_KB))


def _offset_list(value: Any, where: str) -> list[tuple[int, int]]:
    if not isinstance(value, list) or not value:
        raise _bad(where, f"offsets {value!r} are not a non-empty list of [start, end]")
    out = []
    for pair in value:
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)
                or not 0 <= pair[0] <= pair[1]):
            raise _bad(where, f"offset {pair!r} is not [start, end] with 0 <= start <= end")
        out.append((pair[0], pair[1]))
    return out


def _text_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise _bad(where, f"text {value!r} is not a list of strings")
    return value


def bigbio_document(obj: Any, where: str) -> Document:
    if not isinstance(obj, dict):
        raise _bad(where, f"a {type(obj).__name__}, not an object")
    for key in ("passages", "entities"):
        if not isinstance(obj.get(key), list):
            raise _bad(where, f"field '{key}' is missing or not a list")
    doc_id = obj.get("document_id", obj.get("id"))
    if doc_id is None or str(doc_id) == "":
        raise _bad(where, "field 'document_id' (or 'id') is missing or empty")
    doc_id = str(doc_id)
    # rebuild the text from the passages
    chars: list[str] = []
    layout = []
    for i, passage in enumerate(obj["passages"]):
        pwhere = f"{where} passages[{i}]"
        if not isinstance(passage, dict):
            raise _bad(pwhere, "a passage is not an object")
        texts = _text_list(passage.get("text"), pwhere)
        offsets = _offset_list(passage.get("offsets"), pwhere)
        if len(texts) != len(offsets):
            raise _bad(pwhere, f"{len(texts)} texts but {len(offsets)} offsets")
        for t, (s, e) in zip(texts, offsets):
            if len(t) != e - s:
                raise _bad(pwhere, f"text of length {len(t)} does not fit offsets [{s}, {e}]")
            if len(chars) < e:
                chars.extend(" " * (e - len(chars)))
            for j, ch in enumerate(t):
                if chars[s + j] not in (" ", ch):
                    raise _bad(pwhere, f"overlaps another passage with different text at {s + j}")
                chars[s + j] = ch
        layout.append({"id": passage.get("id"), "type": passage.get("type"),
                       "offsets": [list(p) for p in offsets]})
    text = "".join(chars)
    entities = []
    for i, ent in enumerate(obj["entities"]):
        ewhere = f"{where} entities[{i}]"
        if not isinstance(ent, dict):
            raise _bad(ewhere, "an entity is not an object")
        offsets = _offset_list(ent.get("offsets"), ewhere)
        if offsets[-1][1] > len(text):
            raise _bad(ewhere, f"offsets {ent.get('offsets')} go past the end of the text "
                               f"({len(text)} characters)")
        db_ids = []
        for norm in ent.get("normalized") or []:
            if (not isinstance(norm, dict) or not isinstance(norm.get("db_name"), str)
                    or not isinstance(norm.get("db_id"), str)):
                raise _bad(ewhere, f"normalized entry {norm!r} is not {{db_name, db_id}}")
            db_ids.append((norm["db_name"], norm["db_id"]))
        entities.append(Entity(str(ent.get("id", "")), " ".join(_text_list(ent.get("text"),
                                                                          ewhere)),
                               offsets, ent.get("type") or None, db_ids))
    meta = {k: v for k, v in obj.items() if k not in _BIGBIO_CORE}
    if meta.get("id") == doc_id:
        del meta["id"]
    for key in _BIGBIO_LISTS:
        if key in meta and not meta[key]:
            del meta[key]
    if not _default_layout(doc_id, text, layout):
        meta["passages"] = layout
    lang = obj.get("lang")
    return Document(doc_id, text, lang if isinstance(lang, str) else None, entities, meta)


def _default_layout(doc_id: str, text: str, layout: list[dict]) -> bool:
    return layout == [{"id": f"{doc_id}_text", "type": "document",
                       "offsets": [[0, len(text)]]}]


def _to_bigbio(doc: Document) -> dict:
    meta = dict(doc.meta)
    layout = meta.pop("passages", None) or [{"id": f"{doc.id}_text", "type": "document",
                                             "offsets": [[0, len(doc.text)]]}]
    passages = [{"id": p["id"], "type": p["type"],
                 "text": [doc.text[s:e] for s, e in p["offsets"]],
                 "offsets": [list(o) for o in p["offsets"]]} for p in layout]
    entities = []
    for e in doc.entities:
        fragments = [doc.text[s:end] for s, end in e.offsets]
        texts = fragments if len(fragments) > 1 and " ".join(fragments) == e.text else [e.text]
        entities.append({"id": e.id, "type": e.type or "", "text": texts,
                         "offsets": [[s, end] for s, end in e.offsets],
                         "normalized": [{"db_name": n, "db_id": i} for n, i in e.db_ids]})
    out = {"id": meta.pop("id", doc.id), "document_id": doc.id, "passages": passages,
           "entities": entities}
    for key in _BIGBIO_LISTS:
        out[key] = meta.pop(key, [])
    if doc.lang is not None:
        out["lang"] = doc.lang
    for key, value in meta.items():
        if key in out:
            raise InputError(Errors.E067.format(
                what=f"meta key of document {doc.id!r}", value=key,
                expected="It clashes with a BigBIO field; rename it."))
        out[key] = value
    return out


def write_bigbio_kb(docs: Iterable[Document], path: str | os.PathLike) -> int:
    """Write ``docs`` as BigBIO KB: ``.jsonl`` one document per line, ``.json`` a list.

    Entity ids are written as they are (brat ids are unique per document, not per corpus).
    ``lang`` and other ``meta`` keys become extra top-level keys. The file appears only when
    complete (temp file + rename). Returns the number of documents.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".jsonl"):
        raise InputError(Errors.E068.format(path=path, reason=f"unknown file type {suffix!r}",
                                            fix="Use a .json or .jsonl file name."))
    lines = [json.dumps(_to_bigbio(d), ensure_ascii=False) for d in docs]
    if suffix == ".jsonl":
        payload = "".join(line + "\n" for line in lines)
    else:
        payload = "[\n" + ",\n".join(lines) + "\n]\n"
    atomic_write_text(path, payload)
    return len(lines)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically; a failure names the path and the fix (E068)."""
    try:
        fileio.atomic_write_text(path, text)
    except OSError as exc:
        raise InputError(Errors.E068.format(path=path, reason=exc.strerror or str(exc),
                                            fix="Check that the folder exists and is "
                                                "writable.")) from exc
