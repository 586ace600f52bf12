import numpy as np
import pytest

from xapps.errors import InputError
from xapps.linking.candidates import (
    EnsembleGenerator,
    TfidfGenerator,
    load_generator,
    make_generator,
    normalise,
    top_concepts,
)
from xapps.linking.kb import Alias, Concept, KnowledgeBase
from xapps.linking.types import Mention

CONCEPTS = [
    Concept("C01", "Abdominal pain", [Alias("Stomach ache"), Alias("Bauchschmerzen", "de")]),
    Concept("C02", "Headache", [Alias("Cephalalgia"), Alias("Kopfschmerzen", "de"),
                                Alias("dolor de cabeza", "es")]),
    Concept("C03", "Fever", [Alias("Pyrexia"), Alias("fièvre", "fr"), Alias("Fieber", "de")]),
    Concept("C04", "Nausea", [Alias("Feeling sick"), Alias("náuseas", "es")]),
    Concept("C05", "Pain", []),
]


@pytest.fixture(scope="module")
def kb():
    return KnowledgeBase(CONCEPTS, name="tiny")


def ids(cands):
    return [c.concept_id for c in cands]


def assert_same_rankings(got, expected):
    assert [ids(row) for row in got] == [ids(row) for row in expected]
    for g, e in zip(got, expected):
        np.testing.assert_allclose([c.score for c in g], [c.score for c in e], rtol=1e-5)


def test_top_concepts_keeps_each_concepts_best_name():
    concepts, scores = top_concepts(np.array([0.2, 0.9, 0.5, 0.8]), np.array([0, 1, 2, 3]),
                                    np.array([0, 1, 1, 2]), k=5)
    assert concepts.tolist() == [1, 2, 0]
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.2])


def test_tfidf_exact_candidates(kb):
    gen = TfidfGenerator().fit(kb)
    out = gen.generate([Mention("Kopfschmerzen"), Mention("fever"), Mention("xyzzy qqq")], k=3)
    assert ids(out[0])[0] == "C02" and out[0][0].score == pytest.approx(1.0, abs=1e-5)
    assert ids(out[1])[0] == "C03"
    assert out[2] == []  # no shared n-gram: an empty list, never an error
    assert all(set(c.sources) == {"tfidf"} for c in out[0])
    scores = [c.score for c in out[0]]
    assert scores == sorted(scores, reverse=True) and len(set(ids(out[0]))) == len(out[0])


def test_tfidf_empty_mention_and_cache_give_independent_lists(kb):
    gen = TfidfGenerator().fit(kb)
    first = gen.generate([Mention(""), Mention("Pyrexia"), Mention("Pyrexia")], k=2)
    assert first[0] == []
    first[1][0].score = -1.0  # callers may mutate; the cache must not be affected
    assert gen.generate([Mention("Pyrexia")], k=2)[0][0].score == pytest.approx(1.0, abs=1e-5)


def test_tfidf_save_load_round_trip(kb, tmp_path):
    gen = TfidfGenerator().fit(kb)
    gen.to_disk(tmp_path / "g")
    loaded = load_generator(tmp_path / "g", kb)
    mentions = [Mention("stomach pain"), Mention("nauseas")]
    assert_same_rankings(loaded.generate(mentions, 4), gen.generate(mentions, 4))


def test_load_refuses_another_kb(kb, tmp_path):
    TfidfGenerator().fit(kb).to_disk(tmp_path / "g")
    other = KnowledgeBase(CONCEPTS[:2], name="other")
    with pytest.raises(InputError, match=r"\[E081\].*Rebuild the index for this KB"):
        load_generator(tmp_path / "g", other)


def test_dense_generator_on_tiny_backbone(kb, tiny_xlmr_path, tmp_path):
    gen = make_generator("dense", backbone=str(tiny_xlmr_path)).fit(kb)
    names = kb.alias_table().names
    out = gen.generate([Mention(names[3]), Mention("Fieber")], k=3)
    # A mention equal to a KB name finds that name's concept first (cosine 1).
    assert out[0][0].concept_id == kb.concepts[kb.alias_table().concept_index[3]].concept_id
    assert out[0][0].score == pytest.approx(1.0, abs=1e-4)
    assert len(out[1]) == 3 and set(out[1][0].sources) == {"dense"}
    gen.to_disk(tmp_path / "d")
    again = load_generator(tmp_path / "d", kb).generate([Mention("Fieber")], k=3)
    assert ids(again[0]) == ids(out[1])


def test_dense_generator_int8_keeps_its_setting_on_disk(kb, tiny_xlmr_path, tmp_path):
    gen = make_generator("dense", backbone=str(tiny_xlmr_path), quantize="int8").fit(kb)
    assert gen.backbone.quantize == "int8"
    names = kb.alias_table().names
    top = gen.generate([Mention(names[3])], k=3)[0][0]
    assert top.concept_id == kb.concepts[kb.alias_table().concept_index[3]].concept_id
    gen.to_disk(tmp_path / "q")
    again = load_generator(tmp_path / "q", kb)
    assert again.backbone.quantize == "int8"
    assert again.generate([Mention(names[3])], k=3)[0][0].concept_id == top.concept_id


def test_ensemble_keeps_provenance_and_combines(kb, tiny_xlmr_path, tmp_path):
    gen = EnsembleGenerator(generators=[{"kind": "tfidf", "k": 3},
                                        {"kind": "dense", "k": 3,
                                         "backbone": str(tiny_xlmr_path), "weight": 0.5}],
                            combine="max").fit(kb)
    out = gen.generate([Mention("Headache")], k=5)[0]
    assert out[0].concept_id == "C02"
    assert out[0].score == pytest.approx(1.0)  # tfidf normalised max, weight 1
    assert set(out[0].sources) == {"tfidf", "dense"}
    assert all(c.sources and set(c.sources) <= {"tfidf", "dense"} for c in out)
    assert len(out) <= 5 and len({c.concept_id for c in out}) == len(out)
    gen.to_disk(tmp_path / "e")
    again = load_generator(tmp_path / "e", kb).generate([Mention("Headache")], k=5)[0]
    assert_same_rankings([again], [out])


def test_normalise_and_bad_options():
    assert normalise(np.array([2.0, 2.0]), "minmax").tolist() == [1.0, 1.0]
    with pytest.raises(InputError, match=r"'zscore' is not a valid option"):
        normalise(np.array([1.0]), "zscore")
    with pytest.raises(InputError, match=r"Unknown candidate generator 'bm25'"):
        make_generator("bm25")
    with pytest.raises(InputError, match=r"\[E080\]"):
        TfidfGenerator().generate([Mention("x")])
