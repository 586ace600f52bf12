"""The ``xapps`` command line: one click group per module, each a thin wrapper over a plain
function of the library."""
from __future__ import annotations

import logging
import sys

import click

from .. import __version__
from ..errors import Errors, XappsError
from .annotate import annotate, report
from .demo import demo
from .f2t import f2t
from .index import index
from .kb import kb
from .link import link
from .models import models
from .news import news
from .oie import oie
from .project import project, projection
from .retrieval import retrieval


class _Group(click.Group):
    """Print XappsError messages (they already say what and how to fix) without a traceback.

    Exit codes: 0 done; 1 finished, but with errors the command reports (e.g. skipped
    records); 2 bad input, unusable output or environment (nothing or only complete files
    written); 130 interrupted. Operating-system errors that escape a command's own checks
    (disk full, a file vanishing) are still reported in one line; other exceptions are bugs,
    shown in full with -vv.
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except XappsError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:
            if _verbosity(ctx) >= 2:
                raise
            what = f"xapps {ctx.invoked_subcommand or ''}".strip()
            click.echo("Error: " + Errors.E205.format(
                what=what, path=exc.filename or "(unknown)",
                reason=exc.strerror or str(exc),
                fix="Check the path, free space and permissions, then run the same command "
                    "again (long jobs resume)."), err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("Interrupted. Completed output is kept; run the same command again to "
                       "resume where it can.", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last net: one line, the fix, exit 1
            if _verbosity(ctx) >= 2:
                raise
            click.echo("Error: " + Errors.E206.format(kind=type(exc).__name__,
                                                      reason=str(exc)[:500]), err=True)
            sys.exit(1)


def _verbosity(ctx) -> int:
    return ctx.params.get("verbose") or 0


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="xapps")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Cross-lingual NLP applications on one multilingual backbone and one FAISS index layer."""
    level = logging.WARNING - 10 * verbose if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "huggingface_hub", "transformers", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)


main.add_command(models)
main.add_command(index)
main.add_command(demo)
main.add_command(kb)
main.add_command(link)
main.add_command(retrieval)
main.add_command(project)
main.add_command(projection)
main.add_command(oie)
main.add_command(annotate)
main.add_command(report)
main.add_command(f2t)
main.add_command(news)
