"""Cross-encoder re-ranker on a tiny random XLM-R: the loss, scoring contract, training,
chunking / accumulation equivalence and save/load."""
from __future__ import annotations

import json
import math
import random

import pytest
import torch

from xapps.errors import InputError, ModelError
from xapps.linking.kb import Alias, Concept
from xapps.linking.rerank import (
    CrossEncoderReranker,
    RerankerConfig,
    TrainingExample,
    evaluate_reranker,
    listwise_loss,
    train_reranker,
)
from xapps.linking.types import Candidate, Mention

NAMES = ["malaria", "fever", "rain", "market", "mosquito", "flood", "chills", "bite"]




@pytest.fixture(scope="module")
def kb():
    return {f"C{i}": Concept(f"C{i}", name, [Alias(name.upper(), "en")], ["Disease"])
            for i, name in enumerate(NAMES)}


def make_examples(n: int, k: int = 4, seed: int = 0) -> list[TrainingExample]:
    """Gold = the candidate whose canonical name is the mention text; generator scores are
    random, so only the cross-encoder can find it."""
    rng = random.Random(seed)
    out = []
    for j in range(n):
        g = j % len(NAMES)
        ids = [g] + rng.sample([i for i in range(len(NAMES)) if i != g], k - 1)
        rng.shuffle(ids)
        cands = [Candidate(f"C{i}", rng.random(), {"tfidf": 0.5}) for i in ids]
        out.append(TrainingExample(Mention(NAMES[g], "en", left="the", right="is"), cands,
                                   f"C{g}"))
    return out


def reranker(path, **kw) -> CrossEncoderReranker:
    kw.setdefault("dropout", 0.0)
    return CrossEncoderReranker(RerankerConfig(str(path), **kw), device="cpu")


def grads(model: CrossEncoderReranker) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()
            if p.grad is not None}


# --------------------------------------------------------------------------- loss
def test_listwise_loss_hand_computed():
    logits = torch.tensor([[2.0, 0.0, 0.0],     # candidates a, b, then NIL; gold a
                           [1.0, 5.0, 1.0]])    # b is padding (masked); gold NIL
    gold = torch.tensor([0, 2])
    scores = torch.tensor([[1.0, 0.0], [0.5, 9.0]])
    mask = torch.tensor([[True, True], [True, False]])
    ce = [math.log(math.exp(2) + 2) - 2, math.log(2.0)]
    dist = [1.0, 0.5]  # ||(2, 0) - (1, 0)||, ||(1) - (0.5)||; the padded column is ignored
    plain = listwise_loss(logits, gold, scores, mask, 0.0)
    assert float(plain) == pytest.approx(sum(ce) / 2, abs=1e-6)
    reg = listwise_loss(logits, gold, scores, mask, 2.0)
    assert float(reg) == pytest.approx((ce[0] + 2 * dist[0] + ce[1] + 2 * dist[1]) / 2,
                                       abs=1e-6)
    per = listwise_loss(logits, gold, scores, mask, 1.0, reduction="none")
    assert per.tolist() == pytest.approx([ce[0] + 1.0, ce[1] + 0.5], abs=1e-6)
    # Without a NIL column the softmax is over the candidates only.
    no_nil = listwise_loss(logits[:1, :2], torch.tensor([1]), scores[:1], None, 0.0)
    assert float(no_nil) == pytest.approx(math.log(math.exp(2) + 1), abs=1e-6)


def test_listwise_loss_gradient_finite_at_zero_distance_and_shape_errors():
    logits = torch.zeros(1, 3, requires_grad=True)
    listwise_loss(logits, torch.tensor([2]), torch.zeros(1, 2), None, 1.0).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad.tolist()[0] == pytest.approx([1 / 3, 1 / 3, -2 / 3])
    with pytest.raises(InputError, match=r"\[E077\].*logits \(1, 5\)"):
        listwise_loss(torch.zeros(1, 5), torch.tensor([0]), torch.zeros(1, 2), None, 1.0)


