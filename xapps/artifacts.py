"""Checksums of saved folders: the sha256 of every file, recorded at save time and checked at
load time, so damage (a flipped byte, a truncated copy) is reported naming the file instead
of loading silently or surfacing later as a confusing mismatch.

Two ways to record them, one way to check: a folder's cfg.json gets a ``files`` map
(fact-to-text generators, news recommenders, checkpoints), or a JSON record is *sealed*
(``files`` plus a checksum of the record itself: retrieval encoders and retrievers). Installed
models and indexes check through :func:`check_files` too. The folder walk is
:mod:`xapps.index.manifest`'s, so every artifact agrees on what a checksum covers.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable

from .checksums import sha256_file
from .errors import Errors, InputError, ModelError
from .index.manifest import checksum_folder

logger = logging.getLogger("xapps")

#: the key that maps relative file paths to sha256 hex digests
FILES_KEY = "files"
#: the key of a sealed record's checksum of itself
CHECKSUM_KEY = "checksum"

#: builds the error for a damaged artifact from the reason
Damaged = Callable[[str], Exception]
#: builds the error for one damaged file from (its relative path, what is wrong with it)
DamagedFile = Callable[[str, str], Exception]


def check_files(folder: str | os.PathLike, files: Any, damaged: DamagedFile,
                listed_in: str = "the record") -> None:
    """Every file ``files`` lists (relative path -> sha256) is under ``folder`` with that
    sha256; ``damaged(file, problem)`` builds the error for the first that is missing or
    differs (``file`` is ``listed_in`` itself when the list is not a map)."""
    if not isinstance(files, dict):
        raise damaged(listed_in, f"has '{FILES_KEY}' = {type(files).__name__}, not a map of "
                                 "file to sha256")
    folder = Path(folder)
    for name, expected in sorted(files.items()):
        file = folder / name
        if not file.is_file():
            raise damaged(name, f"is missing ({listed_in} lists it)")
        found = sha256_file(file)
        if found != expected:
            raise damaged(name, f"has sha256 {found[:16]}..., {listed_in} records "
                                f"{str(expected)[:16]}... (size now {file.stat().st_size:,} "
                                "bytes)")


def record_files(folder: str | os.PathLike, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """sha256 of every file under ``folder`` (sub-folders included) but ``exclude`` (the
    cfg.json that will hold them); call it on the finished folder, before writing cfg.json."""
    return {name: digest for name, digest in checksum_folder(folder).items()
            if name not in exclude}


def verify_files(folder: str | os.PathLike, cfg: dict[str, Any], *, what: str, remake: str,
                 cfg_name: str = "cfg.json") -> bool:
    """Check every file ``cfg`` lists against its sha256 (E235 names the first one that is
    missing or differs). A folder saved before checksums existed loads with a warning;
    returns whether the files were verified."""
    folder = Path(folder)
    files = cfg.get(FILES_KEY)
    if files is None:
        logger.warning("%s '%s' was saved without checksums (an older xapps), so damaged files "
                       "cannot be detected; re-create it with `%s` to add them", what, folder,
                       remake)
        return False

    def damaged(file: str, problem: str) -> ModelError:
        return ModelError(Errors.E235.format(what=what, path=folder, file=file,
                                             problem=problem, remake=remake))

    check_files(folder, files, damaged, listed_in=cfg_name)
    return True


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
    sealed = dict(record)
    sealed[FILES_KEY] = record_files(folder, exclude=exclude)
    sealed[CHECKSUM_KEY] = record_digest(sealed)
    return sealed


def read_record(file: Path, damaged: Damaged) -> dict[str, Any]:
    """The parsed, self-checked JSON record in ``file``; ``damaged(reason)`` builds the error
    for a file that is unreadable, not JSON, not an object, or changed since it was written.
    Records written before checksums existed (no checksum field) are accepted as they are."""
    try:
        record = json.loads(file.read_bytes().decode("utf-8"))
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


def verify_record_files(record: dict[str, Any], folder: Path, damaged: Damaged) -> None:
    """Every file a sealed record lists is under ``folder`` with its recorded sha256."""
    check_files(folder, record.get(FILES_KEY) or {},
                lambda file, problem: damaged(f"'{file}' {problem}"), listed_in="the record")


def read_cfg(folder: str | os.PathLike, error: Callable[[str], Exception],
             cfg_name: str = "cfg.json") -> dict[str, Any]:
    """The JSON object in ``folder/cfg_name``; ``error(reason)`` builds the exception for a
    missing, unreadable or malformed one."""
    path = Path(folder) / cfg_name
    if not Path(folder).is_dir():
        raise error("no such folder" if not Path(folder).exists() else "it is a file, not a "
                    "folder")
    if not path.is_file():
        raise error(f"it has no {cfg_name}")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{cfg_name} cannot be read ({exc})") from None
    if not isinstance(cfg, dict):
        raise error(f"{cfg_name} holds a JSON {type(cfg).__name__}, not an object")
    return cfg


def read_component_cfg(folder: str | os.PathLike, factory: str, *, cfg_name: str = "cfg.json",
                       known: Iterable[str] | None = None,
                       error_type: type[Exception] = InputError) -> dict[str, Any]:
    """The cfg.json of a spaCy component saved with ``to_disk``; E145 names the folder and
    what is wrong (missing, not UTF-8 JSON, not an object, settings this version does not
    know when ``known`` is given)."""
    def error(reason: str) -> Exception:
        return error_type(Errors.E145.format(path=folder, factory=factory, reason=reason))

    cfg = read_cfg(folder, error, cfg_name)
    unknown = sorted(set(cfg) - set(known)) if known is not None else []
    if unknown:
        raise error(f"{cfg_name} holds settings this version does not know: {unknown}")
    return cfg


__all__ = ["CHECKSUM_KEY", "FILES_KEY", "check_files", "read_cfg", "read_component_cfg",
           "read_record",
           "record_digest", "record_files", "seal", "verify_files", "verify_record_files"]
