"""Checksums for the JSON records of saved retrieval artifacts (``colbert.json``,
``retriever.json``): each record lists the sha256 of the files beside it and carries a
checksum of its own content, so a truncated, flipped or partly copied file is reported as
damage, naming the file, instead of surfacing later as a confusing mismatch."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from ..checksums import sha256_file

CHECKSUM_KEY = "checksum"
FILES_KEY = "files"


def record_digest(record: dict[str, Any]) -> str:
    """sha256 of a record's canonical JSON, its own checksum field left out.

    >>> record_digest({"b": 1, "a": [2]}) == record_digest({"a": [2], "b": 1, "checksum": "x"})
    True
    """
    body = {k: v for k, v in record.items() if k != CHECKSUM_KEY}
    text = json.dumps(body, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal(record: dict[str, Any], folder: Path, *, exclude: tuple[str, ...] = ()) -> dict:
    """``record`` with the sha256 of every file under ``folder`` (but ``exclude``, relative
    POSIX paths) and its own checksum added."""
    files = {p.relative_to(folder).as_posix(): sha256_file(p)
             for p in sorted(folder.rglob("*")) if p.is_file()}
    sealed = dict(record)
    sealed[FILES_KEY] = {k: v for k, v in files.items() if k not in exclude}
    sealed[CHECKSUM_KEY] = record_digest(sealed)
    return sealed


def read_record(file: Path, damaged: Callable[[str], Exception]) -> dict[str, Any]:
    """The parsed, self-checked JSON record in ``file``; ``damaged(reason)`` builds the error
    for a file that is unreadable, not JSON, not an object, or changed since it was written.
    Records written before checksums existed (no checksum field) are accepted as they are."""
    try:
        text = file.read_bytes().decode("utf-8")
        record = json.loads(text)
    except UnicodeDecodeError as exc:
        raise damaged(f"'{file.name}' is not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise damaged(f"'{file.name}' is not valid JSON ({exc.msg} at line {exc.lineno}; "
                      f"truncated or overwritten?)") from None
    except OSError as exc:
        raise damaged(f"'{file.name}' cannot be read ({exc.strerror or exc})") from None
    if not isinstance(record, dict):
        raise damaged(f"'{file.name}' holds a JSON {type(record).__name__}, not an object")
    saved = record.get(CHECKSUM_KEY)
    if saved is not None and saved != record_digest(record):
        raise damaged(f"'{file.name}' was changed after it was written (its checksum "
                      f"{str(saved)[:12]} does not match its content)")
    return record


def verify_files(record: dict[str, Any], folder: Path,
                 damaged: Callable[[str], Exception]) -> None:
    """Every file the record lists is present under ``folder`` with its recorded sha256."""
    files = record.get(FILES_KEY) or {}
    if not isinstance(files, dict):
        raise damaged(f"its file list is a {type(files).__name__}, not an object")
    for name, expected in sorted(files.items()):
        path = folder / name
        if not path.is_file():
            raise damaged(f"'{name}' is missing")
        found = sha256_file(path)
        if found != expected:
            raise damaged(f"'{name}' has sha256 {found[:12]}, the record lists "
                          f"{str(expected)[:12]}")
