import importlib.util
import json
import re

import pytest
import spacy
from click.testing import CliRunner
from spacy.tokens import DocBin

from xapps import extensions
from xapps.cli import main
from xapps.linking.data import Document, Entity, read_bigbio_kb, write_bigbio_kb
from xapps.projection.io import read_conll
from xapps.projection.projector import AnnotationProjector

SRC_CONLL = ("Angela\tB-PER\nMerkel\tI-PER\nvisits\tO\nParis\tB-LOC\n.\tO\n\n"
             "The\tO\nEuropean\tB-ORG\nUnion\tI-ORG\nmeets\tO\n\n")
TGT_LINES = ["Angela Merkel besucht Paris.", "Die Europäische Union tagt"]
LABELS = {"PER", "LOC", "ORG"}
SUMMARY = re.compile(r"projected (\d+) pairs: (\d+) source spans, (\d+) projected, (\d+) "
                     r"unprojected in [\d.]+ s \([\d.]+ pairs/s\); wrote (.+) \((\w+)\)")


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def files(tmp_path):
    return write(tmp_path / "en.conll", SRC_CONLL), write(tmp_path / "de.txt",
                                                          "\n".join(TGT_LINES) + "\n")


@pytest.fixture()
def tiny(tiny_xlmr_path):
    """Projector options for the tiny random XLM-R (2 layers)."""
    return ["--backbone", tiny_xlmr_path, "--layer", "2"]


def summary(result):
    """(pairs, source spans, projected, unprojected, out, format) of the stderr summary."""
    match = SUMMARY.search(result.stderr)
    assert match, result.output
    assert "pairs/s" not in result.stdout
    *counts, out, fmt = match.groups()
    return (*map(int, counts), out, fmt)


def test_conll_and_txt_to_conll(files, tmp_path, tiny, monkeypatch):
    src, tgt = files
    threads = []
    monkeypatch.setattr("torch.set_num_threads", threads.append)
    out = tmp_path / "de.conll"
    result = run("project", "--src", src, "--tgt", tgt, "--out", out, "--tgt-lang", "de",
                 "--threads", 1, *tiny)
    assert result.exit_code == 0, result.output
    assert threads == [1]
    pairs, n_source, projected, unprojected, where, fmt = summary(result)
    assert (pairs, n_source, where, fmt) == (2, 3, str(out), "conll")
    assert projected + unprojected == 3
    assert "pair/s" in result.stderr or "s/pair" in result.stderr  # the tqdm bar
    sentences = list(read_conll(out))
    assert len(sentences) == 2
    for sentence, line in zip(sentences, TGT_LINES):
        assert sentence.text.replace(" ", "") == line.replace(" ", "")  # target tokens only
        assert {s.label for s in sentence.spans} <= LABELS
    assert sum(len(s.spans) for s in sentences) == projected


def test_jsonl_in_and_out_with_source(tmp_path, tiny):
    records = [
        {"id": "a", "text": "Angela Merkel visits Paris.",
         "spans": [{"start": 0, "end": 13, "label": "PER"}, {"start": 21, "end": 26,
                                                            "label": "LOC"}],
         "translation": TGT_LINES[0]},
        {"id": "b", "text": "The European Union meets",
         "spans": [{"start": 4, "end": 18, "label": "ORG"}], "translation": TGT_LINES[1]}]
    src = write(tmp_path / "en.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "out" / "de.jsonl"  # a missing folder is made
    result = run("project", "--src", src, "--out", out, "--include-source", *tiny)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    assert [r["text"] for r in rows] == TGT_LINES
    assert [r["source"] for r in rows] == [r["text"] for r in records]
    assert [[{k: s[k] for k in ("start", "end", "label")} for s in r["source_spans"]]
            for r in rows] == [r["spans"] for r in records]
    projected = 0
    for row in rows:
        assert len(row["spans"]) + len(row["unprojected"]) == len(row["source_spans"])
        for span in row["spans"]:
            assert span["text"] == row["text"][span["start"]:span["end"]]
            assert span["label"] == row["source_spans"][span["source_index"]]["label"]
        projected += len(row["spans"])
    assert summary(result)[:4] == (2, 3, projected, 3 - projected)


def test_docbin_out(files, tmp_path, tiny):
    src, tgt = files
    out = tmp_path / "de.spacy"
    result = run("project", "--src", src, "--tgt", tgt, "--out", out, "--tgt-lang", "de",
                 *tiny)
    assert result.exit_code == 0, result.output
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("de").vocab))
    assert [d.text for d in docs] == TGT_LINES
    assert {e.label_ for d in docs for e in d.ents} <= LABELS
    assert sum(len(d.ents) for d in docs) == summary(result)[2]


