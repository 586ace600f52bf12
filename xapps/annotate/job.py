"""A batch annotation job: records streamed from the inputs into fixed shards, each shard
annotated by a worker and written atomically, a manifest of completed shards, resume.

Output folder::

    manifest.json        the job's settings, provenance and every completed shard
    shards/FFFFF-SSSSSS.<fmt>   the annotated records of shard S of input file F, in input order
    errors/FFFFF-SSSSSS.jsonl   the records of that shard that were skipped, with the reason
    summary.json         written when the job finishes
    pipeline/            the assembled pipeline, when --pipeline was a .cfg

A shard is the ``shard_size`` consecutive records (good or bad) of one input file, so its
contents depend only on the inputs. A shard's files are renamed into place before the
manifest lists it; a killed job re-run with the same arguments skips the listed shards and
redoes the rest, so every input record ends up exactly once in ``shards/`` or ``errors/``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import Errors, InputError
from ..checksums import sha256_file
from ..fileio import atomic_file, atomic_write_text, ensure_writable
from ..joblock import OutputLock
from .output import OUTPUT_FORMATS, SUFFIXES, ShardWriter, doc_record
from .records import (
    BadRecord,
    InputRecord,
    Item,
    ReadOptions,
    count_items,
    describe_inputs,
    expand_inputs,
    input_format,
    read_items,
)

logger = logging.getLogger("xapps")

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
SHARDS_DIR = "shards"
ERRORS_DIR = "errors"
ENGINES = ("local", "ray")
MANIFEST_VERSION = 1


@dataclass
class JobConfig:
    """Everything that decides a job's output; the parts marked in :meth:`settings` must
    match for a re-run to resume instead of starting over."""

    pipeline: str
    inputs: list[str]
    output: str
    format: str = "jsonl"
    batch_size: int = 64
    shard_size: int = 1000
    n_process: int | None = None
    engine: str = "local"
    ray_address: str | None = None
    read: ReadOptions = field(default_factory=ReadOptions)
    overrides: dict[str, Any] = field(default_factory=dict)
    detect_lang: bool = True
    code: list[str] = field(default_factory=list)
    overwrite: bool = False
    allow_empty: bool = False
    progress: bool = True

    def validate(self) -> None:
        checks = [("--format", self.format, self.format in OUTPUT_FORMATS,
                   f"Use one of {', '.join(OUTPUT_FORMATS)}."),
                  ("--engine", self.engine, self.engine in ENGINES, "Use local or ray."),
                  ("--batch-size", self.batch_size, self.batch_size >= 1, "Pass 1 or more."),
                  ("--shard-size", self.shard_size, self.shard_size >= 1, "Pass 1 or more."),
                  ("--n-process", self.n_process,
                   self.n_process is None or self.n_process >= 1, "Pass 1 or more."),
                  ("--max-chars", self.read.max_chars, self.read.max_chars >= 1,
                   "Pass 1 or more.")]
        for what, value, ok, fix in checks:
            if not ok:
                raise InputError(Errors.E186.format(what=what, value=value,
                                                    reason="out of range or unknown", fix=fix))
        if not self.inputs:
            raise InputError(Errors.E183.format(input="(none)", reason="no input was given",
                                                fix="Pass --input PATH (repeatable; globs)."))


@dataclass
class Shard:
    name: str
    items: list[Item]

    @property
    def size(self) -> int:
        return len(self.items)


@dataclass
class WorkerSettings:
    """What a worker needs besides the shard: plain data, so it pickles to processes and
    Ray actors."""

    pipeline_path: str
    output: str
    format: str
    batch_size: int
    detect_lang: bool
    code: list[str] = field(default_factory=list)
    threads: int | None = None
    device: int | None = None


def shard_name(file_index: int, shard_index: int) -> str:
    return f"{file_index:05d}-{shard_index:06d}"


def plan_shards(paths: list[Path], options: ReadOptions, shard_size: int) -> Iterator[Shard]:
    """Shards of ``shard_size`` consecutive items per input file, streamed.

    A record whose id was already seen (in any input) becomes a bad record naming the first
    one: two output records with one id would break every consumer that joins on ids. All
    inputs are read in the same order on every run, so a resumed job decides the same.
    """
    first_seen: dict[str, str] = {}
    for file_index, path in enumerate(paths):
        buffer: list[Item] = []
        k = 0
        for item in read_items(path, options):
            if isinstance(item, InputRecord):
                first = first_seen.setdefault(item.id, item.where)
                if first != item.where:
                    item = BadRecord(item.where, f"duplicate id {item.id!r} (first seen at "
                                                 f"{first}); ids must be unique in a job",
                                     item.id)
            buffer.append(item)
            if len(buffer) == shard_size:
                yield Shard(shard_name(file_index, k), buffer)
                k, buffer = k + 1, []
        if buffer:
            yield Shard(shard_name(file_index, k), buffer)


# ------------------------------------------------------------------------------ manifest
class Manifest:
    """The job's record of itself; rewritten atomically after every completed shard."""

    def __init__(self, out_dir: Path, settings: dict) -> None:
        self.path = out_dir / MANIFEST
        self.data: dict[str, Any] = {"version": MANIFEST_VERSION, "settings": settings,
                                     "provenance": None, "shards": {}}

    @classmethod
    def open(cls, out_dir: Path, settings: dict, overwrite: bool) -> "Manifest":
        manifest = cls(out_dir, settings)
        old = _read_json(manifest.path) if manifest.path.is_file() and not overwrite else None
        if old is not None and old.get("shards") and old.get("settings") != settings:
            raise InputError(Errors.E184.format(
                path=out_dir, diff=_settings_diff(old.get("settings") or {}, settings),
                done=len(old["shards"])))
        if old is not None and old.get("shards"):
            manifest.data = old
        elif overwrite:
            for sub in (SHARDS_DIR, ERRORS_DIR):
                shutil.rmtree(out_dir / sub, ignore_errors=True)
            for name in (MANIFEST, SUMMARY):
                (out_dir / name).unlink(missing_ok=True)
        elif old is None and out_dir.is_dir() and any(
                p.name not in ("pipeline", SHARDS_DIR, ERRORS_DIR) and not p.name.startswith(".")
                for p in out_dir.iterdir()):
            raise InputError(Errors.E186.format(
                what="--output", value=str(out_dir),
                reason="the folder exists, is not empty and holds no job manifest",
                fix="Choose a new or empty folder."))
        # a manifest with no completed shard has nothing to resume: it is simply replaced
        return manifest

    def drop_unlisted(self) -> None:
        """Remove shard and error files no completed shard lists (a killed run's last
        writes), so the folder holds exactly what the manifest says."""
        listed = {entry.get(key) for entry in self.done.values()
                  for key in ("output", "errors_file")}
        folder = self.path.parent
        for sub in (SHARDS_DIR, ERRORS_DIR):
            for path in (folder / sub).glob("*") if (folder / sub).is_dir() else []:
                if path.is_file() and f"{sub}/{path.name}" not in listed:
                    path.unlink(missing_ok=True)

    @property
    def done(self) -> dict[str, dict]:
        return self.data["shards"]

    def complete(self, name: str, stats: dict) -> None:
        self.data["shards"][name] = stats
        if self.data.get("provenance") is None and stats.get("provenance"):
            self.data["provenance"] = stats["provenance"]
        stats.pop("provenance", None)
        self.save()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, ensure_ascii=False))


