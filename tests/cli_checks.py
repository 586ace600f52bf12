"""Helpers for the bad-input matrix: run a CLI command and assert a clean refusal.

A clean refusal is the contract of every xapps command on bad input or an unusable output:
exit code 2 (or 1 where the command documents "finished with errors"), one coded message
naming the input, no Python traceback, and no new or changed file in the output location.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from click.testing import CliRunner

from xapps.cli import main


def invoke(*args, env: dict | None = None):
    """Run ``xapps ARGS`` in-process; exceptions the CLI lets escape fail the test."""
    return CliRunner().invoke(main, [os.fspath(a) if isinstance(a, Path) else str(a)
                                     for a in args], env=env, catch_exceptions=False,
                            prog_name="xapps")


def snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under ``roots`` (a missing root counts as empty)."""
    files = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            st = root.stat()
            files[os.fspath(root)] = (st.st_size, st.st_mtime_ns)
            continue
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file():
                st = path.stat()
                files[os.fspath(path)] = (st.st_size, st.st_mtime_ns)
    return files


def assert_refused(result, code: str, *mentions: str, exit_code: int = 2) -> str:
    """The command stopped with ``exit_code``, printed ``[code]`` and each of ``mentions``
    (file names, line numbers), and no traceback. Returns the output."""
    out = result.output
    assert result.exit_code == exit_code, f"exit {result.exit_code}, expected {exit_code}:\n{out}"
    assert f"[{code}]" in out, f"expected [{code}] in:\n{out}"
    assert "Traceback" not in out, out
    for text in mentions:
        assert text in out, f"expected {text!r} in:\n{out}"
    codes = re.findall(r"\[E\d{3}\]", out)
    assert codes, out
    return out
