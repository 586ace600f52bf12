import numpy as np
import pytest

from xapps.backbone import align_offsets, clear_cache, load_backbone
from xapps.errors import ModelError


@pytest.fixture()
def tiny(tiny_xlmr_path):
    return load_backbone(str(tiny_xlmr_path))


def test_cache_shares_one_model_per_key(tiny_xlmr_path):
    a = load_backbone(str(tiny_xlmr_path))
    b = load_backbone(str(tiny_xlmr_path))
    assert a is b and a.model is b.model
    other_dtype = load_backbone(str(tiny_xlmr_path), dtype="float16")
    assert other_dtype is not a


def test_encode_shapes_and_normalisation(tiny):
    vecs = tiny.encode(["Malaria is spread by mosquitoes.", "x"], prompt="passage")
    assert vecs.shape == (2, 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    raw = tiny.encode(["Malaria is spread by mosquitoes."], normalize=False)
    assert not np.isclose(np.linalg.norm(raw), 1.0)
    assert tiny.encode([]).shape == (0, 32)


def test_encode_matches_a_plain_transformers_forward(tiny):
    import torch

    text = "Heavy rain flooded the market."
    enc = tiny.tokenizer([text], return_tensors="pt")
    with torch.inference_mode():
        states = tiny.model(**enc).last_hidden_state[0]
    expected = states.mean(0).numpy()
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(tiny.encode([text])[0], expected, atol=1e-5)
    cls = tiny.encode([text], pooling="cls", normalize=False)[0]
    np.testing.assert_allclose(cls, states[0].numpy(), atol=1e-5)


def test_batching_and_sorting_do_not_change_results(tiny):
    texts = ["short", "a much longer sentence about solar panels in the village school",
             "médium lëngth téxt"]
    together = tiny.encode(texts, batch_size=2)
    alone = np.stack([tiny.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_long_text_is_windowed_not_truncated(tiny):
    text = " ".join(["The village installed solar panels for the school."] * 12)
    n_subwords = len(tiny.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n_subwords > tiny.max_length  # the fixture model has 32 usable positions
    emb = tiny.embed_tokens([text])[0]
    assert emb.vectors.shape == (n_subwords, 32)
    assert emb.offsets[-1, 1] == len(text.rstrip(".")) + 1  # the last subword reaches the end
    assert np.all(np.abs(emb.vectors).sum(1) > 0)  # every subword got a contextual vector


def test_offsets_point_into_the_original_text_without_prefix(tiny, monkeypatch):
    monkeypatch.setattr(tiny, "prefixes", {"query": "query: ", "passage": "passage: "})
    text = "Emoji 😀 and  odd\tspacing"
    plain = tiny.embed_tokens([text])[0]
    emb = tiny.embed_tokens([text], prompt="query")[0]
    assert len(emb.offsets) == len(plain.offsets)  # the prefix's subwords are dropped
    assert emb.offsets.min() >= 0 and emb.offsets.max() <= len(text)
    pieces = [text[s:e] for s, e in emb.offsets.tolist()]
    assert all(p and not p[0].isspace() and not p[-1].isspace() for p in pieces)
    covered = set()
    for s, e in emb.offsets.tolist():
        covered.update(range(s, e))
    assert covered == {i for i, ch in enumerate(text) if not ch.isspace()}


def test_layer_selection(tiny):
    last = tiny.embed_tokens(["solar panels"], layer=-1)[0].vectors
    first = tiny.embed_tokens(["solar panels"], layer=1)[0].vectors
    assert last.shape == first.shape and not np.allclose(last, first)


def test_align_offsets_exact_overlap():
    offsets = np.array([[0, 2], [2, 5], [6, 8]])
    assert [a.tolist() for a in align_offsets(offsets, [(0, 5), (5, 6), (6, 8), (1, 7)])] == [
        [0, 1], [], [2], [0, 1, 2]]


def test_seq2seq_model_uses_its_encoder(tiny_mt5_path):
    bb = load_backbone(str(tiny_mt5_path))
    assert bb.is_seq2seq
    vecs = bb.encode(["hello world", "another text"])
    assert vecs.shape == (2, 32)
    emb = bb.embed_tokens(["hello world"])[0]
    assert emb.vectors.shape[0] == len(emb.offsets) > 0


def test_unknown_model_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clear_cache()
    with pytest.raises(ModelError, match=r"\[E020\] Unknown model 'no-such/model-xyz'.*"
                                         r"xapps models install me5-small"):
        load_backbone("no-such/model-xyz")


def test_e5_prefixes_follow_the_model(tiny):
    assert tiny.prefixes == {}  # the tiny XLM-R is not an e5 model


def test_int8_quantisation_is_its_own_cached_copy_close_to_float(tiny_xlmr_path):
    import torch

    texts = ["Malaria is spread by mosquitoes.", "La malaria se transmite por mosquitos.",
             "Heavy rain flooded the market."]
    fp32 = load_backbone(str(tiny_xlmr_path))
    int8 = load_backbone(str(tiny_xlmr_path), quantize="int8")
    assert int8 is not fp32 and int8 is load_backbone(str(tiny_xlmr_path), quantize="int8")
    assert load_backbone(str(tiny_xlmr_path), quantize="none") is fp32
    linear_types = {type(m) for m in int8.model.modules() if "Linear" in type(m).__name__}
    assert linear_types and torch.nn.Linear not in linear_types  # every Linear was swapped
    assert any(type(m) is torch.nn.Linear for m in fp32.model.modules())  # float copy intact
    a, b = fp32.encode(texts), int8.encode(texts)
    cos = (a * b).sum(1)
    assert (cos > 0.95).all() and not np.allclose(a, b)
    assert "int8" in repr(int8)


def test_quantize_is_validated_and_ignored_on_gpu():
    import torch

    from xapps.backbone import resolve_quantize

    with pytest.raises(ModelError, match=r"quantize='int4'.*none, int8"):
        resolve_quantize("int4", torch.device("cpu"))
    assert resolve_quantize("int8", torch.device("cpu")) == "int8"
    assert resolve_quantize("int8", torch.device("cuda")) is None
    assert resolve_quantize(None, torch.device("cpu")) is None


def test_fast_dtype_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    import torch

    from xapps import backbone

    cpu = torch.device("cpu")
    monkeypatch.setattr(backbone, "cpu_has_native_bf16", lambda: True)
    assert backbone.resolve_dtype("fast", cpu) == torch.bfloat16
    monkeypatch.setattr(backbone, "cpu_has_native_bf16", lambda: False)
    assert backbone.resolve_dtype("fast", cpu) == torch.float32
    assert backbone.resolve_dtype("auto", cpu) == torch.float32
    with pytest.raises(ModelError, match="auto, fast, float32"):
        backbone.resolve_dtype("int3", cpu)


def test_bf16_encoding_stays_close_to_float32(tiny_xlmr_path):
    texts = ["Malaria is spread by mosquitoes.", "Heavy rain flooded the market."]
    a = load_backbone(str(tiny_xlmr_path)).encode(texts)
    b = load_backbone(str(tiny_xlmr_path), dtype="bfloat16").encode(texts)
    assert b.dtype == np.float32 and ((a * b).sum(1) > 0.99).all()


def _mlm_and_broken_models(root, tiny_xlmr_path):
    """The tiny XLM-R saved with a masked-LM head (weights AutoModel does not use, as in
    xlm-roberta-base), and a copy with one encoder weight missing and one cut short."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    mlm = root / "with-mlm-head"
    shutil.copytree(tiny_xlmr_path, mlm)
    torch.manual_seed(0)
    XLMRobertaForMaskedLM(XLMRobertaConfig.from_pretrained(mlm)).save_pretrained(mlm)
    broken = root / "broken"
    shutil.copytree(tiny_xlmr_path, broken)
    weights = load_file(str(broken / "model.safetensors"))
    del weights["encoder.layer.1.output.dense.weight"]
    weights["embeddings.LayerNorm.weight"] = weights["embeddings.LayerNorm.weight"][:3].clone()
    save_file(weights, str(broken / "model.safetensors"), metadata={"format": "pt"})
    return mlm, broken


LOAD_SCRIPT = """
import logging, sys
from xapps.backbone import load_backbone, load_trainable
from xapps.errors import ModelError
if sys.argv[3] == "debug":
    logging.basicConfig(level=logging.DEBUG)
load_backbone(sys.argv[1])
load_trainable(sys.argv[1], name="mlm")
try:
    load_backbone(sys.argv[2])
except ModelError as exc:
    print("REFUSED", exc)
"""


def test_loads_are_quiet_unless_debug_and_missing_weights_are_refused(tmp_path,
                                                                      tiny_xlmr_path):
    """transformers' "Loading weights" bar and its load report (UNEXPECTED heads, MISSING /
    MISMATCH tables) stay hidden on ordinary loads; a model that really lacks weights is
    refused with E220 naming them; at debug level (xapps -vv) transformers' own output is
    shown as it is."""
    import subprocess
    import sys

    mlm, broken = _mlm_and_broken_models(tmp_path, tiny_xlmr_path)
    runs = {level: subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(mlm), str(broken),
                                   level], capture_output=True, text=True, timeout=300)
            for level in ("normal", "debug")}
    quiet, loud = runs["normal"], runs["debug"]
    assert quiet.returncode == 0, quiet.stderr
    assert "Loading weights" not in quiet.stderr and "LOAD REPORT" not in quiet.stderr
    assert "UNEXPECTED" not in quiet.stderr and "MISSING" not in quiet.stderr
    assert "[E220]" in quiet.stdout and "encoder.layer.1.output.dense.weight" in quiet.stdout
    assert "embeddings.LayerNorm.weight (shape (3,)" in quiet.stdout
    assert "Re-copy the folder" in quiet.stdout and "models install" not in quiet.stdout
    assert loud.returncode == 0, loud.stderr
    assert "Loading weights" in loud.stderr and "LOAD REPORT" in loud.stderr
