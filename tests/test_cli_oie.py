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


# ---------------------------------------------------------------- xapps oie eval
REOIE = {SENTENCES[0]: [{"arg0": "Bob", "pred": "lives", "arg1": "in Rome", "arg2": "",
                         "arg3": "", "temp": "", "loc": ""}],
         SENTENCES[2]: [{"arg0": "The company", "pred": "sold", "arg1": "its shares",
                         "arg2": "", "arg3": "", "temp": "", "loc": ""}]}


def reoie_root(tmp_path):
    (tmp_path / "oie").mkdir()
    write(tmp_path / "oie" / "Re-OIE2016.json", json.dumps(REOIE))
    return tmp_path


def test_eval_runs_a_model_on_a_benchmark_and_writes_scores(trained, tmp_path):
    _, model = trained
    root = reoie_root(tmp_path)
    out = tmp_path / "scores.json"
    result = run("oie", "eval", "--model", model, "--benchmark", "reoie2016-en", "--data",
                 root, "--output", out, "--threads", 1)
    assert result.exit_code == 0, result.output
    assert re.match(r"reoie2016-en +P [\d.]+ +R [\d.]+ +F1 [\d.]+ +AUC [\d.]+", result.stdout)
    scores = json.loads(out.read_text(encoding="utf-8"))["reoie2016-en"]
    assert scores["sentences"] == 2 and scores["n_gold"] == 2
    assert 0 <= scores["f1"] <= 1 and scores["sentences_per_s"] > 0


def test_eval_scores_saved_extractions(tmp_path):
    root = reoie_root(tmp_path)
    lines = [{"id": 1, "text": SENTENCES[0], "triples": [
                 {"relation": {"role": "REL", "start": 4, "end": 9, "text": "lives"},
                  "arguments": [{"role": "ARG0", "start": 0, "end": 3, "text": "Bob"},
                                {"role": "ARG1", "start": 10, "end": 17, "text": "in Rome"}],
                  "confidence": 0.9}]},
             {"id": 2, "text": SENTENCES[2], "triples": []}]
    saved = write(tmp_path / "x.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    result = run("oie", "eval", "--extractions", saved, "--benchmark", "reoie2016-en",
                 "--data", root)
    assert result.exit_code == 0, result.output
    assert "P 1.000  R 0.500  F1 0.667" in result.stdout  # one of the two gold tuples found
    write(saved, json.dumps(lines[0]) + "\n")  # the second sentence left out
    missing = CliRunner().invoke(main, ["oie", "eval", "--extractions", str(saved),
                                        "--benchmark", "reoie2016-en", "--data", str(root)])
    assert missing.exit_code == 2 and "E179" in missing.stderr and "1 of its 2" in missing.stderr


def test_eval_names_missing_data_and_wrong_options(trained, tmp_path):
    _, model = trained
    no_data = CliRunner().invoke(main, ["oie", "eval", "--model", str(model), "--benchmark",
                                        "carb", "--data", str(tmp_path)])
    assert no_data.exit_code == 2 and "E177" in no_data.stderr
    assert "carb_test_sents.txt" in no_data.stderr
    both = CliRunner().invoke(main, ["oie", "eval", "--benchmark", "carb"])
    assert both.exit_code == 2 and "exactly one of --model" in both.output


def test_eval_reproduces_published_benchie_de_from_saved_extractions(tmp_path):
    """M2OIE's shipped German BenchIE output, turned into `xapps oie extract` lines, scores
    the published F1 0.040 through the CLI."""
    from xapps.paths import data_root

    root = data_root()
    system = root / "benchie" / "system-outputs" / "m2oie_de_explicit.txt"
    if not system.exists():
        pytest.skip("BenchIE data not under ../shared/data or $XAPPS_DATA")
    sentences = [s.strip() for s in (root / "benchie" / "sentences" / "sample300_de.txt")
                 .read_text(encoding="utf-8").splitlines() if s.strip()]
    triples: dict[int, list] = {}
    for line in system.read_text(encoding="utf-8").splitlines():
        sent_id, subject, relation, obj = line.split("\t")
        triples.setdefault(int(sent_id), []).append({
            "relation": {"role": "REL", "text": relation},
            "arguments": [{"role": "ARG0", "text": subject}, {"role": "ARG1", "text": obj}]})
    saved = write(tmp_path / "m2oie.jsonl", "".join(
        json.dumps({"id": i, "text": s, "triples": triples.get(i, [])}) + "\n"
        for i, s in enumerate(sentences, 1)))
    result = run("oie", "eval", "--extractions", saved, "--benchmark", "benchie-de")
    assert result.exit_code == 0, result.output
    assert "F1 0.040" in result.stdout


