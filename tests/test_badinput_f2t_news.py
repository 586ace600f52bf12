"""Bad-input matrix for `xapps f2t train|generate|eval` and `xapps news train|eval|recommend`:
missing, empty, malformed, missing field, non-UTF-8, binary, mismatched, unwritable output and
damaged saved folders each end in one coded error (exit 2; 1 where records were skipped),
with the file and line, no traceback, and nothing written. Also: saved generators and
recommenders are checksummed, the retrieval index is persisted, fallbacks are marked."""
from __future__ import annotations

import json
import logging

import pytest
import torch
from cli_checks import assert_refused, invoke, snapshot

from xapps.errors import ModelError
from xapps.fact2text import load_generator
from xapps.fact2text.data import F2TExample, Fact
from xapps.fact2text.retrieval import RetrievalGenerator
from xapps.fact2text.seq2seq import Seq2SeqConfig, Seq2SeqGenerator
from xapps.news.recommender import NewsRecConfig, NewsRecommender

TRAIN = [
    {"id": "t1", "lang": "cy", "facts": [["Aarhus Airport", "runway length", "2702.0"]],
     "texts": ["Hyd rhedfa Maes Awyr Aarhus yw 2702.0."]},
    {"id": "t2", "lang": "cy", "facts": [["Aarhus", "leader", "Jacob Bundsgaard"]],
     "texts": ["Arweinydd Aarhus yw Jacob Bundsgaard."]},
    {"id": "t3", "lang": "cy", "facts": [["Aarhus", "leader", "Jacob Bundsgaard"],
                                         ["Aarhus", "country", "Denmark"]],
     "texts": ["Mae Aarhus yn Denmark a'i arweinydd yw Jacob Bundsgaard."]},
]
FACTS = {"id": "q", "facts": [["Oslo_Airport", "runwayLength", "3600.0"]]}
NEWS = [("N1", "sport", "f", "football match won", "a", "", "", ""),
        ("N2", "sport", "f", "tennis final today", "b", "", "", ""),
        ("N3", "news", "p", "vote on the new law", "c", "", "", ""),
        ("N4", "news", "p", "minister resigns today", "d", "", "", "")]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _tsv(path, rows):
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _behaviors(path, n=40):
    rows = []
    for k in range(n):
        topic = ("N1", "N2") if k % 2 else ("N3", "N4")
        other = ("N3", "N4") if k % 2 else ("N1", "N2")
        rows.append((f"i{k}", f"u{k}", f"11/{9 + k // 20}/2019 {1 + k % 12}:{k % 60:02d}:00 PM",
                     topic[0], f"{topic[1]}-1 {other[0]}-0 {other[1]}-0"))
    return _tsv(path, rows)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    _jsonl(root / "train.jsonl", TRAIN)
    _jsonl(root / "facts.jsonl", [FACTS])
    _tsv(root / "news.tsv", NEWS)
    _behaviors(root / "behaviors.tsv")
    return root


