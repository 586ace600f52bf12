"""Per-language LoRA adapters on a tiny random XLM-R: creation leaves the output unchanged,
each language runs its own adapter and every other language the exact shared weights, and
adapters round-trip through safetensors."""
from __future__ import annotations

import json

import pytest
import torch

from xapps.adapters import LanguageAdapters, LoraSettings
from xapps.errors import InputError, ModelError

IDS = torch.tensor([[0, 5, 6, 7, 8, 2], [0, 9, 10, 11, 2, 1]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]])


def fresh_model(path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(path, add_pooling_layer=False).eval()


def run(model):
    with torch.no_grad():
        return model(input_ids=IDS, attention_mask=MASK).last_hidden_state


def perturb(adapters, lang, seed=0):
    """Random LoRA B factors (they start at zero), so the adapter changes the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in adapters.named_parameters(lang).items():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen))


@pytest.fixture()
def model(tiny_xlmr_path):
    return fresh_model(tiny_xlmr_path)


def test_settings_are_validated():
    assert LoraSettings(rank=4, alpha=8).alpha == 8.0
    for bad, match in (({"rank": 0}, "rank"), ({"rank": 2.0}, "rank"), ({"alpha": 0}, "alpha"),
                       ({"dropout": 1.0}, "dropout"), ({"target_modules": "query"},
                                                       "target_modules"),
                       ({"target_modules": []}, "target_modules")):
        with pytest.raises(InputError, match=match):
            LoraSettings(**bad)


def test_default_targets_are_the_attention_projections(model):
    adapters = LanguageAdapters(model)
    assert adapters.settings.target_modules == ["query", "key", "value",
                                                "attention.output.dense"]
    params = adapters.add("de")
    # 2 layers x 4 projections x (A, B)
    assert len(params) == 16 and all(p.requires_grad for p in params)
    frozen = [p for n, p in model.named_parameters() if "lora_" not in n]
    assert frozen and not any(p.requires_grad for p in frozen)
    with pytest.raises(ModelError, match="without peft layers"):
        LanguageAdapters(model)


def test_only_the_routed_language_changes_and_others_get_the_shared_weights(model):
    shared = run(model)
    adapters = LanguageAdapters(model)
    de, fr = adapters.add("de"), adapters.add("fr")
    with adapters.use("de") as name:
        assert name == "de" and torch.equal(run(model), shared)  # LoRA B starts at zero
    perturb(adapters, "de")
    with adapters.use("de"):
        assert not torch.allclose(run(model), shared, atol=1e-3)
    for other in ("fr", "en", None):  # fr's adapter is still zero; en has none
        with adapters.use(other):
            assert torch.equal(run(model), shared)
    assert torch.equal(run(model), shared)  # outside use(): the shared weights
    # Switching adapters leaves every adapter trainable, as add() returned it.
    assert all(p.requires_grad for p in de + fr)


def test_use_trains_only_the_active_adapter(model):
    adapters = LanguageAdapters(model, LoraSettings(rank=2, alpha=4, dropout=0.1))
    de, fr = adapters.add("de"), adapters.add("fr")
    model.train()
    with adapters.use("fr"):
        model(input_ids=IDS, attention_mask=MASK).last_hidden_state.sum().backward()
    assert all(p.grad is not None for p in fr) and all(p.grad is None for p in de)


def test_groups_route_each_row_by_its_language_in_order(model):
    adapters = LanguageAdapters(model)
    adapters.add("de")
    adapters.add("sw")
    groups = adapters.groups(["de", "en", "de-CH", "sw", None, "DE", "pt_BR"])
    assert groups == [("de", [0, 2, 5]), (None, [1, 4, 6]), ("sw", [3])]
    assert adapters.languages == ["de", "sw"]
    with pytest.raises(InputError, match="one language code per row"):
        adapters.groups("de")
    with pytest.raises(InputError, match="row 1.*'German'.*ISO 639"):
        adapters.groups(["de", "German"])


def test_save_load_round_trip_and_refusals(model, tiny_xlmr_path, tmp_path):
    adapters = LanguageAdapters(model, LoraSettings(rank=4), base="weights-a")
    adapters.add("de")
    perturb(adapters, "de")
    adapters.save("de", tmp_path / "de")
    with adapters.use("de"):
        want = run(model)

    other = fresh_model(tiny_xlmr_path)
    again = LanguageAdapters(other, base="weights-a")
    params = again.load("de", tmp_path / "de")
    assert again.languages == ["de"] and all(p.requires_grad for p in params)
    with again.use("de"):
        assert torch.equal(run(other), want)
    with pytest.raises(InputError, match="remove"):
        again.load("de", tmp_path / "de")
    again.remove("de")
    assert again.languages == [] and torch.equal(run(other), run(fresh_model(tiny_xlmr_path)))

    with pytest.raises(ModelError, match="E090.*no such folder"):
        again.load("de", tmp_path / "missing")
    with pytest.raises(ModelError, match="E091.*weights-a.*weights-b"):
        LanguageAdapters(fresh_model(tiny_xlmr_path), base="weights-b").load("de", tmp_path / "de")
    record = json.loads((tmp_path / "de" / "adapter.json").read_text())
    record["model"]["hidden_size"] = 64
    (tmp_path / "de" / "adapter.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="E091.*hidden_size=64"):
        LanguageAdapters(fresh_model(tiny_xlmr_path)).load("de", tmp_path / "de")
    with pytest.raises(InputError, match="one with an adapter"):
        again.save("fr", tmp_path / "fr")
