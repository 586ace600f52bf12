"""SapBERT-style alignment of the dense generator's encoder on KB synonyms, on a tiny random
XLM-R: pair sampling, the loss, training that pulls synonyms together, resume, the saved
folder as a backbone."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from xapps.backbone import clear_cache, load_backbone
from xapps.checksums import sha256_file
from xapps.errors import InputError
from xapps.linking.kb import Alias, Concept, KnowledgeBase
from xapps.linking.synonym_training import (
    AlignmentConfig,
    info_nce,
    sample_pair,
    synonym_groups,
    train_alignment,
)

TERMS = [("fever", "Fieber", "fiebre"), ("headache", "Kopfschmerz", "cefalea"),
         ("cough", "Husten", "tos"), ("nausea", "Übelkeit", "náusea"),
         ("rash", "Ausschlag", "erupción"), ("anemia", "Blutarmut", "anemia ferropénica"),
         ("seizure", "Krampfanfall", "convulsión"), ("fatigue", "Müdigkeit", "cansancio")]


@pytest.fixture(scope="module")
def kb():
    concepts = [Concept(f"C{i}", en, [Alias(de, "de"), Alias(es, "es")])
                for i, (en, de, es) in enumerate(TERMS)]
    concepts.append(Concept("C-lonely", "orphan term"))  # one name: nothing to align
    return KnowledgeBase(concepts, name="tiny-med")


def _config(tiny_xlmr_path, **kw):
    base = {"backbone": str(tiny_xlmr_path), "batch_size": 4, "steps": 6, "lr": 5e-4,
            "warmup": 0.0, "checkpoint_every": 2, "temperature": 0.1}
    return AlignmentConfig(**{**base, **kw})


def test_groups_skip_single_name_concepts_and_case_duplicates():
    kb = KnowledgeBase([Concept("A", "Fever", [Alias("fever"), Alias("Fieber", "de")]),
                        Concept("B", "lonely")])
    assert synonym_groups(kb) == [[("Fever", None), ("Fieber", "de")]]


def test_pairs_cross_languages_when_asked():
    names = [("fever", None), ("pyrexia", None), ("Fieber", "de")]
    rng = random.Random(0)
    crossed = [sample_pair(names, rng, 1.0) for _ in range(50)]
    assert all(("Fieber" in pair) for pair in crossed)
    anywhere = {pair for pair in (sample_pair(names, rng, 0.0) for _ in range(200))}
    assert ("fever", "pyrexia") in anywhere or ("pyrexia", "fever") in anywhere
    assert all(a != b for a, b in anywhere)


def test_info_nce_rewards_aligned_pairs_and_masks_same_spelling():
    a = torch.nn.functional.normalize(torch.eye(4)[:, :4] + 0.01, dim=-1)
    aligned = info_nce(a, a, 0.05)
    shuffled = info_nce(a, a[[1, 0, 3, 2]], 0.05)
    assert aligned < 0.01 < shuffled
    b = a.clone()
    b[1] = a[0]  # row 1 of b spelled like row 0: excluding it as a negative lowers the loss
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[0, 1] = True
    assert info_nce(a, b, 0.05, mask) < info_nce(a, b, 0.05)


def _synonym_margin(backbone) -> float:
    vecs = {t: v for t, v in zip([t for group in TERMS for t in group],
                                 backbone.encode([t for group in TERMS for t in group],
                                                 prompt="query"))}
    same, other = [], []
    for i, gi in enumerate(TERMS):
        for j, gj in enumerate(TERMS):
            for a in gi:
                for b in gj:
                    if a != b:
                        (same if i == j else other).append(float(vecs[a] @ vecs[b]))
    return float(np.mean(same) - np.mean(other))


def test_training_pulls_synonyms_together_and_saves_a_backbone(kb, tiny_xlmr_path, tmp_path):
    before = _synonym_margin(load_backbone(str(tiny_xlmr_path)))
    out = tmp_path / "aligned"
    # A random tiny model only separates inputs through its word embeddings: train them too.
    record = train_alignment(kb, out, _config(tiny_xlmr_path, steps=40, lr=2e-3,
                                              freeze_embeddings=False), progress=False)
    assert record["step"] == 40 and len(record["loss"]) == 40
    assert record["concepts"] == len(TERMS) and record["names"] == 3 * len(TERMS)
    assert np.mean(record["loss"][-5:]) < np.mean(record["loss"][:5])
    info = json.loads((out / "xapps_model.json").read_text())
    assert info["files"]["model.safetensors"] == sha256_file(out / "model.safetensors")
    assert info["base_model"] == str(tiny_xlmr_path) and info["training"]["step"] == 40
    assert not (tmp_path / "aligned.partial").exists()
    clear_cache()
    aligned = load_backbone(str(out))
    assert _synonym_margin(aligned) > before + 0.05


def test_interrupted_training_resumes_from_its_checkpoint(kb, tiny_xlmr_path, tmp_path):
    out = tmp_path / "aligned"
    seen = []

    def stop_at_five(event):
        seen.append(event["step"])
        if event["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_alignment(kb, out, _config(tiny_xlmr_path), progress=False, callback=stop_at_five)
    assert not out.exists()
    state = json.loads((tmp_path / "aligned.partial" / "state.json").read_text())
    assert state["record"]["step"] == 4
    with pytest.raises(InputError, match=r"E086.*lr"):
        train_alignment(kb, out, _config(tiny_xlmr_path, lr=1e-3), progress=False)
    # a damaged checkpoint is refused, naming the file, not resumed from
    weights = tmp_path / "aligned.partial" / "optimizer.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-8] + bytes(8))
    with pytest.raises(InputError, match=r"E239.*optimizer.safetensors"):
        train_alignment(kb, out, _config(tiny_xlmr_path), progress=False)
    weights.write_bytes(good)
    seen.clear()
    record = train_alignment(kb, out, _config(tiny_xlmr_path), progress=False,
                             callback=lambda e: seen.append(e["step"]))
    assert seen == [5, 6] and record["step"] == 6 and len(record["loss"]) == 6
    assert out.exists() and not (tmp_path / "aligned.partial").exists()
    # Frozen word embeddings (the default): every language's vocabulary keeps its vectors.
    clear_cache()
    base = load_backbone(str(tiny_xlmr_path)).model.get_input_embeddings().weight
    assert torch.equal(load_backbone(str(out)).model.get_input_embeddings().weight, base)


def test_a_kb_without_synonyms_or_bad_settings_fail_clearly(tiny_xlmr_path, tmp_path):
    lonely = KnowledgeBase([Concept(f"C{i}", f"term {i}") for i in range(10)])
    with pytest.raises(InputError, match=r"E085.*0 concepts"):
        train_alignment(lonely, tmp_path / "x", _config(tiny_xlmr_path), progress=False)
    with pytest.raises(InputError, match="batch_size"):
        AlignmentConfig(batch_size=1)
    with pytest.raises(InputError, match="cross_lingual"):
        AlignmentConfig(cross_lingual=1.5)


def test_align_encoder_cli_then_dense_generator_uses_the_model(kb, tiny_xlmr_path, tmp_path):
    from click.testing import CliRunner

    from xapps.cli import main
    from xapps.linking.candidates import make_generator
    from xapps.linking.kb import save_kb
    from xapps.linking.types import Mention

    save_kb(kb, tmp_path / "kb.jsonl")
    out = tmp_path / "aligned"
    result = CliRunner().invoke(main, ["link", "align-encoder", "--kb", str(tmp_path / "kb.jsonl"),
                                       "--out", str(out), "--backbone", str(tiny_xlmr_path),
                                       "--steps", "3", "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    assert "3 steps" in result.output and "8 concepts (24 names)" in result.output
    gen = make_generator("dense", backbone=str(out)).fit(kb)
    assert gen.index.backbone["sha256"] == sha256_file(out / "model.safetensors")
    assert len(gen.generate([Mention("Fieber")], k=3)[0]) == 3
    bad = CliRunner().invoke(main, ["link", "align-encoder", "--kb", str(tmp_path / "kb.jsonl"),
                                    "--out", str(out), "--backbone", str(tiny_xlmr_path),
                                    "--batch-size", "64"])
    assert bad.exit_code == 2 and "E085" in bad.output
