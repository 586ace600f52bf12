"""Bad-input matrix for `xapps kb build|info`, `xapps link eval|train`, `xapps project` and
`xapps oie extract|eval|project|train`: missing, empty, malformed line, missing field,
non-UTF-8, binary, over-long record, mismatched inputs, unwritable output and damaged saved
folders each end in one coded error (exit 2; 1 where over-long records were skipped), with the
file and line, no traceback, and nothing written. Also: long pairs are projected window by
window, and the shipped medlink pipeline finds entities from its KB's names."""
from __future__ import annotations

import gzip
import json
import logging

import pytest
from cli_checks import assert_refused, invoke, snapshot

from xapps.linking.kb import Alias, Concept, KnowledgeBase
from xapps.oie.model import OIEConfig, OIETagger
from xapps.projection import projector as projector_module
from xapps.projection.projector import AnnotationProjector
from xapps.projection.types import LabeledSpan, ProjectionPair

CONCEPTS = [
    Concept("C01", "Abdominal pain", [Alias("Stomach ache"), Alias("Bauchschmerzen", "de")]),
    Concept("C02", "Headache", [Alias("Kopfschmerzen", "de"), Alias("dolor de cabeza", "es")]),
    Concept("C03", "Fever", [Alias("fièvre", "fr"), Alias("Fieber", "de")]),
]
BIGBIO = [{"id": "d1", "document_id": "d1", "lang": "de",
           "passages": [{"id": "p1", "type": "text", "text": ["Er hat Fieber."],
                         "offsets": [[0, 14]]}],
           "entities": [{"id": "e1", "type": "DISO", "text": ["Fieber"], "offsets": [[7, 13]],
                         "normalized": [{"db_name": "UMLS", "db_id": "C03"}]}]}]
SRC = [{"id": "s1", "text": "Angela Merkel visits Paris .",
        "spans": [{"start": 0, "end": 13, "label": "PER"}, {"start": 21, "end": 26,
                                                             "label": "LOC"}],
        "translation": "Angela Merkel besucht Paris ."},
       {"id": "s2", "text": "The European Union meets .",
        "spans": [{"start": 4, "end": 18, "label": "ORG"}],
        "translation": "Die Europäische Union tagt ."}]
NOT_UTF8 = b"\xff\xfe bad bytes \x80\n"
BINARY = bytes(range(255, -1, -1)) * 4  # starts with 0xFF: not UTF-8, not JSON


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def text(path, content):
    path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture()
def kb_file(tmp_path):
    path = tmp_path / "kb.jsonl"
    KnowledgeBase(CONCEPTS).to_jsonl(path)
    return path


@pytest.fixture(scope="module")
def tagger(tmp_path_factory, tiny_xlmr_path):
    """An untrained open-IE tagger on the tiny XLM-R: enough to load and run."""
    out = tmp_path_factory.mktemp("oie") / "tagger"
    OIETagger(OIEConfig(backbone=str(tiny_xlmr_path))).save(out)
    return out


@pytest.fixture()
def tiny(tiny_xlmr_path):
    return ["--backbone", tiny_xlmr_path, "--layer", "2"]


# ------------------------------------------------------------------------------ kb build


def _kb_line_cases(tmp_path):
    good = json.dumps({"concept_id": "C1", "canonical_name": "Fever"})
    return {
        "empty": (text(tmp_path / "empty.jsonl", ""), "E251", []),
        "blank lines only": (text(tmp_path / "blank.jsonl", "\n\n"), "E251", []),
        "malformed line": (text(tmp_path / "bad.jsonl", good + "\n{oops\n"), "E001", [":2"]),
        "missing field": (text(tmp_path / "field.jsonl", good + '\n{"canonical_name": "x"}\n'),
                          "E051", [":2"]),
        "non-UTF-8": (tmp_path / "latin.jsonl", "E0", [":2"]),
        "binary": (tmp_path / "blob.jsonl", "E0", [":1"]),
    }


