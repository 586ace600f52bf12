"""Rewrite one benchmark's block of benchmarks/README.md, between its start/end markers."""
from __future__ import annotations

import os
from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def write_block(name: str, lines: list[str], heading: str) -> None:
    """Replace the ``<!-- name:start -->`` ... ``<!-- name:end -->`` block with ``lines``
    (markers excluded), or append it under ``heading`` the first time."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = "\n".join([start, *lines, end])
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    README.write_text(text, encoding="utf-8")


def cpu_name() -> str:
    """The CPU model and core count, for the line above a table."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"
