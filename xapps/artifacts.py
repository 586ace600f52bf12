"""sha256 of the files of a saved model folder (fact-to-text generators, news recommenders),
recorded in its cfg.json at save time and checked at load time.

Indexes, knowledge bases and re-rankers already carry checksums; these folders hold trained
weights too, and flipped bytes in a safetensors file load silently and change every output.
The hashing and folder walk are :mod:`xapps.index.manifest`'s, so all saved artifacts agree
on what a checksum covers (every file of the folder but the manifest itself).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from .checksums import sha256_file
from .errors import Errors, ModelError
from .index.manifest import checksum_folder

logger = logging.getLogger("xapps")

#: the cfg.json key that maps relative file paths to sha256 hex digests
FILES_KEY = "files"


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
    if not isinstance(files, dict):
        raise ModelError(Errors.E235.format(
            what=what, path=folder, file=cfg_name, remake=remake,
            problem=f"has '{FILES_KEY}' = {type(files).__name__}, not a map of file to sha256"))
    for name, expected in sorted(files.items()):
        file = folder / name
        if not file.is_file():
            problem = f"is missing ({cfg_name} lists it)"
        else:
            found = sha256_file(file)
            if found == expected:
                continue
            problem = (f"has sha256 {found[:16]}..., {cfg_name} records "
                       f"{str(expected)[:16]}... (size now {file.stat().st_size:,} bytes)")
        raise ModelError(Errors.E235.format(what=what, path=folder, file=name, problem=problem,
                                            remake=remake))
    return True


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


__all__ = ["FILES_KEY", "read_cfg", "record_files", "verify_files"]
