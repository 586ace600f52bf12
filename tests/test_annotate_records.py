import gzip
import json

import pytest
import spacy
from spacy.tokens import DocBin

from xapps.annotate.records import (
    BadRecord,
    InputRecord,
    ReadOptions,
    count_items,
    expand_inputs,
    read_items,
)
from xapps.errors import InputError


def _summary(items):
    return [(i.id, i.text) if isinstance(i, InputRecord) else ("BAD", i.where.rsplit(":", 1)[1],
                                                                 i.reason) for i in items]


def test_jsonl_good_and_bad_records_keep_their_positions(tmp_path):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": "a", "text": "Fieber", "lang": "de", "meta": {"src": "x"},
                         "year": 2020}).encode(),
             b"{not json",
             json.dumps({"id": "b"}).encode(),
             json.dumps({"id": "c", "text": "   "}).encode(),
             b'{"id": "d", "text": "caf\xe9"}',
             b"",
             json.dumps(["a list"]).encode(),
             json.dumps({"text": "no id here"}).encode(),
             json.dumps({"id": "long", "text": "x" * 50}).encode()]
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = list(read_items(path, ReadOptions(max_chars=40)))
    assert [type(i).__name__ for i in items] == ["InputRecord", "BadRecord", "BadRecord",
                                                  "BadRecord", "BadRecord", "BadRecord",
                                                  "InputRecord", "BadRecord"]
    first = items[0]
    assert (first.id, first.text, first.lang, first.meta) == ("a", "Fieber", "de",
                                                              {"src": "x", "year": 2020})
    reasons = {i.where.rsplit(":", 1)[1]: i.reason for i in items if isinstance(i, BadRecord)}
    assert reasons["2"].startswith("invalid JSON")
    assert "field 'text' is missing" in reasons["3"] and "--text-field" in reasons["3"]
    assert "empty" in reasons["4"]
    assert reasons["5"].startswith("not UTF-8 text")
    assert "not an object" in reasons["7"]
    assert "over the limit of 40" in reasons["9"] and items[-1].id == "long"
    assert items[6].id == f"{path}:8"  # no id: the record's place stands for it
    assert count_items(path) == 8  # non-blank lines, for the progress bar


def test_fields_are_configurable(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"doc": 7, "body": "Texto", "language": "es"}) + "\n")
    (item,) = read_items(path, ReadOptions(id_field="doc", text_field="body",
                                           lang_field="language"))
    assert (item.id, item.text, item.lang) == ("7", "Texto", "es")


def test_gzip_and_a_truncated_gzip(tmp_path):
    rows = "".join(json.dumps({"id": str(i), "text": f"t{i} " * 400}) + "\n" for i in range(50))
    good = tmp_path / "a.jsonl.gz"
    good.write_bytes(gzip.compress(rows.encode()))
    assert [i.id for i in read_items(good)] == [str(i) for i in range(50)]
    cut = tmp_path / "b.jsonl.gz"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    items = list(read_items(cut))
    assert isinstance(items[-1], BadRecord) and "could not be read" in items[-1].reason
    assert all(isinstance(i, InputRecord) for i in items[:-1]) and len(items) > 1


def test_globs_folders_and_text_files(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.txt").write_text("Erster Brief.")
    (folder / "sub" / "two.txt.gz").write_bytes(gzip.compress("Second letter.".encode()))
    (folder / "bad.txt").write_bytes(b"\xff\xfe broken")
    (folder / "empty.txt").write_text("  ")
    (folder / "notes.md").write_text("ignored")
    items = list(read_items(folder))
    assert _summary(items) == [
        ("BAD", "1", "not UTF-8 text (invalid start byte at byte 0)"),
        ("BAD", "1", "the file is empty"),
        ("one", "Erster Brief."), ("sub/two", "Second letter.")]
    assert items[0].id == "bad"
    lines = tmp_path / "lines.txt"
    lines.write_text("first\n\nsecond\n")
    assert [i.text for i in read_items(lines)] == ["first", "second"]
    (tmp_path / "x1.jsonl").write_text("")
    (tmp_path / "x2.jsonl").write_text("")
    assert [p.name for p in expand_inputs([str(tmp_path / "x*.jsonl"), str(folder),
                                           str(tmp_path / "x1.jsonl")])] == [
        "x1.jsonl", "x2.jsonl", "docs"]
    with pytest.raises(InputError, match=r"E183.*matches no file"):
        expand_inputs([str(tmp_path / "nothing*.jsonl")])
    with pytest.raises(InputError, match=r"E183.*no such file"):
        expand_inputs([str(tmp_path / "missing.jsonl")])


def test_bigbio_json_and_jsonl(tmp_path):
    doc = {"id": "1", "document_id": "d1", "lang": "de",
           "passages": [{"id": "p", "type": "title", "text": ["Fieber"], "offsets": [[0, 6]]}],
           "entities": [{"id": "e", "type": "DISO", "text": ["Fieber"], "offsets": [[0, 6]],
                         "normalized": []}]}
    broken = {"document_id": "d2", "passages": [{"text": ["abc"], "offsets": [[0, 9]]}],
              "entities": []}
    (tmp_path / "kb.json").write_text(json.dumps([doc, broken, 5]))
    items = list(read_items(tmp_path / "kb.json"))
    assert (items[0].id, items[0].text, items[0].lang) == ("d1", "Fieber", "de")
    assert items[0].meta["input_entities"] == 1
    assert isinstance(items[1], BadRecord) and "E064" in items[1].reason and items[1].id == "d2"
    assert isinstance(items[2], BadRecord) and items[2].where.endswith(":3")
    (tmp_path / "kb.jsonl").write_text(json.dumps(doc) + "\n")
    assert [i.id for i in read_items(tmp_path / "kb.jsonl")] == ["d1"]


def test_docbin_keeps_ids_langs_and_annotations(tmp_path):
    nlp = spacy.blank("xx")
    doc = nlp("Der Patient hat Fieber.")
    doc.ents = [doc.char_span(16, 22, "DISO")]
    doc.user_data.update({"id": "letter-1", "lang": "de", "meta": {"ward": 3}})
    DocBin(store_user_data=True, docs=[doc, nlp("No id.")]).to_disk(tmp_path / "in.spacy")
    first, second = read_items(tmp_path / "in.spacy")
    assert (first.id, first.lang, first.meta) == ("letter-1", "de", {"ward": 3})
    restored = spacy.tokens.Doc(nlp.vocab).from_bytes(first.doc_bytes)
    assert [(e.text, e.label_) for e in restored.ents] == [("Fieber", "DISO")]
    assert second.id.endswith("in.spacy:2")
    (tmp_path / "junk.spacy").write_bytes(b"not a docbin")
    (bad,) = read_items(tmp_path / "junk.spacy")
    assert isinstance(bad, BadRecord) and "not a spaCy DocBin" in bad.reason


def test_unknown_type_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(InputError, match=r"E183.*unknown file type '.csv'.*--input-format"):
        list(read_items(tmp_path / "x.csv"))
