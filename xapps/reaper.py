"""A watcher that ends a job's process tree when the job's driver dies by SIGKILL.

The local engine's workers end themselves (``local_engine.die_with_parent``), but a Ray
cluster started by the driver is a tree of processes xapps does not run: raylet, the GCS,
actor workers and Ray's agents. Ray stops most of them when the driver vanishes, yet its
agents linger for up to a minute. This watcher, started beside the driver in its own
session, remembers the driver's descendants and kills any that outlive it.

Run as ``python -m xapps.reaper DRIVER_PID``; Linux only (it reads ``/proc``), a no-op
elsewhere, where Ray's own lifecycle is what remains.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_SECONDS = 0.5


def start_reaper() -> subprocess.Popen | None:
    """Watch this process's tree from a detached process; None where /proc is missing."""
    if not os.path.isdir("/proc/self"):
        return None
    return subprocess.Popen([sys.executable, "-m", "xapps.reaper", str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            close_fds=True)


def _table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry)] = (int(fields[1]), fields[19])  # ppid, starttime (clock ticks)
    return table


def _descendants(roots: set[int], table: dict[int, tuple[int, str]]) -> set[int]:
    found: set[int] = set()
    frontier = set(roots)
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items()
                    if ppid in frontier and pid not in found}
        found |= frontier
    return found


def watch(driver: int) -> None:
    """Track the driver's new descendants until it is gone, then SIGKILL those still
    running. The driver kills this watcher once it has shut its tree down itself."""
    me = os.getpid()
    table = _table()
    before = _descendants({driver}, table)  # the driver's other children are not ours to end
    known: dict[int, str] = {}
    while driver in table:
        for pid in _descendants({driver}, table) - before - {me}:
            known.setdefault(pid, table[pid][1])
        time.sleep(POLL_SECONDS)
        table = _table()
    table = _table()
    alive = {pid for pid, start in known.items() if table.get(pid, (0, None))[1] == start}
    for pid in (alive | _descendants(alive, table)) - {me}:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


if __name__ == "__main__":
    watch(int(sys.argv[1]))