@pytest.fixture(scope="module")
def retrieval_dir(tiny_xlmr_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen") / "retrieval"
    examples = [F2TExample([Fact(*f) for f in r["facts"]], r["texts"], r["lang"], r["id"])
                for r in TRAIN]
    RetrievalGenerator(backbone=str(tiny_xlmr_path), k=3).fit(examples).save(folder)
    return folder


@pytest.fixture(scope="module")
def seq2seq_dir(tiny_xlmr_path, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("gen") / "seq2seq"
    examples = [F2TExample([Fact(*f) for f in r["facts"]], r["texts"], r["lang"], r["id"])
                for r in TRAIN]
    cfg = Seq2SeqConfig(backbone=str(tiny_xlmr_path), decoder_layers=1, max_target_len=8,
                        num_beams=1)
    Seq2SeqGenerator.create(cfg, examples, langs=["cy"]).save(folder)
    return folder


@pytest.fixture(scope="module")
def news_dir(tiny_xlmr_path, tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("news") / "model"
    NewsRecommender(NewsRecConfig(backbone=str(tiny_xlmr_path), dim=16, heads=4)).save(folder)
    return folder


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _flip(file, n=64):
    data = bytearray(file.read_bytes())
    middle = len(data) // 2
    data[middle:middle + n] = bytes(b ^ 0xFF for b in data[middle:middle + n])
    file.write_bytes(bytes(data))


def _truncate(file):
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


# --------------------------------------------------------------------------- bad input files
BAD_JSONL = {
    "missing": (None, "E004", ["no such file"]),
    "empty": ("", "E236", []),
    "malformed line": (json.dumps(FACTS) + "\n{not json\n", "E001", [":2"]),
    "missing field": (json.dumps({"id": "x", "text": "no facts"}) + "\n", "E190", [":1", "facts"]),
    "non-UTF-8": (json.dumps(FACTS) + "\n" + '{"facts": "caf\xe9"}\n', "E004", [":2", "UTF-8"]),
    "binary": ("\x00\x01\x02\xff\xfe" * 50, "E004", [":1"]),
}


def _bad_file(tmp_path, case):
    content = BAD_JSONL[case][0]
    path = tmp_path / "input.jsonl"
    if content is not None:
        path.write_bytes(content.encode("latin-1") if case in ("non-UTF-8", "binary")
                         else content.encode("utf-8"))
    return path


@pytest.mark.parametrize("case", list(BAD_JSONL))
def test_f2t_train_refuses_bad_examples(case, tiny_xlmr_path, tmp_path):
    path = _bad_file(tmp_path, case)
    _, code, mentions = BAD_JSONL[case]
    before = snapshot(tmp_path)
    result = invoke("f2t", "train", "--train", path, "--out", tmp_path / "gen", "--backbone",
                    tiny_xlmr_path)
    assert_refused(result, code, "input.jsonl", *mentions)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", list(BAD_JSONL))
def test_f2t_generate_checks_its_input_before_loading_the_model(case, tmp_path):
    # the model folder does not exist: the input error comes first, so it was checked first
    path = _bad_file(tmp_path, case)
    _, code, mentions = BAD_JSONL[case]
    before = snapshot(tmp_path)
    result = invoke("f2t", "generate", "--model", tmp_path / "no-model", "--facts", path,
                    "--lang", "cy", "--output", tmp_path / "out.jsonl")
    out = assert_refused(result, code, "input.jsonl", *mentions)
    assert "E192" not in out
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", list(BAD_JSONL))
def test_f2t_eval_checks_its_test_file_before_loading_the_model(case, tmp_path):
    path = _bad_file(tmp_path, case)
    _, code, mentions = BAD_JSONL[case]
    before = snapshot(tmp_path)
    result = invoke("f2t", "eval", "--model", tmp_path / "no-model", "--test", path, "--lang",
                    "cy", "--predictions", tmp_path / "pred.jsonl")
    assert_refused(result, code, "input.jsonl", *mentions)
    assert snapshot(tmp_path) == before


def test_f2t_generate_allows_an_empty_input_only_when_asked(retrieval_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert_refused(invoke("f2t", "generate", "--model", retrieval_dir, "--facts", empty,
                          "--lang", "cy", "--output", tmp_path / "out.jsonl"),
                   "E236", "empty.jsonl", "--allow-empty")
    assert not (tmp_path / "out.jsonl").exists()
    result = invoke("f2t", "generate", "--model", retrieval_dir, "--facts", empty, "--lang",
                    "cy", "--output", tmp_path / "out.jsonl", "--allow-empty")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.jsonl").read_text() == ""


def test_f2t_eval_without_references_is_refused_before_loading(tmp_path):
    test = _jsonl(tmp_path / "test.jsonl", [FACTS, {**FACTS, "id": "q2"}])
    result = invoke("f2t", "eval", "--model", tmp_path / "no-model", "--test", test, "--lang",
                    "cy")
    assert_refused(result, "E237", "test.jsonl", "2 have no reference text", "'q'")


def test_f2t_eval_counts_and_reports_skipped_records(retrieval_dir, files, tmp_path):
    rows = TRAIN + [{**FACTS, "lang": "cy"}, {**TRAIN[1], "id": "en1", "lang": "en"}]
    test = _jsonl(tmp_path / "test.jsonl", rows)
    result = invoke("f2t", "eval", "--model", retrieval_dir, "--test", test, "--lang", "cy",
                    "--predictions", tmp_path / "pred.jsonl")
    assert result.exit_code == 1, result.output
    scores = json.loads(result.stdout[result.stdout.index("{"):result.stdout.rindex("}") + 1])
    assert scores["n"] == 3
    assert scores["skipped"] == {"without_reference": 1, "other_language": 1}
    assert "skipped 2" in result.output and "q" in result.output and "en1" in result.output
    preds = [json.loads(line) for line in (tmp_path / "pred.jsonl").open()]
    assert [p["id"] for p in preds] == ["t1", "t2", "t3"]
    assert {"fallback", "foreign_entities"} <= set(preds[0])
    assert {"fallback_rate", "foreign_rate", "unsupported_rate"} <= set(scores)


def test_f2t_generate_in_a_language_the_generator_lacks(retrieval_dir, files, tmp_path):
    result = invoke("f2t", "generate", "--model", retrieval_dir, "--facts",
                    files / "facts.jsonl", "--lang", "ga", "--output", tmp_path / "o.jsonl")
    assert_refused(result, "E191", "'ga'", "cy")
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.parametrize("command", ["train", "generate", "eval"])
def test_f2t_unwritable_output_is_refused_before_any_work(command, retrieval_dir, files,
                                                          tiny_xlmr_path, readonly_dir):
    args = {"train": ["--train", files / "train.jsonl", "--out", readonly_dir, "--backbone",
                      tiny_xlmr_path],
            "generate": ["--model", retrieval_dir, "--facts", files / "facts.jsonl", "--lang",
                         "cy", "--output", readonly_dir / "out.jsonl"],
            "eval": ["--model", retrieval_dir, "--test", files / "train.jsonl", "--lang", "cy",
                     "--predictions", readonly_dir / "pred.jsonl"]}[command]
    assert_refused(invoke("f2t", command, *args), "E068", str(readonly_dir))


# --------------------------------------------------------------------- damaged saved folders
def _damage(folder, how, target):
    file = folder / target
    if how == "flipped":
        _flip(file)
    elif how == "truncated":
        _truncate(file)
    elif how == "missing file":
        file.unlink()
    elif how == "missing cfg":
        (folder / "cfg.json").unlink()
    elif how == "cfg not JSON":
        (folder / "cfg.json").write_text("{oops")


DAMAGE = [("flipped", "E235"), ("truncated", "E235"), ("missing file", "E235"),
          ("missing cfg", "E192"), ("cfg not JSON", "E192")]


@pytest.mark.parametrize("how,code", DAMAGE)
@pytest.mark.parametrize("kind,target", [("seq2seq", "model/model.safetensors"),
                                         ("seq2seq", "fact_embeddings.safetensors"),
                                         ("retrieval", "examples.jsonl"),
                                         ("retrieval", "index/cy/index.faiss")])
def test_f2t_damaged_generator_is_refused(kind, target, how, code, retrieval_dir, seq2seq_dir,
                                          files, tmp_path):
    folder = _copy(retrieval_dir if kind == "retrieval" else seq2seq_dir, tmp_path / "gen")
    if how in ("flipped", "truncated", "missing file") and not (folder / target).is_file():
        pytest.skip(f"{target} is not part of this layout")
    _damage(folder, how, target)
    result = invoke("f2t", "generate", "--model", folder, "--facts", files / "facts.jsonl",
                    "--lang", "cy", "--output", tmp_path / "out.jsonl")
    mentions = [target] if code == "E235" else ["cfg.json"]
    assert_refused(result, code, str(folder), *mentions)
    assert not (tmp_path / "out.jsonl").exists()


def test_f2t_missing_model_folder(files, tmp_path):
    assert_refused(invoke("f2t", "generate", "--model", tmp_path / "nope", "--facts",
                          files / "facts.jsonl", "--lang", "cy"), "E192", "no such folder")


def test_generators_record_and_verify_checksums(retrieval_dir, seq2seq_dir):
    for folder in (retrieval_dir, seq2seq_dir):
        files = json.loads((folder / "cfg.json").read_text())["files"]
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name not in ("cfg.json", "manifest.json")}
        assert set(files) == on_disk and all(len(v) == 64 for v in files.values())
    assert "index/cy/index.faiss" in json.loads(
        (retrieval_dir / "cfg.json").read_text())["files"]


def test_generator_saved_without_checksums_loads_with_a_warning(retrieval_dir, tmp_path,
                                                                caplog):
    folder = _copy(retrieval_dir, tmp_path / "old")
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["files"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with caplog.at_level(logging.WARNING, logger="xapps"):
        gen = load_generator(folder)
    assert "without checksums" in caplog.text and gen.languages == ["cy"]


def test_old_seq2seq_folder_with_a_truncated_file_gets_a_coded_error(seq2seq_dir, tmp_path):
    folder = _copy(seq2seq_dir, tmp_path / "old")
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["files"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    _truncate(folder / "fact_embeddings.safetensors")
    with pytest.raises(ModelError, match=r"E235.*cannot be loaded"):
        load_generator(folder)


# ------------------------------------------------------------- retrieval index, fallbacks
def test_retrieval_generator_loads_its_saved_index_without_reindexing(retrieval_dir,
                                                                      monkeypatch, tmp_path):
    def no_reindex(self, unique):
        raise AssertionError("re-indexed although the saved index fits")

    monkeypatch.setattr(RetrievalGenerator, "_build_index", no_reindex)
    gen = load_generator(retrieval_dir)
    assert gen.generate([[Fact("Oslo Airport", "runway length", "3600.0")]], "cy") == [
        "Hyd rhedfa Oslo Airport yw 3600.0."]
    # an older folder without index/ (and without checksums) is indexed on load
    monkeypatch.undo()
    import shutil

    folder = _copy(retrieval_dir, tmp_path / "old")
    shutil.rmtree(folder / "index")
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["files"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    assert load_generator(folder).generate(
        [[Fact("Oslo Airport", "runway length", "3600.0")]], "cy") == [
        "Hyd rhedfa Oslo Airport yw 3600.0."]


def test_retrieval_marks_fallbacks_and_foreign_entities(tiny_xlmr_path, retrieval_dir, files,
                                                        tmp_path):
    gen = load_generator(retrieval_dir)
    out = gen.generate_detailed([[Fact("Bergen", "leader", "Marte Mjøs"),
                                  Fact("Bergen", "mayor since", "2021")]], "cy")
    assert out[0].text == "Arweinydd Bergen yw Marte Mjøs. Bergen mayor since 2021."
    assert out[0].fallback == ["mayor since"] and out[0].foreign == []
    # the only reference names a fact the input lacks, in the same sentence: kept, named
    only_multi = RetrievalGenerator(backbone=str(tiny_xlmr_path), k=3).fit(
        [F2TExample([Fact("Aarhus", "leader", "Jacob Bundsgaard"),
                     Fact("Aarhus", "country", "Denmark")],
                    ["Mae Aarhus yn Denmark a'i arweinydd yw Jacob Bundsgaard."], "cy", "m")])
    got = only_multi.generate_detailed([[Fact("Bergen", "leader", "Marte Mjøs")]], "cy")[0]
    assert got.foreign == ["Denmark"] and "Marte Mjøs" in got.text
    # in a sentence of its own it is cut, and the rest still says everything the input says
    two = RetrievalGenerator(backbone=str(tiny_xlmr_path), k=3).fit(
        [F2TExample([Fact("Aarhus", "leader", "Jacob Bundsgaard"),
                     Fact("Aarhus", "country", "Denmark")],
                    ["Mae Aarhus yn Denmark. Arweinydd Aarhus yw Jacob Bundsgaard."], "cy",
                    "m")])
    got = two.generate_detailed([[Fact("Bergen", "leader", "Marte Mjøs")]], "cy")[0]
    assert (got.text, got.foreign) == ("Arweinydd Bergen yw Marte Mjøs.", [])
    # facts the first reference leaves and no template writes: a second reference that
    # says exactly them is used instead of the plain fallback
    examples = [F2TExample([Fact(*f) for f in r["facts"]], r["texts"], r["lang"], r["id"])
                for r in TRAIN]
    examples.append(F2TExample([Fact("Oslo", "mayor since", "2015"),
                                Fact("Oslo", "population", "700000")],
                               ["Mae gan Oslo 700000 o bobl a'i maer ers 2015."], "cy", "m"))
    both = RetrievalGenerator(backbone=str(tiny_xlmr_path), k=10).fit(examples)
    got = both.generate_detailed([[Fact("Bergen", "leader", "Marte Mjøs"),
                                   Fact("Bergen", "country", "Norway"),
                                   Fact("Bergen", "mayor since", "2021"),
                                   Fact("Bergen", "population", "285000")]], "cy")[0]
    assert (got.fallback, got.foreign) == ([], [])
    assert "Mae gan Bergen 285000 o bobl a'i maer ers 2021." in got.text
    assert "Mae Bergen yn Norway a'i arweinydd yw Marte Mjøs." in got.text
    # the CLI writes the marks and says how many outputs fell back
    facts = _jsonl(tmp_path / "f.jsonl", [{"id": "b", "facts": [
        ["Bergen", "leader", "Marte Mjøs"], ["Bergen", "mayor since", "2021"]]}])
    result = invoke("f2t", "generate", "--model", retrieval_dir, "--facts", facts, "--lang",
                    "cy", "--output", tmp_path / "o.jsonl")
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "o.jsonl").read_text())
    assert row["fallback"] == ["mayor since"] and row["foreign_entities"] == []
    assert "1 of 1 texts write some facts as plain" in result.output


# ----------------------------------------------------------------------------------- news
BAD_NEWS = {
    "missing": (None, "E194", ["No such file"]),
    "empty": ("", "E236", []),
    "malformed line": ("N1\tsport\tf\ttitle\tabs\n" + "only-one-column\n", "E194", [":2"]),
    "missing field": ("\tsport\tf\ttitle\tabs\n", "E194", [":1", "news id"]),
    "non-UTF-8": ("N1\tsport\tf\tcaf\xe9\tabs\n", "E194", [":1", "UTF-8"]),
    "binary": ("\x00\x01\x02\xff\xfe" * 50, "E194", [":1"]),
}
BAD_BEHAVIORS = {
    "missing": (None, "E195", ["No such file"]),
    "empty": ("", "E236", []),
    "malformed line": ("i1\tu1\t11/9/2019 1:00:00 PM\tN1\tN2-1 N3-0\nbad line\n", "E195", [":2"]),
    "missing field": ("i1\tu1\t11/9/2019 1:00:00 PM\tN1\t\n", "E195", [":1", "no candidates"]),
    "non-UTF-8": ("i1\tu1\t11/9/2019 1:00:00 PM\tN1\tN2-1 N\xe9-0\n", "E195", [":1", "UTF-8"]),
    "binary": ("\x00\x01\x02\xff\xfe" * 50, "E195", [":1"]),
}


def _write(path, content):
    if content is not None:
        path.write_bytes(content.encode("latin-1"))
    return path


@pytest.mark.parametrize("command", ["train", "eval"])
@pytest.mark.parametrize("which,case", [("news", c) for c in BAD_NEWS]
                         + [("behaviors", c) for c in BAD_BEHAVIORS])
def test_news_train_and_eval_refuse_bad_files(command, which, case, files, news_dir,
                                              tiny_xlmr_path, tmp_path):
    table = BAD_NEWS if which == "news" else BAD_BEHAVIORS
    content, code, mentions = table[case]
    bad = _write(tmp_path / f"bad_{which}.tsv", content)
    news = bad if which == "news" else files / "news.tsv"
    behaviors = bad if which == "behaviors" else files / "behaviors.tsv"
    args = ["--behaviors", behaviors, "--news", news, "--cache", tmp_path / "cache"]
    args += (["--out", tmp_path / "model", "--backbone", tiny_xlmr_path] if command == "train"
             else ["--model", news_dir])
    before = snapshot(tmp_path)
    assert_refused(invoke("news", command, *args), code, f"bad_{which}.tsv", *mentions)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("case", list(BAD_NEWS))
def test_news_recommend_refuses_bad_news(case, news_dir, tmp_path):
    content, code, mentions = BAD_NEWS[case]
    bad = _write(tmp_path / "bad_news.tsv", content)
    before = snapshot(tmp_path)
    assert_refused(invoke("news", "recommend", "--model", news_dir, "--news", bad,
                          "--user-history", "N1", "--cache", tmp_path / "cache"),
                   code, "bad_news.tsv", *mentions)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["train", "eval"])
def test_news_mismatched_inputs_are_refused_before_loading(command, files, tmp_path):
    # behaviors of one split, news of another; the model folder does not even exist
    other = _tsv(tmp_path / "other_news.tsv", [("X1", "c", "s", "t", "a", "", "", "")])
    args = ["--out", tmp_path / "model", "--backbone", tmp_path / "no-backbone"] if (
        command == "train") else ["--model", tmp_path / "no-model"]
    result = invoke("news", command, "--behaviors", files / "behaviors.tsv", "--news", other,
                    "--cache", tmp_path / "cache", *args)
    assert_refused(result, "E238", "behaviors.tsv", "other_news.tsv", "40 impressions")
    assert not (tmp_path / "model").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("command,what", [("train", "--out"), ("train", "--cache"),
                                          ("eval", "--cache"), ("recommend", "--cache")])
def test_news_unwritable_outputs_are_refused_before_any_work(command, what, files, news_dir,
                                                             tiny_xlmr_path, readonly_dir):
    data = ["--news", files / "news.tsv"]
    if command != "recommend":
        data += ["--behaviors", files / "behaviors.tsv"]
    args = {"train": ["--backbone", tiny_xlmr_path],
            "eval": ["--model", news_dir],
            "recommend": ["--model", news_dir, "--user-history", "N1"]}[command]
    outputs = {"--out": readonly_dir, "--cache": readonly_dir}
    extra = [what, outputs[what]]
    if command == "train" and what == "--cache":
        extra += ["--out", readonly_dir.parent.parent / "model-ok"]
    if command == "train" and what == "--out":
        extra += ["--cache", readonly_dir.parent.parent / "cache-ok"]
    before = snapshot(readonly_dir.parent.parent)
    result = invoke("news", command, *data, *args, *extra)
    assert_refused(result, "E068", str(readonly_dir))
    assert snapshot(readonly_dir.parent.parent) == before


def test_read_only_default_cache_falls_back_for_commands_that_read(files, news_dir,
                                                                    readonly_dir):
    env = {"XAPPS_HOME": str(readonly_dir)}
    result = invoke("news", "recommend", "--model", news_dir, "--news", files / "news.tsv",
                    "--user-history", "N1", "-k", "2", env=env)
    assert result.exit_code == 0, result.output
    assert result.output.count("cannot be written") == 1
    assert len([line for line in result.stdout.splitlines() if line.count("\t") == 3]) == 2
    result = invoke("news", "eval", "--model", news_dir, "--news", files / "news.tsv",
                    "--behaviors", files / "behaviors.tsv", env=env)
    assert result.exit_code == 0, result.output
    assert result.output.count("cannot be written") == 1


@pytest.mark.parametrize("how,code", DAMAGE)
@pytest.mark.parametrize("command", ["eval", "recommend"])
def test_news_damaged_model_is_refused(command, how, code, news_dir, files, tmp_path):
    folder = _copy(news_dir, tmp_path / "model")
    _damage(folder, how, "model.safetensors")
    args = (["--behaviors", files / "behaviors.tsv"] if command == "eval"
            else ["--user-history", "N1"])
    result = invoke("news", command, "--model", folder, "--news", files / "news.tsv",
                    "--cache", tmp_path / "cache", *args)
    code = "E203" if code == "E192" else code
    mentions = ["model.safetensors"] if code == "E235" else ["cfg.json"]
    if how == "missing file":
        code, mentions = "E203", ["model.safetensors"]
    assert_refused(result, code, str(folder), *mentions)


def test_news_model_flipped_bytes_no_longer_load_silently(news_dir, tmp_path):
    folder = _copy(news_dir, tmp_path / "model")
    _flip(folder / "model.safetensors")
    with pytest.raises(ModelError, match=r"E235.*model.safetensors.*sha256"):
        NewsRecommender.load(folder)
    assert "model.safetensors" in json.loads((news_dir / "cfg.json").read_text())["files"]


def test_old_news_model_without_checksums_truncated_gets_a_coded_error(news_dir, tmp_path):
    folder = _copy(news_dir, tmp_path / "model")
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["files"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    _truncate(folder / "model.safetensors")
    with pytest.raises(ModelError, match=r"E235.*model.safetensors.*cannot be read"):
        NewsRecommender.load(folder)


def test_over_long_records_are_verbalised_and_encoded(retrieval_dir, files, news_dir,
                                                      tmp_path):
    # a 1 MB entity: the retrieval key is the predicates, the entity is copied as it is
    facts = _jsonl(tmp_path / "long.jsonl", [{"id": "long", "facts": [
        ["Aarhus " + "x" * 1_000_000, "leader", "Jacob Bundsgaard"]]}])
    result = invoke("f2t", "generate", "--model", retrieval_dir, "--facts", facts, "--lang",
                    "cy", "--output", tmp_path / "o.jsonl")
    assert result.exit_code == 0, result.output
    assert len(json.loads((tmp_path / "o.jsonl").read_text())["text"]) > 1_000_000
    # a 100 kB news title is encoded in windows, not refused and not fatal
    news = _tsv(tmp_path / "news.tsv", NEWS + [("N5", "c", "s", "long " * 20_000, "", "", "",
                                                "")])
    result = invoke("news", "recommend", "--model", news_dir, "--news", news, "--user-history",
                    "N1", "-k", "4", "--cache", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    assert "N5" in result.stdout
