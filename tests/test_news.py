"""The news recommender end to end on a tiny random backbone: training learns who clicks
what, scores and recommendations agree, models and pipelines round-trip, the CLI works."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import spacy
import torch
from click.testing import CliRunner

from xapps.errors import InputError
from xapps.news.baselines import (
    mean_of_history_scores,
    popularity_scores,
    random_scores,
)
from xapps.news.data import Impression, NewsItem
from xapps.news.metrics import evaluate_impressions
from xapps.news.recommender import NewsRecConfig, NewsRecommender
from xapps.news.vectors import NewsVectorCache

SPORT = ["football match won", "tennis final today", "runner wins race", "goal in extra time",
         "team loses cup", "swimmer sets record", "coach resigns", "league table update"]
POLITICS = ["vote on the new law", "minister resigns today", "election results in",
            "parliament debate on tax", "president meets leaders", "new party formed",
            "budget vote delayed", "mayor wins election"]


@pytest.fixture(scope="module")
def news():
    items = {f"S{i}": NewsItem(f"S{i}", t, "sport news") for i, t in enumerate(SPORT)}
    items.update({f"P{i}": NewsItem(f"P{i}", t, "") for i, t in enumerate(POLITICS)})
    return items


def make_impressions(n: int, seed: int) -> list[Impression]:
    """Users read one topic and click its candidates, never the other topic's."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic, other = ("S", "P") if i % 2 else ("P", "S")
        hist = [f"{topic}{j}" for j in rng.sample(range(8), 3)]
        pos = [f"{topic}{j}" for j in rng.sample(range(8), 1)]
        neg = [f"{other}{j}" for j in rng.sample(range(8), 4)]
        cands = pos + neg
        labels = [1] + [0] * 4
        order = list(range(5))
        rng.shuffle(order)
        out.append(Impression(f"i{seed}-{i}", f"u{seed}-{i}", None, hist,
                              [cands[k] for k in order], [labels[k] for k in order]))
    return out


@pytest.fixture(scope="module")
def trained(tiny_xlmr_path, news):
    torch.manual_seed(0)
    cfg = NewsRecConfig(backbone=str(tiny_xlmr_path), dim=16, heads=4, dropout=0.0)
    rec = NewsRecommender(cfg)
    stats = rec.train(make_impressions(120, 0), news, dev=make_impressions(20, 1), epochs=6,
                      batch_size=16, lr=3e-3, patience=6, progress=False)
    return rec, stats


def test_training_learns_topic_preferences(trained, news):
    rec, stats = trained
    test = make_impressions(40, 2)
    result = rec.evaluate(test, news)
    untrained = evaluate_impressions([i.labels for i in test], random_scores(test))
    assert result["auc"] > 0.9 > untrained["auc"] + 0.2
    assert result["impressions"] == 40 and 0 < result["coverage@10"] <= 1
    assert stats["samples"] == 120 and 1 <= stats["best_epoch"] <= len(stats["epochs"])
    assert stats["epochs"][0]["loss"] > stats["epochs"][-1]["loss"]
    assert all("dev_auc" in e for e in stats["epochs"])


def test_mean_user_encoder_trains_too(tiny_xlmr_path, news):
    torch.manual_seed(0)
    rec = NewsRecommender(NewsRecConfig(backbone=str(tiny_xlmr_path), dim=16,
                                        user_encoder="mean", dropout=0.0))
    rec.train(make_impressions(120, 0), news, epochs=6, batch_size=16, lr=3e-3,
              progress=False)
    assert rec.evaluate(make_impressions(40, 2), news)["auc"] > 0.8


def test_scores_are_user_news_dot_products(trained, news):
    rec, _ = trained
    imp = make_impressions(1, 3)[0]
    scores = rec.score([imp], news)[0]
    user = rec.user_vectors([imp.history], news)[0]
    expected = rec.news_vectors(imp.candidates, news) @ user
    assert np.allclose(scores, expected, atol=1e-4)


def test_empty_and_unknown_histories_get_a_cold_start_score(trained, news):
    rec, _ = trained
    imps = [Impression("a", "u", None, [], ["S1", "P1"], [1, 0]),
            Impression("b", "u", None, ["gone-1", "gone-2"], ["S1", "P1"], [1, 0])]
    scores = rec.score(imps, news)
    assert all(np.isfinite(s).all() for s in scores)
    assert np.allclose(scores[0], scores[1])  # unknown clicks are skipped, not guessed


def test_recommend_retrieves_the_best_unseen_news(trained, news):
    rec, _ = trained
    history = ["S0", "S1", "S2"]
    hits = rec.recommend(history, news, k=5)
    assert len(hits) == 5 and not {h for h, _ in hits} & set(history)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert all(h.startswith("S") for h, _ in hits[:3])  # a sport reader gets sport first
    user = rec.user_vectors([history], news)[0]
    rest = [n for n in news if n not in history]
    best = rest[int(np.argmax(rec.news_vectors(rest, news) @ user))]
    assert hits[0][0] == best
    with pytest.raises(InputError, match="k"):
        rec.recommend(history, news, k=0)


