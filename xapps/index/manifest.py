"""The JSON manifest that travels with every saved index, and the atomic folder write.

An index folder is only trusted through its manifest: it records what the vectors mean
(dimension, metric, backbone) so a later load can refuse vectors from another model instead
of returning silently wrong neighbours, and it records file checksums so a partly copied
index is caught before it is searched.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..checksums import sha256_file
from ..errors import Errors, IndexMismatchError, InputError
from ..fileio import ensure_writable

logger = logging.getLogger("xapps")

MANIFEST_NAME = "manifest.json"
#: Bumped when the folder layout changes in a way older readers cannot handle.
FORMAT_VERSION = 1
METRICS = ("cosine", "ip")


def _xapps_version() -> str:
    from .. import __version__

    return __version__


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def normalize_backbone(backbone: Any) -> dict[str, str | None] | None:
    """Reduce the ways a caller names a backbone (a name, a mapping, an object with ``name``
    and ``sha256``) to the ``{"name", "sha256"}`` form the manifest stores."""
    if backbone is None:
        return None
    if isinstance(backbone, str):
        return {"name": backbone, "sha256": None}
    if isinstance(backbone, Mapping):
        name, sha = backbone.get("name"), backbone.get("sha256")
    else:
        name, sha = getattr(backbone, "name", None), getattr(backbone, "sha256", None)
    if not isinstance(name, str) or not name:
        raise InputError(Errors.E019.format(
            method="backbone", what=repr(backbone), reason="it has no non-empty 'name'",
            fix="Pass a backbone name such as 'me5-small' or a dict {'name': ..., 'sha256': ...}."))
    return {"name": name, "sha256": str(sha) if sha else None}


@dataclass
class IndexManifest:
    """What a saved index holds and how it was built; written as ``manifest.json``."""

    kind: str
    dim: int
    metric: str
    normalized: bool
    index_type: str
    params: dict[str, Any] = field(default_factory=dict)
    backbone: dict[str, str | None] | None = None
    count: int = 0
    xapps_version: str = field(default_factory=_xapps_version)
    files: dict[str, str] = field(default_factory=dict)
    created_at: str = field(default_factory=utc_now)
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, path: str | os.PathLike[str] = MANIFEST_NAME) -> IndexManifest:
        if not isinstance(data, dict):
            raise _e011(path, f"the manifest is a JSON {type(data).__name__}, not an object")
        known = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(n for n in ("kind", "dim", "metric", "normalized", "index_type")
                         if n not in data)
        if missing:
            raise _e011(path, f"the manifest lacks {', '.join(missing)}")
        unknown = sorted(set(data) - known)
        if unknown:
            logger.debug("Manifest at %s has fields this xapps does not know: %s", path, unknown)
        manifest = cls(**{k: v for k, v in data.items() if k in known})
        manifest.validate(path)
        return manifest

    @classmethod
    def from_json(cls, text: str, path: str | os.PathLike[str] = MANIFEST_NAME) -> IndexManifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise _e011(path, f"manifest.json is not valid JSON ({err})") from None
        return cls.from_dict(data, path)

    def validate(self, path: str | os.PathLike[str] = MANIFEST_NAME) -> None:
        """Reject a manifest whose fields cannot describe a usable index."""
        problems = []
        if not isinstance(self.kind, str) or not self.kind:
            problems.append(f"kind={self.kind!r} is not a non-empty string")
        if not _is_int(self.dim) or self.dim < 1:
            problems.append(f"dim={self.dim!r} is not a positive integer")
        if self.metric not in METRICS:
            problems.append(f"metric={self.metric!r} is not one of {list(METRICS)}")
        if not isinstance(self.normalized, bool):
            problems.append(f"normalized={self.normalized!r} is not true/false")
        if not isinstance(self.index_type, str) or not self.index_type:
            problems.append(f"index_type={self.index_type!r} is not a non-empty string")
        if not isinstance(self.params, dict) or not isinstance(self.extra, dict):
            problems.append("params and extra must be JSON objects")
        if not _is_int(self.count) or self.count < 0:
            problems.append(f"count={self.count!r} is not a non-negative integer")
        if self.backbone is not None and not (
                isinstance(self.backbone, dict) and isinstance(self.backbone.get("name"), str)):
            problems.append(f"backbone={self.backbone!r} is not null or {{'name', 'sha256'}}")
        if not isinstance(self.files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) and len(v) == 64
                for k, v in self.files.items()):
            problems.append("files must map file names to sha256 hex digests")
        if not _is_int(self.format_version) or self.format_version > FORMAT_VERSION:
            problems.append(f"format_version={self.format_version!r} is newer than this xapps "
                            f"reads ({FORMAT_VERSION}); upgrade xapps")
        if problems:
            raise _e011(path, "; ".join(problems))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _e011(path: str | os.PathLike[str], reason: str) -> IndexMismatchError:
    return IndexMismatchError(Errors.E011.format(path=path, reason=reason))


def checksum_folder(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Checksums of every file under ``folder`` but the manifest, keyed by POSIX relative path
    (sub-folders allowed, so a multi-vector index may keep its shards in one)."""
    root = Path(folder)
    return {p.relative_to(root).as_posix(): sha256_file(p)
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST_NAME}