@pytest.mark.parametrize("case", ["empty", "blank lines only", "malformed line",
                                  "missing field", "non-UTF-8", "binary"])
def test_kb_build_jsonl_bad_input(tmp_path, case):
    (tmp_path / "latin.jsonl").write_bytes(
        json.dumps({"concept_id": "C1", "canonical_name": "Fever"}).encode() + b"\n" + NOT_UTF8)
    (tmp_path / "blob.jsonl").write_bytes(BINARY)
    path, code, mentions = _kb_line_cases(tmp_path)[case]
    out = tmp_path / "out" / "kb.jsonl"
    result = invoke("kb", "build", "--jsonl", path, "--out", out)
    assert_refused(result, code if code != "E0" else _code(result), path.name, *mentions)
    assert not (tmp_path / "out").exists()


def _code(result) -> str:
    """The E-code a refusal printed (for cases where several readers' codes are fine)."""
    import re

    found = re.findall(r"\[(E\d{3})\]", result.output)
    assert found, result.output
    return found[0]


def test_kb_build_missing_source(tmp_path):
    result = invoke("kb", "build", "--jsonl", tmp_path / "nope.jsonl", "--out",
                    tmp_path / "kb.jsonl")
    assert_refused(result, _code(result), "nope.jsonl")
    assert not (tmp_path / "kb.jsonl").exists()


@pytest.mark.parametrize("kind,content,code,mention", [
    ("tsv", "", "E251", None),
    ("tsv", "cui\tname\n", "E251", None),
    ("tsv", "cui\tname\nC1\n", "E0", ":2"),
    ("obo", "", "E251", None),
    ("obo", "format-version: 1.2\n\n[Term]\nid: HP:1\n", "E0", None),
    ("obo", "[Term]\nid: HP:1\nname: Fever\n", None, None),
])
def test_kb_build_tsv_and_obo(tmp_path, kind, content, code, mention):
    path = text(tmp_path / f"src.{kind}", content)
    out = tmp_path / "kb.jsonl"
    result = invoke("kb", "build", f"--{kind}", path, "--out", out)
    if code is None:
        assert result.exit_code == 0, result.output
        assert out.is_file()
        return
    if code == "E0":
        code = _code(result)
    assert_refused(result, code, "src." + kind, *([mention] if mention else []))
    assert not out.exists()


@pytest.mark.parametrize("langs,mention", [(None, "translation rows"),
                                           ("xx", "filtered out")])
def test_kb_build_empty_translation_table(tmp_path, langs, mention):
    good = text(tmp_path / "good.obo", "[Term]\nid: HP:1\nname: Fever\n")
    rows = "hpo_id\tlang\tterm_type\ttext\tstatus\n"
    if langs:
        rows += "HP:1\tde\tlabel\tFieber\tOFFICIAL\n"
    table = text(tmp_path / "tr.tsv", rows)
    out = tmp_path / "kb.jsonl"
    result = invoke("kb", "build", "--obo", good, "--translations", table, "--out", out,
                    *(["--langs", langs] if langs else []))
    assert_refused(result, "E251", "tr.tsv", mention)
    assert not out.exists()


def test_kb_build_empty_source_allowed_with_flag(tmp_path):
    empty = text(tmp_path / "empty.obo", "")
    good = text(tmp_path / "good.obo", "[Term]\nid: HP:1\nname: Fever\n")
    result = invoke("kb", "build", "--obo", good, "--obo", empty, "--out", tmp_path / "kb.jsonl")
    assert_refused(result, "E251", "empty.obo")
    result = invoke("kb", "build", "--obo", good, "--obo", empty, "--allow-empty", "--out",
                    tmp_path / "kb.jsonl")
    assert result.exit_code == 0, result.output
    assert "1 concepts" in result.output