def test_bigbio_and_docbin_sources(tmp_path, tiny):
    kb = tmp_path / "en.json"
    write_bigbio_kb([Document("d1", "Severe pain in the knee", "en",
                              [Entity("T1", "pain", [(7, 11)], "DISO")])], kb)
    tgt = write(tmp_path / "es.txt", "Dolor fuerte en la rodilla\n")
    out = tmp_path / "es.bigbio.jsonl"
    result = run("project", "--src", kb, "--tgt", tgt, "--out", out, *tiny)
    assert result.exit_code == 0, result.output
    (doc,) = read_bigbio_kb(out)
    assert doc.id == "d1" and doc.text == "Dolor fuerte en la rodilla"
    assert [e.type for e in doc.entities] in ([], ["DISO"])

    extensions.register()
    source = spacy.blank("en")("Bob lives in Rome")
    source.ents = [source.char_span(0, 3, "PER"), source.char_span(13, 17, "LOC")]
    source._.translation = "Bob vive en Roma"
    DocBin(store_user_data=True, docs=[source]).to_disk(tmp_path / "en.spacy")
    out = tmp_path / "o.txt"
    result = run("project", "--src", tmp_path / "en.spacy", "--out", out, "--out-format",
                 "jsonl", *tiny)
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert row["text"] == "Bob vive en Roma"
    assert len(row["spans"]) + len(row["unprojected"]) == 2
    assert summary(result)[4:] == (str(out), "jsonl")


def test_missing_target_without_mt_model(files, tmp_path, tiny):
    src, _ = files
    out = tmp_path / "de.conll"
    result = run("project", "--src", src, "--out", out, *tiny)
    assert result.exit_code == 2
    assert f"Error: [E135] {src}: a conll source holds no translations, and no target " \
           "file was given. Pass the translations with --tgt FILE" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    # found while streaming: the output is still not written
    jsonl = write(tmp_path / "en.jsonl", '{"text": "Bob", "translation": "Bob"}\n'
                                         '{"text": "Rome"}\n')
    result = run("project", "--src", jsonl, "--out", tmp_path / "o.jsonl", *tiny)
    assert result.exit_code == 2
    assert f"[E135] {jsonl}:2: the record has no 'translation' field" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["de.txt", "en.conll", "en.jsonl"]


def test_target_count_mismatch_writes_nothing(files, tmp_path, tiny):
    src, _ = files
    tgt = write(tmp_path / "three.txt", "\n".join(TGT_LINES + ["Noch ein Satz"]) + "\n")
    out = tmp_path / "de.conll"
    args = ["project", "--src", src, "--tgt", tgt, "--out", out, *tiny]
    result = run(*args)
    assert result.exit_code == 2
    assert f"[E134] The source '{src}' has 2 sentences but the target '{tgt}' has 3." \
        in result.output
    assert not out.exists()
    write(out, "old")
    assert run(*args).exit_code == 2
    assert out.read_text(encoding="utf-8") == "old"
    assert not list(tmp_path.glob(".*tmp*"))


