"""Rewrite one benchmark's block of benchmarks/README.md, between its start/end markers."""
from __future__ import annotations

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
