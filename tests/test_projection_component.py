"""The annotation_projector spaCy component on a tiny random XLM-R (behaviour, not quality),
and one check of the exact defaults on the real me5-small."""
import dataclasses
import json
import pickle

import numpy as np
import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin

import xapps.factories  # noqa: F401  (registers the factory in this process)
from xapps import extensions
from xapps.errors import InputError
from xapps.projection.component import (
    DEFAULT_CONFIG,
    AnnotationProjectorComponent,
    projection_spans,
)
from xapps.projection.projector import ProjectionConfig

SOURCE = "The European Commission met in Brussels ."
TARGET = "La Comisión Europea se reunió en Bruselas ."
# Source texts with (start, end, label) entities and their translations.
PAIRS = [
    (SOURCE, [(4, 23, "ORG"), (31, 39, "LOC")], TARGET),
    ("Angela Merkel visited Paris in May .", [(0, 13, "PER"), (22, 27, "LOC")],
     "Angela Merkel visitó París en mayo ."),
    ("Nothing to see here .", [], "Nada que ver aquí ."),
    ("The United Nations and the World Bank met in New York .",
     [(4, 18, "ORG"), (27, 37, "ORG"), (45, 53, "LOC")],
     "Las Naciones Unidas y el Banco Mundial se reunieron en Nueva York ."),
    ("Berlin is big .", [(0, 6, "LOC")], "Berlín es grande ."),
]


def tiny_config(path, **overrides):
    # layer 2 is the tiny model's last; threshold 0 so a random model still projects spans
    return {"backbone": str(path), "layer": 2, "threshold": 0.0, "batch_size": 4, **overrides}


