"""The Ray engine: Ray Data ``map_batches`` over the job's pending shards, with a pool of
actors that each load the pipeline once (one GPU each when the cluster has GPUs).

The driver stages each pending shard's records as a file under ``OUTPUT/staging/`` and the
dataset holds only shard names, so memory stays bounded and an actor on any node reads its
shard and writes its output itself: on a cluster, ``--output`` must be a folder every node
sees (NFS, a mounted bucket). The driver records each shard in the manifest as its row comes
back, so resume works exactly as with the local engine.
"""
from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Iterator

from ..errors import Errors, XappsError
from ..fileio import atomic_write_text
from ..reaper import start_reaper
from .records import BadRecord, InputRecord

logger = logging.getLogger("xapps")

STAGING_DIR = "staging"


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise XappsError(Errors.E187.format(reason=exc)) from exc
    return ray


def stage_shard(shard, staging: Path) -> str:
    """Write a shard's items as JSON lines; returns the file path."""
    lines = []
    for item in shard.items:
        if isinstance(item, BadRecord):
            lines.append({"bad": True, "where": item.where, "reason": item.reason,
                          "id": item.id})
        else:
            row = asdict(item)
            if item.doc_bytes is not None:
                row["doc_bytes"] = base64.b64encode(item.doc_bytes).decode("ascii")
            lines.append(row)
    path = staging / f"{shard.name}.jsonl"
    atomic_write_text(path, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    return os.fspath(path)


def load_staged(name: str, path: str):
    from .job import Shard

    items = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row.pop("bad", False):
                items.append(BadRecord(**row))
            else:
                if row.get("doc_bytes"):
                    row["doc_bytes"] = base64.b64decode(row["doc_bytes"])
                items.append(InputRecord(**row))
    return Shard(name, items)


class ShardActor:
    """A Ray Data actor: the pipeline is loaded once, then one shard per batch row."""

    def __init__(self, settings: dict) -> None:
        from .job import ShardAnnotator, WorkerSettings

        self.annotator = ShardAnnotator(WorkerSettings(**settings))

    def __call__(self, batch: dict) -> dict:
        stats = []
        for name, path in zip(batch["shard"], batch["staged"]):
            result = self.annotator.annotate(load_staged(str(name), str(path)))
            Path(str(path)).unlink(missing_ok=True)
            stats.append(json.dumps(result))
        return {"shard": [str(n) for n in batch["shard"]], "stats": stats}


def run_ray(shards: Iterator, settings, workers: int, gpus: int, address: str | None,
            completed: Callable[[dict], None]) -> None:
    ray = _import_ray()
    staging = Path(settings.output) / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    rows = [{"shard": shard.name, "staged": stage_shard(shard, staging)} for shard in shards]
    if not rows:
        return
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    started_here = not ray.is_initialized()
    reaper = None
    if started_here:
        # a SIGKILLed driver leaves Ray's agents running for up to a minute: the reaper ends
        # what outlives it (ray.shutdown below does it on every other exit)
        reaper = start_reaper() if address is None else None
        ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                 log_to_driver=False, logging_level=logging.WARNING,
                 **({} if address else {"num_cpus": max(workers, os.cpu_count() or 1)}))
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        cluster_gpus = int(ray.cluster_resources().get("GPU", 0))
        use_gpu = cluster_gpus > 0
        n_actors = workers if not use_gpu else min(workers, cluster_gpus) or workers
        cpus = max(1, (os.cpu_count() or 1) // n_actors) if not address else 1
        actor_settings = dict(asdict(settings), threads=settings.threads or cpus)
        ds = ray.data.from_items(rows).map_batches(
            ShardActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=n_actors),
            num_gpus=1 if use_gpu else 0, num_cpus=0.5 if use_gpu else cpus,
            fn_constructor_kwargs={"settings": actor_settings})
        try:
            for row in ds.iter_rows():
                completed(json.loads(row["stats"]))
        except Exception as exc:  # noqa: BLE001 - Ray wraps the worker's error
            raise XappsError(Errors.E188.format(worker="(ray actor)", shard="(see log)",
                                                reason=f"{type(exc).__name__}: {exc}")) from exc
    finally:
        if started_here:
            ray.shutdown()
        if reaper is not None:
            reaper.kill()
            reaper.wait()
        if not any(staging.iterdir()):
            staging.rmdir()
