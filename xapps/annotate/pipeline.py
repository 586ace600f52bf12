"""The pipeline a batch job runs: found or assembled once, loaded once per worker, and
described (provenance) in every output record.

A ``.cfg`` is assembled and initialised once by the driver and saved inside the job's output
folder, so every worker (local process or Ray actor) loads the same initialised pipeline
instead of re-indexing a knowledge base each.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..errors import Errors, InputError

logger = logging.getLogger("xapps")

ASSEMBLED_DIR = "pipeline"


def _parse_value(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["components.xmen_linker.kb=kb.jsonl", "nlp.batch_size=64"]`` -> config overrides
    (values parsed as JSON when they are JSON, else kept as strings)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or "." not in key:
            raise InputError(Errors.E186.format(
                what="--set", value=pair, reason="expected SECTION.KEY=VALUE",
                fix="Write e.g. --set components.xmen_linker.kb=kb.jsonl"))
        out[key.strip()] = _parse_value(value)
    return out


def fingerprint(path: Path) -> str:
    """sha256 over the files of a saved pipeline (names and contents): a resumed job checks
    that the pipeline did not change in between."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.relative_to(path if path.is_dir() else path.parent).as_posix().encode())
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def pipeline_fingerprint(pipeline: str | os.PathLike,
                         overrides: dict[str, Any] | None = None) -> tuple[str, str]:
    """(resolved path, sha256) of what a job runs, checked and computed without writing:
    a saved pipeline's files, or a .cfg's text with the overrides (assembled later)."""
    path = Path(pipeline)
    _check_source(path, overrides)
    if path.is_dir():
        return os.fspath(path.resolve()), fingerprint(path)
    return os.fspath(path.resolve()), _cfg_stamp(path, overrides)


def _cfg_stamp(path: Path, overrides: dict[str, Any] | None) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(Errors.E185.format(path=path, reason=f"unreadable ({exc})")) from exc
    return hashlib.sha256((text + json.dumps(overrides or {}, sort_keys=True)).encode()
                          ).hexdigest()


def _check_source(path: Path, overrides: dict[str, Any] | None) -> None:
    if path.is_dir():
        if not (path / "config.cfg").is_file():
            raise InputError(Errors.E185.format(path=path, reason="it has no config.cfg"))
        if overrides:
            raise InputError(Errors.E186.format(
                what="--set", value=", ".join(overrides), reason="overrides apply to a .cfg",
                fix="Assemble from the .cfg with the overrides, or drop --set."))
        return
    if not path.is_file() or path.suffix != ".cfg":
        raise InputError(Errors.E185.format(path=path, reason="no such folder or .cfg file"))


def resolve_pipeline(pipeline: str | os.PathLike, out_dir: Path,
                     overrides: dict[str, Any] | None = None) -> Path:
    """The folder every worker loads: ``pipeline`` itself when it is a saved pipeline, else
    the ``.cfg`` assembled, initialised and saved under ``out_dir/pipeline`` (reused on
    resume when the config and overrides are unchanged)."""
    path = Path(pipeline)
    _check_source(path, overrides)
    if path.is_dir():
        return path
    target = out_dir / ASSEMBLED_DIR
    stamp = _cfg_stamp(path, overrides)
    stamp_file = target / "xapps_assembled_from.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text())["sha256"] == stamp:
        return target
    nlp = assemble(path, overrides or {})
    tmp = out_dir / f".{ASSEMBLED_DIR}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        nlp.to_disk(tmp)
        (tmp / stamp_file.name).write_text(json.dumps({"config": str(path.resolve()),
                                                       "sha256": stamp}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("Assembled %s into %s", path, target)
    return target


def assemble(config_path: Path, overrides: dict[str, Any]):
    from spacy.util import load_config, load_model_from_config

    from .. import factories  # noqa: F401  (registers the xapps factories)

    try:
        config = load_config(config_path, overrides=overrides, interpolate=False)
        nlp = load_model_from_config(config, auto_fill=True)
        nlp.initialize()
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - spaCy raises many types for a bad config
        raise InputError(Errors.E185.format(path=config_path,
                                            reason=f"{type(exc).__name__}: {exc}")) from exc
    return nlp


def load_pipeline(path: Path):
    import spacy

    from .. import factories  # noqa: F401

    try:
        return spacy.load(path)
    except Exception as exc:  # noqa: BLE001
        raise InputError(Errors.E185.format(path=path,
                                            reason=f"{type(exc).__name__}: {exc}")) from exc


# ----------------------------------------------------------------------------- provenance
def _walk(obj: Any, found: dict[str, dict], seen: set[int], depth: int) -> None:
    """Collect backbones, knowledge bases and indexes reachable from a component."""
    from ..backbone import Backbone
    from ..index.base import VectorIndex
    from ..linking.kb import KnowledgeBase

    if depth > 6 or id(obj) in seen or obj is None:
        return
    seen.add(id(obj))
    if isinstance(obj, Backbone):
        found["models"][obj.name] = {"name": obj.name, "sha256": obj.sha256}
        return
    if isinstance(obj, KnowledgeBase):
        found["kbs"][obj.name] = {"name": obj.name, "sha256": obj.sha256,
                                  "concepts": len(obj)}
        return
    if isinstance(obj, VectorIndex):
        manifest = obj.manifest
        found["indexes"].append({"kind": manifest.kind, "index_type": manifest.index_type,
                                 "count": manifest.count,
                                 "format_version": manifest.format_version,
                                 "created_at": manifest.created_at,
                                 "backbone": manifest.backbone})
        return
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, (list, tuple)):
        children = list(obj)
    elif type(obj).__module__.startswith("xapps."):
        children = list(vars(obj).values()) if hasattr(obj, "__dict__") else []
    else:
        return
    for child in children:
        _walk(child, found, seen, depth + 1)


def provenance(nlp, pipeline_path: Path) -> dict:
    """Pipeline name and config hash, the models (name + weights sha256), knowledge bases
    and indexes its components use, and the xapps/spaCy versions."""
    import spacy

    from .. import __version__

    found: dict[str, Any] = {"models": {}, "kbs": {}, "indexes": []}
    seen: set[int] = set()
    for name, component in nlp.pipeline:
        _walk(component, found, seen, 0)
    config_sha = hashlib.sha256(nlp.config.to_str().encode()).hexdigest()
    return {"pipeline": f"{nlp.meta.get('name', 'pipeline')} ({pipeline_path.name})",
            "components": list(nlp.pipe_names), "config_sha256": config_sha,
            "models": sorted(found["models"].values(), key=lambda m: m["name"]),
            "kb": ",".join(sorted(found["kbs"])) or None,
            "kbs": sorted(found["kbs"].values(), key=lambda k: k["name"]),
            "indexes": found["indexes"], "xapps": __version__, "spacy": spacy.__version__}


def concept_names(nlp):
    """A lookup concept id -> canonical name over the KBs of the pipeline's linkers."""
    kbs = [comp.kb for _, comp in nlp.pipeline if getattr(comp, "kb", None) is not None]

    def lookup(concept_id: str) -> str | None:
        for kb in kbs:
            if concept_id in kb:
                return kb[concept_id].canonical_name
        return None

    return lookup