def test_save_load_round_trip(trained, news, tmp_path):
    rec, _ = trained
    rec.save(tmp_path / "rec")
    again = NewsRecommender.load(tmp_path / "rec")
    imps = make_impressions(5, 4)
    for a, b in zip(rec.score(imps, news), again.score(imps, news)):
        assert np.allclose(a, b, atol=1e-5)
    assert not list((tmp_path / "rec").glob("*.pkl"))
    with pytest.raises(InputError, match="news recommender"):
        NewsRecommender.load(tmp_path)


def test_unknown_candidates_and_unlabelled_training_are_refused(trained, news):
    rec, _ = trained
    with pytest.raises(InputError, match="N999"):
        rec.score([Impression("x", "u", None, ["S1"], ["N999"], [1])], news)
    with pytest.raises(InputError, match="no click labels"):
        rec.train([Impression("x", "u", None, ["S1"], ["S2", "P2"], None)], news,
                  progress=False)


@pytest.mark.parametrize("bad", [dict(user_encoder="gru"), dict(dim=30, heads=4),
                                 dict(negatives=0)])
def test_config_errors(bad):
    with pytest.raises(InputError):
        NewsRecConfig(**bad).check()


def test_vector_cache_encodes_each_text_once_and_persists(tiny_xlmr_path, tmp_path,
                                                         monkeypatch):
    cache = NewsVectorCache(str(tiny_xlmr_path), tmp_path / "cache")
    calls = []
    encode = cache.backbone.encode
    monkeypatch.setattr(cache.backbone, "encode",
                        lambda texts, **kw: calls.append(list(texts)) or encode(texts, **kw))
    first = cache.vectors(["a tennis final", "a new law", "a tennis final"])
    second = cache.vectors(["a new law"])
    assert calls == [["a tennis final", "a new law"]]
    assert np.allclose(first[1], second[0]) and np.allclose(first[0], first[2])
    cache.save()
    again = NewsVectorCache(str(tiny_xlmr_path), tmp_path / "cache")
    assert np.allclose(again.vectors(["a new law"]), second)
    assert len(calls) == 1


def test_baselines(tiny_xlmr_path, news):
    train = make_impressions(30, 0)
    test = make_impressions(10, 5)
    pop = popularity_scores(test, train)
    assert all(len(s) == len(i.candidates) for s, i in zip(pop, test))
    clicked = {c for i in train for c, y in zip(i.candidates, i.labels) if y} | {
        h for i in train for h in i.history}
    for scores, imp in zip(pop, test):
        for score, c in zip(scores, imp.candidates):
            assert (score >= 1) == (c in clicked)
    cache = NewsVectorCache(str(tiny_xlmr_path))
    moh = mean_of_history_scores(test, news, cache)
    assert all(np.all(np.abs(s) <= 1 + 1e-5) for s in moh)


def test_news_encoder_component_round_trip(trained, news, tmp_path):
    rec, _ = trained
    nlp = spacy.blank("xx")
    nlp.add_pipe("news_encoder").initialize(recommender=rec)
    texts = [news["S1"].text(), news["P1"].text(), "Fußball: Pokalfinale heute"]
    docs = list(nlp.pipe(texts, batch_size=2))
    expected = rec.encode_texts(texts)
    for doc, vec in zip(docs, expected):
        assert np.allclose(doc.vector, vec, atol=1e-5) and doc.has_vector
    assert docs[0].similarity(docs[0]) == pytest.approx(1.0, abs=1e-5)
    nlp.to_disk(tmp_path / "pipe")
    loaded = spacy.load(tmp_path / "pipe")
    assert np.allclose(loaded(texts[2]).vector, expected[2], atol=1e-5)


