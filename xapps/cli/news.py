"""`xapps news`: train, evaluate and query a multilingual news recommender."""
from __future__ import annotations

import json
import re

import click

from ..errors import Errors, InputError

# input paths are checked by the readers and loaders, which name them with an E-code
_behaviors = click.option("--behaviors", "behaviors_path", required=True,
                          type=click.Path(),
                          help="MIND/xMIND behaviors.tsv (labelled impressions).")
_news = click.option("--news", "news_paths", required=True, multiple=True,
                     type=click.Path(),
                     help="MIND or xMIND news.tsv; repeatable (the first file that has an id "
                          "gives its text).")
_cache = click.option("--cache", default=None, type=click.Path(file_okay=False),
                      help="Folder of cached backbone news vectors (default: one per backbone "
                           "under $XAPPS_HOME/news-vectors).")
_split = [click.option("--test-fraction", default=0.2, show_default=True,
                       help="The latest impressions (by time) held out for testing; their "
                            "users never appear in training."),
          click.option("--dev-fraction", default=0.1, show_default=True,
                       help="The latest training impressions used for early stopping.")]


def _options(options):
    def wrap(func):
        for option in reversed(options):
            func = option(func)
        return func
    return wrap


def _load_news(paths):
    from ..news.data import read_news

    news: dict = {}
    for path in paths:
        items = read_news(path)
        if not items:
            raise InputError(Errors.E236.format(
                path=path, what="news", fix="Pass a MIND or xMIND news.tsv with one news item "
                                            "per line."))
        for nid, item in items.items():
            news.setdefault(nid, item)
    return news


def _check_outputs(out=None, cache=None) -> None:
    """Refuse unwritable outputs (E068) before any news is read or model loaded; an
    explicit --cache is an output the user asked for."""
    from ..fileio import ensure_writable

    if out is not None:
        ensure_writable(out, fix="Pass an --out folder in a place you can write to.")
    if cache is not None:
        ensure_writable(cache, fix="Pass a --cache folder you can write to, or leave --cache "
                                   "out to use the default cache.")


def _cache_for(backbone: str, folder):
    """The news vector cache: --cache (checked by :func:`_check_outputs`), else one folder
    per backbone under $XAPPS_HOME; a default cache that cannot be written is read but not
    updated, said once."""
    from ..fileio import ensure_writable
    from ..news.vectors import NewsVectorCache
    from ..paths import xapps_home

    if folder is not None:
        return NewsVectorCache(backbone, folder)
    folder = xapps_home() / "news-vectors" / re.sub(r"[^A-Za-z0-9._-]+", "_", backbone)
    try:
        ensure_writable(folder)
    except InputError:
        click.echo(f"note: the news vector cache '{folder}' cannot be written; vectors it "
                   "lacks are encoded for this run only. Set $XAPPS_HOME or --cache to a "
                   "writable folder to keep them.", err=True)
        return NewsVectorCache(backbone, folder, writable=False)
    return NewsVectorCache(backbone, folder)


_model = click.option(
    "--model", default=None, type=click.Path(),
    help="A folder made by `xapps news train`. Default: the untrained recommender (frozen "
         "--backbone vectors, the user as the mean of their clicks; needs no click data).")
_backbone = click.option("--backbone", default="me5-small", show_default=True,
                         help="Backbone of the untrained recommender (used without --model).")


def _recommender(model, backbone, cache):
    """The saved recommender at ``model``, or the untrained one on ``backbone``; its news
    vector cache from --cache or $XAPPS_HOME."""
    from ..news.recommender import NewsRecommender

    if model is None:
        return NewsRecommender.untrained(backbone, cache=_cache_for(backbone, cache))
    rec = NewsRecommender.load(model)
    rec.cache = _cache_for(rec.cfg.backbone, cache)
    return rec


def _prepared(behaviors_path, news_paths, test_fraction, dev_fraction):
    from ..news.data import coverage, read_behaviors, restrict, split_by_time

    news = _load_news(news_paths)
    impressions = read_behaviors(behaviors_path)
    if not impressions:
        raise InputError(Errors.E236.format(
            path=behaviors_path, what="impressions",
            fix="Pass a MIND behaviors.tsv with one impression per line."))
    report = coverage(impressions, news)
    click.echo(f"coverage: {report}", err=True)
    usable = restrict(impressions, news)
    if not usable:  # before any model loads: the two files do not belong together
        raise InputError(Errors.E238.format(n=len(impressions), behaviors=behaviors_path,
                                            news=", ".join(map(str, news_paths)),
                                            coverage=report))
    return news, split_by_time(usable, test_fraction, dev_fraction)


@click.group("news")
def news() -> None:
    """Multilingual news recommendation (xMIND-style)."""


@news.command("train")
@_behaviors
@_news
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--backbone", default="me5-small", show_default=True)
@click.option("--user-encoder", type=click.Choice(["nrms", "mean"]), default="nrms",
              show_default=True)
