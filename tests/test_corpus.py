import gzip
import json

import pytest

from xapps.corpus import read_records
from xapps.errors import InputError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_with_extra_fields_and_gzip(tmp_path):
    lines = [{"doc": "a", "body": "Hello", "lang": "en"}, {"doc": 2, "body": "Habari"}]
    raw = "\n".join(json.dumps(x) for x in lines) + "\n\n"
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(raw)
    records = list(read_records(path, id_field="doc", text_field="body"))
    assert [(r.id, r.text, r.meta) for r in records] == [("a", "Hello", {"lang": "en"}),
                                                         ("2", "Habari", {})]


def test_malformed_json_names_file_and_line(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"id": "1", "text": "ok"}\n{"id": "2", "text": \n')
    with pytest.raises(InputError, match=r"\[E001\] .*c\.jsonl:2: line is not valid JSON"):
        list(read_records(path))


def test_missing_field_lists_available_fields_and_option(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"id": "1", "body": "x"}\n')
    with pytest.raises(InputError, match=r"c\.jsonl:1: field 'text' is missing\. Available "
                                         r"fields: body, id\. Pass the right name with "
                                         r"--text-field"):
        list(read_records(path))


def test_empty_text_and_duplicate_ids(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"id": "1", "text": "  "}\n')
    with pytest.raises(InputError, match=r"c\.jsonl:1: field 'text' is empty"):
        list(read_records(path))
    path = write(tmp_path / "d.jsonl", '{"id": "1", "text": "a"}\n{"id": "1", "text": "b"}\n')
    with pytest.raises(InputError, match=r"d\.jsonl:2: duplicate id '1' \(first seen at "
                                         r".*d\.jsonl:1\)"):
        list(read_records(path))


def test_tsv_and_column_count(tmp_path):
    path = write(tmp_path / "c.tsv", "id\ttext\tlang\n1\tHola mundo\tes\n")
    assert [(r.id, r.text, r.meta) for r in read_records(path)] == [("1", "Hola mundo",
                                                                     {"lang": "es"})]
    bad = write(tmp_path / "bad.tsv", "id\ttext\n1\ta\tb\n")
    with pytest.raises(InputError, match=r"bad\.tsv:2: expected 2 tab-separated columns, "
                                         r"found 3"):
        list(read_records(bad))


def test_folder_of_txt(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    write(tmp_path / "docs" / "b.txt", "second")
    write(tmp_path / "docs" / "sub" / "a.txt", "first\nline two")
    records = list(read_records(tmp_path / "docs"))
    assert [(r.id, r.text) for r in records] == [("b", "second"), ("sub/a", "first\nline two")]


def test_unreadable_inputs(tmp_path):
    with pytest.raises(InputError, match=r"\[E004\] Cannot read .*nope\.jsonl.*no such file"):
        list(read_records(tmp_path / "nope.jsonl"))
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(InputError, match=r"unknown file type '\.csv'"):
        list(read_records(tmp_path / "x.csv"))
    (tmp_path / "latin.jsonl").write_bytes(b'{"id": "1", "text": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"latin\.jsonl:1.*not UTF-8"):
        list(read_records(tmp_path / "latin.jsonl"))


def test_decode_error_names_the_right_line(tmp_path):
    good = "".join(json.dumps({"id": str(i), "text": "x" * 50}) + "\n" for i in range(5000))
    (tmp_path / "big.jsonl").write_bytes(good.encode() + b'{"id": "z", "text": "\xff"}\n')
    with pytest.raises(InputError, match=r"big\.jsonl:5001.*not UTF-8"):
        list(read_records(tmp_path / "big.jsonl"))
