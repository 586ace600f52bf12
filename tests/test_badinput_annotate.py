"""Bad-input matrix for `xapps annotate` and `xapps report`: refused before anything is
written (exit 2, coded message, no traceback), or, for bad records, finished with the record
in errors/ at its file:line (exit 1)."""
import json
import sys

import pytest
import spacy
from cli_checks import assert_refused, invoke, snapshot
from test_annotate_job import CODE, build_pipeline, write_corpus

from xapps.annotate.job import iter_errors, iter_output


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    sys.path.insert(0, str(CODE.parent))
    try:
        return build_pipeline(tmp_path_factory.mktemp("pipe"))
    finally:
        sys.path.remove(str(CODE.parent))


def annotate(pipe, inputs, out, *extra):
    args = ["annotate", "--pipeline", pipe, "--output", out, "--quiet", *extra]
    for path in inputs:
        args += ["--input", path]
    return invoke(*args)


# -------------------------------------------------- refused before anything is written
@pytest.mark.parametrize("case", ["missing", "empty", "empty-glob", "unknown-type",
                                  "no-txt-folder"])
def test_bad_inputs_are_refused_and_leave_no_output(pipe, tmp_path, case):
    path = {"missing": tmp_path / "nope.jsonl", "empty": tmp_path / "empty.jsonl",
            "empty-glob": tmp_path / "*.none.jsonl", "unknown-type": tmp_path / "in.csv",
            "no-txt-folder": tmp_path / "folder"}[case]
    if case == "empty":
        path.write_text("\n\n", encoding="utf-8")
    elif case == "unknown-type":
        path.write_text("id,text\n1,hello\n", encoding="utf-8")
    elif case == "no-txt-folder":
        path.mkdir()
        (path / "a.md").write_text("hello", encoding="utf-8")
    out = tmp_path / "out"
    code = {"empty": "E209"}.get(case, "E183")
    assert_refused(annotate(pipe, [path], out), code, str(path.name))
    assert not out.exists()


def test_empty_input_is_accepted_with_allow_empty(pipe, tmp_path):
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    result = annotate(pipe, [tmp_path / "empty.jsonl"], tmp_path / "out", "--allow-empty")
    assert result.exit_code == 0, result.output
    assert "0 records annotated, 0 in errors/ (0 shards" in result.output


@pytest.mark.parametrize("case", ["missing", "not-a-pipeline", "not-utf8-cfg"])
def test_a_bad_pipeline_is_refused_and_leaves_no_output(tmp_path, case):
    write_corpus(tmp_path / "in.jsonl", 3)
    pipeline = {"missing": tmp_path / "nope", "not-a-pipeline": tmp_path / "folder",
                "not-utf8-cfg": tmp_path / "bad.cfg"}[case]
    if case == "not-a-pipeline":
        pipeline.mkdir()
    elif case == "not-utf8-cfg":
        pipeline.write_bytes(b"[nlp]\nlang = \"\xff\xfe\"\n")
    out = tmp_path / "out"
    assert_refused(annotate(pipeline, [tmp_path / "in.jsonl"], out), "E185", pipeline.name)
    assert not out.exists()


def test_unwritable_output_is_refused_before_loading(pipe, tmp_path, readonly_dir):
    write_corpus(tmp_path / "in.jsonl", 3)
    assert_refused(annotate(pipe, [tmp_path / "in.jsonl"], readonly_dir), "E068",
                   str(readonly_dir))


def test_a_failed_start_does_not_block_the_corrected_run(pipe, tmp_path):
    """Issue 19.9: the unknown-type start left a manifest that refused the fixed command."""
    (tmp_path / "in.csv").write_text("x\n", encoding="utf-8")
    out = tmp_path / "out"
    assert_refused(annotate(pipe, [tmp_path / "in.csv"], out), "E183", "in.csv")
    write_corpus(tmp_path / "in.jsonl", 3)
    result = annotate(pipe, [tmp_path / "in.jsonl"], out)
    assert result.exit_code == 0, result.output


def test_other_settings_name_the_change_and_overwrite_starts_over(pipe, tmp_path):
    write_corpus(tmp_path / "in.jsonl", 4)
    out = tmp_path / "out"
    assert annotate(pipe, [tmp_path / "in.jsonl"], out, "--shard-size", "2").exit_code == 0
    before = snapshot(out)
    refused = annotate(pipe, [tmp_path / "in.jsonl"], out, "--shard-size", "3")
    assert_refused(refused, "E184", "shard_size: 2 (saved) vs 3 (now)", "--overwrite",
                   "2 completed shard(s)")
    assert snapshot(out) == before
    again = annotate(pipe, [tmp_path / "in.jsonl"], out, "--shard-size", "3", "--overwrite")
    assert again.exit_code == 0 and "(2 shards" in again.output