@click.option("--negatives", default=4, show_default=True,
              help="Non-clicked candidates scored against each click.")
@click.option("--epochs", default=8, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--lr", default=1e-3, show_default=True)
@click.option("--patience", default=2, show_default=True,
              help="Stop after this many epochs without a better dev AUC.")
@click.option("--title-only", is_flag=True, help="Encode titles without abstracts.")
@click.option("--finetune-layers", default=0, show_default=True,
              help="Fine-tune the backbone's top N layers with the head (0: frozen backbone; "
                   "N > 0 is meant for a GPU).")
@_options(_split)
@_cache
@click.option("--seed", default=0, show_default=True)
def train(behaviors_path, news_paths, out, backbone, user_encoder, negatives, epochs,
          batch_size, lr, patience, title_only, finetune_layers, test_fraction, dev_fraction,
          cache, seed) -> None:
    """Train the news head and user encoder on labelled impressions; save to --out."""
    from ..fileio import atomic_write_text
    from ..news.recommender import NewsRecConfig, NewsRecommender

    _check_outputs(out, cache)
    news_items, (train_imps, dev, test) = _prepared(behaviors_path, news_paths, test_fraction,
                                                    dev_fraction)
    click.echo(f"impressions: train {len(train_imps):,}, dev {len(dev):,}, "
               f"test {len(test):,}", err=True)
    cfg = NewsRecConfig(backbone=backbone, user_encoder=user_encoder, negatives=negatives,
                        with_abstract=not title_only, finetune_layers=finetune_layers)
    vectors = _cache_for(backbone, cache)
    rec = NewsRecommender(cfg, cache=vectors)
    stats = rec.train(train_imps, news_items, dev=dev, epochs=epochs, batch_size=batch_size,
                      lr=lr, patience=patience, seed=seed)
    vectors.save()
    if test:
        stats["test"] = rec.evaluate(test, news_items)
    rec.save(out)
    atomic_write_text(f"{out}/training.json", json.dumps(stats, indent=2))
    click.echo(json.dumps({k: v for k, v in stats.items() if k != "epochs"}, indent=2))


@news.command("eval")
@_model
@_backbone
@_behaviors
@_news
@click.option("--split", type=click.Choice(["all", "test"]), default="all", show_default=True,
              help="all: every usable impression; test: the held-out part of the time split "
                   "(the same fractions as training).")
@_options(_split)
@click.option("--baselines", is_flag=True,
              help="Also score random, popularity (from the training part) and "
                   "mean-of-history (frozen backbone) on the same impressions.")
@_cache
def evaluate(model, backbone, behaviors_path, news_paths, split, test_fraction, dev_fraction,
             baselines, cache) -> None:
    """AUC, MRR, nDCG@5/10, diversity and coverage on labelled impressions."""
    from ..news.metrics import evaluate_impressions

    _check_outputs(cache=cache)
    news_items, (train_imps, dev, test) = _prepared(behaviors_path, news_paths, test_fraction,
                                                    dev_fraction)
    rec = _recommender(model, backbone, cache)
    target = test if split == "test" else train_imps + dev + test
    result = {"model": rec.evaluate(target, news_items)}
    if baselines:
        from ..news.baselines import (
            mean_of_history_scores,
            popularity_scores,
            random_scores,
        )

        labels = [imp.labels for imp in target]
        result["random"] = evaluate_impressions(labels, random_scores(target))
        result["popularity"] = evaluate_impressions(labels,
                                                    popularity_scores(target, train_imps + dev))
        result["mean-of-history"] = evaluate_impressions(labels, mean_of_history_scores(
            target, news_items, rec.cache, with_abstract=rec.cfg.with_abstract))
    rec.cache.save()
    click.echo(json.dumps(result, indent=2))


@news.command("recommend")
@_model
@_backbone
@_news
@click.option("--user-history", required=True,
              help="Comma-separated news ids the user clicked, oldest first.")
@click.option("-k", "k", default=10, show_default=True)
@_cache
def recommend(model, backbone, news_paths, user_history, k, cache) -> None:
    """The top-k news of the --news pool for one user (FAISS search by the user vector)."""

    _check_outputs(cache=cache)
    news_items = _load_news(news_paths)
    history = [h.strip() for h in user_history.split(",") if h.strip()]
    rec = _recommender(model, backbone, cache)
    unknown = [h for h in history if h not in news_items]
    if unknown:
        click.echo(f"{len(unknown)} history ids are not in --news and are skipped: "
                   f"{', '.join(unknown[:5])}", err=True)
    hits = rec.recommend(history, news_items, k=k)
    rec.cache.save()
    for rank, (nid, score) in enumerate(hits, 1):
        click.echo(f"{rank}\t{nid}\t{score:.4f}\t{news_items[nid].title}")
