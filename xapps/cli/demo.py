"""`xapps demo`: the main job on the embedded default model, end to end."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample_multilingual.jsonl"
DEMO_QUERIES = (
    "How do people catch malaria?",            # English
    "¿Cuándo deben vacunarse los niños?",        # Spanish
    "Benki kuu na mfumuko wa bei",               # Swahili
    "学校晚上怎么有电？",                          # Chinese
)


@click.command()
@click.option("--out", type=click.Path(), default=None,
              help="Where to keep the index (default: a temporary folder).")
@click.option("-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--backbone", default="me5-small", show_default=True)
def demo(out, k, backbone) -> None:
    """Index the packaged 8-language sample with me5-small and run cross-lingual queries."""
    from ..index.build import Searcher, build_index

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(out) if out else Path(tmp) / "sample-index"
        report = build_index(SAMPLE, target, backbone=backbone, progress=False)
        click.echo(f"Indexed {report.count} passages in 8 languages with {backbone} "
                   f"({report.docs_per_second:.1f} docs/s) -> {target}")
        searcher = Searcher(target)
        for query, hits in zip(DEMO_QUERIES, searcher.search(DEMO_QUERIES, k=k)):
            click.echo(f"\nquery: {query}")
            for rank, hit in enumerate(hits, start=1):
                click.echo(f"  {rank}. {hit.score:.3f}  {hit.id:<14} {searcher.text(hit.id)[:70]}")
