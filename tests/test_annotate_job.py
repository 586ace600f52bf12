import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from test_linking_component import CONCEPTS, PATTERNS

from xapps.annotate.job import JobConfig, iter_errors, iter_output, run_job
from xapps.errors import InputError, XappsError
from xapps.linking.kb import KnowledgeBase

CODE = Path(__file__).parent / "fixtures" / "annotate_components.py"
TEXTS = ["Der Patient hat Kopfschmerzen.", "Il a de la fièvre.", "Tiene náuseas y qqqq.",
         "Nothing to see here."]
EXPECTED = {0: [("Kopfschmerzen", "C02", "Headache")], 1: [("fièvre", "C03", "Fever")],
            2: [("náuseas", "C04", "Nausea"), ("qqqq", None, None)], 3: []}


def build_pipeline(folder: Path, extra: tuple[str, ...] = (), **extra_cfg) -> Path:
    """entity_ruler + xmen_linker (TF-IDF, fixture KB) [+ test components], saved."""
    kb = folder / "kb.jsonl"
    KnowledgeBase(CONCEPTS).to_jsonl(kb)
    nlp = spacy.blank("xx")
    ruler = nlp.add_pipe("entity_ruler")
    nlp.add_pipe("xmen_linker", config={"kb": str(kb), "candidates": {"kind": "tfidf"},
                                        "k": 3})
    for name in extra:
        nlp.add_pipe(name, config=extra_cfg.get(name, {}))
    nlp.initialize()
    ruler.add_patterns(PATTERNS)
    nlp.to_disk(folder / "pipe")
    return folder / "pipe"


def write_corpus(path: Path, n: int, bad_every: int = 0) -> list[str]:
    """n records cycling through TEXTS; every bad_every-th line is invalid JSON. Returns
    the ids of the good records in order."""
    ids, lines = [], []
    for i in range(n):
        if bad_every and i % bad_every == bad_every - 1:
            lines.append("{broken")
            continue
        ids.append(f"r{i}")
        lines.append(json.dumps({"id": f"r{i}", "text": TEXTS[i % 4],
                                 **({"lang": "xx"} if i % 4 == 3 else {})}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return ids


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    import annotate_components  # noqa: F401  (registers the test factories here)

    return build_pipeline(tmp_path_factory.mktemp("pipe"))


@pytest.fixture(autouse=True, scope="module")
def _fixture_path():
    sys.path.insert(0, str(CODE.parent))
    yield
    sys.path.remove(str(CODE.parent))


def job(pipe, inputs, out, **kw) -> JobConfig:
    return JobConfig(pipeline=str(pipe), inputs=[str(p) for p in inputs], output=str(out),
                     progress=False, **kw)


def strip_timing(records):
    return [{k: v for k, v in r.items() if k != "timing"} for r in records]


def test_job_annotates_in_order_with_links_provenance_and_errors(pipe, tmp_path):
    ids = write_corpus(tmp_path / "in.jsonl", 20, bad_every=7)
    summary = run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "out", shard_size=6,
                          batch_size=4))
    assert (summary.records, summary.errors, summary.shards) == (18, 2, 4)
    records = list(iter_output(tmp_path / "out"))
    assert [r["id"] for r in records] == ids
    for rec in records:
        i = int(rec["id"][1:]) % 4
        assert [(e["text"], e["kb_id"], e["kb_name"]) for e in rec["ents"]] == EXPECTED[i]
    assert records[0]["lang"] == "de" and records[3]["lang"] == "xx"  # detected / given
    assert records[0]["ents"][0]["kb_ents"][0] == ["C02", pytest.approx(1.0, abs=1e-5)]
    prov = records[0]["provenance"]
    assert prov["components"] == ["entity_ruler", "xmen_linker"]
    assert prov["kbs"][0]["sha256"] == KnowledgeBase(CONCEPTS).sha256
    assert len(prov["config_sha256"]) == 64 and prov["xapps"] and prov["spacy"]
    errors = list(iter_errors(tmp_path / "out"))
    assert [(e["line"], e["reason"].split(" (")[0]) for e in errors] == [
        (7, "invalid JSON"), (14, "invalid JSON")]
    summary_file = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary_file["records"] == 18 and summary_file["errors"] == 2


