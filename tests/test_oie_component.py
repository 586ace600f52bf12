"""The oie_extractor spaCy component on a tiny random XLM-R tagger: doc._.triples as plain
data on the Doc's tokens, batched pipe(), Spans from triple_spans, to_disk/spacy.load."""
from __future__ import annotations

import json
import shutil

import pytest
import spacy
from spacy.tokens import DocBin
from test_oie_model import RECORDS

import xapps.factories  # noqa: F401  (registers oie_extractor without the entry point)
from xapps.errors import InputError
from xapps.oie.component import OIEExtractor, triple_spans
from xapps.oie.data import sentence_from_tuples
from xapps.oie.model import OIEConfig
from xapps.oie.training import OIETrainingConfig, train_oie

TEXTS = [r["sentence"] for r in RECORDS] + [
    "Alice met Bob in Berlin.",
    "Die Firma verkaufte ihre Aktien.",
    "   ",
]


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_xlmr_path):
    """A tagger that has memorised the four sample sentences (a second; without the
    memorising, a random tagger finds no triples and the checks below would check nothing)."""
    stats = {"tuples": 0, "dropped_tuples": 0, "untagged_arguments": 0}
    sentences = [sentence_from_tuples(r["sentence"], r["tuples"], "x", stats) for r in RECORDS]
    out = tmp_path_factory.mktemp("oie") / "tagger"
    train_oie(sentences, out, OIETrainingConfig(epochs=40, batch_size=4, lr=3e-3, head_lr=1e-2,
                                                warmup=0.0),
              model_config=OIEConfig(backbone=str(tiny_xlmr_path), attention_heads=2,
                                     dropout=0.0), progress=False)
    return out


@pytest.fixture(scope="module")
def nlp(model):
    nlp = spacy.blank("en")
    nlp.add_pipe("oie_extractor", config={"model": str(model), "batch_size": 3})
    nlp.initialize()
    return nlp


def parts(triple: dict) -> list[dict]:
    return [triple["relation"], *triple["arguments"]]


def without_confidence(triples: list[dict]) -> list[dict]:
    return [{k: v for k, v in t.items() if k != "confidence"} for t in triples]


def test_triples_are_plain_data_on_the_doc_text(nlp):
    docs = [nlp(text) for text in TEXTS]
    assert sum(len(doc._.triples) for doc in docs) >= 3, "the tagger found (almost) nothing"
    assert docs[-1]._.triples == []  # no words
    for doc in docs:
        starts = {t.idx for t in doc}
        ends = {t.idx + len(t) for t in doc}
        for triple in doc._.triples:
            assert set(triple) == {"relation", "arguments", "confidence"}
            assert triple["relation"]["role"] == "REL"
            roles = [a["role"] for a in triple["arguments"]]
            assert roles and roles == sorted(set(roles))
            assert set(roles) <= {"ARG0", "ARG1", "ARG2", "ARG3"}
            assert 0.0 <= triple["confidence"] <= 1.0
            for part in parts(triple):
                assert doc.text[part["start"]:part["end"]] == part["text"]
                assert part["start"] in starts and part["end"] in ends  # on spaCy's tokens
    restored = list(DocBin(docs=docs, store_user_data=True).get_docs(nlp.vocab))
    # msgpack reads lists back as tuples; the data are the same
    assert json.loads(json.dumps([d._.triples for d in restored])) == \
        [d._.triples for d in docs]


def test_pipe_matches_one_by_one_with_one_encoder_pass_per_batch(nlp, monkeypatch):
    single = [nlp(text)._.triples for text in TEXTS]
    tagger = nlp.get_pipe("oie_extractor").tagger
    calls = []
    word_states = tagger.word_states

    def counting(texts, words, **kwargs):
        calls.append(len(texts))
        return word_states(texts, words, **kwargs)

    monkeypatch.setattr(tagger, "word_states", counting)
    for batch_size in (2, 16):
        calls.clear()
        batched = [doc._.triples for doc in nlp.pipe(TEXTS, batch_size=batch_size)]
        # the last text has no words, so it needs no encoding
        assert calls == ([2, 2, 2] if batch_size == 2 else [len(TEXTS) - 1])
        assert [without_confidence(t) for t in batched] == \
            [without_confidence(t) for t in single]
        assert [t["confidence"] for ts in batched for t in ts] == pytest.approx(
            [t["confidence"] for ts in single for t in ts], abs=1e-5)