# --------------------------------------------------------------------------- texts
def test_candidate_and_mention_texts(tiny_xlmr_path):
    r = reranker(tiny_xlmr_path, max_aliases=2, use_types=True, context_window=10)
    concept = Concept("C0", "Malaria", [Alias("malaria", "en"), Alias("Paludisme", "fr"),
                                        Alias("Sumpffieber", "de"), Alias("Marsh fever", "en")],
                      ["Disease", "Infection"])
    # Case-insensitive duplicate of the name dropped; the mention's language first.
    assert r.candidate_text(concept, "de") == ("Malaria [TITLE] Sumpffieber ; Paludisme "
                                               "[TYPE] Disease, Infection")
    assert r.candidate_text(concept) == "Malaria [TITLE] Paludisme ; Sumpffieber [TYPE] " \
                                        "Disease, Infection"
    plain = reranker(tiny_xlmr_path)
    assert plain.candidate_text(Concept("C1", "Fever", types=["Sign"])) == "Fever [TITLE]"
    m = Mention("fever", left="Patients had a\nvery  high", right=" and chills for days")
    # 10 characters each side, no partial words, whitespace collapsed.
    assert r.mention_text(m) == "very high [START] fever [END] and"
    m2 = Mention("fever", left="zz rapid high", right=" and chill then")  # cuts between words
    assert r.mention_text(m2) == "rapid high [START] fever [END] and chill"
    assert reranker(tiny_xlmr_path, context_window=0).mention_text(m) == \
        "[START] fever [END]"
    # The markers are single tokens.
    ids = r.tokenizer("[START] fever [END]", add_special_tokens=False)["input_ids"]
    assert r.tokenizer.convert_ids_to_tokens(ids)[0] == "[START]"


def test_works_with_the_knowledge_base_class(tiny_xlmr_path):
    from xapps.linking.kb import KnowledgeBase

    kb = KnowledgeBase([
        Concept("C1", "Headache", ["Cephalgia", {"text": "Kopfschmerz", "lang": "DE"}],
                ["T184"]),
        Concept("C2", "Fever", [{"text": "Fieber", "lang": "de"}], ["T184"])])
    r = reranker(tiny_xlmr_path, use_types=True)
    assert r.candidate_text(kb["C1"], "de-AT") == \
        "Headache [TITLE] Kopfschmerz ; Cephalgia [TYPE] T184"
    ranked = r.score([Mention("Kopfweh", "de")], [[Candidate("C2", 0.4), Candidate("C1", 0.6)]],
                     kb)
    assert sorted(c.concept_id for c in ranked[0]) == ["C1", "C2"]


# --------------------------------------------------------------------------- scoring
def test_score_reorders_candidates_with_probabilities(tiny_xlmr_path, kb):
    r = reranker(tiny_xlmr_path)
    ex = make_examples(3, k=5)
    mentions = [e.mention for e in ex]
    lists = [e.candidates for e in ex]
    ranked, nil = r.score_with_nil(mentions, lists, kb)
    for before, after, p_nil in zip(lists, ranked, nil):
        assert sorted(c.concept_id for c in after) == sorted(c.concept_id for c in before)
        probs = [c.score for c in after]
        assert probs == sorted(probs, reverse=True)
        assert sum(probs) + p_nil == pytest.approx(1.0, abs=1e-9)
        gen = {c.concept_id: c.score for c in before}
        for c in after:
            assert c.sources == {"tfidf": 0.5, "generator": gen[c.concept_id],
                                 "cross_encoder": c.score}
    assert [[c.as_tuple() for c in lst] for lst in r.score(mentions, lists, kb)] == \
        [[c.as_tuple() for c in lst] for lst in ranked]
    # A set function of the list: batching and input order do not change a probability.
    one = r.score(mentions, lists, kb, batch_size=1)
    shuffled = r.score(mentions, [list(reversed(lst)) for lst in lists], kb)
    for a, b, c in zip(ranked, one, shuffled):
        pa = {x.concept_id: x.score for x in a}
        assert {x.concept_id: x.score for x in b} == pytest.approx(pa, abs=1e-6)
        assert {x.concept_id: x.score for x in c} == pytest.approx(pa, abs=1e-6)
    # Without NIL the candidates alone sum to 1.
    no_nil, nil0 = reranker(tiny_xlmr_path, nil=False).score_with_nil(mentions, lists, kb)
    assert nil0 == [0.0, 0.0, 0.0]
    assert [sum(c.score for c in lst) for lst in no_nil] == pytest.approx([1.0] * 3)


def test_empty_candidate_lists(tiny_xlmr_path, kb):
    r = reranker(tiny_xlmr_path)
    m = Mention("fever")
    assert r.score([m], [[]], kb) == [[]]
    assert r.score([], [], kb) == []
    ranked, nil = r.score_with_nil([m, m], [[], [Candidate("C1", 0.3)]], kb)
    assert ranked[0] == [] and nil[0] == 1.0
    assert [c.concept_id for c in ranked[1]] == ["C1"]


def test_score_input_errors(tiny_xlmr_path, kb):
    r = reranker(tiny_xlmr_path)
    with pytest.raises(InputError, match=r"\[E073\] 1 mentions and 2 candidate lists"):
        r.score([Mention("x")], [[], []], kb)
    with pytest.raises(InputError, match=r"\[E072\] Candidate 'C99' \(for mention 'x'\)"):
        r.score([Mention("x")], [[Candidate("C99", 1.0)]], kb)
    with pytest.raises(InputError, match=r"\[E074\] RerankerConfig.max_length = 4"):
        RerankerConfig(str(tiny_xlmr_path), max_length=4)


