"""One job per output folder: an advisory lock held for the life of the job.

Two jobs writing one output folder would both do all the work and race on its manifest. The
lock is a ``flock`` on ``OUTPUT/.lock``: the kernel releases it when its holder dies, even by
SIGKILL, so a stale lock never blocks a re-run. The file also names its holder (pid, host,
start time, command) for the error the second job prints, and for the note a resumed job logs
about the run that stopped before it.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from .errors import Errors, InputError

try:  # POSIX; elsewhere the lock degrades to a liveness check of the recorded pid
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

logger = logging.getLogger("xapps")

LOCK_FILE = ".lock"


class OutputLock:
    """Hold ``folder/.lock`` while a job writes ``folder``; a context manager.

    >>> with OutputLock(folder, "xapps annotate ..."):   # doctest: +SKIP
    ...     run()
    """

    def __init__(self, folder: str | os.PathLike[str], command: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.command = command or " ".join(["xapps", *sys.argv[1:]])[:500]
        self._fh = None
        #: the holder recorded by a job that stopped without releasing (killed), if any
        self.previous: dict | None = None

    def acquire(self) -> "OutputLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(5):  # the file may be replaced between open and flock: retry
            fh = open(self.path, "a+", encoding="utf-8")
            if not self._try_lock(fh):
                holder = _read_holder(self.path)
                fh.close()
                raise InputError(Errors.E207.format(
                    path=self.folder, pid=holder.get("pid", "?"),
                    host=holder.get("host", "?"), started=holder.get("started", "?"),
                    command=holder.get("command", "?"), lock=self.path))
            try:
                same = os.fstat(fh.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()
        else:  # pragma: no cover - needs a tight race with other jobs
            raise InputError(Errors.E207.format(path=self.folder, pid="?", host="?",
                                                started="?", command="?", lock=self.path))
        self.previous = _read_holder(self.path) or None
        if self.previous:
            logger.info("A previous job on %s (pid %s, started %s) stopped without finishing; "
                        "continuing its work", self.folder, self.previous.get("pid"),
                        self.previous.get("started"))
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                             "command": self.command}))
        fh.flush()
        self._fh = fh
        return self

    def _try_lock(self, fh) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
        holder = _read_holder(self.path)  # pragma: no cover - no flock here
        return not (holder.get("host") == socket.gethostname()
                    and _alive(int(holder.get("pid", 0))))

    def release(self) -> None:
        """Remove the file, then unlock: a job that finished leaves no holder behind."""
        if self._fh is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:  # a folder that became read-only: the unlock below still frees it
            pass
        self._fh.close()
        self._fh = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:  # pragma: no cover - used only without flock
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
