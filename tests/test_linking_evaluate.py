import doctest
import json
from pathlib import Path

import pytest

from xapps.errors import InputError
from xapps.linking import evaluate
from xapps.linking.data import read_brat
from xapps.linking.evaluate import (
    accuracy_at_1,
    entity_tuples,
    error_analysis,
    evaluate_accuracy,
    evaluate_candidates,
    recall_at_k,
    strict_prf,
    write_error_analysis,
)
from xapps.linking.types import Candidate, Mention

BRAT = Path(__file__).parent / "fixtures" / "linking" / "brat"


def cands(*ids, source="tfidf"):
    return [Candidate(c, 1.0 - i / 10, {source: 1.0 - i / 10}) for i, c in enumerate(ids)]


def test_doctests_pass():
    result = doctest.testmod(evaluate, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted >= 12


def test_recall_at_k_exact_with_sets_and_nil():
    ranked = [["A", "B"], ["X"] * 4 + ["B"], [], ["A"]]
    gold = [{"B", "Z"}, "B", "A", None]  # NIL gold is never found
    assert recall_at_k(ranked, gold, ks=(1, 2, 5, 64)) == {1: 0.0, 2: 0.25, 5: 0.5, 64: 0.5}


def test_evaluate_candidates_per_language():
    mentions = [Mention("a", lang="en"), Mention("b", lang="en"), Mention("c", lang="es"),
                Mention("d")]
    ranked = [cands("C1"), cands("C9", "C2"), cands(*[f"X{i}" for i in range(20)], "C3"),
              cands("C4")]
    out = evaluate_candidates(mentions, ranked, ["C1", "C2", "C3", "C4"])
    assert out == {
        "pooled": {1: 0.5, 5: 0.75, 16: 0.75, 64: 1.0},
        "per_lang": {"en": {1: 0.5, 5: 1.0, 16: 1.0, 64: 1.0},
                     "es": {1: 0.0, 5: 0.0, 16: 0.0, 64: 1.0},
                     "und": {1: 1.0, 5: 1.0, 16: 1.0, 64: 1.0}},
        "n": 4, "n_per_lang": {"en": 2, "es": 1, "und": 1},
    }


def test_accuracy_nil_handling():
    pred = [cands("C1", "C2"), None, "", [], "C5", Candidate("C6", 0.1)]
    gold = ["C1", "C2", None, set(), None, {"C6"}]
    # right, NIL for non-NIL (wrong), NIL for NIL (right) x2, concept for NIL (wrong), right
    assert accuracy_at_1(pred, gold) == pytest.approx(4 / 6)
    mentions = [Mention(str(i), lang="fr" if i < 2 else "de") for i in range(6)]
    out = evaluate_accuracy(mentions, pred, gold)
    assert out["per_lang"] == {"de": 0.75, "fr": 0.5} and out["n_per_lang"] == {"de": 4, "fr": 2}


def test_strict_prf_on_fixture_spans():
    docs = list(read_brat(BRAT))
    gold = entity_tuples(docs)
    assert ("doc1", 14, 38, "C0008031") in gold and len(gold) == 7  # T5 has three concepts
    pred = {("doc1", 0, 8, "C0030705"),       # exact: tp
            ("doc1", 24, 38, "C0000737"),     # one of the span's two CUIs: tp
            ("doc1", 14, 19, "C0008031"),     # first fragment only: wrong span
            ("doc1", 48, 55, "C9999999")}     # right span, wrong concept
    r = strict_prf(pred, gold)
    assert (r["tp"], r["fp"], r["fn"], r["n_pred"], r["n_gold"]) == (2, 2, 5, 4, 7)
    assert r["precision"] == 0.5 and r["recall"] == pytest.approx(2 / 7)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 7) / (0.5 + 2 / 7))
    assert strict_prf([], gold)["f1"] == 0.0


def test_error_analysis_rows_and_jsonl(tmp_path):
    mentions = [Mention("Fieber", lang="de", left="hohes ", id="m1"),
                Mention("toux", lang="fr", id="m2"), Mention("x", lang="en", id="m3")]
    ranked = [[Candidate("C7", 0.9, {"tfidf": 0.9}),
               Candidate("C1", 0.5, {"dense": 0.8, "tfidf": 0.25})],
              cands("C2", source="dense"), []]
    rows = error_analysis(mentions, ranked, ["C1", {"C2", "C3"}, None], k=1)
    assert rows[0] == {"id": "m1", "mention": "Fieber", "lang": "de", "left": "hohes ",
                       "right": "", "gold": ["C1"],
                       "top": [{"concept_id": "C7", "score": 0.9, "sources": {"tfidf": 0.9}}],
                       "gold_rank": 2, "correct": False,
                       "found_by": {"dense": 0.8, "tfidf": 0.25}}
    assert (rows[1]["gold"], rows[1]["gold_rank"], rows[1]["correct"],
            rows[1]["found_by"]) == (["C2", "C3"], 1, True, {"dense": 1.0})
    assert (rows[2]["gold"], rows[2]["gold_rank"], rows[2]["correct"]) == ([], None, True)
    path = tmp_path / "errors" / "dump.jsonl"
    assert write_error_analysis(rows, path) == 3
    assert [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] == rows


def test_input_errors():
    with pytest.raises(InputError, match=r"\[E066\] recall_at_k: 2 ranked, 1 gold differ"):
        recall_at_k([["A"], ["B"]], ["A"])
    with pytest.raises(InputError, match=r"\[E066\] evaluate_candidates: 1 mentions, 2 ranked"):
        evaluate_candidates([Mention("a")], [[], []], ["A", "B"])
    with pytest.raises(InputError, match=r"\[E069\] accuracy_at_1: there are no mentions"):
        accuracy_at_1([], [])
    with pytest.raises(InputError, match=r"\[E067\] ks \(0, 5\) is not valid"):
        recall_at_k([["A"]], ["A"], ks=(0, 5))
    with pytest.raises(InputError, match=r"\[E067\] k 0 is not valid"):
        error_analysis([Mention("a")], [[]], ["A"], k=0)
