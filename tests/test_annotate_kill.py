"""`xapps annotate` killed with SIGKILL: no process outlives the driver, a second job on the
same output is refused while the first runs, and a re-run finishes every record exactly once
with no shard file outside the manifest. With 1 and 2 local processes and with Ray."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_annotate_job import CODE, build_pipeline, wait_for_shards, write_corpus

from xapps.annotate.job import iter_output

N_RECORDS = 200
SHARD = 10


def descendants(pid: int) -> dict[int, str]:
    """pid -> start time of every descendant of ``pid`` (from /proc)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            table[int(entry)] = (int(fields[1]), fields[19], fields[0])
    found, frontier = {}, {pid}
    while frontier:
        frontier = {p for p, (ppid, _, _) in table.items() if ppid in frontier and p not in found}
        found.update({p: table[p][1] for p in frontier})
    return found


def running(procs: dict[int, str]) -> list[int]:
    """Those of ``procs`` still running (same pid and start time, not a zombie)."""
    alive = []
    for pid, start in procs.items():
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[19] == start and fields[0] != "Z":
            alive.append(pid)
    return alive


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


@pytest.fixture(scope="module")
def slow_pipe(tmp_path_factory):
    sys.path.insert(0, str(CODE.parent))
    import annotate_components  # noqa: F401  (registers the test factories)

    sys.path.remove(str(CODE.parent))

    return build_pipeline(tmp_path_factory.mktemp("slow"), extra=("xapps_test_sleep",),
                          xapps_test_sleep={"seconds": 0.1})


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
@pytest.mark.parametrize("engine, workers", [("local", 1), ("local", 2), ("ray", 2)])
def test_killed_job_leaves_no_process_and_resumes_exactly_once(slow_pipe, tmp_path, engine,
                                                               workers):
    if engine == "ray":
        pytest.importorskip("ray.data")
    ids = write_corpus(tmp_path / "in.jsonl", N_RECORDS)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "xapps", "annotate", "--pipeline", str(slow_pipe),
            "--input", str(tmp_path / "in.jsonl"), "--output", str(out),
            "--shard-size", str(SHARD), "--batch-size", "5", "--code", str(CODE), "--quiet",
            "--n-process", str(workers), "--engine", engine]
    job = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_shards(out, 1, job)
        tree = descendants(job.pid)
        assert len(tree) >= (workers if workers > 1 else 0)  # one worker runs in the driver
        # a second job on the same output is refused, naming the first
        second = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert "[E207]" in second.stderr and f"pid {job.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert job.poll() is None, "the first job ended before it could be killed"
        tree.update(descendants(job.pid))
    finally:
        os.kill(job.pid, signal.SIGKILL)
        job.wait()
    deadline = time.time() + 10
    while running(tree) and time.time() < deadline:
        time.sleep(0.1)
    survivors = {pid: _cmdline(pid) for pid in running(tree)}
    assert survivors == {}, "processes outlived the killed driver"

    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{N_RECORDS} records annotated, 0 in errors/ ({N_RECORDS // SHARD} shards" \
        in rerun.stdout
    assert [r["id"] for r in iter_output(out)] == ids
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {entry["output"] for entry in manifest["shards"].values()}
    on_disk = {f"shards/{p.name}" for p in (out / "shards").iterdir()}
    assert on_disk == listed
    assert not (out / ".lock").exists()


def test_a_stale_lock_from_a_killed_job_does_not_block(slow_pipe, tmp_path):
    """A lock file whose holder is gone (the kernel dropped its flock) is taken over."""
    write_corpus(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": 999999, "host": "gone", "started": "x",
                                           "command": "xapps annotate ..."}))
    proc = subprocess.run([sys.executable, "-m", "xapps", "annotate", "--pipeline",
                           str(slow_pipe), "--input", str(tmp_path / "in.jsonl"), "--output",
                           str(out), "--code", str(CODE), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not (out / ".lock").exists()
