"""`xapps models install|list`."""
from __future__ import annotations

import json

import click

from ..models import store


@click.group()
def models() -> None:
    """Install and list models in the xapps cache ($XAPPS_HOME)."""


@models.command("install")
@click.argument("name", type=click.Choice(sorted(store.KNOWN_MODELS)))
@click.option("--force", is_flag=True, help="Convert again even if already installed.")
def install(name: str, force: bool) -> None:
    """Convert and verify an embedded model (offline)."""
    path = store.install(name, force=force)
    click.echo(f"{name} installed at {path}")


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(as_json: bool) -> None:
    """Show known models and whether they are installed."""
    rows = store.list_models()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        state = ("damaged" if row.get("damaged") else
                 "installed" if row["installed"] else "not installed")
        size = f"{row['size_mb']:.0f} MB" if row.get("size_mb") else ""
        click.echo(f"{row['name']:<12} {state:<14} {size:>8}  {row.get('path') or ''}")