def test_train_language_modules_on_a_trained_tagger(trained, tmp_path):
    _, model = trained
    silver = [{"sentence": "Bob lebt in Rom .", "lang": "de",
               "tuples": [{"arg0": "Bob", "pred": "lebt", "args": ["in Rom"]}]},
              {"sentence": "Die Firma verkaufte Aktien .", "lang": "de",
               "tuples": [{"arg0": "Die Firma", "pred": "verkaufte", "args": ["Aktien"]}]}]
    data = write(tmp_path / "de.jsonl", "".join(json.dumps(r) + "\n" for r in silver))
    out = tmp_path / "tagger-de"
    result = run("oie", "train", "--data", data, "--out", out, "--init", model, "--languages",
                 "de", "--modules-only", "--epochs", 1, "--batch-size", 2, "--threads", 1)
    assert result.exit_code == 0, result.output
    tagger = OIETagger.load(out)
    assert tagger.config.languages == ["de"] and (out / "language_modules.safetensors").exists()
    source = write(tmp_path / "de.txt", "Anna liest Bücher.\n")
    extracted = run("oie", "extract", "--model", out, "--input", source, "--output",
                    tmp_path / "de-triples.jsonl", "--lang", "de")
    assert extracted.exit_code == 0, extracted.output
    usage = CliRunner().invoke(main, ["oie", "train", "--data", str(data), "--out",
                                      str(tmp_path / "x"), "--modules-only"])
    assert usage.exit_code == 2 and "--init DIR and --languages" in usage.output
    english = write(tmp_path / "en.jsonl", json.dumps(RECORDS[1]) + "\n" +
                    json.dumps(RECORDS[2]) + "\n")
    unrouted = CliRunner().invoke(main, ["oie", "train", "--data", str(english), "--out",
                                         str(tmp_path / "y"), "--init", str(model),
                                         "--languages", "de", "--modules-only",
                                         "--batch-size", "2"])
    assert unrouted.exit_code == 2 and "E182" in unrouted.stderr


def test_project_writes_target_records_or_names_misaligned_input(trained, tmp_path,
                                                                 tiny_xlmr_path):
    _, model = trained
    en = write(tmp_path / "en.txt", "Bob lives in Rome .\nThe company sold its shares .\n")
    de = write(tmp_path / "de.txt", "Bob lebt in Rom .\nDie Firma verkaufte ihre Aktien .\n")
    out = tmp_path / "de.jsonl"
    result = run("oie", "project", "--model", model, "--source", en, "--target", de,
                 "--target-lang", "de", "--out", out, "--projection-backbone", tiny_xlmr_path,
                 "--threads", 1)
    assert result.exit_code == 0, result.output
    summary = re.search(r"projected (\d+) of (\d+) triples from 2 sentence pairs", result.stderr)
    assert summary and int(summary.group(1)) <= int(summary.group(2))
    for line in out.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert record["lang"] == "de" and record["sentence"] in de.read_text(encoding="utf-8")
    short = write(tmp_path / "short.txt", "Bob lebt in Rom .\n")
    bad = CliRunner().invoke(main, ["oie", "project", "--model", str(model), "--source", str(en),
                                    "--target", str(short), "--target-lang", "de", "--out",
                                    str(tmp_path / "x.jsonl")])
    assert bad.exit_code == 2 and "[E134]" in bad.output and "short.txt" in bad.output
    assert not (tmp_path / "x.jsonl").exists()


def test_untokenized_benchmarks_get_real_words():
    from xapps.oie.benchmarks import BENCHMARKS

    text = "Er wurde Richter von Australien, sagte er."
    words = BENCHMARKS["benchie-de"].words([text])[0]
    assert [text[s:e] for s, e in words] == ["Er", "wurde", "Richter", "von", "Australien",
                                             ",", "sagte", "er", "."]
    assert BENCHMARKS["carb"].words([text]) is None  # pre-tokenised: whitespace words