@pytest.mark.parametrize("fmt", ["docbin", "bigbio", "conll"])
def test_other_formats_read_back_to_the_same_entities(pipe, tmp_path, fmt):
    write_corpus(tmp_path / "in.jsonl", 8)
    run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "out", format=fmt, shard_size=5))
    suffix = {"docbin": ".spacy", "bigbio": ".bigbio.jsonl", "conll": ".conll"}[fmt]
    assert sorted(p.name for p in (tmp_path / "out" / "shards").iterdir()) == [
        f"00000-000000{suffix}", f"00000-000001{suffix}"]
    records = list(iter_output(tmp_path / "out"))
    assert [r["id"] for r in records] == [f"r{i}" for i in range(8)]
    for rec in records:
        got = [(e["text"], e["kb_id"]) for e in rec["ents"]]
        assert got == [(t, k) for t, k, _ in EXPECTED[int(rec["id"][1:]) % 4]]
    if fmt != "conll":  # CoNLL keeps ids, not names or candidate lists
        assert records[0]["ents"][0]["kb_name"] == "Headache"
        assert records[0]["ents"][0]["kb_ents"][0][0] == "C02"


def test_bigbio_output_is_valid_bigbio(pipe, tmp_path):
    from xapps.linking.data import read_bigbio_kb

    write_corpus(tmp_path / "in.jsonl", 4)
    run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "out", format="bigbio"))
    docs = list(read_bigbio_kb(tmp_path / "out" / "shards" / "00000-000000.bigbio.jsonl"))
    assert [(d.id, [(e.text, e.db_ids) for e in d.entities]) for d in docs][:2] == [
        ("r0", [("Kopfschmerzen", [("kb", "C02")])]), ("r1", [("fièvre", [("kb", "C03")])])]


def test_resume_skips_done_shards_and_other_settings_are_refused(pipe, tmp_path):
    write_corpus(tmp_path / "in.jsonl", 12)
    out = tmp_path / "out"
    run_job(job(pipe, [tmp_path / "in.jsonl"], out, shard_size=5))
    manifest = json.loads((out / "manifest.json").read_text())
    first = (out / "shards" / "00000-000000.jsonl").stat().st_mtime_ns
    # a finished job re-run does nothing (the shard files are not rewritten)
    again = run_job(job(pipe, [tmp_path / "in.jsonl"], out, shard_size=5))
    assert again.shards_resumed == 3 and again.records_resumed == 12
    assert (out / "shards" / "00000-000000.jsonl").stat().st_mtime_ns == first
    # forget one shard: only that one is redone
    del manifest["shards"]["00000-000001"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    resumed = run_job(job(pipe, [tmp_path / "in.jsonl"], out, shard_size=5))
    assert resumed.shards_resumed == 2 and resumed.records == 12
    assert (out / "shards" / "00000-000000.jsonl").stat().st_mtime_ns == first
    with pytest.raises(InputError, match=r"E184.*shard_size: 5 \(saved\) vs 4 \(now\)"
                                         r".*--overwrite \(its 3 completed shard"):
        run_job(job(pipe, [tmp_path / "in.jsonl"], out, shard_size=4))
    with open(tmp_path / "in.jsonl", "a") as fh:  # the input changed since
        fh.write(json.dumps({"id": "new", "text": "Fieber"}) + "\n")
    with pytest.raises(InputError, match=r"E184.*settings: inputs: "):
        run_job(job(pipe, [tmp_path / "in.jsonl"], out, shard_size=5))
    fresh = run_job(job(pipe, [tmp_path / "in.jsonl"], out, shard_size=4, overwrite=True))
    assert (fresh.records, fresh.shards, fresh.shards_resumed) == (13, 4, 0)
    first_shard = (out / "shards" / "00000-000000.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in first_shard] == ["r0", "r1", "r2", "r3"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file.txt").write_text("x")
    with pytest.raises(InputError, match=r"E186.*not empty and holds no job manifest"):
        run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "other"))


def test_a_record_the_pipeline_fails_on_goes_to_errors(tmp_path):
    import annotate_components  # noqa: F401

    pipe = build_pipeline(tmp_path, extra=("xapps_test_fail_on",))
    (tmp_path / "in.jsonl").write_text("".join(
        json.dumps({"id": f"r{i}", "text": "BOOM Fieber" if i == 2 else TEXTS[i % 4]}) + "\n"
        for i in range(6)))
    summary = run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "out", batch_size=4,
                          code=[str(CODE)]))
    assert (summary.records, summary.errors) == (5, 1)
    assert [r["id"] for r in iter_output(tmp_path / "out")] == ["r0", "r1", "r3", "r4", "r5"]
    (error,) = iter_errors(tmp_path / "out")
    assert error["id"] == "r2" and error["line"] == 3
    assert "pipeline failed on this record (ValueError: refusing a record with BOOM)" in \
        error["reason"]