@pytest.mark.parametrize("form", ["kb.jsonl", "kbdir"])
def test_kb_build_unwritable_out_refused_before_reading(readonly_dir, tmp_path, form,
                                                        monkeypatch):
    src = text(tmp_path / "src.obo", "[Term]\nid: HP:1\nname: Fever\n")
    read = []
    monkeypatch.setattr("xapps.linking.kb_builders.from_obo",
                        lambda *a, **k: read.append(a) or KnowledgeBase([]))
    result = invoke("kb", "build", "--obo", src, "--out", readonly_dir / form)
    assert_refused(result, "E068", str(readonly_dir / form))
    assert read == [], "the source was read before the output was checked"


def test_kb_info_missing_empty_and_damaged(tmp_path, kb_file):
    result = invoke("kb", "info", tmp_path / "nope")
    assert_refused(result, _code(result), "nope")
    folder = tmp_path / "kbdir"
    KnowledgeBase(CONCEPTS).save(folder)
    victim = next(p for p in sorted(folder.iterdir()) if p.is_file() and "manifest" not in p.name)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    result = invoke("kb", "info", folder)
    assert_refused(result, "E053", victim.name)


# ------------------------------------------------------------------------------ link eval


def test_link_eval_on_an_empty_kb_is_e253_not_a_traceback(tmp_path):
    kb = text(tmp_path / "empty.jsonl", "")
    data = jsonl(tmp_path / "docs.jsonl", BIGBIO)
    result = invoke("link", "eval", "--kb", kb, "--data", data, "--candidates", "tfidf")
    assert_refused(result, "E253", "empty.jsonl")
    assert "vocabulary" not in result.output


@pytest.mark.parametrize("case,content,code,mentions", [
    ("empty", b"", "E250", ["docs.jsonl", "BigBIO"]),
    ("malformed line", json.dumps(BIGBIO[0]).encode() + b"\n{oops\n", "E001", ["docs.jsonl:2"]),
    ("non-UTF-8", json.dumps(BIGBIO[0]).encode() + b"\n" + NOT_UTF8, "E059",
     ["docs.jsonl:2", "BigBIO"]),
    ("binary", BINARY, "E059", ["docs.jsonl:1"]),
    ("missing field", b'{"document_id": "x"}\n', "E064", ["docs.jsonl:1"]),
])
def test_link_eval_bad_data(tmp_path, kb_file, case, content, code, mentions):
    data = tmp_path / "docs.jsonl"
    data.write_bytes(content)
    errors = tmp_path / "errors.jsonl"
    result = invoke("link", "eval", "--kb", kb_file, "--data", data, "--candidates", "tfidf",
                    "--errors", errors)
    out = assert_refused(result, code, *mentions)
    assert "languages None" not in out and ".tsv or .txt" not in out
    assert not errors.exists()


def test_link_eval_language_filter_names_the_languages_found(tmp_path, kb_file):
    data = jsonl(tmp_path / "docs.jsonl", BIGBIO)
    result = invoke("link", "eval", "--kb", kb_file, "--data", data, "--candidates", "tfidf",
                    "--langs", "fr,es")
    assert_refused(result, "E250", "docs.jsonl", "fr, es", "in: de")


def test_link_eval_data_missing_file_names_bigbio(tmp_path, kb_file):
    result = invoke("link", "eval", "--kb", kb_file, "--data", tmp_path / "nope.json",
                    "--candidates", "tfidf")
    out = assert_refused(result, "E059", "nope.json", "BigBIO")
    assert ".tsv or .txt" not in out