def test_config_file_and_overrides(files, tmp_path, tiny_xlmr_path, monkeypatch):
    src, tgt = files
    seen = []
    project = AnnotationProjector.project

    def spy(self, pairs, **kwargs):
        seen.append(self.config)
        return project(self, pairs, **kwargs)

    monkeypatch.setattr(AnnotationProjector, "project", spy)
    config = write(tmp_path / "cfg.json", json.dumps({
        "backbone": "not-this-one", "layer": 2, "threshold": 0.9, "assignment": "greedy",
        "top_k": 3, "alignment_weight": 0, "similarity_weight": 0}))
    out = tmp_path / "de.jsonl"
    args = ["project", "--src", src, "--tgt", tgt, "--out", out, "--config", config,
            "--backbone", tiny_xlmr_path]
    result = run(*args)  # the file's weights are all 0
    assert result.exit_code == 2
    assert "[E074] the projection score weights = 'all 0' is invalid" in result.output
    assert not seen and not out.exists()
    result = run(*args, "--similarity-weight", 1, "--threshold", 0.5)
    assert result.exit_code == 0, result.output
    (cfg,) = seen
    assert (cfg.backbone, cfg.layer, cfg.threshold, cfg.assignment, cfg.top_k,
            cfg.alignment_weight, cfg.similarity_weight, cfg.alignment) == (
        str(tiny_xlmr_path), 2, 0.5, "greedy", 3, 0, 1.0, "union")
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.parametrize("content, message", [
    ('{"layers": 2}', r"\[E074\] projection settings = \['layers'\] is invalid: expected "
                      r"names among \["),
    ('{"layer": 2,\n}', r"Invalid value for --config: .*cfg.json:2 is not valid JSON"),
    ("[2]", r"Invalid value for --config: .*cfg.json holds a JSON list; expected an object"),
])
def test_bad_config_file(files, tmp_path, content, message):
    src, tgt = files
    config = write(tmp_path / "cfg.json", content)
    result = run("project", "--src", src, "--tgt", tgt, "--out", tmp_path / "o.conll",
                 "--config", config)
    assert result.exit_code == 2
    assert re.search(message, result.output), result.output
    assert not (tmp_path / "o.conll").exists()


@pytest.mark.parametrize("extra, message", [
    (["--out", "{src}"], r"--out .*en.conll is the --src file"),
    (["--out", "{tgt}"], r"--out .*de.txt is the --tgt file"),
    (["--out", "{tmp}"], r"--out .* is a folder"),
    (["--out", "{tmp}/o.xml"], r"\[E132\] Cannot tell the output format of '.*o.xml': the "
                               r"ending '.xml' is not a known one"),
    (["--out", "{tmp}/o.conll", "--out-format", "csv"],
     r"\[E132\] Cannot tell the output format .*unknown format 'csv'"),
    (["--out", "{tmp}/o.conll", "--src-format", "txt"],
     r"\[E132\] Cannot tell the source format .*unknown format 'txt'"),
    (["--out", "{tmp}/o.conll", "--tgt-format", "docbin"],
     r"\[E132\] Cannot tell the target format .*unknown format 'docbin'"),
    (["--out", "{tmp}/o.conll", "--include-source"],
     r"--include-source applies to JSONL output only; .*o.conll is written as conll"),
    (["--out", "{tmp}/o.conll", "--assignment", "best"], r"Invalid value for '--assignment'"),
])
def test_checked_before_any_model_loads(files, tmp_path, extra, message):
    src, tgt = files
    before = sorted(p.name for p in tmp_path.iterdir())
    extra = [e.format(src=src, tgt=tgt, tmp=tmp_path) for e in extra]
    result = run("project", "--src", src, "--tgt", tgt, *extra, "--backbone", "no-such-model")
    assert result.exit_code == 2
    assert re.search(message, result.output), result.output
    assert "no-such-model" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert src.read_text(encoding="utf-8") == SRC_CONLL


@pytest.mark.skipif(importlib.util.find_spec("xapps.projection.translation") is None,
                    reason="xapps/projection/translation.py (the Translator) is not written yet")
def test_translate_train(files, tmp_path, tiny, tiny_mt5_path):
    src, _ = files
    out = tmp_path / "translated.jsonl"
    result = run("project", "--src", src, "--out", out, "--mt-model", tiny_mt5_path,
                 "--include-source", *tiny)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["source"] for r in rows] == [s.text for s in read_conll(src)]
    for row in rows:
        assert isinstance(row["text"], str) and row["text"].strip()  # translated
        assert len(row["spans"]) + len(row["unprojected"]) == len(row["source_spans"])
    assert summary(result)[:2] == (2, 3)


def test_train_generator_then_project_with_it(files, tmp_path, tiny, tiny_mt5_path):
    src, tgt = files
    gen = tmp_path / "gen"
    result = run("projection", "train-generator", "--data", src, "--model", tiny_mt5_path,
                 "--out", gen, "--steps", 2, "--batch-size", 2)
    assert result.exit_code == 0, result.output
    assert "trained on 3 examples for 2 steps" in result.stderr  # PER, LOC; ORG
    assert (gen / "generator.json").exists()
    out = tmp_path / "de.jsonl"
    result = run("project", "--src", src, "--tgt", tgt, "--out", out, "--generator-model", gen,
                 "--generator-weight", 0.5, *tiny)
    assert result.exit_code == 0, result.output
    assert summary(result)[0] == 2
