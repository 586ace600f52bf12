"""What an annotated record looks like on disk, in each output format, and how it is read back.

Every format starts from one plain-data dict per record (:func:`doc_record`): the record's
id, text, language and meta from the input; entities with their linked concepts
(``kb_id``, ``kb_name``, ``kb_ents``); span groups; open-IE triples; retrieval hits;
projected spans; categories; timing; and the job's provenance. JSONL writes that dict as is;
DocBin keeps the Doc with the rest in ``user_data``; BigBIO and CoNLL keep what their
schemas can hold (entities and their concept ids), with the rest under an ``xapps`` key
(BigBIO) or lost (CoNLL, documented).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from spacy.tokens import Doc, DocBin

from .. import extensions  # noqa: F401  (registers kb_ents, triples, hits, projection)
from ..errors import Errors, InputError

OUTPUT_FORMATS = ("jsonl", "docbin", "bigbio", "conll")
SUFFIXES = {"jsonl": ".jsonl", "docbin": ".spacy", "bigbio": ".bigbio.jsonl",
            "conll": ".conll"}

KbNames = Callable[[str], "str | None"]


def _no_names(concept_id: str) -> None:
    return None


def _span(span, kb_names: KbNames, with_kb: bool) -> dict:
    out = {"start": span.start_char, "end": span.end_char, "label": span.label_,
           "text": span.text}
    if with_kb:
        kb_id = span.kb_id_ or None
        out["kb_id"] = kb_id
        out["kb_name"] = kb_names(kb_id) if kb_id else None
        kb_ents = span._.kb_ents
        if kb_ents is not None:
            out["kb_ents"] = [[str(c), round(float(s), 6)] for c, s in kb_ents]
    return out


def doc_record(doc: Doc, *, record_id: str, lang: str | None, meta: dict,
               provenance: dict | None = None, timing: dict | None = None,
               kb_names: KbNames = _no_names) -> dict:
    """The plain-data record of an annotated Doc (every output format is made from it)."""
    out: dict[str, Any] = {"id": record_id, "text": doc.text, "lang": lang, "meta": meta,
                           "ents": [_span(e, kb_names, True) for e in doc.ents]}
    groups = {key: [_span(s, kb_names, any(x.kb_id_ for x in group)) for s in group]
              for key, group in doc.spans.items() if len(group)}
    if groups:
        out["spans"] = groups
    if doc._.triples is not None:
        # plain lists: a Doc read back from a DocBin holds them as msgpack tuples
        out["triples"] = json.loads(json.dumps(doc._.triples))
    if doc._.hits is not None:
        out["hits"] = [[str(i), round(float(s), 6)] for i, s in doc._.hits]
    projection = doc._.projection
    if projection is not None:
        out["projection"] = {"text": projection.text,
                             "ents": [_span(e, _no_names, False) for e in projection.ents]}
    if doc.cats:
        out["cats"] = {k: round(float(v), 6) for k, v in doc.cats.items()}
    if timing is not None:
        out["timing"] = timing
    if provenance is not None:
        out["provenance"] = provenance
    return out


class ShardWriter:
    """Writes one shard's records to ``path`` (a temp file the caller renames when done)."""

    def __init__(self, path: Path, fmt: str) -> None:
        if fmt not in OUTPUT_FORMATS:
            raise InputError(Errors.E186.format(
                what="--format", value=fmt, reason="unknown output format",
                fix=f"Use one of {', '.join(OUTPUT_FORMATS)}."))
        self.path, self.fmt = path, fmt
        self._docbin = DocBin(store_user_data=True) if fmt == "docbin" else None
        self._fh = None if fmt == "docbin" else open(path, "w", encoding="utf-8")

    def write(self, doc: Doc, record: dict) -> None:
        if self._docbin is not None:
            for key in ("id", "lang", "meta", "timing", "provenance"):
                if record.get(key) is not None:
                    doc.user_data[key] = record[key]
            # names of linked concepts: kb_ents only holds ids
            names = {e["kb_id"]: e["kb_name"] for e in record["ents"] if e.get("kb_name")}
            if names:
                doc.user_data["kb_names"] = names
            self._docbin.add(doc)
        elif self.fmt == "jsonl":
            self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        elif self.fmt == "bigbio":
            self._fh.write(json.dumps(_bigbio(record), ensure_ascii=False) + "\n")
        else:
            self._fh.write(_conll_block(doc, record))

    def close(self) -> None:
        if self._docbin is not None:
            self.path.write_bytes(self._docbin.to_bytes())
            return
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def _bigbio(record: dict) -> dict:
    rid, text = record["id"], record["text"]
    entities = []
    for i, ent in enumerate(record["ents"]):
        norm = ([{"db_name": (record.get("provenance") or {}).get("kb") or "kb",
                  "db_id": ent["kb_id"]}] if ent.get("kb_id") else [])
        entities.append({"id": f"{rid}_e{i}", "type": ent["label"], "text": [ent["text"]],
                         "offsets": [[ent["start"], ent["end"]]], "normalized": norm})
    extra = {k: v for k, v in record.items() if k not in ("id", "text", "lang", "meta", "ents")}
    extra["ents"] = [{k: v for k, v in e.items() if k in ("kb_name", "kb_ents")}
                     for e in record["ents"]]
    return {"id": rid, "document_id": rid,
            "passages": [{"id": f"{rid}_text", "type": "document", "text": [text],
                          "offsets": [[0, len(text)]]}],
            "entities": entities, "events": [], "coreferences": [], "relations": [],
            "lang": record.get("lang"), "meta": record.get("meta") or {}, "xapps": extra}


