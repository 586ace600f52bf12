"""Reading user corpora (JSONL, TSV, a folder of .txt) into records, with errors that say
file:line, what was expected and how to fix it."""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import Errors, InputError
from .fileio import iter_json_lines, iter_lines

csv.field_size_limit(1 << 30)


@dataclass
class Record:
    id: str
    text: str
    meta: dict = field(default_factory=dict)
    where: str = ""  # "file:line", for error messages


def read_records(path: str | Path, *, id_field: str = "id", text_field: str = "text",
                 check_unique: bool = True) -> Iterator[Record]:
    """Yield records from a .jsonl(.gz), .tsv(.gz) file or a folder of .txt files.

    Extra fields are kept in ``meta``. Raises :class:`InputError` on the first bad record,
    naming file and line.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(Errors.E004.format(path=path, reason="no such file or folder"))
    if path.is_dir():
        records = _read_txt_folder(path)
    else:
        suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
        kind = suffixes[-1] if suffixes else ""
        if kind in (".jsonl", ".json", ".ndjson"):
            records = _read_jsonl(path, id_field, text_field)
        elif kind in (".tsv", ".tab"):
            records = _read_tsv(path, id_field, text_field)
        elif kind == ".txt":
            records = _read_txt_file(path)
        else:
            raise InputError(Errors.E004.format(path=path,
                                                reason=f"unknown file type {kind or '(none)'!r}"))
    seen: dict[str, str] = {}
    for record in records:
        if check_unique:
            if record.id in seen:
                raise InputError(Errors.E005.format(where=record.where, id=record.id,
                                                    first=seen[record.id]))
            seen[record.id] = record.where
        yield record


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    return iter_lines(path, lambda where, reason: InputError(
        Errors.E004.format(path=where, reason=reason)))


def _read_jsonl(path: Path, id_field: str, text_field: str) -> Iterator[Record]:
    for where, obj in iter_json_lines(path, _lines(path)):
        if not isinstance(obj, dict):
            raise InputError(Errors.E001.format(where=where,
                                                reason=f"a {type(obj).__name__}, not an object"))
        yield _make_record(obj, where, id_field, text_field)


def _read_tsv(path: Path, id_field: str, text_field: str) -> Iterator[Record]:
    rows = _lines(path)
    try:
        _, header_line = next(rows)
    except StopIteration:
        return
    header = header_line.rstrip("\r\n").split("\t")
    for lineno, line in rows:
        if not line.strip():
            continue
        values = line.rstrip("\r\n").split("\t")
        where = f"{path}:{lineno}"
        if len(values) != len(header):
            raise InputError(Errors.E006.format(where=where, expected=len(header),
                                                found=len(values)))
        yield _make_record(dict(zip(header, values)), where, id_field, text_field)


def _make_record(obj: dict, where: str, id_field: str, text_field: str) -> Record:
    for fld, option in ((id_field, "id-field"), (text_field, "text-field")):
        if fld not in obj:
            raise InputError(Errors.E002.format(where=where, field=fld, option=option,
                                                available=", ".join(sorted(obj)) or "(none)"))
    text = obj[text_field]
    if text is not None and not isinstance(text, str):
        raise InputError(Errors.E058.format(
            what=f"{where}: field '{text_field}'", value=_short(text),
            expected="a string", fix="Fix the record, or pass the field that holds the text "
                                     "with --text-field."))
    if not isinstance(text, str) or not text.strip():
        raise InputError(Errors.E003.format(where=where, field=text_field))
    record_id = obj[id_field]
    if isinstance(record_id, (dict, list, bool)):
        raise InputError(Errors.E058.format(
            what=f"{where}: field '{id_field}'", value=_short(record_id),
            expected="a string or a number", fix="Fix the record, or pass the field that "
                                                 "holds the id with --id-field."))
    if record_id is None or (isinstance(record_id, str) and not record_id.strip()):
        raise InputError(Errors.E003.format(where=where, field=id_field))
    meta = {k: v for k, v in obj.items() if k not in (id_field, text_field)}
    return Record(str(record_id), text, meta, where)


def _short(value: object, limit: int = 60) -> object:
    """A value short enough to quote in a message."""
    text = repr(value)
    return value if len(text) <= limit else text[:limit] + "..."


def _read_txt_file(path: Path) -> Iterator[Record]:
    """A single .txt file: one record per non-empty line, id = line number."""
    for lineno, line in _lines(path):
        text = line.rstrip("\r\n")
        if text.strip():
            yield Record(str(lineno), text, {}, f"{path}:{lineno}")


def _read_txt_folder(folder: Path) -> Iterator[Record]:
    """A folder: one record per .txt file (recursive), id = path relative to the folder."""
    files = sorted(p for p in folder.rglob("*.txt") if p.is_file())
    if not files:
        raise InputError(Errors.E004.format(path=folder, reason="the folder has no .txt files"))
    for file in files:
        try:
            text = file.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(Errors.E004.format(path=file,
                                                reason=f"not UTF-8 text ({exc.reason})")) from exc
        except OSError as exc:
            raise InputError(Errors.E004.format(path=file, reason=exc.strerror)) from exc
        rel = file.relative_to(folder).with_suffix("").as_posix()
        if not text.strip():
            raise InputError(Errors.E003.format(where=f"{file}:1", field="text"))
        yield Record(rel, text, {}, f"{file}:1")
