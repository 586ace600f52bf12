import subprocess
import sys

import numpy as np
import pytest
import spacy
from spacy.tokens import DocBin


@pytest.fixture()
def nlp(tiny_xlmr_path):
    nlp = spacy.blank("xx")
    nlp.add_pipe("xapps_encoder", config={"backbone": str(tiny_xlmr_path), "batch_size": 4})
    return nlp


ODD_TEXTS = [
    "Tokenizers must keep   odd  whitespace\tand\nnewlines aligned.",
    "Emoji 😀🎉 and accents: café naïve",
    "मलेरिया संक्रमित मच्छरों के काटने से फैलता है।",
    "疟疾通过受感染蚊子的叮咬传播。",
    "تنتقل الملاريا عن طريق لدغة البعوض المصاب.",
]


def test_sets_token_doc_and_span_vectors(nlp):
    doc = nlp("Malaria is spread by mosquitoes.")
    assert doc._.xapps_token_vectors.shape == (len(doc), 32)
    assert doc.vector.shape == (32,) and np.isclose(np.linalg.norm(doc.vector), 1.0)
    assert doc[0].vector.shape == (32,)
    assert doc[0:2].vector.shape == (32,)
    np.testing.assert_allclose(doc[0:2].vector, doc._.xapps_token_vectors[0:2].mean(0),
                               rtol=1e-6)
    assert doc.has_vector
    assert doc._.xapps_backbone.endswith(nlp.get_pipe("xapps_encoder").cfg["backbone"])


def test_alignment_is_exact_on_odd_text(nlp, tiny_xlmr_path):
    from xapps.backbone import load_backbone

    bb = load_backbone(str(tiny_xlmr_path))
    for text, doc in zip(ODD_TEXTS, nlp.pipe(ODD_TEXTS)):
        emb = bb.embed_tokens([text], prompt="passage")[0]
        for token, vec in zip(doc, doc._.xapps_token_vectors):
            covering = [i for i, (s, e) in enumerate(emb.offsets.tolist())
                        if s < token.idx + len(token.text) and e > token.idx]
            if token.is_space:
                assert not covering and not vec.any()
            else:
                assert covering, (text, token.text)
                np.testing.assert_allclose(vec, emb.vectors[covering].mean(0), rtol=1e-5,
                                           atol=1e-6)


def test_pipe_runs_the_backbone_once_per_batch(nlp, monkeypatch):
    encoder = nlp.get_pipe("xapps_encoder")
    calls = []
    original = encoder.backbone.embed_tokens

    def counting(texts, **kw):
        calls.append(len(texts))
        return original(texts, **kw)

    monkeypatch.setattr(encoder.backbone, "embed_tokens", counting)
    docs = list(nlp.pipe(ODD_TEXTS * 2, batch_size=4))
    assert len(docs) == 10 and calls == [4, 4, 2]


def test_pipe_equals_call(nlp):
    piped = list(nlp.pipe(ODD_TEXTS))
    for text, doc in zip(ODD_TEXTS, piped):
        single = nlp(text)
        np.testing.assert_allclose(single.vector, doc.vector, atol=1e-5)


def test_similarity_across_docs_spans_tokens(nlp):
    a, b = nlp.pipe(["solar panels at the school", "solar panels at the school"])
    assert a.similarity(b) == pytest.approx(1.0, abs=1e-5)
    c = nlp("the central bank raised rates")
    assert -1.0 <= a.similarity(c) < 1.0
    assert a[0:2].similarity(b[0:2]) == pytest.approx(1.0, abs=1e-5)
    assert a[0].similarity(b[0]) == pytest.approx(1.0, abs=1e-5)


def test_two_components_share_one_backbone(tiny_xlmr_path):
    nlp = spacy.blank("de")
    first = nlp.add_pipe("xapps_encoder", name="enc_a", config={"backbone": str(tiny_xlmr_path)})
    second = nlp.add_pipe("xapps_encoder", name="enc_b",
                          config={"backbone": str(tiny_xlmr_path), "layer": 1})
    nlp("Ein Satz.")
    assert first.backbone is second.backbone
    assert first.backbone.model is second.backbone.model


def test_invalid_config_is_rejected_without_io():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="prompt='answer' is not supported"):
        nlp.add_pipe("xapps_encoder", config={"backbone": "/does/not/exist", "prompt": "answer"})


def test_docbin_round_trip_keeps_vectors(nlp):
    doc = nlp("Kijiji kiliweka paneli za jua.")
    db = DocBin(store_user_data=True, docs=[doc])
    restored = list(DocBin().from_bytes(db.to_bytes()).get_docs(nlp.vocab))[0]
    np.testing.assert_allclose(restored._.xapps_token_vectors, doc._.xapps_token_vectors)


def test_saved_pipeline_loads_in_a_new_process_without_import(nlp, tmp_path):
    texts = ["Mvua kubwa ilifurika sokoni.", "Heavy rain flooded the market."]
    expected = np.stack([d.vector for d in nlp.pipe(texts)])
    nlp.to_disk(tmp_path / "pipe")
    script = (
        "import sys, json, spacy, numpy as np\n"
        f"nlp = spacy.load({str(tmp_path / 'pipe')!r})\n"
        f"vecs = [d.vector.tolist() for d in nlp.pipe({texts!r})]\n"
        "print(json.dumps(vecs))\n"
    )
    # The child never imports xapps itself: spaCy finds the factory via the entry point.
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    got = np.array(__import__("json").loads(out.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_save_weights_makes_a_self_contained_pipeline(tiny_xlmr_path, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("xapps_encoder", config={"backbone": str(tiny_xlmr_path),
                                          "save_weights": True})
    expected = nlp("self contained").vector
    nlp.to_disk(tmp_path / "pipe")
    assert (tmp_path / "pipe" / "xapps_encoder" / "model" / "config.json").exists()
    loaded = spacy.load(tmp_path / "pipe")
    assert loaded.get_pipe("xapps_encoder").cfg["backbone"].endswith("model")
    np.testing.assert_allclose(loaded("self contained").vector, expected, atol=1e-5)


def test_packaged_pipeline_config_assembles(tiny_xlmr_path):
    from pathlib import Path

    from spacy.util import load_config, load_model_from_config

    cfg_path = Path(__file__).resolve().parents[1] / "pipelines" / "encoder_me5.cfg"
    config = load_config(cfg_path, overrides={
        "components.xapps_encoder.backbone": str(tiny_xlmr_path)})
    nlp = load_model_from_config(config, auto_fill=True)
    nlp.initialize()
    assert nlp.pipe_names == ["sentencizer", "xapps_encoder"]
    doc = nlp("Une phrase. Another sentence.")
    assert len(list(doc.sents)) == 2 and doc.vector.shape == (32,)


@pytest.mark.parametrize("content", ["", '{"backbone": ', "[1, 2]"])
def test_damaged_saved_cfg_is_named(nlp, tmp_path, content):
    from xapps.errors import ModelError

    nlp.to_disk(tmp_path / "pipe")
    (tmp_path / "pipe" / "xapps_encoder" / "cfg.json").write_text(content, encoding="utf-8")
    with pytest.raises(ModelError,
                       match=r"\[E145\].*xapps_encoder.*cfg.json (cannot be read|holds a JSON)"):
        spacy.load(tmp_path / "pipe")
