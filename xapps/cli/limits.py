"""Over-long records in the streaming commands (`xapps project`, `xapps oie extract`): each is
skipped with a warning naming its file:line (E252) and the run goes on; the command then
ends with one count of what was skipped (E254) and exit code 1."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import click

from ..errors import Errors

logger = logging.getLogger("xapps")

T = TypeVar("T")


def within_limit(items: Iterable[T], max_chars: int, skipped: list[str],
                 texts: Callable[[T], Sequence[tuple[str, str]]],
                 where: Callable[[int, T], str]) -> Iterator[T]:
    """The items whose every text (``texts(item)``: (what, text) pairs) has at most
    ``max_chars`` characters; each longer item is logged (E252) and its place
    (``where(i, item)``) appended to ``skipped``."""
    for i, item in enumerate(items):
        for what, text in texts(item):
            if len(text) > max_chars:
                place = where(i, item)
                logger.warning(Errors.E252.format(where=place, what=what, n=len(text),
                                                  limit=max_chars))
                skipped.append(place)
                break
        else:
            yield item


def exit_if_skipped(skipped: list[str], written: int, out) -> None:
    """After the output is written: E254 and exit code 1 when any record was skipped."""
    if skipped:
        click.echo("Error: " + Errors.E254.format(
            skipped=len(skipped), total=len(skipped) + written, first=skipped[0],
            written=written, out=out), err=True)
        click.get_current_context().exit(1)