def test_link_eval_works_on_good_data(tmp_path, kb_file):
    data = jsonl(tmp_path / "docs.jsonl", BIGBIO)
    result = invoke("link", "eval", "--kb", kb_file, "--data", data, "--candidates", "tfidf",
                    "-k", 2, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n"] == 1


@pytest.mark.parametrize("what", ["empty folder", "a file", "damaged config"])
def test_link_eval_pipeline_that_is_not_a_pipeline(tmp_path, what):
    data = jsonl(tmp_path / "docs.jsonl", BIGBIO)
    target = tmp_path / "pipe"
    if what == "a file":
        target.write_text("hello", encoding="utf-8")
    else:
        target.mkdir()
        if what == "damaged config":
            (target / "config.cfg").write_bytes(BINARY)
    result = invoke("link", "eval", "--pipeline", target, "--data", data)
    assert_refused(result, "E185", "pipe")


def test_link_eval_unwritable_errors_refused_before_work(readonly_dir, tmp_path, kb_file,
                                                         monkeypatch):
    data = jsonl(tmp_path / "docs.jsonl", BIGBIO)
    loaded = []
    monkeypatch.setattr("xapps.linking.run.load_kb", lambda *a, **k: loaded.append(a))
    result = invoke("link", "eval", "--kb", kb_file, "--data", data, "--candidates", "tfidf",
                    "--errors", readonly_dir / "errors.jsonl")
    assert_refused(result, "E068", "errors.jsonl")
    assert loaded == []


def test_link_train_unwritable_out_and_empty_kb(readonly_dir, tmp_path, kb_file):
    data = jsonl(tmp_path / "docs.jsonl", BIGBIO)
    result = invoke("link", "train", "--kb", kb_file, "--data", data, "--out",
                    readonly_dir / "rr", "--candidates", "tfidf")
    assert_refused(result, "E068", "rr")
    empty = text(tmp_path / "empty.jsonl", "")
    result = invoke("link", "train", "--kb", empty, "--data", data, "--out", tmp_path / "rr",
                    "--candidates", "tfidf")
    assert_refused(result, "E253", "empty.jsonl")
    assert not (tmp_path / "rr").exists()


# ------------------------------------------------------------------------------ project


@pytest.mark.parametrize("case,content,code,mentions", [
    ("empty", b"", "E251", ["src.jsonl", "--allow-empty"]),
    ("malformed line", json.dumps(SRC[0]).encode() + b"\n{oops\n", "E001", ["src.jsonl:2"]),
    ("missing field", json.dumps(SRC[0]).encode() + b'\n{"spans": []}\n', "E133",
     ["src.jsonl:2", "text"]),
    ("non-UTF-8", json.dumps(SRC[0]).encode() + b"\n" + NOT_UTF8, "E059", ["src.jsonl:2"]),
    ("binary", BINARY, "E059", ["src.jsonl:1"]),
])
def test_project_bad_source(tmp_path, tiny, case, content, code, mentions):
    src = tmp_path / "src.jsonl"
    src.write_bytes(content)
    out = tmp_path / "out" / "de.jsonl"
    before = snapshot(tmp_path)
    result = invoke("project", "--src", src, "--out", out, *tiny)
    assert_refused(result, code, *mentions)
    assert snapshot(tmp_path) == before


def test_project_binary_docbin_and_missing_source(tmp_path, tiny):
    blob = tmp_path / "src.spacy"
    blob.write_bytes(BINARY)
    result = invoke("project", "--src", blob, "--out", tmp_path / "o.jsonl", *tiny)
    assert_refused(result, "E138", "src.spacy")
    result = invoke("project", "--src", tmp_path / "nope.jsonl", "--out", tmp_path / "o.jsonl")
    assert result.exit_code == 2 and "nope.jsonl" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o.jsonl").exists()


def test_project_mismatched_src_and_tgt_writes_nothing(tmp_path, tiny):
    src = text(tmp_path / "en.conll", "Angela\tB-PER\nMerkel\tI-PER\n\nParis\tB-LOC\n")
    tgt = text(tmp_path / "de.txt", "Angela Merkel\n")
    out = tmp_path / "de.conll"
    result = invoke("project", "--src", src, "--tgt", tgt, "--out", out, *tiny)
    assert_refused(result, "E134", "en.conll", "de.txt")
    assert not out.exists()


def test_project_unwritable_out_refused_before_the_model_loads(readonly_dir, tmp_path,
                                                               monkeypatch):
    src = jsonl(tmp_path / "src.jsonl", SRC)
    monkeypatch.setattr(AnnotationProjector, "backbone",
                        property(lambda self: pytest.fail("the model loaded")))
    result = invoke("project", "--src", src, "--out", readonly_dir / "de.jsonl")
    assert_refused(result, "E068", "de.jsonl")


def test_train_generator_unwritable_out_refused_before_reading(readonly_dir, tmp_path,
                                                              monkeypatch):
    src = jsonl(tmp_path / "src.jsonl", SRC)
    monkeypatch.setattr("xapps.projection.io.read_pairs",
                        lambda *a, **k: pytest.fail("the data was read"))
    result = invoke("projection", "train-generator", "--data", src, "--model", "x", "--out",
                    readonly_dir / "gen")
    assert_refused(result, "E068", "gen")


def test_project_empty_source_allowed_with_flag(tmp_path, tiny):
    src = text(tmp_path / "src.jsonl", "")
    out = tmp_path / "de.jsonl"
    result = invoke("project", "--src", src, "--out", out, "--allow-empty", *tiny)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == ""


def test_project_skips_an_over_long_record_and_writes_the_others(tmp_path, tiny, caplog):
    long_text = "Paris " * 200
    rows = [SRC[0], {"id": "big", "text": long_text, "translation": long_text,
                     "spans": [{"start": 0, "end": 5, "label": "LOC"}]}, SRC[1]]
    src = jsonl(tmp_path / "src.jsonl", rows)
    out = tmp_path / "de.jsonl"
    with caplog.at_level(logging.WARNING, logger="xapps"):
        result = invoke("project", "--src", src, "--out", out, "--max-chars", 500, *tiny)
    assert_refused(result, "E254", "src.jsonl:2", "1 of 3", exit_code=1)
    assert any("[E252]" in r.getMessage() and "src.jsonl:2" in r.getMessage()
               for r in caplog.records)
    written = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert written == ["s1", "s2"]
    assert "--max-chars" in invoke("project", "--help").output


def test_long_pair_is_projected_window_by_window(tiny_xlmr_path, monkeypatch):
    """A pair over window_words is cut into windows: no matrix sees the whole pair, and
    spans in every window are still projected (the tiny model aligns identical words)."""
    words = [f"w{i}" for i in range(300)]
    text_ = " ".join(words)
    starts = [len(" ".join(words[:i])) + (1 if i else 0) for i in range(300)]
    spans = [LabeledSpan(starts[i], starts[i] + len(words[i]), "X") for i in (5, 150, 290)]
    pair = ProjectionPair(text_, text_, spans)
    seen = []
    original = projector_module.word_links

    def spy(links, src_of, tgt_of, n_src, n_tgt):
        seen.append((n_src, n_tgt))
        return original(links, src_of, tgt_of, n_src, n_tgt)

    monkeypatch.setattr(projector_module, "word_links", spy)
    projector = AnnotationProjector(backbone=str(tiny_xlmr_path), layer=2, window_words=64,
                                    threshold=0.0)
    result = projector.project_one(pair)
    assert len(seen) >= 3 and max(n for n, _ in seen) <= 64 + 1
    assert max(m for _, m in seen) < 300
    assert len(result.spans) + len(result.unprojected) == 3
    assert len(result.spans) >= 1


def test_span_longer_than_the_window_is_left_unprojected(tiny_xlmr_path, caplog):
    text_ = " ".join(f"w{i}" for i in range(40))
    pair = ProjectionPair(text_, text_, [LabeledSpan(0, len(text_), "X")])
    projector = AnnotationProjector(backbone=str(tiny_xlmr_path), layer=2, window_words=16)
    with caplog.at_level(logging.WARNING, logger="xapps"):
        result = projector.project_one(pair)
    assert result.spans == [] and result.unprojected == [0]
    assert any("window_words" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------ oie


@pytest.mark.parametrize("case,name,content,code,mentions", [
    ("empty", "in.txt", b"", "E251", ["in.txt", "--allow-empty"]),
    ("empty jsonl", "in.jsonl", b"\n", "E251", ["in.jsonl"]),
    ("malformed line", "in.jsonl", b'{"id": "1", "text": "a b"}\n{oops\n', "E001",
     ["in.jsonl:2"]),
    ("missing field", "in.jsonl", b'{"id": "1", "txt": "a b"}\n', "E002", ["in.jsonl:1"]),
    ("non-UTF-8", "in.txt", b"Bob lives in Rome.\n" + NOT_UTF8, "E004", ["in.txt:2"]),
    ("binary", "in.jsonl", BINARY, "E004", ["in.jsonl:1"]),
])
def test_oie_extract_bad_input_fails_before_the_model_loads(tmp_path, tagger, monkeypatch,
                                                            case, name, content, code,
                                                            mentions):
    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / "out.jsonl"
    monkeypatch.setattr("xapps.oie.model.OIETagger.load",
                        classmethod(lambda cls, *a, **k: pytest.fail("the model loaded")))
    before = snapshot(tmp_path)
    result = invoke("oie", "extract", "--model", tagger, "--input", src, "--output", out)
    assert_refused(result, code, *mentions)
    assert snapshot(tmp_path) == before


def test_oie_extract_empty_allowed_and_unwritable(tmp_path, tagger, readonly_dir):
    src = text(tmp_path / "in.txt", "")
    out = tmp_path / "out.jsonl"
    result = invoke("oie", "extract", "--model", tagger, "--input", src, "--output", out,
                    "--allow-empty")
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == ""
    src = text(tmp_path / "in2.txt", "Bob lives in Rome.\n")
    result = invoke("oie", "extract", "--model", tagger, "--input", src, "--output",
                    readonly_dir / "out.jsonl")
    assert_refused(result, "E068", "out.jsonl")


def test_oie_extract_skips_an_over_long_sentence(tmp_path, tagger, caplog):
    """spaCy's own limit (E088, 1,000,000 characters) never fires: --max-chars decides,
    per sentence, and the others are written."""
    src = text(tmp_path / "in.txt", "Bob lives in Rome.\n" + "word " * 300 + "\nAnn sings.\n")
    out = tmp_path / "out.jsonl"
    with caplog.at_level(logging.WARNING, logger="xapps"):
        result = invoke("oie", "extract", "--model", tagger, "--input", src, "--output", out,
                        "--max-chars", 1000)
    assert_refused(result, "E254", "in.txt:2", "1 of 3", exit_code=1)
    assert any("[E252]" in r.getMessage() and "in.txt:2" in r.getMessage()
               for r in caplog.records)
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in rows] == ["Bob lives in Rome.", "Ann sings."]
    help_text = invoke("oie", "extract", "--help").output
    assert "--max-chars" in help_text and "exit 1" in help_text


def test_oie_extract_damaged_tagger(tmp_path, tagger):
    import shutil

    copy = tmp_path / "tagger"
    shutil.copytree(tagger, copy)
    victim = next(p for p in copy.iterdir() if p.suffix == ".safetensors")
    victim.write_bytes(victim.read_bytes()[:100])
    src = text(tmp_path / "in.txt", "Bob lives in Rome.\n")
    result = invoke("oie", "extract", "--model", copy, "--input", src, "--output",
                    tmp_path / "out.jsonl")
    assert_refused(result, _code(result), "tagger")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.fixture()
def carb_root(tmp_path):
    root = tmp_path / "data"
    (root / "oie").mkdir(parents=True)
    text(root / "oie" / "carb_test_sents.txt", "Bob lives in Rome.\n")
    text(root / "oie" / "carb_gold_test.tsv", "Bob lives in Rome.\tlives in\tBob\tRome\n")
    return root


def test_oie_eval_output_unwritable_refused_before_work(tmp_path, carb_root, readonly_dir):
    extractions = jsonl(tmp_path / "x.jsonl", [{"id": "1", "text": "Bob lives in Rome.",
                                                "triples": []}])
    result = invoke("oie", "eval", "--benchmark", "carb", "--extractions", extractions,
                    "--data", carb_root, "--output", readonly_dir / "scores.json")
    assert_refused(result, "E068", "scores.json")


@pytest.mark.parametrize("content,code,mention", [
    (b"", "E251", "x.jsonl"),
    (b"{oops\n", "E001", "x.jsonl:1"),
    (b'{"text": "Bob lives in Rome."}\n', "E059", "x.jsonl:1"),
    (NOT_UTF8, "E059", "x.jsonl:1"),
])
def test_oie_eval_bad_extractions(tmp_path, carb_root, content, code, mention):
    extractions = tmp_path / "x.jsonl"
    extractions.write_bytes(content)
    result = invoke("oie", "eval", "--benchmark", "carb", "--extractions", extractions,
                    "--data", carb_root, "--output", tmp_path / "scores.json")
    assert_refused(result, code, mention)
    assert not (tmp_path / "scores.json").exists()


def test_oie_eval_shows_progress(tmp_path, carb_root, tagger):
    result = invoke("oie", "eval", "--benchmark", "carb", "--model", tagger, "--data",
                    carb_root)
    assert result.exit_code == 0, result.output
    assert "extracting carb" in result.stderr


def test_oie_project_bad_inputs(tmp_path, tagger, readonly_dir):
    en = text(tmp_path / "en.txt", "Bob lives in Rome.\nAnn sings.\n")
    de = text(tmp_path / "de.txt", "Bob wohnt in Rom.\n")
    out = tmp_path / "de.jsonl"
    args = ("--model", tagger, "--target-lang", "de", "--out")
    result = invoke("oie", "project", "--source", en, "--target", de, *args, out)
    assert_refused(result, "E134", "en.txt", "de.txt")
    empty = text(tmp_path / "empty.txt", "\n")
    result = invoke("oie", "project", "--source", empty, "--target", de, *args, out)
    assert_refused(result, "E251", "empty.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n" + NOT_UTF8)
    result = invoke("oie", "project", "--source", bad, "--target", de, *args, out)
    assert_refused(result, "E059", "bad.txt:2")
    result = invoke("oie", "project", "--source", en, "--target", en, *args,
                    readonly_dir / "x.jsonl")
    assert_refused(result, "E068", "x.jsonl")
    assert not out.exists()


def test_oie_train_unwritable_out_and_damaged_init(tmp_path, tagger, readonly_dir):
    data = jsonl(tmp_path / "train.jsonl", [{"sentence": "Bob lives in Rome .", "tuples": [
        {"arg0": "Bob", "pred": "lives in", "args": ["Rome"]}]}])
    result = invoke("oie", "train", "--data", data, "--out", readonly_dir / "m")
    assert_refused(result, "E068", "m")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cfg.json").write_text("{not json", encoding="utf-8")
    result = invoke("oie", "train", "--data", data, "--out", tmp_path / "m", "--init", broken)
    assert_refused(result, "E171", "broken")
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------ shipped medlink config


def test_medlink_config_finds_entities_on_the_readme_example(tmp_path, kb_file):
    """The README's `xapps annotate --pipeline pipelines/medlink_me5.cfg --set
    components.xmen_linker.kb=kb.jsonl --input 'letters/*.jsonl.gz' --output linked --format
    jsonl` links mentions found by the KB's own names (TF-IDF candidates here: no model)."""
    from pathlib import Path

    cfg = Path(__file__).resolve().parents[1] / "pipelines" / "medlink_me5.cfg"
    letters = tmp_path / "letters"
    letters.mkdir()
    with gzip.open(letters / "a.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "1", "text": "Der Patient hat Kopfschmerzen und FIEBER.",
                             "lang": "de"}) + "\n")
        fh.write(json.dumps({"id": "2", "text": "Il a de la fièvre.", "lang": "fr"}) + "\n")
    out = tmp_path / "linked"
    result = invoke("annotate", "--pipeline", cfg, "--set", f"components.xmen_linker.kb={kb_file}",
                    "--set", 'components.xmen_linker.candidates.generators=[{"kind": "tfidf", '
                             '"k": 8}]',
                    "--input", str(letters / "*.jsonl.gz"), "--output", out, "--format",
                    "jsonl")
    assert result.exit_code == 0, result.output
    assert "W036" not in result.output
    records = {}
    for shard in sorted((out / "shards").glob("*.jsonl")):
        for line in shard.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            records[row["id"]] = [(e["text"], e["kb_id"]) for e in row["ents"]]
    assert records == {"1": [("Kopfschmerzen", "C02"), ("FIEBER", "C03")],
                       "2": [("fièvre", "C03")]}