def read_manifest(path: str | os.PathLike[str]) -> IndexManifest:
    """The validated manifest of the index folder ``path``."""
    folder = Path(path)
    if not folder.is_dir():
        raise _e011(path, "no such folder" if not folder.exists() else "it is a file, not a "
                    "folder")
    file = folder / MANIFEST_NAME
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _e011(path, f"it has no {MANIFEST_NAME}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise _e011(path, f"{MANIFEST_NAME} cannot be read ({err})") from None
    return IndexManifest.from_json(text, path)


def write_manifest(manifest: IndexManifest, folder: str | os.PathLike[str]) -> Path:
    file = Path(folder) / MANIFEST_NAME
    file.write_text(manifest.to_json(), encoding="utf-8")
    return file


def verify_files(manifest: IndexManifest, path: str | os.PathLike[str]) -> None:
    """Raise E012 if any file the manifest lists is missing or differs from its checksum."""
    folder = Path(path)
    for name, expected in sorted(manifest.files.items()):
        file = folder / name
        found = sha256_file(file) if file.is_file() else "<missing>"
        if found != expected:
            raise IndexMismatchError(Errors.E012.format(file=name, path=path, found=found,
                                                        expected=expected))


def check_compatible(manifest: IndexManifest, backbone: Any = None, dim: int | None = None, *,
                     path: str | os.PathLike[str] = "<index>") -> None:
    """Refuse to use an index with vectors from another backbone or of another size: the
    search would run and return plausible but wrong neighbours."""
    given = normalize_backbone(backbone)
    saved = manifest.backbone
    if given is not None:
        if saved is None:
            logger.warning("Index at %s records no backbone, so it cannot be checked against "
                           "%r; make sure it was built with that backbone", path, given["name"])
        elif saved.get("sha256") and given.get("sha256"):
            # Same weights under another name or path (a copied model folder) are fine.
            if saved["sha256"] != given["sha256"]:
                raise IndexMismatchError(Errors.E010.format(
                    path=path, field="backbone", saved=f"{saved.get('name')} "
                    f"(sha256 {saved['sha256'][:12]})", current=f"{given['name']} "
                    f"(sha256 {given['sha256'][:12]})"))
        elif saved.get("name") != given["name"]:
            raise IndexMismatchError(Errors.E010.format(
                path=path, field="backbone", saved=saved.get("name"), current=given["name"]))
    if dim is not None and int(dim) != manifest.dim:
        raise IndexMismatchError(Errors.E010.format(path=path, field="dim", saved=manifest.dim,
                                                    current=int(dim)))


def _fsync_path(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # some platforms cannot open folders; the data files are what matter
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for p in sorted(root.rglob("*"), reverse=True):
        _fsync_path(p)
    _fsync_path(root)


def check_replaceable(folder: str | os.PathLike[str], marker: str, what: str) -> None:
    """Refuse (E227) a save target that :func:`atomic_directory` would wrongly replace: a file,
    or a non-empty folder without ``marker`` (so not an earlier ``what``). Call it before any
    work, so a wrong --out costs nothing and never deletes a user's folder."""
    path = Path(folder)
    reason = None
    if path.is_file() or (path.is_symlink() and not path.is_dir()):
        reason = "it is a file"
    elif path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        reason = f"it is a non-empty folder without {marker}"
    if reason:
        raise InputError(Errors.E227.format(what=what, path=path, reason=reason))
    if path.exists():
        # Replacing renames the old folder aside in its parent: that parent must be writable
        # too, or the rename fails at the very end, after all the work.
        ensure_writable(path.parent, fix=f"Pass a new --out folder in a location you can "
                                         f"write to; replacing '{path.name}' needs its parent "
                                         "folder to be writable.")


@contextmanager
def atomic_directory(final_path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty sibling folder to write into; on success move it to ``final_path``.

    Readers never see a half-written index: on an exception the temp folder is deleted and
    an existing folder at ``final_path`` is left untouched; on success the old folder is
    renamed aside, the new one renamed in, and only then the old one deleted. (POSIX has no
    atomic swap of two non-empty folders, so between the two renames ``final_path`` is briefly
    absent; a crash exactly there leaves the old index beside it as ``.<name>.old-*``.)
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    tmp = final.parent / f".{final.name}.tmp-{tag}"
    tmp.mkdir()  # plain mkdir (not mkdtemp) so the folder gets the usual umask permissions
    try:
        yield tmp
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f".{final.name}.old-{tag}"
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_path(final.parent)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
