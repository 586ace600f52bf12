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
    with pytest.raises(ModelError, match="sha256 000000000000"):
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
