import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from xapps.cli import main
from xapps.linking import run
from xapps.linking.kb import Alias, Concept, KnowledgeBase

FIXTURES = Path(__file__).parent / "fixtures" / "linking"
CONCEPTS = [
    Concept("C0004057", "Aspirin", [Alias("acetylsalicylic acid")]),
    Concept("C0018681", "Headache", [Alias("head pain"), Alias("Kopfschmerzen", "de")]),
    Concept("C0015967", "Fever", [Alias("Fieber", "de"), Alias("pyrexia")]),
    Concept("C0010200", "Coughing", [Alias("Husten", "de")]),
]


@pytest.fixture()
def kb_path(tmp_path):
    path = tmp_path / "kb.jsonl"
    KnowledgeBase(CONCEPTS).to_jsonl(path)
    return path


def test_eval_cli_reports_recall_per_language(kb_path, tmp_path):
    errors = tmp_path / "errors.jsonl"
    result = CliRunner().invoke(main, ["link", "eval", "--kb", str(kb_path), "--data",
                                       str(FIXTURES / "bigbio_kb.json"), "--candidates", "tfidf",
                                       "--errors", str(errors), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["n"] == 3  # aspirin, "Head ... pain" (discontinuous), Fieber; T3 has no id
    per_lang = report["recall"]["per_lang"]
    assert per_lang["de"]["1"] == 1.0  # "Fieber" is an alias of C0015967
    rows = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [r["mention"] for r in rows][0] == "Aspirin" and rows[0]["gold_rank"] == 1


def test_train_then_eval_with_reranker(kb_path, tmp_path, tiny_xlmr_path):
    out = tmp_path / "reranker"
    report = run.train_linking(kb_path, out, source=str(FIXTURES / "bigbio_kb.json"),
                               langs=None, backbone=str(tiny_xlmr_path), candidates="tfidf",
                               k=3, epochs=2, batch_size=2, max_length=32)
    assert report["examples"] == 3 and (out / "cfg.json").exists()
    evaluated = run.evaluate_linking(kb_path, source=str(FIXTURES / "bigbio_kb.json"),
                                     candidates="tfidf", reranker=out, k=3)
    assert set(evaluated["accuracy@1"]) >= {"pooled", "per_lang"}
    assert 0.0 <= evaluated["accuracy@1"]["pooled"] <= 1.0


def test_no_mentions_for_languages(kb_path):
    from xapps.errors import InputError

    with pytest.raises(InputError, match=r"E250.*no annotated mentions in the languages sw\."
                                         r".*documents are in: "):
        run.evaluate_linking(kb_path, source=str(FIXTURES / "bigbio_kb.json"), langs=["sw"],
                             candidates="tfidf")


def test_pipeline_strict_prf(kb_path, tmp_path):
    import spacy

    nlp = spacy.blank("xx")
    ruler = nlp.add_pipe("entity_ruler")
    nlp.add_pipe("xmen_linker", config={"kb": str(kb_path), "candidates": {"kind": "tfidf"}})
    nlp.initialize()
    ruler.add_patterns([{"label": "X", "pattern": p} for p in ("Aspirin", "Fieber", "Husten")])
    nlp.to_disk(tmp_path / "pipe")
    result = CliRunner().invoke(main, ["link", "eval", "--pipeline", str(tmp_path / "pipe"),
                                       "--data", str(FIXTURES / "bigbio_kb.json"), "--json"],
                                catch_exceptions=False)
    strict = json.loads(result.output[result.output.index("{"):])["strict"]
    # Gold: Aspirin (UMLS and MeSH ids: 2 tuples), "Head ... pain", Fieber; T3 has no id.
    # Predicted: Aspirin, Fieber, Husten (not annotated in the gold) -> tp 2, fp 1, fn 2.
    assert (strict["tp"], strict["fp"], strict["fn"]) == (2, 1, 2)
    assert strict["f1"] == pytest.approx(2 * (2 / 3) * (2 / 4) / (2 / 3 + 2 / 4))
