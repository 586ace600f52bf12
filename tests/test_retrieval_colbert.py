"""ColBERT encoder and multi-vector retriever on a tiny random XLM-R: query augmentation,
document windowing and skiplist, projection, save/load, build + search."""
from __future__ import annotations

import json

import numpy as np
import pytest

from xapps.errors import IndexMismatchError, InputError, ModelError
from xapps.index.multivector import exact_search
from xapps.retrieval import (
    ColBERTConfig,
    ColBERTEncoder,
    Retriever,
    build_multivector_index,
)
from xapps.retrieval.colbert import is_punctuation


@pytest.fixture(scope="module")
def encoder(tiny_xlmr_path):
    return ColBERTEncoder(ColBERTConfig(backbone=str(tiny_xlmr_path), dim=16, query_length=12,
                                        doc_max_length=10))


def test_queries_are_padded_with_attended_mask_tokens_to_a_fixed_length(encoder):
    short, long = encoder.encode_queries(["rain", "heavy rain flooded the market " * 5])
    assert short.shape == long.shape == (12, 16) and short.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, rtol=1e-5)
    # The mask slots attend to the query, so they differ between queries and from each other.
    other = encoder.encode_queries(["market"])[0]
    assert not np.allclose(short[-1], other[-1])
    assert encoder.encode_queries([]) == []


def test_documents_are_windowed_not_truncated_and_skip_punctuation(encoder):
    text = "Malaria is spread by mosquitoes , and rain makes more of them . " * 4
    doc, plain = encoder.encode_documents([text, text.replace(" ,", "").replace(" .", "")])
    subwords = encoder.backbone.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(subwords) > 10  # longer than one 10-token window
    assert doc.shape[1] == 16 and doc.shape[0] == plain.shape[0]  # only punctuation dropped
    keep_all = ColBERTEncoder(ColBERTConfig(backbone=encoder.config.backbone, dim=16,
                                            doc_max_length=10, skiplist=False))
    assert keep_all.encode_documents([text])[0].shape[0] > doc.shape[0]
    only_punct, empty = encoder.encode_documents(["?!", "   "])
    assert len(only_punct) >= 1 and empty.shape == (1, 16)


def test_punctuation_test():
    assert is_punctuation("...") and is_punctuation("«") and not is_punctuation("é.")


def test_projection_is_orthogonal_when_untrained_and_optional(encoder, tiny_xlmr_path):
    w = encoder.projection.weight.detach().numpy()
    np.testing.assert_allclose(w @ w.T, np.eye(16), atol=1e-5)
    raw = ColBERTEncoder(ColBERTConfig(backbone=str(tiny_xlmr_path), dim=None))
    assert raw.projection is None and raw.dim == raw.backbone.hidden_size
    assert raw.encode_queries(["rain"])[0].shape[1] == raw.backbone.hidden_size
    assert raw.identity["sha256"] != encoder.identity["sha256"]


def test_save_load_round_trip(encoder, tmp_path):
    encoder.save(tmp_path / "enc")
    again = ColBERTEncoder.load(tmp_path / "enc")
    q = ["Is malaria spread by mosquitoes?"]
    np.testing.assert_allclose(again.encode_queries(q)[0], encoder.encode_queries(q)[0],
                               atol=1e-6)
    assert again.identity == encoder.identity
    record = json.loads((tmp_path / "enc" / "colbert.json").read_text())
    record["backbone"]["sha256"] = "0" * 64
    (tmp_path / "enc" / "colbert.json").write_text(json.dumps(record))
    # An edited colbert.json is damage (its own checksum) ...
    with pytest.raises(ModelError, match=r"\[E222\].*'colbert.json' was changed"):
        ColBERTEncoder.load(tmp_path / "enc")
    # ... and one whose checksum fits but whose backbone now has other weights is E224.
    from xapps.artifacts import record_digest

    record["checksum"] = record_digest(record)
    (tmp_path / "enc" / "colbert.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match=r"\[E224\].*sha256 000000000000"):
        ColBERTEncoder.load(tmp_path / "enc")
    with pytest.raises(ModelError, match="not a saved xapps ColBERT encoder"):
        ColBERTEncoder.load(tmp_path)


def test_bad_settings_and_inputs(encoder, tiny_xlmr_path):
    with pytest.raises(InputError, match="query_length"):
        ColBERTConfig(query_length=2)
    with pytest.raises(InputError, match="list of strings"):
        encoder.encode_queries("one string")
    with pytest.raises(InputError, match="row 1"):
        encoder.encode_documents(["fine", 3])


@pytest.fixture()
def corpus(tmp_path):
    from tests.tiny_models import sample_texts

    path = tmp_path / "corpus.jsonl"
    rows = [{"id": f"d{i}", "text": t, "lang": "en"} for i, t in enumerate(sample_texts() * 3)]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    return path, rows


def test_build_then_search_matches_exact_maxsim(corpus, encoder, tmp_path):
    path, rows = corpus
    enc_dir = encoder.save(tmp_path / "enc")
    report = build_multivector_index(path, tmp_path / "mv", encoder=str(enc_dir), nbits=4,
                                     chunk_size=7, progress=False)
    assert report.count == len(rows) and report.tokens > len(rows)
    assert report.bytes_per_token < 4 * encoder.dim
    retriever = Retriever.load(tmp_path / "mv")
    queries = [rows[0]["text"], rows[4]["text"]]
    hits = retriever.search(queries, k=5, n_candidates=len(rows))
    docs = encoder.encode_documents([r["text"] for r in rows])
    exact = exact_search(encoder.encode_queries(queries), docs, [r["id"] for r in rows], k=5)
    for got, want in zip(hits, exact):
        # duplicated texts tie exactly; compare the scores of the ranked lists
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=0.3)
        assert retriever.text(got[0].id) == retriever.text(want[0].id)
    assert retriever.index.get_metadata(hits[0][0].id)["lang"] == "en"


