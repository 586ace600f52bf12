import json
import subprocess
import sys

import pytest
import spacy

from xapps.linking.kb import Alias, Concept, KnowledgeBase

CONCEPTS = [
    Concept("C01", "Abdominal pain", [Alias("Stomach ache"), Alias("Bauchschmerzen", "de")]),
    Concept("C02", "Headache", [Alias("Kopfschmerzen", "de"), Alias("dolor de cabeza", "es")]),
    Concept("C03", "Fever", [Alias("fièvre", "fr"), Alias("Fieber", "de")]),
    Concept("C04", "Nausea", [Alias("náuseas", "es")]),
]
PATTERNS = [{"label": "DISO", "pattern": p} for p in
            ("Kopfschmerzen", "fièvre", "náuseas", "headache", "qqqq")]
TFIDF = {"kind": "tfidf"}


@pytest.fixture()
def kb_path(tmp_path):
    path = tmp_path / "kb.jsonl"
    KnowledgeBase(CONCEPTS).to_jsonl(path)
    return path


def make_nlp(kb_path, **cfg):
    nlp = spacy.blank("xx")
    ruler = nlp.add_pipe("entity_ruler")
    nlp.add_pipe("xmen_linker", config={"kb": str(kb_path), "candidates": TFIDF, "k": 3, **cfg})
    nlp.initialize()
    ruler.add_patterns(PATTERNS)  # after initialize(), which resets the ruler
    return nlp


def test_links_ents_of_several_languages_in_one_batch(kb_path):
    nlp = make_nlp(kb_path)
    docs = list(nlp.pipe(["Der Patient hat Kopfschmerzen.", "Il a de la fièvre.",
                          "Tiene náuseas y qqqq."]))
    linked = [(e.text, e.kb_id_) for d in docs for e in d.ents]
    assert linked == [("Kopfschmerzen", "C02"), ("fièvre", "C03"), ("náuseas", "C04"),
                      ("qqqq", "")]
    kopf = docs[0].ents[0]
    assert kopf._.kb_ents[0] == ("C02", pytest.approx(1.0, abs=1e-5))
    assert all(isinstance(cid, str) and isinstance(s, float) for cid, s in kopf._.kb_ents)
    assert docs[2].ents[1]._.kb_ents == []  # no candidate: an empty list, not an error


def test_threshold_keeps_candidates_but_not_the_link(kb_path):
    nlp = make_nlp(kb_path, threshold=1.01)
    ent = nlp("Kopfschmerzen").ents[0]
    assert ent.kb_id_ == "" and ent._.kb_ents[0][0] == "C02"


def test_span_group_linking(kb_path):
    nlp = spacy.blank("xx")
    nlp.add_pipe("xmen_linker", config={"kb": str(kb_path), "candidates": TFIDF,
                                        "spans_key": "mentions", "link_ents": False})
    nlp.initialize()
    doc = nlp.make_doc("fever and Bauchschmerzen")
    doc.spans["mentions"] = [doc[0:1], doc[2:3]]
    doc = nlp.get_pipe("xmen_linker")(doc)
    assert [s.kb_id_ for s in doc.spans["mentions"]] == ["C03", "C01"]
    assert doc.spans["mentions"][1]._.kb_ents[0][0] == "C01"


def test_generator_runs_once_per_batch(kb_path, monkeypatch):
    nlp = make_nlp(kb_path)
    linker = nlp.get_pipe("xmen_linker")
    calls = []
    original = linker.generator.generate

    def counting(mentions, k):
        calls.append(len(mentions))
        return original(mentions, k)

    monkeypatch.setattr(linker.generator, "generate", counting)
    list(nlp.pipe(["Kopfschmerzen", "fièvre", "náuseas"] * 3, batch_size=4))
    assert calls == [4, 4, 1]


def test_needs_a_kb():
    nlp = spacy.blank("en")
    nlp.add_pipe("xmen_linker", config={"candidates": TFIDF})
    with pytest.raises(Exception, match=r"\[E084\] Component 'xmen_linker' has no knowledge "
                                        r"base yet"):
        nlp.initialize()


def test_saved_pipeline_loads_offline_in_a_new_process(kb_path, tmp_path):
    nlp = make_nlp(kb_path)
    texts = ["Der Patient hat Kopfschmerzen.", "Il a de la fièvre."]
    expected = [[(e.kb_id_, e._.kb_ents) for e in d.ents] for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipe")
    kb_path.unlink()  # the saved pipeline must not need the original KB file
    assert sorted(p.name for p in (tmp_path / "pipe" / "xmen_linker").iterdir()) == [
        "candidates", "cfg.json", "kb"]
    script = (
        "import json, spacy\n"
        f"nlp = spacy.load({str(tmp_path / 'pipe')!r})\n"
        f"out = [[(e.kb_id_, e._.kb_ents) for e in d.ents] for d in nlp.pipe({texts!r})]\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == json.loads(json.dumps(expected))


def test_packaged_medlink_config_assembles(kb_path):
    from pathlib import Path

    from spacy.util import load_config, load_model_from_config

    cfg = Path(__file__).resolve().parents[1] / "pipelines" / "medlink_me5.cfg"
    config = load_config(cfg, overrides={
        "components.xmen_linker.kb": str(kb_path),
        "components.xmen_linker.candidates.generators": [{"kind": "tfidf", "k": 8}]})
    nlp = load_model_from_config(config, auto_fill=True)
    nlp.initialize()
    nlp.get_pipe("entity_ruler").add_patterns(PATTERNS)
    ents = nlp("Il a de la fièvre.").ents
    assert [(e.text, e.kb_id_) for e in ents] == [("fièvre", "C03")]