# ------------------------------------------------------------------------ one shard's work
class ShardAnnotator:
    """Loads the pipeline once and annotates shards with it (one per worker)."""

    def __init__(self, settings: WorkerSettings) -> None:
        from .pipeline import concept_names, load_pipeline

        self.settings = settings
        import_code(settings.code)
        if settings.threads:
            import torch

            torch.set_num_threads(settings.threads)
        path = Path(settings.pipeline_path)
        self.nlp = load_pipeline(path)
        self.nlp.max_length = max(self.nlp.max_length, 10_000_000)
        self._pipeline_path = path
        # taken after the first batch: components load their models lazily, and before
        # that an encoder pipeline would record no models
        self.provenance: dict | None = None
        self.kb_names = concept_names(self.nlp)
        self._detector = None

    def _provenance(self) -> dict:
        from .pipeline import provenance

        return provenance(self.nlp, self._pipeline_path)

    def _langs(self, records: list[InputRecord]) -> list[str | None]:
        langs = [r.lang for r in records]
        missing = [i for i, lang in enumerate(langs) if lang is None]
        if missing and self.settings.detect_lang:
            if self._detector is None:
                from ..langid import default_identifier

                self._detector = default_identifier()
            for i, lang in zip(missing, self._detector.detect([records[i].text
                                                               for i in missing])):
                langs[i] = lang
        return langs

    def _doc(self, record: InputRecord):
        from spacy.tokens import Doc

        if record.doc_bytes is not None:
            return Doc(self.nlp.vocab).from_bytes(record.doc_bytes)
        return self.nlp.make_doc(record.text)

    def _run(self, records: list[InputRecord]) -> list[Any]:
        """Annotated Docs, one per record; an exception instead for a record the pipeline
        fails on (the batch is retried one record at a time to find it)."""
        try:
            return list(self.nlp.pipe([self._doc(r) for r in records],
                                      batch_size=len(records)))
        except Exception:  # noqa: BLE001 - isolate the failing record(s)
            if len(records) == 1:
                raise
        out: list[Any] = []
        for record in records:
            try:
                out.extend(self.nlp.pipe([self._doc(record)], batch_size=1))
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out

    def annotate(self, shard: Shard) -> dict:
        """Annotate one shard, write its output and errors files, return its stats."""
        from spacy.util import minibatch

        out_dir = Path(self.settings.output)
        fmt = self.settings.format
        records = [item for item in shard.items if isinstance(item, InputRecord)]
        bad: list[tuple[int, BadRecord]] = [(i, item) for i, item in enumerate(shard.items)
                                            if isinstance(item, BadRecord)]
        position = {id(r): i for i, r in enumerate(shard.items)}
        langs = dict(zip(map(id, records), self._langs(records)))
        started = time.perf_counter()
        written = n_ents = 0
        target = out_dir / SHARDS_DIR / f"{shard.name}{SUFFIXES[fmt]}"
        with atomic_file(target) as tmp:
            writer = ShardWriter(tmp, fmt)
            for batch in minibatch(records, size=self.settings.batch_size):
                t0 = time.perf_counter()
                docs = self._run(batch)
                if self.provenance is None:
                    self.provenance = self._provenance()
                timing = {"batch_ms": round(1000 * (time.perf_counter() - t0), 3),
                          "batch_records": len(batch)}
                for record, doc in zip(batch, docs):
                    if isinstance(doc, Exception):
                        bad.append((position[id(record)], BadRecord(
                            record.where, f"the pipeline failed on this record "
                                          f"({type(doc).__name__}: {doc})", record.id)))
                        continue
                    row = doc_record(doc, record_id=record.id, lang=langs[id(record)],
                                     meta=record.meta, provenance=self.provenance,
                                     timing=timing, kb_names=self.kb_names)
                    writer.write(doc, row)
                    written += 1
                    n_ents += len(row["ents"])
            writer.close()
        if self.provenance is None:
            self.provenance = self._provenance()
        errors_file = out_dir / ERRORS_DIR / f"{shard.name}.jsonl"
        if bad:
            bad.sort(key=lambda pair: pair[0])
            atomic_write_text(errors_file, "".join(
                json.dumps({**b.to_json(), "shard": shard.name}, ensure_ascii=False) + "\n"
                for _, b in bad))
        else:
            errors_file.unlink(missing_ok=True)
        return {"shard": shard.name, "records": written, "errors": len(bad),
                "entities": n_ents, "chars": sum(len(r.text) for r in records),
                "seconds": round(time.perf_counter() - started, 4),
                "output": f"{SHARDS_DIR}/{target.name}", "sha256": sha256_file(target),
                "errors_file": f"{ERRORS_DIR}/{errors_file.name}" if bad else None,
                "errors_sha256": sha256_file(errors_file) if bad else None,
                "provenance": self.provenance}