def _conll_block(doc: Doc, record: dict) -> str:
    lines = [f"# id = {record['id']}"]
    if record.get("lang"):
        lines.append(f"# lang = {record['lang']}")
    for token in doc:
        if token.is_space:
            continue
        tag = token.ent_iob_ or "O"
        tag = "O" if tag == "O" else f"{tag}-{token.ent_type_}"
        lines.append(f"{token.text}\t{tag}\t{token.ent_kb_id_ or '-'}")
    return "\n".join(lines) + "\n\n"


# ------------------------------------------------------------------------ reading back
def read_shard(path: Path, fmt: str) -> Iterator[dict]:
    """The records of one written shard, as :func:`doc_record` dicts (CoNLL: id, lang,
    text rebuilt with single spaces, entities and their concept ids)."""
    if fmt in ("jsonl", "bigbio"):
        convert = _from_bigbio if fmt == "bigbio" else dict
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    yield convert(json.loads(raw.decode("utf-8")))
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError,
                        ValueError) as exc:
                    raise ValueError(f"line {lineno}: {type(exc).__name__}: {exc}") from exc
    elif fmt == "docbin":
        yield from _from_docbin(path)
    else:
        yield from _from_conll(path)


def _from_bigbio(obj: dict) -> dict:
    extra = dict(obj.get("xapps") or {})
    more = extra.pop("ents", [{}] * len(obj["entities"]))
    ents = []
    for ent, add in zip(obj["entities"], more):
        (start, end), = ent["offsets"][:1]
        norm = ent.get("normalized") or []
        ents.append({"start": start, "end": end, "label": ent["type"],
                     "text": " ".join(ent["text"]),
                     "kb_id": norm[0]["db_id"] if norm else None, **add})
    return {"id": obj["document_id"], "text": obj["passages"][0]["text"][0],
            "lang": obj.get("lang"), "meta": obj.get("meta") or {}, "ents": ents, **extra}


def _from_docbin(path: Path) -> Iterator[dict]:
    from ..languages import blank

    vocab = blank("xx").vocab
    for doc in DocBin(store_user_data=True).from_disk(path).get_docs(vocab):
        user = doc.user_data
        names = user.get("kb_names") or {}
        yield doc_record(doc, record_id=user.get("id"), lang=user.get("lang"),
                         meta=user.get("meta") or {}, provenance=user.get("provenance"),
                         timing=user.get("timing"), kb_names=names.get)


def _from_conll(path: Path) -> Iterator[dict]:
    record: dict | None = None
    words: list[str] = []
    ents: list[dict] = []
    pos = 0

    def finish():
        return dict(record, text=" ".join(words), ents=ents)

    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if line.startswith("# id = "):
                record, words, ents, pos = {"id": line[7:], "lang": None, "meta": {}}, [], [], 0
            elif line.startswith("# lang = ") and record is not None:
                record["lang"] = line[9:]
            elif not line.strip():
                if record is not None:
                    yield finish()
                record = None
            elif record is not None:
                word, tag, kb_id = line.split("\t")
                start = pos + (1 if words else 0)
                words.append(word)
                pos = start + len(word)
                if tag.startswith("B-") or (tag.startswith("I-") and not ents):
                    ents.append({"start": start, "end": pos, "label": tag[2:],
                                 "text": word, "kb_id": None if kb_id == "-" else kb_id})
                elif tag.startswith("I-"):
                    ents[-1]["end"] = pos
                    ents[-1]["text"] += " " + word
    if record is not None:
        yield finish()
