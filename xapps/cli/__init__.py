"""The ``xapps`` command line: one click group per module, each a thin wrapper over a plain
function of the library.

The root group is lazy (click's LazyGroup pattern): a subcommand's module is imported only
when that subcommand runs, so ``xapps --help`` and ``xapps --version`` do not pay for torch,
spaCy and transformers (2-3 s) that the subcommands import.
"""
from __future__ import annotations

import importlib
import logging
import sys

import click

from .. import __version__
from ..errors import Errors, XappsError

#: Subcommand name -> ("module:attribute", short help shown by ``xapps --help``). The help
#: strings are the commands' own first docstring lines (a test keeps them in step).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "annotate": ("xapps.cli.annotate:annotate",
                 "Annotate a corpus with a pipeline, in resumable shards."),
    "demo": ("xapps.cli.demo:demo",
             "Index the packaged 8-language sample with me5-small and run cross-lingual "
             "queries."),
    "f2t": ("xapps.cli.f2t:f2t", "Fact-to-text generation (XF2T-style)."),
    "index": ("xapps.cli.index:index", "Build, search and inspect vector indexes."),
    "kb": ("xapps.cli.kb:kb", "Build and inspect entity-linking knowledge bases."),
    "link": ("xapps.cli.link:link", "Evaluate and train the entity linker."),
    "models": ("xapps.cli.models:models",
               "Install and list models in the xapps cache ($XAPPS_HOME)."),
    "news": ("xapps.cli.news:news", "Multilingual news recommendation (xMIND-style)."),
    "oie": ("xapps.cli.oie:oie",
            "Train open-IE taggers and extract (subject, relation, object) triples."),
    "project": ("xapps.cli.project:project",
                "Project labelled spans (entities, terms) from a source file onto its "
                "translations."),
    "projection": ("xapps.cli.project:projection",
                   "Models for annotation projection (`xapps project` runs it)."),
    "report": ("xapps.cli.annotate:report",
               "A self-contained HTML report of an `xapps annotate` output folder."),
    "retrieval": ("xapps.cli.retrieval:retrieval",
                  "Train multi-vector (ColBERT-style) retrievers."),
}


class _Group(click.Group):
    """Print XappsError messages (they already say what and how to fix) without a traceback.

    Exit codes: 0 done; 1 finished, but with errors the command reports (e.g. skipped
    records); 2 bad input, unusable output or environment (nothing or only complete files
    written); 130 interrupted. Operating-system errors that escape a command's own checks
    (disk full, a file vanishing) are still reported in one line; other exceptions are bugs,
    shown in full with -vv.

    Subcommands are listed from :data:`SUBCOMMANDS` and imported on first use.
    """

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in SUBCOMMANDS:
            return command
        module_name, attr = SUBCOMMANDS[cmd_name][0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        self.add_command(command, cmd_name)  # import once per process
        return command

    def format_commands(self, ctx, formatter):
        """The command table from the static help strings: importing every subcommand to
        ask for its docstring is exactly the cost the lazy group avoids."""
        rows = []
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        for name in self.list_commands(ctx):
            if name in SUBCOMMANDS and name not in self.commands:
                help_text = _shorten(SUBCOMMANDS[name][1], limit)
            else:
                command = self.commands.get(name) or self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                help_text = command.get_short_help_str(limit)
            rows.append((name, help_text))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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
        except click.UsageError as exc:  # e.g. a missing file given to a click.Path option
            command = exc.ctx.command_path if exc.ctx is not None else "xapps"
            if exc.ctx is not None:
                click.echo(exc.ctx.get_usage(), err=True)
            reason = exc.format_message().strip()
            reason = reason if reason.endswith((".", "?", "!")) else reason + "."
            click.echo("Error: " + Errors.E210.format(reason=reason, command=command), err=True)
            sys.exit(2)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException,
                SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last net: one line, the fix, exit 1
            if _verbosity(ctx) >= 2:
                raise
            click.echo("Error: " + Errors.E206.format(kind=type(exc).__name__,
                                                      reason=str(exc)[:500]), err=True)
            sys.exit(1)


def _shorten(text: str, limit: int) -> str:
    """click's first-sentence-and-ellipsis shortening (as get_short_help_str does)."""
    return click.utils.make_default_short_help(text, max(limit, 10))


def _verbosity(ctx) -> int:
    return ctx.params.get("verbose") or 0


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="xapps")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Cross-lingual NLP applications on one multilingual backbone and one FAISS index layer."""
    level = logging.WARNING - 10 * verbose if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "urllib3", "huggingface_hub", "transformers", "sentence_transformers",
                  "faiss"):  # faiss logs "Successfully loaded faiss" at INFO on every import
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)
