"""Streaming the records of a batch job out of user corpora, one file at a time.

A corpus is a list of files (globs and folders expanded, sorted, so that every run of the
same job sees the same order). Each file yields its records in order; a record that cannot
be used (invalid JSON, no text, text over the size limit, bytes that are not UTF-8) is
yielded as a :class:`BadRecord` in its place rather than stopping the job, so a position in
a file always means the same record and shards stay stable across re-runs.

Formats: JSONL (``id``, ``text``, optional ``lang`` and ``meta``; BigBIO documents are
recognised by their ``passages``), BigBIO ``.json``, spaCy DocBin ``.spacy``, plain text
(a ``.txt`` file is one record per line, a folder gives one record per ``.txt`` file); gzip
is read transparently.
"""
from __future__ import annotations

import glob
import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

from ..errors import Errors, InputError

INPUT_FORMATS = ("auto", "jsonl", "bigbio", "docbin", "text")
#: spaCy's own default ``nlp.max_length``: longer texts need chunking first.
DEFAULT_MAX_CHARS = 1_000_000


@dataclass
class InputRecord:
    """One record to annotate; ``doc_bytes`` carries a DocBin input's Doc (with whatever
    annotations it already has) to the worker that runs the pipeline."""

    id: str
    text: str
    lang: str | None = None
    meta: dict = field(default_factory=dict)
    where: str = ""
    doc_bytes: bytes | None = None


@dataclass
class BadRecord:
    """A record that was skipped, and why; written to the job's errors file."""

    where: str
    reason: str
    id: str | None = None

    def to_json(self) -> dict:
        source, _, line = self.where.rpartition(":")
        return {"id": self.id, "source": source or self.where,
                "line": int(line) if line.isdigit() else None, "reason": self.reason}


Item = Union[InputRecord, BadRecord]


@dataclass(frozen=True)
class ReadOptions:
    id_field: str = "id"
    text_field: str = "text"
    lang_field: str = "lang"
    max_chars: int = DEFAULT_MAX_CHARS
    input_format: str = "auto"


def expand_inputs(patterns: list[str] | tuple[str, ...]) -> list[Path]:
    """Files named by paths, folders (their ``.txt``/``.txt.gz`` files are one record each:
    the folder itself is returned) and globs, in a stable order, without repeats."""
    out: list[Path] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
            matches = [p for p in matches if p.is_file()]
            if not matches:
                raise InputError(Errors.E183.format(
                    input=pattern, reason="the glob matches no file",
                    fix="Check the pattern (quote it so the shell does not expand it)."))
            out.extend(matches)
            continue
        path = Path(pattern)
        if not path.exists():
            raise InputError(Errors.E183.format(input=pattern, reason="no such file or folder",
                                                fix="Check the path."))
        out.append(path)
    seen: set[Path] = set()
    unique = []
    for path in out:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def input_format(path: Path, requested: str = "auto") -> str:
    if requested not in INPUT_FORMATS:
        raise InputError(Errors.E183.format(
            input=path, reason=f"unknown input format {requested!r}",
            fix=f"Pass --input-format as one of {', '.join(INPUT_FORMATS)}."))
    if path.is_dir():
        return "text"
    if requested != "auto":
        return requested
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind in (".jsonl", ".ndjson"):
        return "jsonl"  # BigBIO lines are recognised per line
    if kind == ".json":
        return "bigbio"
    if kind == ".spacy":
        return "docbin"
    if kind in (".txt", ".text"):
        return "text"
    raise InputError(Errors.E183.format(
        input=path, reason=f"unknown file type {kind or '(none)'!r}",
        fix="Use .jsonl, .json (BigBIO), .spacy (DocBin), .txt or a folder of .txt files "
            "(each optionally .gz), or pass --input-format."))


