import json

import pytest
from click.testing import CliRunner

from xapps.cli import main

DOCS = [
    {"id": "rain-en", "text": "Heavy rain flooded the market.", "lang": "en"},
    {"id": "rain-sw", "text": "Mvua kubwa ilifurika sokoni.", "lang": "sw"},
    {"id": "bank-en", "text": "The central bank raised interest rates.", "lang": "en"},
]


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in DOCS), encoding="utf-8")
    return path


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def test_build_search_info(corpus, tmp_path, tiny_xlmr_path):
    out = tmp_path / "idx"
    code, text = run("index", "build", "--input", corpus, "--out", out,
                     "--backbone", tiny_xlmr_path)
    assert code == 0, text
    assert "Indexed 3 documents" in text and "docs/s" in text
    code, text = run("index", "search", out, "The central bank raised interest rates.",
                     "-k", "2", "--json")
    assert code == 0, text
    result = json.loads(text.strip().splitlines()[-1])
    assert [h["rank"] for h in result["hits"]] == [1, 2]
    assert result["hits"][0]["id"] == "bank-en"
    assert result["hits"][0]["text"] == DOCS[2]["text"]
    code, text = run("index", "info", out)
    manifest = json.loads(text)
    assert manifest["count"] == 3 and manifest["dim"] == 32
    assert manifest["backbone"]["name"] == str(tiny_xlmr_path)


def test_tsv_and_txt_folder_inputs(tmp_path, tiny_xlmr_path):
    tsv = tmp_path / "docs.tsv"
    tsv.write_text("key\tbody\nA\tfirst text\nB\tsecond text\n", encoding="utf-8")
    code, text = run("index", "build", "--input", tsv, "--id-field", "key", "--text-field",
                     "body", "--out", tmp_path / "a", "--backbone", tiny_xlmr_path,
                     "--index-type", "hnsw")
    assert code == 0 and "(hnsw)" in text
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "one.txt").write_text("uno dos tres", encoding="utf-8")
    code, text = run("index", "build", "--input", folder, "--out", tmp_path / "b",
                     "--backbone", tiny_xlmr_path)
    assert code == 0 and "Indexed 1 documents" in text


def test_bad_input_fails_cleanly_and_writes_nothing(tmp_path, corpus, tiny_xlmr_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(corpus.read_text() + '{"id": "x" "text": "y"}\n', encoding="utf-8")
    out = tmp_path / "idx"
    code, text = run("index", "build", "--input", bad, "--out", out,
                     "--backbone", tiny_xlmr_path)
    assert code == 2
    assert "bad.jsonl:4: line is not valid JSON" in text
    assert not out.exists() and not list(tmp_path.glob("*tmp*"))


def test_failed_rebuild_keeps_the_old_index(tmp_path, corpus, tiny_xlmr_path):
    out = tmp_path / "idx"
    assert run("index", "build", "--input", corpus, "--out", out,
               "--backbone", tiny_xlmr_path)[0] == 0
    before = (out / "manifest.json").read_text()
    missing = tmp_path / "missing-field.jsonl"
    missing.write_text('{"id": "1", "body": "x"}\n', encoding="utf-8")
    code, text = run("index", "build", "--input", missing, "--out", out,
                     "--backbone", tiny_xlmr_path)
    assert code == 2 and "field 'text' is missing" in text and "--text-field" in text
    assert (out / "manifest.json").read_text() == before


def test_searching_with_another_backbone_is_refused(tmp_path, corpus, tiny_xlmr_path,
                                                    tiny_mt5_path):
    out = tmp_path / "idx"
    assert run("index", "build", "--input", corpus, "--out", out,
               "--backbone", tiny_xlmr_path)[0] == 0
    code, text = run("index", "search", out, "rain", "--backbone", tiny_mt5_path)
    assert code == 2
    assert "[E010]" in text and str(tiny_xlmr_path) in text and str(tiny_mt5_path) in text


def test_not_an_index(tmp_path):
    code, text = run("index", "info", tmp_path)
    assert code == 2 and "[E011]" in text