def test_build_refuses_bad_input_and_leaves_nothing(tmp_path, encoder):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "ok"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(InputError):
        build_multivector_index(bad, tmp_path / "out", encoder=encoder, progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(IndexMismatchError, match="retriever.json"):
        Retriever.load(tmp_path)


def test_cli_build_search_info_multivector(corpus, tiny_xlmr_path, tmp_path):
    from click.testing import CliRunner

    from xapps.cli import main

    path, rows = corpus
    out = tmp_path / "mv"
    result = CliRunner().invoke(main, ["index", "build", "--kind", "multivector", "--input",
                                       str(path), "--out", str(out), "--backbone",
                                       str(tiny_xlmr_path), "--dim", "16", "--nbits", "4"])
    assert result.exit_code == 0, result.output
    assert f"Indexed {len(rows)} documents" in result.output and "multivector" in result.output
    found = CliRunner().invoke(main, ["index", "search", str(out), rows[2]["text"], "-k", "3",
                                      "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output.splitlines()[0])["hits"]
    assert len(hits) == 3 and hits[0]["text"] == rows[2]["text"]
    info = CliRunner().invoke(main, ["index", "info", str(out)])
    assert json.loads(info.output)["kind"] == "multivector"


def test_xm_retriever_component_batches_saves_and_reloads(corpus, encoder, tmp_path):
    import spacy

    path, rows = corpus
    build_multivector_index(path, tmp_path / "mv", encoder=encoder, nbits=4, progress=False)
    nlp = spacy.blank("en")
    nlp.add_pipe("xm_retriever", config={"retriever": str(tmp_path / "mv"), "k": 3})
    nlp.initialize()
    docs = list(nlp.pipe([rows[1]["text"], rows[5]["text"], "Something else entirely"],
                         batch_size=2))
    assert all(len(doc._.hits) == 3 for doc in docs)
    top = nlp.get_pipe("xm_retriever").retriever.text(docs[0]._.hits[0][0])
    assert top == rows[1]["text"]
    nlp.to_disk(tmp_path / "pipe")
    import shutil

    shutil.rmtree(tmp_path / "mv")  # the saved pipeline carries its own copy
    again = spacy.load(tmp_path / "pipe")
    assert again("x")._.hits is not None
    assert again(rows[1]["text"])._.hits == docs[0]._.hits


def test_xm_retriever_without_a_retriever_names_the_fix():
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("xm_retriever")
    with pytest.raises(InputError, match="index build --kind multivector"):
        nlp.initialize()


# ---------------------------------------------------------------- per-language adapters
EN = "Malaria is spread by the bite of infected mosquitoes and causes fever and chills."
DE = ("Malaria wird durch den Stich infizierter Mücken übertragen und verursacht Fieber und "
      "Schüttelfrost.")


def perturb(encoder, lang, seed=0):
    """Random LoRA B factors (they start at zero), so the adapter changes the vectors."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in encoder.adapters.named_parameters(lang).items():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen))


@pytest.fixture(scope="module")
def adapted(encoder):
    """The `encoder` fixture's settings with a trained-looking German adapter."""
    enc = ColBERTEncoder(encoder.config)
    params = enc.add_adapter("de")
    assert params and enc.config.adapters == ["de"] and enc.config.lora["rank"] == 8
    perturb(enc, "de")
    return enc


def test_mixed_batch_routes_each_text_on_its_own(adapted, encoder):
    texts, langs = [EN, DE, EN + " Rain.", DE + " Regen."], ["en", "de", "en", "de"]
    for method in ("encode_queries", "encode_documents"):
        mixed = getattr(adapted, method)(texts, languages=langs)
        for text, lang, got in zip(texts, langs, mixed):
            alone = getattr(adapted, method)([text], languages=lang)[0]
            np.testing.assert_allclose(got, alone, atol=1e-5)
        # German rows get the adapter; English rows are exactly the shared-weights vectors.
        shared_de = getattr(encoder, method)([texts[1], texts[3]])
        assert not np.allclose(mixed[1], shared_de[0], atol=1e-3)
        shared_en = getattr(encoder, method)([texts[0], texts[2]])
        assert all(np.array_equal(a, b) for a, b in zip((mixed[0], mixed[2]), shared_en))


def test_languages_are_detected_per_text_when_not_given(adapted):
    from xapps.langid import default_identifier

    texts = [EN, DE, "12345"]
    assert default_identifier().detect(texts) == ["en", "de", "und"]
    detected = adapted.encode_queries(texts)
    given = adapted.encode_queries(texts, languages=["en", "de", "und"])
    assert all(np.array_equal(a, b) for a, b in zip(detected, given))
    partly = adapted.encode_documents(texts, languages=[None, "de", ""])
    assert all(np.array_equal(a, b) for a, b in zip(
        partly, adapted.encode_documents(texts, languages=["en", "de", "und"])))
    with pytest.raises(InputError, match="E092.*2 language codes were given for 3 texts"):
        adapted.encode_queries(texts, languages=["en", "de"])


def test_the_shared_cached_backbone_is_never_changed(encoder, tiny_xlmr_path):
    from peft.tuners.tuners_utils import BaseTunerLayer

    from xapps.backbone import load_backbone

    shared = load_backbone(str(tiny_xlmr_path))
    assert encoder.backbone is shared
    before = shared.encode([EN, DE])
    enc = ColBERTEncoder(encoder.config)
    enc.add_adapter("de")
    perturb(enc, "de", seed=1)
    enc.encode_queries([EN, DE], languages=["en", "de"])
    assert enc.backbone is not shared and load_backbone(str(tiny_xlmr_path)) is shared
    assert not any(isinstance(m, BaseTunerLayer) for m in shared.model.modules())
    assert np.array_equal(shared.encode([EN, DE]), before)


def test_save_load_with_adapters_and_identity(adapted, encoder, tmp_path):
    adapted.save(tmp_path / "enc")
    record = json.loads((tmp_path / "enc" / "colbert.json").read_text())
    assert record["config"]["adapters"] == ["de"] and record["config"]["lora"]["rank"] == 8
    assert (tmp_path / "enc" / "adapters" / "de" / "adapter.safetensors").is_file()
    again = ColBERTEncoder.load(tmp_path / "enc")
    assert again.config.adapters == ["de"] and again.identity == adapted.identity
    for lang in ("de", "en"):
        for method in ("encode_queries", "encode_documents"):
            np.testing.assert_array_equal(getattr(again, method)([DE], languages=lang)[0],
                                          getattr(adapted, method)([DE], languages=lang)[0])
    # The identity follows the adapters' weights, so an index refuses stale tokens.
    assert again.identity != encoder.identity
    perturb(again, "de", seed=5)
    assert again.identity["sha256"] != adapted.identity["sha256"]

    import shutil

    shutil.rmtree(tmp_path / "enc" / "adapters" / "de")
    with pytest.raises(ModelError, match="E222.*adapters/de"):
        ColBERTEncoder.load(tmp_path / "enc")
    # A folder saved before checksums (no file list) still reports the adapter folder.
    record = json.loads((tmp_path / "enc" / "colbert.json").read_text())
    del record["files"], record["checksum"]
    (tmp_path / "enc" / "colbert.json").write_text(json.dumps(record))
    with pytest.raises(ModelError, match="E090.*adapters/de"):
        ColBERTEncoder.load(tmp_path / "enc")
    with pytest.raises(InputError, match="E093"):
        ColBERTEncoder(ColBERTConfig(backbone=encoder.config.backbone, adapters=["de"]))


def test_old_config_without_adapter_or_centering_keys_loads(encoder, tmp_path):
    encoder.save(tmp_path / "enc")
    record = json.loads((tmp_path / "enc" / "colbert.json").read_text())
    del record["files"], record["checksum"]  # as written before checksums existed
    for key in ("adapters", "lora", "centered"):
        del record["config"][key]
    (tmp_path / "enc" / "colbert.json").write_text(json.dumps(record))
    again = ColBERTEncoder.load(tmp_path / "enc")
    assert again.config.adapters == [] and again.adapters is None
    # Without adapters the identity is computed as before adapters existed, so retrievers
    # built then still load.
    import dataclasses
    import hashlib

    digest = hashlib.sha256((again.backbone.sha256 or again.backbone.name).encode())
    digest.update(again.projection.weight.detach().numpy().tobytes())
    old = {k: v for k, v in dataclasses.asdict(again.config).items()
           if k not in ("adapters", "lora", "centered")}
    digest.update(json.dumps(old, sort_keys=True).encode())
    assert again.identity["sha256"] == digest.hexdigest() == encoder.identity["sha256"]
    with pytest.raises(InputError, match="ColBERTConfig.lora"):
        ColBERTConfig(lora={"rank": 4, "bogus": 1})


def test_build_routes_documents_by_their_lang_field_and_search_by_query_language(
        adapted, tmp_path):
    from tests.tiny_models import SAMPLE

    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    build_multivector_index(path, tmp_path / "mv", encoder=adapted, nbits=4, lang_field="lang",
                            progress=False)
    retriever = Retriever.load(tmp_path / "mv")
    assert retriever.encoder.config.adapters == ["de"]
    german = next(r for r in rows if r["lang"] == "de")
    hits = retriever.search([german["text"]], k=3, languages=["de"], n_candidates=len(rows))
    docs = adapted.encode_documents([r["text"] for r in rows],
                                    languages=[r["lang"] for r in rows])
    exact = exact_search(adapted.encode_queries([german["text"]], languages="de"), docs,
                         [r["id"] for r in rows], k=3)
    np.testing.assert_allclose([h.score for h in hits[0]], [h.score for h in exact[0]],
                               atol=0.3)
    # Each stored document holds the tokens of its own language's encoding.
    for row in (german, next(r for r in rows if r["lang"] == "en")):
        stored = retriever.index.decompress(row["id"])
        routed, other = (adapted.encode_documents([row["text"]], languages=lang)[0]
                         for lang in (row["lang"], "de" if row["lang"] == "en" else "en"))
        assert np.abs(stored - routed).mean() < 0.2 * np.abs(stored - other).mean()
    with pytest.raises(InputError, match="lang_field.*'language'"):
        build_multivector_index(path, tmp_path / "mv2", encoder=adapted, lang_field="language",
                                progress=False)


def test_language_centering_shifts_only_fitted_languages_and_round_trips(encoder, tmp_path):
    centered = ColBERTEncoder(encoder.config)
    centered.fit_language_means({"de": [DE, DE + " Regen fiel.", "Der Fluss stieg."]})
    assert centered.config.centered == ["de"]
    assert centered.language_means["de"].shape == (centered.backbone.hidden_size,)
    texts, langs = [EN, DE], ["en", "de"]
    for method in ("encode_queries", "encode_documents"):
        plain = getattr(encoder, method)(texts)
        shifted = getattr(centered, method)(texts, languages=langs)
        np.testing.assert_array_equal(shifted[0], plain[0])  # no mean for en: untouched
        assert not np.allclose(shifted[1], plain[1], atol=1e-3)
        # One mixed call equals each text alone with its language.
        alone = getattr(centered, method)([DE], languages="de")[0]
        np.testing.assert_allclose(shifted[1], alone, atol=1e-5)
    assert centered.identity["sha256"] != encoder.identity["sha256"]
    centered.save(tmp_path / "enc")
    again = ColBERTEncoder.load(tmp_path / "enc")
    assert again.config.centered == ["de"]
    assert again.identity["sha256"] == centered.identity["sha256"]
    np.testing.assert_allclose(again.encode_documents([DE], languages="de")[0],
                               centered.encode_documents([DE], languages="de")[0], atol=1e-6)
    with pytest.raises(InputError, match="at least one non-empty text"):
        centered.fit_language_means({"fr": ["  "]})