def read_items(path: Path, options: ReadOptions = ReadOptions()) -> Iterator[Item]:
    """Every record of one input file (or text folder), good or bad, in file order."""
    fmt = input_format(path, options.input_format)
    if fmt == "text":
        items = _text_folder(path) if path.is_dir() else _text_lines(path)
    elif fmt == "jsonl":
        items = _jsonl(path, options)
    elif fmt == "bigbio":
        items = _bigbio_json(path)
    else:
        items = _docbin(path)
    for item in items:
        yield _check_size(item, options.max_chars)


def count_items(path: Path, options: ReadOptions = ReadOptions()) -> int | None:
    """How many items :func:`read_items` will yield, counted cheaply (for the progress bar's
    ETA); None where that would mean parsing the whole file."""
    fmt = input_format(path, options.input_format)
    if fmt == "text" and path.is_dir():
        return len(_text_files(path))
    if fmt in ("text", "jsonl"):
        n = 0
        try:
            with _open_binary(path) as fh:
                for raw in fh:
                    n += bool(raw.strip())
        except (OSError, EOFError):
            return None
        return n
    return None


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes | BadRecord]]:
    """(line number, raw bytes) of a file; a read error (a truncated .gz) ends the file with
    one BadRecord naming the line where reading stopped."""
    lineno = 0
    try:
        with _open_binary(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                yield lineno, raw
    except (OSError, EOFError) as exc:
        yield lineno + 1, BadRecord(f"{path}:{lineno + 1}",
                                    f"the file could not be read past this line ({exc})")


def _decode(raw: bytes, where: str) -> str | BadRecord:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadRecord(where, f"not UTF-8 text ({exc.reason} at byte {exc.start})")


def _decoded_lines(path: Path) -> Iterator[tuple[str, str | BadRecord]]:
    """("file:line", text) of each non-blank line; a line that is not UTF-8, or where a
    read error stopped the file, comes as a BadRecord instead of the text."""
    for lineno, raw in _raw_lines(path):
        if isinstance(raw, BadRecord):
            yield raw.where, raw
            return
        if raw.strip():
            where = f"{path}:{lineno}"
            yield where, _decode(raw, where)


def _jsonl(path: Path, options: ReadOptions) -> Iterator[Item]:
    for where, line in _decoded_lines(path):
        if isinstance(line, BadRecord):
            yield line
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BadRecord(where, f"invalid JSON ({exc.msg})")
            continue
        if isinstance(obj, dict) and "passages" in obj and options.text_field not in obj:
            yield _bigbio_record(obj, where)
        else:
            yield _json_record(obj, where, options)


def _json_record(obj: Any, where: str, options: ReadOptions) -> Item:
    if not isinstance(obj, dict):
        return BadRecord(where, f"a JSON {type(obj).__name__}, not an object")
    record_id = obj.get(options.id_field)
    record_id = where if record_id is None or str(record_id) == "" else str(record_id)
    text = obj.get(options.text_field)
    if text is None:
        return BadRecord(where, f"field '{options.text_field}' is missing (fields: "
                                f"{', '.join(sorted(obj)) or 'none'}; pass --text-field)",
                         record_id)
    if not isinstance(text, str) or not text.strip():
        return BadRecord(where, f"field '{options.text_field}' is empty or not a string",
                         record_id)
    lang = obj.get(options.lang_field)
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    extra = {k: v for k, v in obj.items()
             if k not in (options.id_field, options.text_field, options.lang_field, "meta")}
    return InputRecord(record_id, text, lang if isinstance(lang, str) and lang else None,
                       {**extra, **meta}, where)


def _bigbio_record(obj: dict, where: str) -> Item:
    from ..linking.data import bigbio_document

    try:
        doc = bigbio_document(obj, where)
    except InputError as exc:
        return BadRecord(where, str(exc), str(obj.get("document_id", obj.get("id", ""))) or None)
    meta = dict(doc.meta)
    if doc.entities:
        meta["input_entities"] = len(doc.entities)
    if not doc.text.strip():
        return BadRecord(where, "the BigBIO document has no passage text", doc.id)
    return InputRecord(doc.id, doc.text, doc.lang, meta, where)


def _bigbio_json(path: Path) -> Iterator[Item]:
    chunks = []
    for lineno, raw in _raw_lines(path):
        if isinstance(raw, BadRecord):
            yield raw
            return
        chunks.append(raw)
    text = _decode(b"".join(chunks), f"{path}:1")
    if isinstance(text, BadRecord):
        yield text
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        yield BadRecord(f"{path}:{exc.lineno}", f"invalid JSON ({exc.msg}); the whole file "
                                                "was skipped")
        return
    for i, obj in enumerate(data if isinstance(data, list) else [data]):
        where = f"{path}:{i + 1}"  # position in the list, 1-based like a line
        if not isinstance(obj, dict):
            yield BadRecord(where, f"a JSON {type(obj).__name__}, not a BigBIO document")
        else:
            yield _bigbio_record(obj, where)


def _docbin(path: Path) -> Iterator[Item]:
    from spacy.tokens import DocBin

    from ..languages import blank

    try:
        data = _open_binary(path).read()
        doc_bin = DocBin(store_user_data=True).from_bytes(data)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is not a DocBin
        yield BadRecord(f"{path}:1", f"not a spaCy DocBin ({type(exc).__name__}: {exc}); the "
                                     "whole file was skipped")
        return
    vocab = blank("xx").vocab
    for i, doc in enumerate(doc_bin.get_docs(vocab), start=1):
        where = f"{path}:{i}"
        user = doc.user_data
        record_id = user.get("id") or user.get("xapps_id") or where
        if not doc.text.strip():
            yield BadRecord(where, "the Doc has no text", str(record_id))
            continue
        lang = user.get("lang")
        meta = user.get("meta") if isinstance(user.get("meta"), dict) else {}
        yield InputRecord(str(record_id), doc.text, lang if isinstance(lang, str) else None,
                          dict(meta), where, doc.to_bytes())


def _text_lines(path: Path) -> Iterator[Item]:
    for where, line in _decoded_lines(path):
        yield line if isinstance(line, BadRecord) else InputRecord(
            where, line.rstrip("\r\n"), None, {}, where)


def _text_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.name.lower().endswith((".txt", ".txt.gz")))


