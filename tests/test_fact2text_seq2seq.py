import numpy as np
import pytest
import torch

from xapps.fact2text.data import F2TExample, Fact
from xapps.fact2text.seq2seq import (
    Seq2SeqConfig,
    Seq2SeqGenerator,
    VocabMap,
    build_model,
    parameter_count,
    trim_vocabulary,
)

EXAMPLES = [
    F2TExample([Fact("Aarhus", "leader", "Jacob Bundsgaard")],
               ["The leader of Aarhus is Jacob Bundsgaard."], "en", "a"),
    F2TExample([Fact("Aarhus Airport", "runway length", "2702.0"),
                Fact("Aarhus Airport", "city served", "Aarhus")],
               ["Aarhus Airport serves Aarhus and has a runway of 2702.0 metres."], "en", "b"),
    F2TExample([Fact("Aarhus", "leader", "Jacob Bundsgaard")],
               ["Arweinydd Aarhus yw Jacob Bundsgaard."], "cy", "c"),
]


def test_vocab_map_round_trip():
    vocab = VocabMap([5, 0, 9, 3], vocab_size=12, unk_id=3)
    assert vocab.keep.tolist() == [0, 3, 5, 9] and len(vocab) == 4
    assert vocab.to_new([9, 5, 7]) == [3, 2, 1]  # 7 is not kept: <unk>
    assert vocab.to_old([3, 2]) == [9, 5]


@pytest.mark.parametrize("which", ["warm-start", "mt5"])
def test_trimming_keeps_the_logits_of_kept_tokens(which, tiny_xlmr_path, tiny_mt5_path):
    torch.manual_seed(0)
    path = str(tiny_xlmr_path if which == "warm-start" else tiny_mt5_path)
    model = build_model(path, decoder_layers=1).eval()
    keep = np.array(sorted({0, 1, 2, 3, 5, 8, 13, 21, 34}))
    enc_ids = torch.tensor([[5, 8, 13, 2]])
    dec_ids = torch.tensor([[0, 21, 34]])
    before = model(input_ids=enc_ids, decoder_input_ids=dec_ids).logits[..., keep]
    n_before = parameter_count(model)
    trim_vocabulary(model, keep)
    remap = {int(k): i for i, k in enumerate(keep)}
    new_enc = torch.tensor([[remap[int(i)] for i in enc_ids[0]]])
    new_dec = torch.tensor([[remap[int(i)] for i in dec_ids[0]]])
    after = model(input_ids=new_enc, decoder_input_ids=new_dec).logits
    assert after.shape[-1] == len(keep)
    assert torch.allclose(before, after, atol=1e-5)
    assert parameter_count(model) < n_before


def test_warm_started_generator_trains_generates_and_reloads(tiny_xlmr_path, tmp_path):
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(backbone=str(tiny_xlmr_path), decoder_layers=1, max_target_len=12,
                        num_beams=2)
    gen = Seq2SeqGenerator.create(cfg, EXAMPLES, langs=["cy", "en"])
    assert gen.vocab is not None and len(gen.vocab) < len(gen.tokenizer)
    stats = gen.train(EXAMPLES, steps=30, batch_size=3, lr=1e-3, progress=False)
    assert stats["pairs"] == 3 and np.isfinite(stats["loss_last"])
    assert stats["loss_last"] < stats["loss_first"]  # it learns the three references
    facts = [[Fact("Aarhus", "leader", "Jacob Bundsgaard")]]
    out = gen.generate(facts, "cy")
    assert len(out) == 1 and isinstance(out[0], str)
    gen.save(tmp_path / "gen")
    from xapps.fact2text import load_generator

    again = load_generator(tmp_path / "gen")
    assert again.generate(facts, "cy") == out
    assert torch.equal(again.model.role_embeddings.weight, gen.model.role_embeddings.weight)


def test_mt5_backbone_uses_the_same_code_path(tiny_mt5_path):
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(backbone=str(tiny_mt5_path), trim_vocab=False, max_target_len=8,
                        num_beams=1, constrain_entities=False)
    gen = Seq2SeqGenerator.create(cfg, EXAMPLES)
    assert gen.vocab is None and gen.start_id == gen.tokenizer.pad_token_id
    stats = gen.train(EXAMPLES, steps=2, batch_size=2, progress=False)
    assert stats["steps"] == 2
    assert len(gen.generate([[Fact("a", "b", "c")], [Fact("d", "e", "f")]], "en")) == 2


def test_script_unification_round_trip():
    from xapps.fact2text.script import from_devanagari, to_devanagari, unifies
    from xapps.fact2text.seq2seq import _unified

    bengali = "বাংলা ভাষা ১৯৭১"
    assert to_devanagari(bengali) == "बांला भाषा १९७१"
    assert from_devanagari(to_devanagari(bengali), "bn") == bengali
    assert from_devanagari("हिंदी", "hi") == "हिंदी" and not unifies("cy")
    cfg = Seq2SeqConfig(script_unification=True)
    assert _unified(bengali, "bn", cfg) == "बांला भाषा १९७१"
    assert _unified("Cymraeg", "cy", cfg) == "Cymraeg"
    assert _unified(bengali, "bn", Seq2SeqConfig()) == bengali


