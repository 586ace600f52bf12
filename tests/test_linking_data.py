import json
from collections import Counter
from pathlib import Path

import pytest

from xapps.errors import InputError
from xapps.linking.data import (
    BENCHMARK_FILE,
    MANTRA_DIR,
    Document,
    Entity,
    concept_names,
    doc_mentions,
    mention_context,
    read_benchmark_mentions,
    read_bigbio_kb,
    read_brat,
    read_mantra,
    write_bigbio_kb,
)
from xapps.linking.types import Mention
from xapps.paths import data_root

FIXTURES = Path(__file__).parent / "fixtures" / "linking"
BRAT = FIXTURES / "brat"
BIGBIO = FIXTURES / "bigbio_kb.json"


def write_pair(folder, text, ann, name="bad"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_text(text, encoding="utf-8", newline="")
    (folder / f"{name}.ann").write_text(ann, encoding="utf-8", newline="")
    return folder / f"{name}.ann"


# ------------------------------------------------------------------------------------ brat


def test_brat_fixture_entities_exact():
    (doc,) = read_brat(BRAT, lang="en")
    assert (doc.id, doc.lang) == ("doc1", "en")
    assert doc.text == "Patients with chest and abdominal pain received aspirin.\n"
    assert doc.entities == [
        Entity("T1", "Patients", [(0, 8)], "LIVB", [("UMLS", "C0030705")]),
        # discontinuous; its note has no CUI (3 fields), the CUI comes from the T line
        Entity("T2", "chest pain", [(14, 19), (34, 38)], "DISO", [("UMLS", "C0008031")]),
        # note with group and semantic type swapped, as 25 Mantra notes have them
        Entity("T3", "abdominal pain", [(24, 38)], "DISO", [("UMLS", "C0000737")]),
        # same span, second CUI (Mantra's way of giving a span several concepts)
        Entity("T4", "abdominal pain", [(24, 38)], "DISO", [("UMLS", "C0232487")]),
        # plain brat type, two N lines and a free-text note with one more CUI
        Entity("T5", "aspirin", [(48, 55)], "Drug",
               [("UMLS", "C0004057"), ("MeSH", "D001241"), ("UMLS", "C0004058")]),
    ]
    assert doc.entities[1].discontinuous and (doc.entities[1].start, doc.entities[1].end) == (14, 38)
    notes = doc.meta["notes"]
    assert notes["T2"] == {"text": '"Chest Pain", "Sign or Symptom", "DISO"', "name": "Chest Pain",
                           "group": "DISO", "semantic_types": ["Sign or Symptom"]}
    assert notes["T3"]["semantic_types"] == ["Sign or Symptom"]
    assert notes["T4"]["semantic_types"] == ["Sign or Symptom", "Finding"]
    assert notes["T5"] == {"text": "see also C0004058"}
    assert concept_names([doc]) == {"C0030705": "Patients", "C0008031": "Chest Pain",
                                    "C0000737": "Abdominal Pain",
                                    "C0232487": "Abdominal discomfort"}


def test_brat_single_file_and_db_name():
    (doc,) = read_brat(BRAT / "doc1.ann", db_name="UMLS2024")
    assert doc.id == "doc1" and doc.lang is None
    assert doc.entities[0].db_ids == [("UMLS2024", "C0030705")]
    assert doc.entities[4].db_ids[1] == ("MeSH", "D001241")  # N lines keep their own db


def test_brat_keeps_crlf_offsets_and_nested_ids(tmp_path):
    write_pair(tmp_path / "sub", "Fieber und Husten.\r\n", "T1\tC0015967 0 6\tFieber\n", "d")
    (doc,) = read_brat(tmp_path, lang="de")
    assert doc.id == "sub/d" and doc.text.endswith("\r\n")
    assert mention_context(doc, doc.entities[0], window=50) == Mention(
        "Fieber", lang="de", left="", right=" und Husten.\r\n", id="sub/d/T1")


def test_mention_context_cuts_window_around_discontinuous_span():
    doc = next(read_brat(BRAT, lang="en"))
    assert mention_context(doc, doc.entities[1], window=10) == Mention(
        "chest pain", lang="en", left="ents with ", right=" received ", id="doc1/T2")
    pairs = doc_mentions([doc], window=0)
    assert [(m.text, m.left, gold) for m, gold in pairs][-1] == (
        "aspirin", "", {"C0004057", "D001241", "C0004058"})


@pytest.mark.parametrize("ann, match", [
    ("T1\tC0000001 0 x\tFever\n", r"bad\.ann:1: offsets '0 x' are not 'START END"),
    ("T1\tC0000001 0 5\n", r"\[E060\] .*bad\.ann:1: a T line has 3 tab-separated fields, found 2"),
    ("T1\tC0000001 0 5\tFever\nT2\tC0000002 3 99\tx\n", r"bad\.ann:2: fragment 3 99 .*past the end"),
    ("T1\tC0000001 7 3\tx\n", r"bad\.ann:1: fragment 7 3 is empty, out of order"),
    ("T1\tC0000001 0 5\tFevre\n",
     (r"\[E061\] .*bad\.ann:1: annotation T1 covers 0 5, which is 'Fever' in bad\.txt, "
      r"but the \.ann line says 'Fevre'")),
    ("T1\tC0000001 0 5\tFever\n\nT1\tC0000002 0 5\tFever\n",
     r"\[E005\] .*bad\.ann:3: duplicate id 'T1' \(first seen at .*bad\.ann:1\)"),
    ("T1\tC0000001 0 5\tFever\n#1\tAnnotatorNotes T9\tnote\n",
     r"\[E063\] .*bad\.ann:2: the note refers to 'T9', which no line .* \(entities: T1\)"),
    ("T1\tFinding 0 5\tFever\nN1\tReference T1 C0000001\tFever\n",
     r"bad\.ann:2: normalisation 'Reference T1 C0000001' is not 'TYPE REF DB:ID'"),
    ("X1\tsomething\n", r"bad\.ann:1: unknown annotation id 'X1'"),
    ("T1\tC0000001 0 5\tFever\n\tC0000002 0 5\tFever\n", r"bad\.ann:2: unknown annotation id ''"),
])
def test_malformed_ann_names_file_and_line(tmp_path, ann, match):
    write_pair(tmp_path, "Fever and cough.\n", ann)
    with pytest.raises(InputError, match=match):
        list(read_brat(tmp_path))


def test_missing_ann_or_txt(tmp_path):
    (tmp_path / "a.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match=r"\[E062\] .*a\.ann': no such file"):
        list(read_brat(tmp_path))
    (tmp_path / "a.ann").write_text("", encoding="utf-8")
    assert [d.entities for d in read_brat(tmp_path)] == [[]]
    (tmp_path / "b.ann").write_text("", encoding="utf-8")
    with pytest.raises(InputError, match=r"b\.ann': there is no \.txt file beside it"):
        list(read_brat(tmp_path))
    with pytest.raises(InputError, match=r"E062.*no such file or folder"):
        list(read_brat(tmp_path / "nope"))


# ------------------------------------------------------------------------------------ BigBIO


def test_bigbio_read_fixture_exact():
    docs = list(read_bigbio_kb(BIGBIO))
    assert [d.id for d in docs] == ["PMID1", "PMID2"]
    d1, d2 = docs
    assert d1.text == "Aspirin for headache. Head and neck pain improved."
    assert d1.lang is None and d2.lang == "de"
    assert d1.entities[1] == Entity("PMID1_T2", "Head pain", [(22, 26), (36, 40)], "DISO",
                                    [("UMLS", "C0018681")])
    assert d1.entities[0].db_ids == [("UMLS", "C0004057"), ("MeSH", "D001241")]
    assert d1.entities[2].db_ids == []
    assert d1.meta["id"] == "0" and len(d1.meta["relations"]) == 1
    assert [p["type"] for p in d1.meta["passages"]] == ["title", "abstract"]
    assert d2.meta == {}  # default layout, empty lists and id == document_id are not kept


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_bigbio_round_trip_is_exact(tmp_path, suffix):
    docs = list(read_bigbio_kb(BIGBIO))
    out = tmp_path / f"kb{suffix}"
    assert write_bigbio_kb(docs, out) == 2
    assert list(read_bigbio_kb(out)) == docs
    written = ([json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
               if suffix == ".jsonl" else json.loads(out.read_text(encoding="utf-8")))
    assert written == json.loads(BIGBIO.read_text(encoding="utf-8"))  # file -> docs -> file


def test_brat_to_bigbio_round_trip(tmp_path):
    docs = list(read_brat(BRAT, lang="en"))
    write_bigbio_kb(docs, tmp_path / "kb.jsonl")
    assert list(read_bigbio_kb(tmp_path / "kb.jsonl")) == docs
    entity = json.loads((tmp_path / "kb.jsonl").read_text(encoding="utf-8"))["entities"][1]
    assert entity["text"] == ["chest", "pain"] and entity["offsets"] == [[14, 19], [34, 38]]
    assert entity["normalized"] == [{"db_name": "UMLS", "db_id": "C0008031"}]


def test_bigbio_errors_and_atomic_write(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"document_id": "a", "passages": [], "entities": []}\n'
                   '{"document_id": "b", "passages": [{"id": "p", "type": "t", "text": ["abc"], '
                   '"offsets": [[0, 4]]}], "entities": []}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"\[E064\] .*bad\.jsonl:2 passages\[0\]: text of "
                                         r"length 3 does not fit offsets \[0, 4\]"):
        list(read_bigbio_kb(bad))
    bad.write_text('{"document_id": "a", "passages": [], "entities": []}\n{"document_id": "a"',
                   encoding="utf-8")
    with pytest.raises(InputError, match=r"\[E001\] .*bad\.jsonl:2: line is not valid JSON"):
        list(read_bigbio_kb(bad))
    out = tmp_path / "kb.json"
    out.write_text("old", encoding="utf-8")
    clash = Document("d", "x", None, [], {"entities": 1})
    with pytest.raises(InputError, match=r"meta key of document 'd' 'entities' is not valid"):
        write_bigbio_kb([Document("ok", "y"), clash], out)
    assert out.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "kb.json"]  # no temp


# ------------------------------------------------------------------------------------ Mantra

MANTRA = data_root() / MANTRA_DIR
needs_mantra = pytest.mark.skipif(not (MANTRA / BENCHMARK_FILE).is_file(),
                                  reason=f"Mantra GSC not under {MANTRA} (set XAPPS_DATA)")


@needs_mantra
def test_real_mantra_agrees_with_benchmark_mentions():
    bench = read_benchmark_mentions()
    assert len(bench) == 4853
    assert Counter(m.lang for m, _ in bench) == {"en": 1963, "de": 1082, "fr": 1052, "es": 756}
    docs = read_mantra()
    assert Counter(d.lang for d in docs) == {"en": 550, "fr": 250, "de": 250, "es": 200}
    by_id = {f"{d.id}/{e.id}": (d, e) for d in docs for e in d.entities}
    assert len(by_id) == 4853
    rows = [json.loads(line) for line in (MANTRA / BENCHMARK_FILE).open(encoding="utf-8")]
    agree = 0
    for (mention, cui), row in zip(bench, rows):
        doc, entity = by_id[mention.id]
        offsets = ";".join(f"{s} {e}" for s, e in entity.offsets)
        agree += (entity.text == mention.text and entity.db_ids == [("UMLS", cui)]
                  and offsets == row["offsets"] and doc.lang == mention.lang
                  and entity.discontinuous == row["discontinuous"]
                  and doc.meta["corpus"] == row["corpus"])
    assert agree == 4853
    # the benchmark file with context cut from the .txt files == mention_context on the docs
    with_context = read_benchmark_mentions(window=32)
    assert [m for m, _ in with_context] == [mention_context(*by_id[m.id], window=32)
                                            for m, _ in bench]


@needs_mantra
def test_real_mantra_quirks():
    docs = read_mantra(langs=("de", "English"))
    assert {d.lang for d in docs} == {"de", "en"}
    assert all(d.text.endswith("\r\n") for d in docs if d.lang == "de")
    # every note's semantic group parses, once the 25 swapped notes are put right
    groups = Counter(e.type for d in docs for e in d.entities)
    assert None not in groups and "Manufactured Object" not in groups
    with pytest.raises(InputError, match=r"\[E067\] Mantra language 'Klingon' is not valid"):
        read_mantra(langs=("Klingon",))