# ------------------------------------------------------------------------------- the job
@dataclass
class JobSummary:
    output: str
    records: int = 0
    errors: int = 0
    shards: int = 0
    shards_resumed: int = 0
    records_resumed: int = 0
    seconds: float = 0.0
    engine: str = "local"
    workers: int = 1

    @property
    def records_per_second(self) -> float:
        done = self.records + self.errors - self.records_resumed
        return done / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "records_per_second": round(self.records_per_second, 2)}


def _job_settings(config: JobConfig, paths: list[Path], pipeline: tuple[str, str]) -> dict:
    source, sha256 = pipeline
    return {"inputs": describe_inputs(paths), "format": config.format,
            "shard_size": config.shard_size, "read": asdict(config.read),
            "detect_lang": config.detect_lang, "pipeline": source,
            "pipeline_sha256": sha256}


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        return 0


def run_job(config: JobConfig) -> JobSummary:
    """Run (or resume) a batch annotation job; returns its summary (also in summary.json).

    Everything that can be checked is checked before the output folder is touched: settings,
    writability, inputs (existence, type, emptiness), the pipeline's path; then the folder is
    locked against a second job, and only then written.
    """
    from .pipeline import pipeline_fingerprint, resolve_pipeline

    config.validate()
    out_dir = Path(config.output)
    ensure_writable(out_dir, fix="Pass --output in a folder you can write to.")
    import_code(config.code)
    paths = expand_inputs(config.inputs)
    for path in paths:
        input_format(path, config.read.input_format)
        if not config.allow_empty and next(iter(read_items(path, config.read)), None) is None:
            raise InputError(Errors.E209.format(input=path))
    settings_now = _job_settings(config, paths,
                                 pipeline_fingerprint(config.pipeline, config.overrides))
    created = not out_dir.exists()
    lock = OutputLock(out_dir)
    lock.acquire()
    try:
        try:
            manifest = Manifest.open(out_dir, settings_now, config.overwrite)
            pipeline_path = resolve_pipeline(config.pipeline, out_dir, config.overrides)
        except BaseException:
            if created:  # nothing started: leave no trace of this run
                lock.release()
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
        for stale in list(out_dir.glob(f"{SHARDS_DIR}/.*.tmp-*")) + list(
                out_dir.glob(f"{ERRORS_DIR}/.*.tmp-*")):
            stale.unlink(missing_ok=True)  # left by a killed run
        manifest.drop_unlisted()
        manifest.save()
        return _run_started(config, out_dir, paths, pipeline_path, manifest)
    finally:
        lock.release()