def _text_folder(folder: Path) -> Iterator[Item]:
    files = _text_files(folder)
    if not files:
        raise InputError(Errors.E183.format(input=folder, reason="the folder has no .txt files",
                                            fix="Point --input at a folder of .txt files."))
    for file in files:
        rel = file.relative_to(folder).as_posix()
        record_id = rel[: -len(".txt.gz")] if rel.lower().endswith(".gz") else rel[:-4]
        where = f"{file}:1"
        try:
            with _open_binary(file) as fh:
                raw = fh.read()
        except (OSError, EOFError) as exc:
            yield BadRecord(where, f"unreadable ({exc})", record_id)
            continue
        text = _decode(raw, where)
        if isinstance(text, BadRecord):
            text.id = record_id
            yield text
        elif not text.strip():
            yield BadRecord(where, "the file is empty", record_id)
        else:
            yield InputRecord(record_id, text, None, {}, where)


def _check_size(item: Item, max_chars: int) -> Item:
    if isinstance(item, InputRecord) and len(item.text) > max_chars:
        return BadRecord(item.where, f"text of {len(item.text):,} characters is over the "
                                     f"limit of {max_chars:,} (raise --max-chars or split "
                                     "the text)", item.id)
    return item


def describe_inputs(paths: list[Path]) -> list[dict]:
    """Path, size and modification time of each input: a resumed job checks these so that
    it never continues over inputs that changed in between."""
    out = []
    for path in paths:
        if path.is_dir():
            files = _text_files(path)
            size = sum(f.stat().st_size for f in files)
            mtime = max((f.stat().st_mtime for f in files), default=0.0)
        else:
            stat = path.stat()
            size, mtime = stat.st_size, stat.st_mtime
        out.append({"path": os.fspath(path.resolve()), "bytes": size,
                    "mtime": round(mtime, 3)})
    return out