def test_linker_without_any_mention_source_says_so_once(kb_file, caplog):
    import warnings

    import spacy

    nlp = spacy.blank("xx")
    nlp.add_pipe("entity_ruler")
    nlp.add_pipe("xmen_linker", config={"kb": str(kb_file), "candidates": {"kind": "tfidf"}})
    with caplog.at_level(logging.WARNING, logger="xapps"):
        nlp.initialize()
    assert sum("[E255]" in r.getMessage() for r in caplog.records) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", append=True)  # after the filters already in force
        for text_ in ("Fieber", "Kopfschmerzen", "x"):
            assert nlp(text_).ents == ()
    assert not any("W036" in str(w.message) for w in caught)


def test_ruler_option_must_name_an_entity_ruler_before_the_linker(kb_file):
    import spacy

    from xapps.errors import InputError

    nlp = spacy.blank("xx")
    nlp.add_pipe("xmen_linker", config={"kb": str(kb_file), "candidates": {"kind": "tfidf"},
                                        "ruler": "entity_ruler"})
    nlp.add_pipe("entity_ruler")
    with pytest.raises(InputError, match=r"E074.*ruler.*entity_ruler"):
        nlp.initialize()


def test_kb_without_usable_names_cannot_fill_the_ruler(tmp_path):
    import spacy

    from xapps.errors import InputError

    kb = tmp_path / "short.jsonl"
    KnowledgeBase([Concept("C1", "ab")]).to_jsonl(kb)
    nlp = spacy.blank("xx")
    nlp.add_pipe("entity_ruler")
    nlp.add_pipe("xmen_linker", config={"kb": str(kb), "candidates": {"kind": "tfidf"},
                                        "ruler": "entity_ruler"})
    with pytest.raises(InputError, match=r"E255.*3 characters"):
        nlp.initialize()