def test_force_entities_copies_every_entity_into_the_output(tiny_xlmr_path):
    """An untrained model writes noise; with the force-copy constraint every subject and
    object still appears, as tokens, in every output."""
    from xapps.fact2text.seq2seq import _contains

    torch.manual_seed(0)
    cfg = Seq2SeqConfig(backbone=str(tiny_xlmr_path), decoder_layers=1, max_target_len=24,
                        num_beams=2, force_entities=True)
    gen = Seq2SeqGenerator.create(cfg, EXAMPLES, langs=["en"])
    fact_sets = [[Fact("Aarhus", "leader", "Jacob Bundsgaard")],
                 [Fact("Aarhus Airport", "city served", "Aarhus")]]
    entity_ids = [gen._entity_ids(fs) for fs in fact_sets]
    ids, mask, roles, facts = gen._sources(fact_sets, ["en", "en"])
    from transformers import LogitsProcessorList

    from xapps.fact2text.seq2seq import ForceEntities

    out = gen.model.generate(ids, attention_mask=mask, role_ids=roles, fact_ids=facts,
                             num_beams=2, max_new_tokens=24, decoder_start_token_id=gen.start_id,
                             eos_token_id=gen.eos_id, pad_token_id=gen.pad_id,
                             logits_processor=LogitsProcessorList([ForceEntities(
                                 entity_ids, 2, gen.eos_id, 24)]))
    for row, ents in zip(out.tolist(), entity_ids):
        assert all(_contains(row, e) for e in ents)
    texts = gen.generate(fact_sets, "en")  # through the config flag
    assert "Bundsgaard" in texts[0]  # ("J" is not in the tiny fixture vocabulary)


def _force_step(next_best: int, generated: list[int], budget: int = 20) -> torch.Tensor:
    """One ForceEntities step for one hypothesis (start token 0, then ``generated``) whose
    most likely next token is ``next_best``; the entity is [7, 8], end-of-sequence is 2."""
    from xapps.fact2text.seq2seq import ForceEntities

    proc = ForceEntities([[[7, 8]]], beams=1, eos_id=2, max_new_tokens=budget)
    proc(torch.tensor([[0]]), torch.zeros(1, 10))  # first call fixes the prompt length
    scores = torch.zeros(1, 10)
    scores[0, next_best] = 5.0
    return proc(torch.tensor([[0] + generated]), scores)[0]


def test_force_entities_copies_where_the_model_would_end():
    """A hypothesis that would end with an entity missing is made to copy it there and then,
    rather than fill its length budget first; one that would go on writing is left alone."""
    would_end = _force_step(next_best=2, generated=[4, 5])
    assert int(would_end.argmax()) == 7 and torch.isinf(would_end[2])
    assert torch.isinf(would_end[[4, 5, 9]]).all()
    writing = _force_step(next_best=5, generated=[4, 5])
    assert int(writing.argmax()) == 5 and torch.isinf(writing[2])
    started = _force_step(next_best=3, generated=[4, 7])  # half-copied entity is continued
    assert int(started.argmax()) == 8 and torch.isinf(started[3])
    no_budget = _force_step(next_best=5, generated=[4, 5], budget=4)
    assert int(no_budget.argmax()) == 7
    done = _force_step(next_best=2, generated=[7, 8])  # all copied: may end
    assert int(done.argmax()) == 2


def test_vocab_texts_let_a_zero_shot_language_keep_its_subwords(tiny_xlmr_path):
    """Zero-shot: no Welsh example, only unpaired Welsh text; its subwords stay in the
    trimmed vocabulary, which they would not without it."""
    cfg = Seq2SeqConfig(backbone=str(tiny_xlmr_path), decoder_layers=1)
    english = [ex for ex in EXAMPLES if ex.lang == "en"]
    welsh = "Arweinydd Aarhus yw Jacob Bundsgaard."
    plain = Seq2SeqGenerator.create(cfg, english, langs=["en", "cy"])
    with_text = Seq2SeqGenerator.create(cfg, english, langs=["en", "cy"],
                                        vocab_texts={"cy": [welsh]})
    welsh_ids = set(plain.tokenizer(welsh)["input_ids"])
    assert not welsh_ids <= set(plain.vocab.keep.tolist())
    assert welsh_ids <= set(with_text.vocab.keep.tolist())
    assert len(with_text.vocab) > len(plain.vocab)


def test_warm_start_copies_self_attention_into_cross_attention(tiny_xlmr_path):
    model = build_model(str(tiny_xlmr_path), decoder_layers=2)
    layers = [m for m in model.decoder.modules() if hasattr(m, "crossattention")]
    assert len(layers) == 2
    for layer in layers:
        for (name, a), (_, b) in zip(layer.attention.state_dict().items(),
                                     layer.crossattention.state_dict().items()):
            assert torch.equal(a, b), name


def test_trained_generator_reads_its_input(tiny_xlmr_path):
    """A decoder that learns the references as a language model scores them as well from
    the wrong facts as from the right ones (what a me5-small warm start did before its
    cross-attention was copied from self-attention; a tiny random model cannot reproduce
    that collapse, the test above covers the fix). Swapping the fact sets must cost loss."""
    torch.manual_seed(0)
    names = ["red", "water", "green", "tree", "city", "blue"]  # in the tiny vocabulary
    examples = [F2TExample([Fact(s, "leader", o)], [f"{o} leads {s}."], "en", f"{i}")
                for i, (s, o) in enumerate(zip(names, names[1:] + names[:1]))]
    cfg = Seq2SeqConfig(backbone=str(tiny_xlmr_path), decoder_layers=1, max_target_len=12)
    gen = Seq2SeqGenerator.create(cfg, examples)
    gen.train(examples, steps=120, batch_size=6, lr=2e-3, progress=False)

    dep = gen.input_dependence(examples, batch_size=6)
    assert dep["examples"] == 6
    assert dep["loss"] < 0.93 * dep["loss_shuffled_facts"], dep
