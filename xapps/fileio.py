"""Reading text files line by line with precise errors, and writing files atomically.

Shared by every reader and writer of user files, so that a decode error always names the
right line and a failed write never leaves a half-written file.
"""
from __future__ import annotations

import errno
import gzip
import json
import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .errors import Errors, InputError

#: Builds the exception for (where, reason); each caller words its own message.
ErrorFactory = Callable[[str, str], Exception]


def iter_lines(path: Path, error: ErrorFactory) -> Iterator[tuple[int, str]]:
    """(line number, decoded line) of a UTF-8 file, gzipped or not; decoding per line so an
    error names the right line."""
    try:
        fh = gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")
    except OSError as exc:
        raise error(str(path), exc.strerror or str(exc)) from exc
    with fh:
        lineno = 0
        try:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise error(f"{path}:{lineno}", f"not UTF-8 text ({exc.reason})") from exc
        except (OSError, EOFError) as exc:  # a truncated .gz, a read error
            raise error(f"{path}:{lineno + 1}", str(exc)) from exc


def iter_json_lines(path: str | os.PathLike[str],
                    lines: Iterable[tuple[int, str]]) -> Iterator[tuple[str, Any]]:
    """("file:line", parsed object) for each non-blank JSON line; E001 names a bad line."""
    for lineno, line in lines:
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(Errors.E001.format(where=where, reason=exc.msg)) from None


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text through :func:`atomic_file`, synced to disk before the rename."""
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def ensure_writable(path: str | os.PathLike[str], *, fix: str = "Pass a path in a folder you "
                    "can write to.") -> Path:
    """Fail before any work if ``path`` (a file or folder to be written) cannot be created.

    Probes the path itself when it is an existing folder, else its nearest existing parent,
    by creating and removing a hidden file: permission bits alone do not tell (root ignores
    them; read-only mounts and immutable folders do not show in them). Creates nothing that
    stays behind. Raises E068 naming the path and the reason.
    """
    path = Path(path)
    probe_dir = path if path.is_dir() else path.parent
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    if path.exists() and not path.is_dir() and not os.access(path, os.W_OK):
        _unwritable(path, "the file is read-only", fix)
    if not probe_dir.is_dir():
        _unwritable(path, f"'{probe_dir}' is a file, not a folder", fix)
    probe = probe_dir / f".xapps-write-probe-{uuid.uuid4().hex[:12]}"
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        reason = {errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
                  errno.ENOSPC: "no space left on the device"}.get(exc.errno,
                                                                   exc.strerror or str(exc))
        _unwritable(path, f"{reason} in '{probe_dir}'", fix)
    return path


def _unwritable(path: Path, reason: str, fix: str):
    raise InputError(Errors.E068.format(path=path, reason=reason, fix=fix))