def test_link_eval_damaged_reranker_folder(tmp_path, kb_file):
    data = jsonl(tmp_path / "docs.jsonl", BIGBIO)
    folder = tmp_path / "rr"
    folder.mkdir()
    (folder / "cfg.json").write_bytes(BINARY)
    result = invoke("link", "eval", "--kb", kb_file, "--data", data, "--candidates", "tfidf",
                    "--reranker", folder)
    assert_refused(result, "E070", "rr")


@pytest.mark.parametrize("victim", ["xmen_linker/cfg.json", "xmen_linker/candidates/cfg.json"])
def test_link_eval_damaged_saved_pipeline(tmp_path, kb_file, victim):
    import spacy

    nlp = spacy.blank("xx")
    nlp.add_pipe("entity_ruler")
    nlp.add_pipe("xmen_linker", config={"kb": str(kb_file), "candidates": {"kind": "tfidf"},
                                        "ruler": "entity_ruler"})
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipe")
    (tmp_path / "pipe" / victim).write_bytes(BINARY)
    data = jsonl(tmp_path / "docs.jsonl", BIGBIO)
    result = invoke("link", "eval", "--pipeline", tmp_path / "pipe", "--data", data)
    assert_refused(result, "E145", victim.rsplit("/", 1)[0], "cfg.json")
