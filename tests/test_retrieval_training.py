"""Retriever training on a tiny random XLM-R: data reading, pseudo-pairs, the losses, projection
and adapter training, resuming and checkpoint averaging."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xapps.errors import InputError
from xapps.retrieval import ColBERTConfig, ColBERTEncoder
from xapps.retrieval.training import (
    Example,
    RetrievalTrainingConfig,
    contrastive_loss,
    distillation_loss,
    pseudo_pairs,
    query_scores,
    read_examples,
    train_retriever,
)

WORDS = ["river", "mountain", "doctor", "market", "winter", "engine", "garden", "letter",
         "island", "bridge", "forest", "window", "planet", "camera", "violin", "harbor"]


def toy_examples() -> list[Example]:
    """Query word -> a document naming it in a sentence; the negative names another word."""
    out = []
    for i, word in enumerate(WORDS):
        other = WORDS[(i + 5) % len(WORDS)]
        out.append(Example(word, f"the {word} is here", [f"the {other} is here"],
                           query_lang="en", positive_lang="de", negatives_lang=["en"]))
    return out


def make_encoder(path) -> ColBERTEncoder:
    return ColBERTEncoder(ColBERTConfig(backbone=str(path), dim=16, query_length=8,
                                        doc_max_length=12), dtype="float32")


def config(**overrides) -> RetrievalTrainingConfig:
    base = dict(steps=6, batch_size=8, checkpoint_every=2, lr=5e-3, seed=0)
    return RetrievalTrainingConfig(**{**base, **overrides})


def test_read_examples_parses_rows_and_names_the_bad_line(tmp_path):
    good = tmp_path / "train.jsonl"
    good.write_text(json.dumps({"query": "q", "positive": "p", "negatives": ["n"],
                                "lang": "de"}) + "\n\n"
                    + json.dumps({"query": "q2", "positive": "p2"}) + "\n", encoding="utf-8")
    first, second = read_examples(good)
    assert (first.query, first.positive, first.negatives) == ("q", "p", ["n"])
    assert first.query_lang == first.positive_lang == "de" and first.negatives_lang == ["de"]
    assert second.negatives == [] and second.query_lang is None
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q", "positive": "p"}) + "\n"
                   + json.dumps({"query": "q", "positive": ""}) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"E120.*bad.jsonl:2.*'positive'"):
        read_examples(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="no rows"):
        read_examples(empty)


def test_pseudo_pairs_inverse_cloze_and_title():
    from xapps.corpus import Record

    records = [Record("a", "Rain fell. The river rose! Boats moved.", {"title": "Flood",
                                                                       "lang": "en"}),
               Record("b", "Only one sentence here.", {})]
    ict = pseudo_pairs(records, "ict", seed=1)
    assert len(ict) == 1  # one sentence gives no pair
    sentences = {"Rain fell.", "The river rose!", "Boats moved."}
    assert ict[0].query in sentences and ict[0].query not in ict[0].positive
    assert ict[0].query_lang == "en"
    titled = pseudo_pairs(records, "title")
    assert [(e.query, e.positive) for e in titled] == [("Flood", records[0].text)]
    with pytest.raises(InputError, match="E083"):
        pseudo_pairs(records, "summary")


def test_losses_prefer_the_positive_and_follow_the_teacher():
    queries = torch.nn.functional.normalize(torch.randn(3, 4, 8), dim=-1)
    docs = torch.cat([queries[:, :3], torch.randn(3, 2, 8)], dim=1)  # doc i contains query i
    docs = torch.nn.functional.normalize(docs, dim=-1)
    mask = torch.tensor([[True] * 4 + [False]] * 3)
    scores = query_scores(queries, docs, mask)
    assert scores.shape == (3, 3)
    assert contrastive_loss(scores, 1.0) < contrastive_loss(scores.flip(1), 1.0)
    # Padded document slots never win the max.
    masked_only = query_scores(queries, docs, torch.tensor([[True] + [False] * 4] * 3))
    assert torch.allclose(masked_only, (queries @ docs[:, 0].T).sum(1))
    assert distillation_loss(scores, scores, 1.0, 1.0) < 1e-6
    assert distillation_loss(scores, -scores, 1.0, 1.0) > 0.01


def test_config_checks_options():
    with pytest.raises(InputError, match="batch_size"):
        RetrievalTrainingConfig(batch_size=0)
    with pytest.raises(InputError, match="E083"):
        RetrievalTrainingConfig(train="everything")
    with pytest.raises(InputError, match="adapter_languages"):
        RetrievalTrainingConfig(train="adapters")
    with pytest.raises(InputError, match="average_last"):
        RetrievalTrainingConfig(steps=4, checkpoint_every=2, average_last=3)


def test_projection_training_lowers_the_loss_and_saves_a_loadable_encoder(tiny_xlmr_path,
                                                                          tmp_path):
    encoder = make_encoder(tiny_xlmr_path)
    before = encoder.projection.weight.detach().clone()
    record = train_retriever(toy_examples() * 4, tmp_path / "out",
                             config(steps=30, checkpoint_every=10), encoder=encoder,
                             progress=False)
    losses = record["loss"]
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    assert not torch.allclose(before, encoder.projection.weight)
    assert not (tmp_path / "out.partial").exists()
    saved = json.loads((tmp_path / "out" / "training.json").read_text())
    assert saved["step"] == 30 and saved["examples"] == 64
    loaded = ColBERTEncoder.load(tmp_path / "out", dtype="float32")
    np.testing.assert_allclose(loaded.encode_queries(["river"])[0],
                               encoder.encode_queries(["river"])[0], atol=1e-5)
    assert loaded.identity["sha256"] != make_encoder(tiny_xlmr_path).identity["sha256"]


def test_too_few_examples_is_a_clear_error(tiny_xlmr_path, tmp_path):
    with pytest.raises(InputError, match="E121.*batch_size=8"):
        train_retriever(toy_examples()[:3], tmp_path / "out", config(),
                        encoder=make_encoder(tiny_xlmr_path), progress=False)


def test_interrupted_training_resumes_to_the_same_weights(tiny_xlmr_path, tmp_path):
    examples = toy_examples()
    straight = make_encoder(tiny_xlmr_path)
    train_retriever(examples, tmp_path / "a", config(), encoder=straight, progress=False)

    def stop_at_3(info):
        if info["step"] == 3:
            raise KeyboardInterrupt

    resumed = make_encoder(tiny_xlmr_path)
    with pytest.raises(KeyboardInterrupt):
        train_retriever(examples, tmp_path / "b", config(), encoder=resumed, progress=False,
                        callback=stop_at_3)
    assert (tmp_path / "b.partial" / "state.json").exists() and not (tmp_path / "b").exists()
    with pytest.raises(InputError, match="E122.*lr"):
        train_retriever(examples, tmp_path / "b", config(lr=1e-2),
                        encoder=make_encoder(tiny_xlmr_path), progress=False)
    # A damaged checkpoint file is refused by name (E239), not trained on.
    weights = next((tmp_path / "b.partial").glob("step-*.safetensors"))
    good = weights.read_bytes()
    weights.write_bytes(good[:-8] + bytes(8))
    with pytest.raises(InputError, match=f"E239.*{weights.name}"):
        train_retriever(examples, tmp_path / "b", config(),
                        encoder=make_encoder(tiny_xlmr_path), progress=False)
    weights.write_bytes(good)
    resumed = make_encoder(tiny_xlmr_path)
    record = train_retriever(examples, tmp_path / "b", config(), encoder=resumed,
                             progress=False)
    assert record["step"] == 6
    torch.testing.assert_close(resumed.projection.weight, straight.projection.weight,
                               atol=1e-5, rtol=1e-4)


def test_checkpoint_averaging_saves_the_mean_of_the_last_checkpoints(tiny_xlmr_path,
                                                                     tmp_path):
    encoder = make_encoder(tiny_xlmr_path)
    seen = {}

    def keep(info, encoder=encoder):
        seen[info["step"]] = encoder.projection.weight.detach().clone()

    record = train_retriever(toy_examples(), tmp_path / "out",
                             config(average_last=2), encoder=encoder, progress=False,
                             callback=keep)
    assert record["averaged"] == ["step-0000004.safetensors", "step-0000006.safetensors"]
    torch.testing.assert_close(encoder.projection.weight, (seen[4] + seen[6]) / 2)


def test_distillation_from_a_single_vector_teacher_trains(tiny_xlmr_path, tmp_path):
    record = train_retriever(toy_examples(), tmp_path / "out",
                             config(teacher=str(tiny_xlmr_path), distill_weight=0.5),
                             encoder=make_encoder(tiny_xlmr_path), progress=False)
    assert all(np.isfinite(record["loss"]))
    assert record["config"]["teacher"] == str(tiny_xlmr_path)


def test_adapter_training_changes_only_its_language(tiny_xlmr_path, tmp_path):
    encoder = make_encoder(tiny_xlmr_path)
    shared = make_encoder(tiny_xlmr_path)
    record = train_retriever(toy_examples(), tmp_path / "out",
                             config(train="adapters", adapter_languages=["de"], adapter_lr=1e-2),
                             encoder=encoder, progress=False)
    assert all(np.isfinite(record["loss"]))
    torch.testing.assert_close(encoder.projection.weight, shared.projection.weight)
    texts = ["the river is here", "the garden is here"]
    for method in ("encode_queries", "encode_documents"):
        en = getattr(encoder, method)(texts, languages="en")
        de = getattr(encoder, method)(texts, languages="de")
        base = getattr(shared, method)(texts)
        np.testing.assert_allclose(en[0], base[0], atol=1e-6)  # shared weights for en
        assert not np.allclose(de[0], base[0], atol=1e-4)
    loaded = ColBERTEncoder.load(tmp_path / "out", dtype="float32")
    assert loaded.config.adapters == ["de"]
    np.testing.assert_allclose(loaded.encode_documents(texts, languages="de")[1],
                               encoder.encode_documents(texts, languages="de")[1], atol=1e-5)


def test_cli_trains_from_jsonl(tiny_xlmr_path, tmp_path):
    from click.testing import CliRunner

    from xapps.cli import main

    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"query": e.query, "positive": e.positive,
                                        "negatives": e.negatives}) + "\n"
                            for e in toy_examples()), encoding="utf-8")
    result = CliRunner().invoke(main, [
        "retrieval", "train", "--data", str(data), "--out", str(tmp_path / "enc"),
        "--backbone", str(tiny_xlmr_path), "--dim", "16", "--steps", "4", "--batch-size", "8",
        "--checkpoint-every", "2", "--average-last", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{"):])
    assert summary["step"] == 4 and len(summary["averaged"]) == 2
    assert (tmp_path / "enc" / "colbert.json").exists()
    bad = CliRunner().invoke(main, ["retrieval", "train", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "--data" in bad.output
