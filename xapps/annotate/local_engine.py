"""Several worker processes on one machine: each loads the pipeline once and annotates
whole shards with ``nlp.pipe``; one process per GPU when GPUs are present.

Processes are spawned, not forked: a forked copy of a process that already ran torch can
hang in its thread pool, and a spawned worker can pick its GPU (``CUDA_VISIBLE_DEVICES``)
before torch starts. At most two shards per worker are in flight, so memory stays bounded
whatever the corpus size.
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, replace
from typing import Callable, Iterator

from ..errors import Errors, XappsError


PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """End this worker when the driver dies, however it dies (SIGKILL included): an orphan
    would go on writing shards no manifest records, holding its memory, beside a re-run.

    Linux delivers SIGKILL on the parent's death (prctl); elsewhere, and for the moment
    before prctl took effect, a watcher thread checks the parent once a second.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no libc symbol: the watcher below still works
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="xapps-parent-watch", daemon=True).start()


def _worker_main(worker: int, settings: dict, tasks, results, parent_pid: int) -> None:
    # settings arrive as a dict: unpickling a job class would import spaCy, and so torch,
    # before the GPU is chosen here
    die_with_parent(parent_pid)
    if settings["device"] is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(settings["device"])
        settings = dict(settings, device=0)
    if settings["threads"]:
        os.environ.setdefault("OMP_NUM_THREADS", str(settings["threads"]))
    try:
        from .job import ShardAnnotator, WorkerSettings

        annotator = ShardAnnotator(WorkerSettings(**settings))
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which stops
        results.put(("failed", worker, None, f"{type(exc).__name__}: {exc}"))
        return
    results.put(("ready", worker, None, None))
    while True:
        shard = tasks.get()
        if shard is None:
            return
        try:
            results.put(("done", worker, shard.name, annotator.annotate(shard)))
        except BaseException as exc:  # noqa: BLE001
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            results.put(("failed", worker, shard.name, detail))
            return


def run_processes(shards: Iterator, settings, workers: int, gpus: int,
                  completed: Callable[[dict], None]) -> None:
    """Annotate ``shards`` on ``workers`` spawned processes; ``completed`` gets each shard's
    stats in the driver as it finishes (any order)."""
    ctx = mp.get_context("spawn")
    tasks = ctx.Queue()
    results = ctx.Queue()
    cores = os.cpu_count() or 1
    procs = []
    for w in range(workers):
        device = (w % gpus) if gpus else None
        ws = replace(settings, device=device,
                     threads=settings.threads or max(1, cores // workers))
        proc = ctx.Process(target=_worker_main,
                           args=(w, asdict(ws), tasks, results, os.getpid()), daemon=True)
        proc.start()
        procs.append(proc)
    in_flight: dict[str, int] = {}
    exhausted = False
    try:
        while True:
            while not exhausted and len(in_flight) < 2 * workers:
                shard = next(shards, None)
                if shard is None:
                    exhausted = True
                    break
                in_flight[shard.name] = -1
                tasks.put(shard)
            if exhausted and not in_flight:
                break
            try:
                kind, worker, name, payload = results.get(timeout=2.0)
            except queue.Empty:
                dead = [w for w, p in enumerate(procs) if not p.is_alive()]
                if dead:
                    raise XappsError(Errors.E188.format(
                        worker=dead[0], shard=", ".join(sorted(in_flight)) or "(none)",
                        reason=f"the process exited with code {procs[dead[0]].exitcode}"))
                continue
            if kind == "failed":
                raise XappsError(Errors.E188.format(worker=worker, shard=name or "(loading)",
                                                    reason=payload))
            if kind == "done":
                in_flight.pop(name, None)
                completed(payload)
    finally:
        for _ in procs:
            tasks.put(None)
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
        tasks.close()
        results.close()