# ------------------------------------------- bad records: errors/ with file:line, exit 1
def test_bad_records_go_to_errors_with_their_line(pipe, tmp_path):
    good = json.dumps({"id": "a", "text": "Il a de la fièvre."})
    lines = [good.encode(),
             b"{broken",                                            # 2 malformed JSON
             json.dumps({"id": "b", "body": "x"}).encode(),         # 3 missing text field
             b'{"id": "c", "text": "caf\xe9"}',                     # 4 not UTF-8
             json.dumps({"id": "d", "text": "y" * 300}).encode(),   # 5 over --max-chars
             json.dumps({"id": "a", "text": "Kopfschmerzen"}).encode(),  # 6 repeated id
             b"\x00\x01\x02\xff binary",                            # 7 binary junk
             json.dumps(["not", "an", "object"]).encode()]          # 8 not an object
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    result = annotate(pipe, [tmp_path / "in.jsonl"], out, "--max-chars", "200")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert [r["id"] for r in iter_output(out)] == ["a"]
    errors = {e["line"]: e["reason"] for e in iter_errors(out)}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8]
    assert "invalid JSON" in errors[2] and "field 'text' is missing" in errors[3]
    assert "UTF-8" in errors[4] and "over the limit of 200" in errors[5]
    assert "duplicate id 'a'" in errors[6] and "in.jsonl:1" in errors[6]


def test_repeated_ids_across_inputs_are_caught(pipe, tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"id": "x", "text": "fièvre"}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"id": "x", "text": "Fieber"}) + "\n")
    out = tmp_path / "out"
    result = annotate(pipe, [tmp_path / "a.jsonl", tmp_path / "b.jsonl"], out)
    assert result.exit_code == 1
    assert [r["id"] for r in iter_output(out)] == ["x"]
    [error] = list(iter_errors(out))
    assert error["source"].endswith("b.jsonl") and "a.jsonl:1" in error["reason"]


# ------------------------------------------------------------------ xapps report
@pytest.fixture()
def finished(pipe, tmp_path):
    write_corpus(tmp_path / "in.jsonl", 6, bad_every=4)
    out = tmp_path / "out"
    assert annotate(pipe, [tmp_path / "in.jsonl"], out, "--shard-size", "3").exit_code == 1
    return out


@pytest.mark.parametrize("damage", ["flip", "truncate", "not-json", "missing"])
def test_report_names_a_damaged_shard(finished, tmp_path, damage):
    shard = finished / "shards" / "00000-000001.jsonl"
    data = shard.read_bytes()
    if damage == "flip":
        shard.write_bytes(data.replace(b"fi", b"FI", 1) if b"fi" in data else data[::-1])
    elif damage == "truncate":
        shard.write_bytes(data[: len(data) // 2])
    elif damage == "not-json":
        shard.write_bytes(b"\xff\xfe not json\n")
    else:
        shard.unlink()
    html = tmp_path / "report.html"
    out = assert_refused(invoke("report", finished, "--html", html), "E208", "00000-000001")
    assert not html.exists()
    if damage != "missing":
        assert "sha256" in out


def test_report_names_the_line_of_a_shard_without_checksum(finished, tmp_path):
    """Jobs written before shard checksums: the parse error names the shard and line."""
    manifest = json.loads((finished / "manifest.json").read_text())
    for entry in manifest["shards"].values():
        entry.pop("sha256", None)
    (finished / "manifest.json").write_text(json.dumps(manifest))
    shard = finished / "shards" / "00000-000000.jsonl"
    shard.write_bytes(shard.read_bytes() + b"{cut off\n")
    assert_refused(invoke("report", finished, "--html", tmp_path / "r.html"), "E208",
                   "00000-000000", "line 4")


@pytest.mark.parametrize("case", ["no-manifest", "bad-manifest"])
def test_report_on_a_folder_that_is_not_a_job(finished, tmp_path, case):
    if case == "no-manifest":
        (finished / "manifest.json").unlink()
    else:
        (finished / "manifest.json").write_bytes(b"\x00garbage")
    assert_refused(invoke("report", finished, "--html", tmp_path / "r.html"), "E189",
                   finished.name)


def test_report_to_an_unwritable_place(finished, readonly_dir):
    assert_refused(invoke("report", finished, "--html", readonly_dir / "r.html"), "E068")


# ----------------------------------------------------------------------- provenance
def test_encoder_pipeline_records_its_model_and_sha256(tiny_xlmr_path, tmp_path):
    nlp = spacy.blank("xx")
    nlp.add_pipe("xapps_encoder", config={"backbone": str(tiny_xlmr_path)})
    nlp.initialize()
    nlp.to_disk(tmp_path / "pipe")
    write_corpus(tmp_path / "in.jsonl", 3)
    result = annotate(tmp_path / "pipe", [tmp_path / "in.jsonl"], tmp_path / "out")
    assert result.exit_code == 0, result.output
    records = list(iter_output(tmp_path / "out"))
    models = records[0]["provenance"]["models"]
    assert len(models) == 1 and len(models[0]["sha256"]) == 64
    assert all(r["provenance"]["models"] == models for r in records)