def _run_started(config: JobConfig, out_dir: Path, paths: list[Path], pipeline_path: Path,
                 manifest: Manifest) -> JobSummary:
    gpus = gpu_count()
    workers = config.n_process or max(1, gpus)
    summary = JobSummary(output=os.fspath(out_dir), engine=config.engine, workers=workers)
    done = manifest.done
    summary.shards_resumed = len(done)
    summary.records_resumed = sum(s["records"] + s["errors"] for s in done.values())
    total = _count(paths, config.read)
    if done:
        logger.info("Resuming: %d shards (%d records) already done", len(done),
                    summary.records_resumed)

    settings = WorkerSettings(os.fspath(pipeline_path), os.fspath(out_dir), config.format,
                              config.batch_size, config.detect_lang,
                              [os.fspath(Path(c).resolve()) for c in config.code])
    pending = (s for s in plan_shards(paths, config.read, config.shard_size)
               if s.name not in done)
    started = time.perf_counter()
    with _progress(config.progress, total, summary.records_resumed) as bar:
        def completed(stats: dict) -> None:
            manifest.complete(stats["shard"], stats)
            bar.update(stats["records"] + stats["errors"])
            errors = sum(s["errors"] for s in manifest.done.values())
            if errors:
                bar.set_postfix(errors=errors, refresh=False)

        if config.engine == "ray":
            from .ray_engine import run_ray

            run_ray(pending, settings, workers, gpus, config.ray_address, completed)
        elif workers == 1:
            annotator = None  # loaded at the first pending shard: a finished job loads nothing
            for shard in pending:
                annotator = annotator or ShardAnnotator(settings)
                completed(annotator.annotate(shard))
        else:
            from .local_engine import run_processes

            run_processes(pending, settings, workers, gpus, completed)
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.shards = len(manifest.done)
    summary.records = sum(s["records"] for s in manifest.done.values())
    summary.errors = sum(s["errors"] for s in manifest.done.values())
    atomic_write_text(out_dir / SUMMARY, json.dumps(summary.to_dict(), indent=2))
    return summary


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(Errors.E189.format(path=path.parent,
                                            reason=f"{path.name} is unreadable ({exc})")) from exc
    if not isinstance(data, dict):
        raise InputError(Errors.E189.format(path=path.parent,
                                            reason=f"{path.name} is not a JSON object"))
    return data