# --------------------------------------------------------------------------- training
def test_training_lowers_loss_and_raises_accuracy(tiny_xlmr_path, kb):
    examples = make_examples(20)
    # The tiny model's embeddings are random, so this toy task needs them trainable.
    r = reranker(tiny_xlmr_path, rank_reg_weight=0.0, freeze_embeddings=False)
    before = evaluate_reranker(r, examples, kb)
    assert before["loss"] == pytest.approx(math.log(5), abs=0.01)  # 4 candidates + NIL
    history = train_reranker(r, examples, kb, epochs=5, lr=5e-3, batch_size=4, progress=False)
    after = evaluate_reranker(r, examples, kb)
    assert history["steps"] == 25 and len(history["loss"]) == 25
    assert after["loss"] < before["loss"] - 0.5
    assert after["accuracy@1"] >= before["accuracy@1"] + 0.5
    assert not r.training
    # Seeded: the same run gives the same losses (dropout on, so the seed matters).
    runs = [train_reranker(reranker(tiny_xlmr_path, dropout=0.1), examples, kb, lr=5e-3,
                           batch_size=4, seed=seed, progress=False)["loss"]
            for seed in (1, 1, 2)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_candidate_chunking_gives_the_same_loss_and_gradients(tiny_xlmr_path, kb):
    examples = make_examples(3, k=6)  # 3 x (6 + NIL) = 21 pairs
    r = reranker(tiny_xlmr_path)
    r.train(True)
    results = []
    for chunk in (1000, 4):
        r.head.zero_grad(set_to_none=True)
        r.model.zero_grad(set_to_none=True)
        loss = r.loss(examples, kb, candidate_chunk=chunk)
        loss.backward()
        results.append((float(loss.detach()), grads(r)))
    (loss_a, g_a), (loss_b, g_b) = results
    assert loss_b == pytest.approx(loss_a, abs=1e-5)
    assert g_a.keys() == g_b.keys() and len(g_a) > 10
    for name in g_a:
        torch.testing.assert_close(g_b[name], g_a[name], atol=1e-5, rtol=1e-4, msg=name)


def test_checkpointed_chunks_replay_dropout(tiny_xlmr_path, kb):
    """With dropout on, a checkpointed chunk must recompute with the same dropout masks."""
    examples = make_examples(2, k=5)
    r = reranker(tiny_xlmr_path, dropout=0.3)
    r.train(True)
    items = [r._prepare(e.mention, e.candidates, kb, {}, e.gold) for e in examples]
    results = []
    for checkpointed in (False, True):
        r.head.zero_grad(set_to_none=True)
        r.model.zero_grad(set_to_none=True)
        torch.manual_seed(123)
        logits, gold, scores, mask = r._batch_logits(items, 4, checkpointed=checkpointed)
        loss = listwise_loss(logits, gold, scores, mask, 1.0)
        loss.backward()
        results.append((float(loss.detach()), grads(r)))
    assert results[1][0] == pytest.approx(results[0][0], abs=1e-6)
    for name, g in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], g, atol=1e-6, rtol=1e-5, msg=name)


def test_grad_accumulation_equals_the_larger_batch(tiny_xlmr_path, kb):
    examples = make_examples(16, k=3)
    runs = []
    for batch_size, accum in ((8, 1), (4, 2)):
        r = reranker(tiny_xlmr_path)
        hist = train_reranker(r, examples, kb, epochs=1, lr=1e-3, batch_size=batch_size,
                              grad_accum=accum, warmup=0.0, progress=False)
        runs.append((hist, dict(r.named_parameters())))
    (h1, p1), (h2, p2) = runs
    assert h1["steps"] == h2["steps"] == 2
    assert h2["loss"] == pytest.approx(h1["loss"], abs=1e-5)
    fresh = dict(reranker(tiny_xlmr_path).named_parameters())
    moved = 0
    for name, value in p1.items():
        torch.testing.assert_close(p2[name], value, atol=1e-6, rtol=1e-5, msg=name)
        moved += not torch.equal(value, fresh[name])
    assert moved > 10  # the updates happened
    # Each step's loss is the mean over its 8 mentions (checked on step 1 by hand).
    order = torch.randperm(16, generator=torch.Generator().manual_seed(0)).tolist()[:8]
    start = reranker(tiny_xlmr_path)
    expected = evaluate_reranker(start, [examples[i] for i in order], kb)["loss"]
    assert h1["loss"][0] == pytest.approx(expected, abs=1e-5)