def test_two_processes_give_the_same_output_as_one(pipe, tmp_path):
    write_corpus(tmp_path / "in.jsonl", 30, bad_every=11)
    run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "one", shard_size=4))
    two = run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "two", shard_size=4,
                      n_process=2))
    assert two.workers == 2
    assert strip_timing(iter_output(tmp_path / "two")) == strip_timing(
        iter_output(tmp_path / "one"))
    assert list(iter_errors(tmp_path / "two")) == list(iter_errors(tmp_path / "one"))


def test_ray_engine_gives_the_same_output(pipe, tmp_path):
    pytest.importorskip("ray.data")
    write_corpus(tmp_path / "in.jsonl", 14, bad_every=5)
    run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "local", shard_size=4))
    summary = run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "ray", shard_size=4,
                          engine="ray", n_process=2))
    assert (summary.engine, summary.records, summary.errors) == ("ray", 12, 2)
    assert strip_timing(iter_output(tmp_path / "ray")) == strip_timing(
        iter_output(tmp_path / "local"))
    assert not (tmp_path / "ray" / "staging").exists()


def test_cfg_pipeline_is_assembled_once_with_overrides(tmp_path):
    kb = tmp_path / "kb.jsonl"
    KnowledgeBase(CONCEPTS).to_jsonl(kb)
    (tmp_path / "patterns.json").write_text(json.dumps(PATTERNS))
    cfg = tmp_path / "link.cfg"
    cfg.write_text(f"""
[nlp]
lang = "xx"
pipeline = ["entity_ruler", "xmen_linker"]

[components]

[components.entity_ruler]
factory = "entity_ruler"

[components.xmen_linker]
factory = "xmen_linker"
kb = null
k = 3

[components.xmen_linker.candidates]
kind = "tfidf"

[initialize]

[initialize.components]

[initialize.components.entity_ruler]
patterns = {{"@readers": "srsly.read_json.v1", "path": "{tmp_path / 'patterns.json'}"}}
""")
    write_corpus(tmp_path / "in.jsonl", 4)
    config = job(cfg, [tmp_path / "in.jsonl"], tmp_path / "out",
                 overrides={"components.xmen_linker.kb": str(kb)})
    run_job(config)
    assert (tmp_path / "out" / "pipeline" / "config.cfg").is_file()
    assert [e["kb_id"] for r in iter_output(tmp_path / "out") for e in r["ents"]] == [
        "C02", "C03", "C04", None]
    with pytest.raises(InputError, match=r"E185.*link2.cfg.*no such"):
        run_job(job(tmp_path / "link2.cfg", [tmp_path / "in.jsonl"], tmp_path / "o2"))


def test_bad_settings_are_named(pipe, tmp_path):
    write_corpus(tmp_path / "in.jsonl", 2)
    with pytest.raises(InputError, match=r"E186.*--shard-size"):
        run_job(job(pipe, [tmp_path / "in.jsonl"], tmp_path / "o", shard_size=0))
    with pytest.raises(InputError, match=r"E185.*no config.cfg"):
        run_job(job(tmp_path, [tmp_path / "in.jsonl"], tmp_path / "o"))


def _cli(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "xapps", *args], **kw)