def _settings_diff(old: dict, new: dict) -> str:
    """'shard_size: 6 (saved) vs 3 (now); inputs: ...' for the settings that differ."""
    def short(value) -> str:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return text if len(text) <= 120 else text[:117] + "..."

    parts = [f"{key}: {short(old.get(key))} (saved) vs {short(new.get(key))} (now)"
             for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    return "; ".join(parts) or "(none)"


def import_code(paths: list[str]) -> None:
    """Import Python files that register custom components (spaCy's ``--code``), in the
    driver and in every worker, before a pipeline that uses them is loaded."""
    import importlib.util
    import sys

    for path in paths:
        file = Path(path)
        if not file.is_file():
            raise InputError(Errors.E186.format(what="--code", value=path,
                                                reason="no such Python file",
                                                fix="Pass the path of a .py file."))
        module_name = f"xapps_user_code_{file.stem}"
        if module_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module_name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)


def _count(paths: list[Path], options: ReadOptions) -> int | None:
    total = 0
    for path in paths:
        n = count_items(path, options)
        if n is None:
            return None
        total += n
    return total


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, **kwargs) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _progress(enabled: bool, total: int | None, initial: int):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="rec", desc="annotating", smoothing=0.1,
                dynamic_ncols=True)


def iter_output(out_dir: str | os.PathLike) -> Iterator[dict]:
    """Every annotated record of a job's output, shard by shard in input order; each shard
    checked against the sha256 the manifest recorded for it (E208 names a damaged one)."""
    from .output import read_shard

    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    fmt = manifest["settings"]["format"]
    for name in sorted(manifest["shards"]):
        entry = manifest["shards"][name]
        path = _verified(out_dir, name, entry.get("output"), entry.get("sha256"))
        try:
            yield from read_shard(path, fmt)
        except (OSError, ValueError) as exc:
            raise InputError(Errors.E208.format(shard=name, path=out_dir,
                                                reason=f"{path.name}, {exc}")) from exc


def iter_errors(out_dir: str | os.PathLike) -> Iterator[dict]:
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    for name in sorted(manifest["shards"]):
        entry = manifest["shards"][name]
        if not entry.get("errors_file"):
            continue
        path = _verified(out_dir, name, entry["errors_file"], entry.get("errors_sha256"))
        with open(path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    yield json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    raise InputError(Errors.E208.format(
                        shard=name, path=out_dir,
                        reason=f"{path.name}:{lineno} is not a JSON line ({exc})")) from exc


def _verified(out_dir: Path, shard: str, rel: str | None, sha256: str | None) -> Path:
    """The shard file's path, after checking it exists and, where the manifest recorded one
    (jobs since format 1.1), that its sha256 matches."""
    if not rel or not (out_dir / rel).is_file():
        raise InputError(Errors.E208.format(shard=shard, path=out_dir,
                                            reason=f"its file {rel!r} is missing"))
    path = out_dir / rel
    if sha256 is not None:
        found = sha256_file(path)
        if found != sha256:
            raise InputError(Errors.E208.format(
                shard=shard, path=out_dir,
                reason=f"{rel} has sha256 {found[:16]}..., the manifest records "
                       f"{sha256[:16]}... (changed or truncated after the job wrote it)"))
    return path


def read_manifest(out_dir: Path) -> dict:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise InputError(Errors.E189.format(path=out_dir, reason=f"it has no {MANIFEST}"))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        data["settings"]["format"], data["shards"].items()  # noqa: B018 - the keys must exist
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(Errors.E189.format(path=out_dir,
                                            reason=f"{MANIFEST} is unreadable ({exc})")) from exc
    return data