def test_nil_targets_and_skipped_examples(tiny_xlmr_path, kb):
    ex = make_examples(4)
    ex[0] = TrainingExample(ex[0].mention, ex[0].candidates, "NOT-IN-LIST")
    ex[1] = TrainingExample(ex[1].mention, [], ex[1].gold)
    with_nil = train_reranker(reranker(tiny_xlmr_path), ex, kb, lr=1e-3, progress=False)
    assert with_nil["examples"] == 3
    assert with_nil["skipped"] == {"no_candidates": 1, "gold_not_in_candidates": 0}
    without = train_reranker(reranker(tiny_xlmr_path, nil=False), ex, kb, lr=1e-3,
                             progress=False)
    assert without["examples"] == 2
    assert without["skipped"] == {"no_candidates": 1, "gold_not_in_candidates": 1}
    with pytest.raises(InputError, match=r"\[E075\] None of the 2 training examples"):
        train_reranker(reranker(tiny_xlmr_path, nil=False), ex[:2], kb, progress=False)


# --------------------------------------------------------------------------- persistence
def test_save_load_round_trip(tiny_xlmr_path, kb, tmp_path):
    examples = make_examples(8)
    r = reranker(tiny_xlmr_path, use_types=True, rank_reg_weight=0.5)
    train_reranker(r, examples, kb, lr=1e-2, batch_size=4, progress=False)
    mentions = [e.mention for e in examples]
    lists = [e.candidates for e in examples]
    expected = r.score_with_nil(mentions, lists, kb)
    out = r.save(tmp_path / "reranker")
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert {"cfg.json", "head.safetensors", "model/model.safetensors", "model/config.json",
            "model/tokenizer.json"} <= set(names)
    assert not [n for n in names if n.endswith((".bin", ".pkl", ".pt"))]
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["config"]["use_types"] is True and cfg["config"]["rank_reg_weight"] == 0.5
    loaded = CrossEncoderReranker.load(out)
    assert loaded.config == r.config and loaded.max_length == r.max_length
    got = loaded.score_with_nil(mentions, lists, kb)
    assert got[1] == expected[1]
    assert [[c.as_tuple() for c in lst] for lst in got[0]] == \
        [[c.as_tuple() for c in lst] for lst in expected[0]]
    fresh = reranker(tiny_xlmr_path, use_types=True).score(mentions, lists, kb)
    assert [[c.score for c in lst] for lst in fresh] != \
        [[c.score for c in lst] for lst in expected[0]]  # the trained weights were saved


def test_load_refuses_damaged_folders(tiny_xlmr_path, tmp_path):
    out = reranker(tiny_xlmr_path).save(tmp_path / "r")
    with open(out / "head.safetensors", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match=r"\[E071\] Re-ranker file 'head.safetensors'"):
        CrossEncoderReranker.load(out)
    (out / "cfg.json").unlink()
    with pytest.raises(ModelError, match=r"\[E070\] .* no cfg.json"):
        CrossEncoderReranker.load(out)


def test_word_embeddings_are_frozen_unless_asked(tiny_xlmr_path, kb):
    examples = make_examples(8)
    for freeze in (True, False):
        r = reranker(tiny_xlmr_path, freeze_embeddings=freeze)
        emb = r.model.get_input_embeddings().weight
        before = emb.detach().clone()
        train_reranker(r, examples, kb, lr=5e-3, batch_size=4, progress=False)
        assert torch.equal(emb.detach(), before) is freeze


def test_generator_prior_keeps_the_generator_order_and_enters_the_loss(tiny_xlmr_path, kb):
    from xapps.linking.types import Candidate

    ex = make_examples(3, k=5)
    mentions = [e.mention for e in ex]
    lists = [[Candidate(c.concept_id, 0.9 - 0.1 * i, dict(c.sources))
              for i, c in enumerate(e.candidates)] for e in ex]
    strong = reranker(tiny_xlmr_path, generator_prior=1000.0)
    for before, after in zip(lists, strong.score(mentions, lists, kb)):
        assert [c.concept_id for c in after] == [c.concept_id for c in before]
    # The loss sees prior-shifted logits: with no regularisation it equals the loss of the
    # plain model's logits plus prior * score.
    plain = reranker(tiny_xlmr_path)
    shifted = reranker(tiny_xlmr_path, generator_prior=2.0, rank_reg_weight=0.0)
    items = [TrainingExample(m, c, e.gold) for m, c, e in zip(mentions, lists, ex)]
    with torch.no_grad():
        logits, gold, scores, mask = plain._batch_logits(
            plain_items := __import__("xapps.linking.rerank", fromlist=["x"])._prepare_examples(
                plain, items, kb, 64)[0], 64)
        expected = listwise_loss(torch.cat([logits[:, :-1] + 2.0 * scores * mask,
                                            logits[:, -1:]], dim=1), gold, scores, mask, 0.0)
        got = shifted.loss(items, kb)
    assert len(plain_items) == 3 and float(got) == pytest.approx(float(expected), rel=1e-5)