def wait_for_shards(out: Path, n: int, proc, limit: float = 180.0) -> int:
    """Poll the job's manifest until it lists ``n`` shards; fail if the job ends first."""
    deadline = time.time() + limit
    done = 0
    while time.time() < deadline and proc.poll() is None:
        try:
            done = len(json.loads((out / "manifest.json").read_text())["shards"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            done = 0
        if done >= n:
            return done
        time.sleep(0.05)
    out_text = proc.stderr.read() if proc.poll() is not None else ""
    pytest.fail(f"the job did not reach {n} shards (at {done}); {out_text[-2000:]}")


def test_cli_killed_mid_job_resumes_to_every_record_exactly_once(tmp_path):
    """SIGKILL a running job, re-run the same command: every record once, none lost."""
    import annotate_components  # noqa: F401

    pipe = build_pipeline(tmp_path, extra=("xapps_test_sleep",),
                          xapps_test_sleep={"seconds": 0.01})
    ids = write_corpus(tmp_path / "in.jsonl", 300, bad_every=50)
    out = tmp_path / "out"
    args = ["annotate", "--pipeline", str(pipe), "--input", str(tmp_path / "in.jsonl"),
            "--output", str(out), "--shard-size", "10", "--batch-size", "5", "--code",
            str(CODE), "--quiet"]
    proc = _cli(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_shards(out, 5, proc, limit=60)
    assert proc.poll() is None, "the job finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(json.loads((out / "manifest.json").read_text())["shards"])
    assert 5 <= killed_at < 30
    rerun = _cli(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 1, stderr  # finished, with the 6 broken lines in errors/
    assert "294 records annotated, 6 in errors/ (30 shards" in stdout
    assert [r["id"] for r in iter_output(out)] == ids
    assert [e["line"] for e in iter_errors(out)] == [50 * k for k in range(1, 7)]
    assert not list(out.rglob(".*.tmp-*"))


def test_cli_exit_code_is_zero_without_bad_records(pipe, tmp_path):
    write_corpus(tmp_path / "in.jsonl", 3)
    proc = _cli("annotate", "--pipeline", str(pipe), "--input", str(tmp_path / "in.jsonl"),
                "--output", str(tmp_path / "out"), "--quiet", stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert stdout.startswith("3 records annotated, 0 in errors/ (1 shards")
    proc = _cli("annotate", "--pipeline", str(pipe), "--input", str(tmp_path / "nope.jsonl"),
                "--output", str(tmp_path / "o2"), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "[E183] Input" in stderr and "Traceback" not in stderr


def test_worker_failure_keeps_completed_shards(tmp_path):
    """A worker that cannot load the pipeline stops the job with E188, nothing half-done."""
    write_corpus(tmp_path / "in.jsonl", 4)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.cfg").write_text("[nlp]\nlang = \"xx\"\npipeline = [\"nope\"]\n")
    with pytest.raises(XappsError, match=r"E188.*\(loading\)"):
        run_job(job(broken, [tmp_path / "in.jsonl"], tmp_path / "out", n_process=2))
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"] == {}


def test_doc_record_carries_every_annotation_kind(tmp_path):
    """Entities with concepts, span groups, triples, hits, projections and categories all
    reach the record, and survive the DocBin format."""
    from xapps.annotate.output import ShardWriter, doc_record, read_shard

    nlp = spacy.blank("en")
    doc = nlp("Fever in Paris.")
    doc.ents = [doc.char_span(0, 5, "DISO", kb_id="C03")]
    doc.ents[0]._.kb_ents = [("C03", 0.9), ("C01", 0.2)]
    doc.spans["terms"] = [doc.char_span(9, 14, "LOC")]
    doc._.triples = [{"relation": {"role": "REL", "start": 6, "end": 8, "text": "in"},
                      "arguments": [{"role": "ARG0", "start": 0, "end": 5, "text": "Fever"}],
                      "confidence": 0.5}]
    doc._.hits = [("doc-7", 0.75)]
    target = spacy.blank("fr")("Fièvre à Paris.")
    target.ents = [target.char_span(9, 14, "LOC")]
    doc._.projection = target
    doc.cats = {"clinical": 0.8}
    rec = doc_record(doc, record_id="r1", lang="en", meta={"k": 1},
                     provenance={"pipeline": "p"}, timing={"batch_ms": 1.0,
                                                           "batch_records": 1},
                     kb_names={"C03": "Fever"}.get)
    assert rec["ents"] == [{"start": 0, "end": 5, "label": "DISO", "text": "Fever",
                            "kb_id": "C03", "kb_name": "Fever",
                            "kb_ents": [["C03", 0.9], ["C01", 0.2]]}]
    assert rec["spans"] == {"terms": [{"start": 9, "end": 14, "label": "LOC",
                                       "text": "Paris"}]}
    assert rec["triples"][0]["confidence"] == 0.5 and rec["hits"] == [["doc-7", 0.75]]
    assert rec["projection"] == {"text": "Fièvre à Paris.", "ents": [
        {"start": 9, "end": 14, "label": "LOC", "text": "Paris"}]}
    assert rec["cats"] == {"clinical": 0.8} and rec["provenance"] == {"pipeline": "p"}
    writer = ShardWriter(tmp_path / "s.spacy", "docbin")
    writer.write(doc, rec)
    writer.close()
    (back,) = read_shard(tmp_path / "s.spacy", "docbin")
    assert back == rec