def _write_tsv(path, rows):
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def test_cli_train_eval_recommend(tiny_xlmr_path, news, tmp_path):
    from xapps.cli import main

    _write_tsv(tmp_path / "news.tsv", [(n, "cat", "sub", it.title, it.abstract, "", "", "")
                                       for n, it in news.items()])
    rows = []
    for k, imp in enumerate(make_impressions(80, 0)):
        when = f"11/{9 + k // 40}/2019 {1 + k % 12}:{k % 60:02d}:00 PM"
        rows.append((imp.id, imp.user, when, " ".join(imp.history),
                     " ".join(f"{c}-{y}" for c, y in zip(imp.candidates, imp.labels))))
    _write_tsv(tmp_path / "behaviors.tsv", rows)
    common = ["--behaviors", str(tmp_path / "behaviors.tsv"), "--news",
              str(tmp_path / "news.tsv"), "--cache", str(tmp_path / "cache")]
    runner = CliRunner()
    res = runner.invoke(main, ["news", "train", *common, "--out", str(tmp_path / "model"),
                               "--backbone", str(tiny_xlmr_path), "--epochs", "2",
                               "--batch-size", "16"])
    assert res.exit_code == 0, res.output
    stats = json.loads((tmp_path / "model" / "training.json").read_text())
    assert "test" in stats and stats["impressions"] > 0
    res = runner.invoke(main, ["news", "eval", "--model", str(tmp_path / "model"), *common,
                               "--split", "test", "--baselines"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert set(out) == {"model", "random", "popularity", "mean-of-history"}
    res = runner.invoke(main, ["news", "recommend", "--model", str(tmp_path / "model"),
                               "--news", str(tmp_path / "news.tsv"), "--cache",
                               str(tmp_path / "cache"), "--user-history", "S1,S2,nope",
                               "-k", "3"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if line.count("\t") == 3]
    assert len(lines) == 3 and lines[0].startswith("1\t")
    assert "1 history ids are not in --news" in res.output
    # without --model: the untrained recommender, scored exactly as the baseline
    res = runner.invoke(main, ["news", "eval", "--backbone", str(tiny_xlmr_path), *common,
                               "--split", "test", "--baselines"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout[res.stdout.index("{"):])
    assert out["model"]["auc"] == pytest.approx(out["mean-of-history"]["auc"], abs=1e-6)
    res = runner.invoke(main, ["news", "recommend", "--backbone", str(tiny_xlmr_path),
                               "--news", str(tmp_path / "news.tsv"), "--cache",
                               str(tmp_path / "cache"), "--user-history", "S1,S2", "-k", "2"])
    assert res.exit_code == 0, res.output
    assert len([line for line in res.stdout.splitlines() if line.count("\t") == 3]) == 2


def test_finetuned_top_layers_start_at_the_frozen_vectors_and_train(tiny_xlmr_path, news,
                                                                   tmp_path):
    torch.manual_seed(0)
    cfg = NewsRecConfig(backbone=str(tiny_xlmr_path), dim=16, heads=4, dropout=0.0,
                        finetune_layers=1)
    rec = NewsRecommender(cfg)
    ids = ["S0", "P3", "S5"]
    # untouched copies of the top layer over cached lower states = the frozen backbone
    assert np.allclose(rec.base_vectors(ids, news), rec.backbone_vectors(ids, news),
                       atol=1e-4)
    before = {k: v.clone() for k, v in rec.model.top.state_dict().items()}
    rec.train(make_impressions(120, 0), news, epochs=4, batch_size=16, lr=3e-3,
              progress=False)
    assert any(not torch.equal(before[k], v) for k, v in rec.model.top.state_dict().items())
    test = make_impressions(30, 2)
    assert rec.evaluate(test, news)["auc"] > 0.8
    rec.save(tmp_path / "ft")
    again = NewsRecommender.load(tmp_path / "ft")
    for a, b in zip(rec.score(test, news), again.score(test, news)):
        assert np.allclose(a, b, atol=1e-4)
    texts = [news["S1"].text()]
    assert np.allclose(again.encode_texts(texts), rec.news_vectors(["S1"], news), atol=1e-4)


def test_finetune_layers_must_leave_a_frozen_layer(tiny_xlmr_path):
    with pytest.raises(InputError, match="finetune_layers"):
        NewsRecommender(NewsRecConfig(backbone=str(tiny_xlmr_path), dim=16, heads=4,
                                      finetune_layers=2))


def test_untrained_recommender_is_the_mean_of_history_baseline(tiny_xlmr_path, news):
    """head='none' scores exactly as the measured baseline ranks (up to each user's norm)."""
    test = make_impressions(10, 5)
    cache = NewsVectorCache(str(tiny_xlmr_path))
    rec = NewsRecommender.untrained(str(tiny_xlmr_path), cache=cache)
    for got, want in zip(rec.score(test, news), mean_of_history_scores(test, news, cache)):
        if np.linalg.norm(want) == 0:  # no known click: both score every candidate 0
            assert np.allclose(got, 0)
            continue
        assert np.allclose(got / np.linalg.norm(got), want / np.linalg.norm(want), atol=1e-5)
    with pytest.raises(InputError, match=r"E202.*nothing to learn"):
        rec.train(make_impressions(4, 0), news, epochs=1, progress=False)
    with pytest.raises(InputError, match=r"E196.*head"):
        NewsRecConfig(user_encoder="nrms", head="none").check()


def test_news_encoder_works_without_a_trained_model(tiny_xlmr_path, news, tmp_path):
    nlp = spacy.blank("xx")
    nlp.add_pipe("news_encoder", config={"backbone": str(tiny_xlmr_path)})
    nlp.initialize()
    texts = [news["S1"].text(), "Fußball: Pokalfinale heute"]
    docs = list(nlp.pipe(texts))
    frozen = NewsVectorCache(str(tiny_xlmr_path)).vectors(texts)
    for doc, vec in zip(docs, frozen):
        assert np.allclose(doc.vector, vec, atol=1e-5)
    nlp.to_disk(tmp_path / "pipe")
    assert np.allclose(spacy.load(tmp_path / "pipe")(texts[1]).vector, frozen[1], atol=1e-5)
