"""`xapps oie train` and `xapps oie extract` on a tiny random XLM-R."""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from test_oie_model import RECORDS

from xapps.cli import main
from xapps.oie.model import OIETagger

SUMMARY = re.compile(r"extracted (\d+) triples from (\d+) sentences in [\d.]+ s "
                     r"\([\d.]+ sentences/s\); wrote (.+)")
# The last record's only tuple has a predicate the sentence lacks: read, dropped, and the
# sentence (left without tuples) is not trained on.
DATA = RECORDS + [{"sentence": "A b c .", "tuples": [{"arg0": "A", "pred": "zzz", "args": []}]}]
SENTENCES = ["Bob lives in Rome.", "Marie Curie entdeckte das Radium in Paris.",
             "The company sold its shares."]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_xlmr_path):
    """(result, folder) of one `xapps oie train` run, shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("cli-oie")
    data = write(tmp / "train.jsonl", "".join(json.dumps(r) + "\n" for r in DATA))
    out = tmp / "tagger"
    result = run("oie", "train", "--data", data, "--out", out, "--backbone", tiny_xlmr_path,
                 "--epochs", 2, "--batch-size", 2, "--lr", 1e-3, "--average-last", 2,
                 "--threads", 1)
    return result, out


def test_train_writes_a_loadable_tagger_and_a_summary(trained, tiny_xlmr_path):
    result, out = trained
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["sentences"] == 4 and summary["tuples"] == 6
    assert summary["dropped_tuples"] == 1 and summary["untagged_arguments"] == 0
    assert summary["epochs"] == 2 and summary["steps"] == 4  # 2 epochs of 2 batches
    assert summary["final_loss"] > 0 and summary["seconds"] >= 0
    assert not out.with_name("tagger.partial").exists()
    tagger = OIETagger.load(out)
    cfg = json.loads((out / "cfg.json").read_text(encoding="utf-8"))
    assert cfg["training"]["config"]["average_last"] == 2
    assert len(cfg["training"]["checkpoints"]) == 2
    assert tagger.config.backbone == str(tiny_xlmr_path)


def test_train_with_too_few_sentences_names_the_fix(tmp_path, tiny_xlmr_path):
    data = write(tmp_path / "train.jsonl", json.dumps(RECORDS[1]) + "\n")
    result = CliRunner().invoke(main, ["oie", "train", "--data", str(data), "--out",
                                       str(tmp_path / "m"), "--backbone", str(tiny_xlmr_path)])
    assert result.exit_code == 2
    assert "E172" in result.stderr and "--batch-size" in result.stderr
    assert not (tmp_path / "m").exists()


def check_output(out, ids, texts):
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ids and [r["text"] for r in rows] == texts
    for row in rows:
        assert set(row) == {"id", "text", "triples"}
        for triple in row["triples"]:
            for part in [triple["relation"], *triple["arguments"]]:
                assert row["text"][part["start"]:part["end"]] == part["text"]
    return rows


def test_extract_txt_one_line_per_sentence(trained, tmp_path, monkeypatch):
    _, model = trained
    threads = []
    monkeypatch.setattr("torch.set_num_threads", threads.append)
    source = write(tmp_path / "in.txt", SENTENCES[0] + "\n\n" + "\n".join(SENTENCES[1:]) + "\n")
    out = tmp_path / "sub" / "out.jsonl"
    result = run("oie", "extract", "--model", model, "--input", source, "--output", out,
                 "--lang", "de", "--batch-size", 2, "--threads", 3)
    assert result.exit_code == 0, result.output
    rows = check_output(out, ["1", "3", "4"], SENTENCES)  # ids: line numbers
    match = SUMMARY.search(result.stderr)
    assert match, result.stderr
    assert int(match.group(1)) == sum(len(r["triples"]) for r in rows)
    assert int(match.group(2)) == 3 and match.group(3) == str(out)
    assert threads == [3]
    assert [p.name for p in out.parent.iterdir()] == ["out.jsonl"]  # no temp file left


def test_extract_jsonl_with_fields_and_min_confidence(trained, tmp_path):
    _, model = trained
    source = write(tmp_path / "in.jsonl", "".join(
        json.dumps({"doc": f"d{i}", "sentence": s, "lang": "en"}) + "\n"
        for i, s in enumerate(SENTENCES)))
    out = tmp_path / "out.jsonl"
    result = run("oie", "extract", "--model", model, "--input", source, "--output", out,
                 "--text-field", "sentence", "--id-field", "doc")
    assert result.exit_code == 0, result.output
    check_output(out, ["d0", "d1", "d2"], SENTENCES)
    strict = tmp_path / "strict.jsonl"
    result = run("oie", "extract", "--model", model, "--input", source, "--output", strict,
                 "--text-field", "sentence", "--id-field", "doc", "--min-confidence", 1.0)
    assert result.exit_code == 0, result.output
    assert all(r["triples"] == [] for r in check_output(strict, ["d0", "d1", "d2"], SENTENCES))


def test_a_failing_extract_leaves_no_output(trained, tmp_path):
    _, model = trained
    source = write(tmp_path / "in.jsonl", json.dumps({"id": 1, "text": SENTENCES[0]}) + "\n"
                   + json.dumps({"id": 2, "body": SENTENCES[1]}) + "\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["oie", "extract", "--model", str(model), "--input",
                                       str(source), "--output", str(out)])
    assert result.exit_code == 2
    assert "E002" in result.stderr and "in.jsonl:2" in result.stderr
    assert "--text-field" in result.stderr
    assert list(tmp_path.iterdir()) == [source]  # neither out.jsonl nor its temp file
    write(out, "earlier\n")
    result = CliRunner().invoke(main, ["oie", "extract", "--model", str(model), "--input",
                                       str(source), "--output", str(out)])
    assert result.exit_code == 2 and out.read_text(encoding="utf-8") == "earlier\n"


def test_extract_refuses_bad_paths_and_models(trained, tmp_path):
    _, model = trained
    source = write(tmp_path / "in.txt", SENTENCES[0] + "\n")
    same = CliRunner().invoke(main, ["oie", "extract", "--model", str(model), "--input",
                                     str(source), "--output", str(source)])
    assert same.exit_code == 2 and "is the --input file" in same.output
    assert source.read_text(encoding="utf-8") == SENTENCES[0] + "\n"
    lang = CliRunner().invoke(main, ["oie", "extract", "--model", str(model), "--input",
                                     str(source), "--output", str(tmp_path / "o.jsonl"),
                                     "--lang", "not a code"])
    assert lang.exit_code == 2 and "--lang" in lang.output
    not_a_model = CliRunner().invoke(main, ["oie", "extract", "--model", str(tmp_path),
                                            "--input", str(source), "--output",
                                            str(tmp_path / "o.jsonl")])
    assert not_a_model.exit_code == 2 and "E171" in not_a_model.stderr
    assert not (tmp_path / "o.jsonl").exists()