@pytest.fixture()
def nlp(tiny_xlmr_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("annotation_projector", config=tiny_config(tiny_xlmr_path))
    return nlp


def source_doc(nlp, text, ents, translation=None, key=None):
    doc = nlp.make_doc(text)
    spans = [doc.char_span(s, e, label=label) for s, e, label in ents]
    assert all(span is not None for span in spans)
    if key is None:
        doc.ents = spans
    else:
        doc.spans[key] = spans
    doc._.translation = translation
    return doc


def source_docs(nlp, pairs=PAIRS):
    return [source_doc(nlp, text, ents, translation) for text, ents, translation in pairs]


def check_projection(target, source, key="projected", source_key="ents"):
    """The contract of a projection Doc, whatever the model's quality."""
    assert isinstance(target, Doc)
    if isinstance(source._.translation, str):
        assert target.text == source._.translation
    source_spans = source.ents if source_key == "ents" else source.spans[source_key]
    source_labels = {s.label_ for s in source_spans}
    group = target.spans[key]
    scores = group.attrs[extensions.PROJECTION_SCORES]
    sources = group.attrs[extensions.PROJECTION_SOURCES]
    assert len(scores) == len(sources) == len(group)
    assert [(s.start, s.end, s.label_) for s in group] == [
        (s.start, s.end, s.label_) for s in target.ents]
    for span, score in zip(group, scores):
        assert span.label_ in source_labels
        # on token boundaries: a strict char_span finds the very same tokens
        strict = target.char_span(span.start_char, span.end_char)
        assert strict is not None and (strict.start, strict.end) == (span.start, span.end)
        assert 0.0 <= score <= 1.0
        assert span._.projection_score == score
    for span, k in zip(group, sources):
        assert span.label_ == source_spans[k].label_
    # every source span is either projected once or listed as unprojected
    unprojected = group.attrs[extensions.PROJECTION_UNPROJECTED]
    assert sorted(sources + unprojected) == list(range(len(source_spans)))


# ------------------------------------------------------------------------------ config


def test_factory_config_is_every_projection_setting_with_its_default(nlp, tiny_xlmr_path):
    component = nlp.get_pipe("annotation_projector")
    assert isinstance(component, AnnotationProjectorComponent)
    fields = dataclasses.fields(ProjectionConfig)
    assert {f.name: f.default for f in fields}.items() <= DEFAULT_CONFIG.items()
    assert set(DEFAULT_CONFIG) - {f.name for f in fields} == {"source", "target_key",
                                                              "target_lang"}
    cfg = nlp.config["components"]["annotation_projector"]
    assert cfg["layer"] == 2 and cfg["alignment"] == ProjectionConfig.alignment
    assert cfg["source"] == "ents" and cfg["target_key"] == "projected"
    assert component.config == ProjectionConfig(backbone=str(tiny_xlmr_path), layer=2,
                                                 threshold=0.0, batch_size=4)
    nlp.initialize()  # loads the backbone
    assert component.projector._backbone is not None


def test_bad_settings_are_rejected_at_add_pipe_without_io():
    nlp = spacy.blank("en")
    backbone = "/does/not/exist"
    with pytest.raises(InputError, match=r"'bogus' is not a valid option.*alignment"):
        nlp.add_pipe("annotation_projector", config={"backbone": backbone,
                                                     "alignment": "bogus"})
    with pytest.raises(InputError, match=r"annotation_projector.source = '' is invalid"):
        nlp.add_pipe("annotation_projector", config={"backbone": backbone, "source": ""})
    with pytest.raises(Exception, match="unexpected argument: 'bogus'"):
        nlp.add_pipe("annotation_projector", config={"bogus": 1})


# ---------------------------------------------------------------------------- __call__


def test_call_projects_ents_onto_a_str_translation(nlp):
    doc = source_doc(nlp, *PAIRS[0])
    out = nlp.get_pipe("annotation_projector")(doc)
    assert out is doc
    target = doc._.projection
    check_projection(target, doc)
    assert target.text == TARGET and target.lang_ == "xx"
    assert len(target.ents) >= 1  # threshold 0: the random model still places spans
    assert [t.text for t in target] == [t.text for t in spacy.blank("xx")(TARGET)]
    assert projection_spans(target) == [
        (s.start_char, s.end_char, s.label_, s._.projection_score) for s in target.ents]


def test_nlp_call_and_target_lang(tiny_xlmr_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("annotation_projector",
                 config=tiny_config(tiny_xlmr_path, target_lang="es", target_key="es_ents"))
    doc = nlp.make_doc(SOURCE)
    doc.ents = [doc.char_span(4, 23, label="ORG")]
    doc._.translation = TARGET
    doc = nlp.get_pipe("annotation_projector")(doc)
    assert doc._.projection.lang_ == "es" and doc._.projection.vocab.lang == "es"
    check_projection(doc._.projection, doc, key="es_ents")


def test_source_without_spans_gives_an_empty_projection_without_encoding(nlp, monkeypatch):
    component = nlp.get_pipe("annotation_projector")
    monkeypatch.setattr(component.projector, "project",
                        lambda *a, **k: pytest.fail("nothing to project, nothing to encode"))
    doc = component(source_doc(nlp, *PAIRS[2]))
    target = doc._.projection
    assert target.text == PAIRS[2][2] and target.ents == ()
    assert len(target.spans["projected"]) == 0
    assert target.spans["projected"].attrs[extensions.PROJECTION_SCORES] == []
    assert [t.text for t in target] == ["Nada", "que", "ver", "aquí", "."]


def test_pipe_runs_the_projector_once_per_batch_and_equals_call(nlp, monkeypatch):
    component = nlp.get_pipe("annotation_projector")
    singles = [projection_spans(component(doc)._.projection) for doc in source_docs(nlp)]
    calls = []
    original = component.projector.project

    def counting(pairs, **kw):
        calls.append(len(pairs))
        return original(pairs, **kw)

    monkeypatch.setattr(component.projector, "project", counting)
    docs = list(component.pipe(source_docs(nlp), batch_size=2))
    # batches [0, 1], [2, 3], [4]; doc 2 has no ents and is not sent to the projector
    assert calls == [2, 1, 1]
    assert len(docs) == len(PAIRS)
    for doc, single in zip(docs, singles):
        check_projection(doc._.projection, doc)
        got = projection_spans(doc._.projection)
        assert [s[:3] for s in got] == [s[:3] for s in single]
        np.testing.assert_allclose([s[3] for s in got], [s[3] for s in single], atol=1e-4)
    calls.clear()
    list(component.pipe(source_docs(nlp)))  # the configured batch_size, 4
    assert calls == [3, 1]


@Language.component("test_projection_annotate")
def annotate(doc):
    """Stands in for an NER and an MT step: ents and translation from PAIRS."""
    ents, translation = {text: (e, t) for text, e, t in PAIRS}[doc.text]
    doc.ents = [doc.char_span(s, e, label=label) for s, e, label in ents]
    doc._.translation = translation
    return doc


def test_nlp_pipe_batches_reach_the_projector_whole(tiny_xlmr_path, monkeypatch):
    nlp = spacy.blank("en")
    nlp.add_pipe("test_projection_annotate")
    component = nlp.add_pipe("annotation_projector", config=tiny_config(tiny_xlmr_path))
    calls = []
    original = component.projector.project
    monkeypatch.setattr(component.projector, "project",
                        lambda pairs, **kw: calls.append(len(pairs)) or original(pairs, **kw))
    docs = list(nlp.pipe([text for text, _, _ in PAIRS], batch_size=3))
    assert calls == [2, 2]  # docs 0-2 (doc 2 has no ents), then docs 3-4
    for doc in docs:
        check_projection(doc._.projection, doc)


def test_translation_as_a_doc_keeps_its_tokenisation(nlp):
    es = spacy.blank("es")
    words = ["La", "Comisión", "Europea", "se", "reunió", "en", "Bruselas."]
    translation = Doc(es.vocab, words=words, spaces=[True] * 6 + [False])
    doc = source_doc(nlp, SOURCE, PAIRS[0][1], translation)
    doc = nlp.get_pipe("annotation_projector")(doc)
    target = doc._.projection
    assert target is not translation and translation.ents == ()  # the input is untouched
    assert [t.text for t in target] == words and target.text == translation.text
    assert target.lang_ == "es"
    check_projection(target, doc)
    assert len(target.ents) >= 1


def test_span_group_source(tiny_xlmr_path):
    nlp = spacy.blank("en")
    component = nlp.add_pipe("annotation_projector",
                             config=tiny_config(tiny_xlmr_path, source="sc", target_key="sc"))
    # overlapping source spans are fine in a span group
    doc = source_doc(nlp, SOURCE, [(4, 23, "ORG"), (13, 23, "MISC"), (31, 39, "LOC")],
                     TARGET, key="sc")
    component(doc)
    target = doc._.projection
    check_projection(target, doc, key="sc", source_key="sc")
    assert len(target.spans["sc"]) >= 1


def test_missing_span_group_warns_and_projects_nothing(tiny_xlmr_path, caplog):
    nlp = spacy.blank("en")
    component = nlp.add_pipe("annotation_projector",
                             config=tiny_config(tiny_xlmr_path, source="sc"))
    doc = source_doc(nlp, *PAIRS[0])  # ents, no "sc" group
    with caplog.at_level("WARNING", logger="xapps"):
        component(doc)
    assert "has no span group 'sc'" in caplog.text
    assert doc._.projection.ents == () and doc._.projection.text == TARGET


def test_missing_translation_names_the_doc_and_the_fix(nlp):
    component = nlp.get_pipe("annotation_projector")
    long_text = "The European Commission met in Brussels on a rainy Tuesday to discuss the budget ."
    doc = source_doc(nlp, long_text, [(4, 23, "ORG")])
    with pytest.raises(InputError) as info:
        component(doc)
    message = str(info.value)
    assert message.startswith("[E142] Component 'annotation_projector'")
    assert f"'{long_text[:60]}...'" in message and long_text[:61] not in message
    assert "doc._.translation" in message and "project_pair(doc, translation)" in message
    for empty in ("  ", Doc(nlp.vocab, words=[]), 3):
        doc._.translation = empty
        with pytest.raises(InputError, match=r"\[E142\]"):
            component(doc)


def test_mt_model_translates_a_doc_without_translation(nlp):
    component = nlp.get_pipe("annotation_projector")
    component.cfg["mt_model"] = "fake-mt"
    component.projector = component._make_projector()

    class FakeTranslator:
        def translate(self, texts):
            return [TARGET for _ in texts]

        def span_scores(self, sources, targets):
            return np.full(len(targets), 0.5)

    component.projector._translator = FakeTranslator()
    doc = component(source_doc(nlp, SOURCE, PAIRS[0][1]))
    assert doc._.projection.text == TARGET
    check_projection(doc._.projection, doc)


# ---------------------------------------------------------------------------- pair API


def test_pair_api(nlp):
    component = nlp.get_pipe("annotation_projector")
    sources = [source_doc(nlp, text, ents) for text, ents, _ in PAIRS]
    targets = [translation for _, _, translation in PAIRS]
    projected = component.project_pairs(sources, targets)
    assert [d.text for d in projected] == targets
    assert all(doc._.projection is None for doc in sources)  # the sources are untouched
    piped = list(component.pipe(source_docs(nlp)))
    for got, doc in zip(projected, piped):
        assert [s[:3] for s in projection_spans(got)] == [
            s[:3] for s in projection_spans(doc._.projection)]
    one = component.project_pair(sources[0], targets[0])
    assert projection_spans(one)[:1] and one.text == TARGET
    with pytest.raises(InputError, match=r"\[E143\].*2 source docs were given with 1 targets"):
        component.project_pairs(sources[:2], targets[:1])


# ------------------------------------------------------------------------ serialisation


def test_to_disk_spacy_load_round_trip(nlp, tmp_path):
    expected = [projection_spans(d._.projection) for d in nlp.pipe(source_docs(nlp))]
    nlp.to_disk(tmp_path / "pipe")
    saved = json.loads((tmp_path / "pipe" / "annotation_projector" / "cfg.json").read_text())
    assert saved == nlp.get_pipe("annotation_projector").cfg
    assert set(saved) == set(DEFAULT_CONFIG)
    loaded = spacy.load(tmp_path / "pipe")
    again = loaded.get_pipe("annotation_projector")
    assert again.cfg == saved and again.config == nlp.get_pipe("annotation_projector").config
    docs = source_docs(loaded)
    got = [projection_spans(again(doc)._.projection) for doc in docs]
    # Spans exactly; scores to float noise (one doc alone vs a padded batch, and the thread
    # split of a busy CPU, change the last digit of a rounded score now and then).
    assert [[s[:3] for s in d] for d in got] == [[s[:3] for s in d] for d in expected]
    assert [s[3] for d in got for s in d] == pytest.approx(
        [s[3] for d in expected for s in d], abs=1e-5)


def test_from_disk_names_a_folder_without_cfg(nlp, tmp_path):
    component = nlp.get_pipe("annotation_projector")
    with pytest.raises(InputError, match=r"\[E145\].*not a saved annotation_projector.*"
                                         r"has no cfg.json"):
        component.from_disk(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps({"bogus": 1}))
    with pytest.raises(InputError, match=r"does not know: \['bogus'\]"):
        component.from_disk(tmp_path)


def test_docbin_round_trip_keeps_spans_and_scores(nlp):
    docs = list(nlp.pipe(source_docs(nlp)))
    targets = [doc._.projection for doc in docs]
    assert any(len(t.ents) for t in targets)
    # the projection Doc alone: span groups (with their attrs) need no store_user_data
    restored = list(DocBin(docs=targets).from_bytes(DocBin(docs=targets).to_bytes())
                    .get_docs(spacy.blank("xx").vocab))
    for before, after in zip(targets, restored):
        assert projection_spans(after) == projection_spans(before)
        assert [(e.start_char, e.end_char, e.label_) for e in after.ents] == [
            (e.start_char, e.end_char, e.label_) for e in before.ents]
        assert [e._.projection_score for e in after.ents] == [
            e._.projection_score for e in before.ents]
    # the source Docs, doc._.projection included (as for nlp.pipe(n_process=2))
    data = DocBin(store_user_data=True, docs=docs).to_bytes()
    sources = list(DocBin().from_bytes(data).get_docs(nlp.vocab))
    for before, after in zip(docs, sources):
        assert isinstance(after._.projection, Doc)
        assert after._.projection is after._.projection  # rebuilt once
        assert projection_spans(after._.projection) == projection_spans(before._.projection)
    copy = Doc(nlp.vocab).from_bytes(docs[0].to_bytes())
    assert projection_spans(copy._.projection) == projection_spans(targets[0])
    unpickled = pickle.loads(pickle.dumps(docs[0]))
    assert projection_spans(unpickled._.projection) == projection_spans(targets[0])


def test_a_doc_translation_survives_docbin_and_still_projects(nlp):
    es = spacy.blank("es")
    words = ["La", "Comisión", "Europea", "se", "reunió", "en", "Bruselas", "."]
    doc = source_doc(nlp, SOURCE, PAIRS[0][1], Doc(es.vocab, words=words))
    data = DocBin(store_user_data=True, docs=[doc]).to_bytes()
    loaded = next(DocBin().from_bytes(data).get_docs(nlp.vocab))
    translation = loaded._.translation
    assert isinstance(translation, Doc) and [t.text for t in translation] == words
    assert translation.lang_ == "es"
    target = nlp.get_pipe("annotation_projector")(loaded)._.projection
    assert [t.text for t in target] == words
    check_projection(target, loaded)
    plain = source_doc(nlp, *PAIRS[0])  # a str translation is stored as it always was
    again = next(DocBin(store_user_data=True, docs=[plain]).get_docs(nlp.vocab))
    assert again._.translation == TARGET


# --------------------------------------------------------------------------- real model


@pytest.mark.integration
def test_exact_defaults_on_the_real_model(me5_small_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("annotation_projector", config={"backbone": str(me5_small_path)})
    component = nlp.get_pipe("annotation_projector")
    assert dataclasses.replace(component.config, backbone="me5-small") == ProjectionConfig()
    doc = source_doc(nlp, SOURCE, [(4, 23, "ORG"), (31, 39, "LOC")], TARGET)
    assert [e.text for e in doc.ents] == ["European Commission", "Brussels"]
    target = component(doc)._.projection
    assert [(e.text, e.label_) for e in target.ents] == [("Comisión Europea", "ORG"),
                                                         ("Bruselas", "LOC")]
    assert all(0.3 <= e._.projection_score <= 1.0 for e in target.ents)