def test_sentences_are_extracted_one_by_one_with_doc_offsets(model):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("oie_extractor", config={"model": str(model)})
    nlp.initialize()
    first, second = "The company sold its shares.", "Bob lives in Rome."
    doc = nlp(f"{first} {second}")
    assert len(list(doc.sents)) == 2
    expected = nlp(first)._.triples
    for triple in nlp(second)._.triples:
        for part in parts(triple):
            part["start"] += len(first) + 1
            part["end"] += len(first) + 1
        expected.append(triple)
    assert expected, "the tagger found nothing in either sentence"
    assert without_confidence(doc._.triples) == without_confidence(expected)


def test_triple_spans_are_spans_of_each_role(nlp):
    checked = 0
    for doc in nlp.pipe(TEXTS):
        for triple in doc._.triples:
            spans = triple_spans(doc, triple)
            assert list(spans) == [p["role"] for p in parts(triple)]
            for part, (role, span) in zip(parts(triple), spans.items()):
                assert span.doc is doc and span.label_ == role
                assert (span.start_char, span.end_char, span.text) == \
                    (part["start"], part["end"], part["text"])
            checked += 1
    assert checked
    doc = nlp(TEXTS[0])
    triple = max(doc._.triples, key=lambda t: t["relation"]["end"])
    short = nlp(TEXTS[0][:triple["relation"]["start"]])
    with pytest.raises(InputError, match=r"E175.*REL span"):
        triple_spans(short, triple)
    with pytest.raises(InputError, match="E176"):
        triple_spans(doc, {"relation": "sold"})


def test_to_disk_and_spacy_load_give_identical_triples(nlp, model, tmp_path):
    copy = tmp_path / "tagger"
    shutil.copytree(model, copy)
    source = spacy.blank("en")
    source.add_pipe("oie_extractor", config={"model": str(copy)})
    source.initialize()
    before = [doc._.triples for doc in source.pipe(TEXTS)]
    source.to_disk(tmp_path / "pipe")
    shutil.rmtree(copy)  # the saved pipeline carries its own copy of the tagger
    saved = tmp_path / "pipe" / "oie_extractor"
    assert (saved / "cfg.json").is_file() and (saved / "model" / "heads.safetensors").is_file()
    assert not list(saved.rglob("*.pkl")) and not list(saved.rglob("*.bin"))
    loaded = spacy.load(tmp_path / "pipe")
    assert [doc._.triples for doc in loaded.pipe(TEXTS)] == before
    loaded.to_disk(tmp_path / "again")  # saving a loaded pipeline copies its model folder
    again = spacy.load(tmp_path / "again")
    assert [doc._.triples for doc in again.pipe(TEXTS)] == before


def test_min_confidence_drops_triples(model, nlp):
    all_triples = [t for text in TEXTS for t in nlp(text)._.triples]
    cut = sorted(t["confidence"] for t in all_triples)[len(all_triples) // 2]
    strict = spacy.blank("en")
    strict.add_pipe("oie_extractor", config={"model": str(model), "min_confidence": cut})
    strict.initialize()
    kept = [t for text in TEXTS for t in strict(text)._.triples]
    assert kept == [t for t in all_triples if t["confidence"] >= cut]
    assert len(kept) < len(all_triples)


def test_a_component_without_a_model_names_the_fix(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("oie_extractor")
    with pytest.raises(InputError, match=r"E174.*'oie_extractor'.*xapps oie train"):
        nlp("Bob lives in Rome.")
    with pytest.raises(InputError, match="E174"):
        nlp.to_disk(tmp_path / "pipe")
    with pytest.raises(InputError, match="E174"):
        nlp.initialize()
    with pytest.raises(InputError, match=r"E074.*oie_extractor.batch_size"):
        OIEExtractor(nlp, batch_size=0)
    with pytest.raises(InputError, match=r"E074.*min_confidence"):
        OIEExtractor(nlp, min_confidence=1.5)


def test_from_disk_names_a_folder_that_is_not_a_saved_component(model, tmp_path):
    component = OIEExtractor(spacy.blank("en"))
    with pytest.raises(InputError, match=r"E145.*oie_extractor.*cfg.json"):
        component.from_disk(tmp_path)
