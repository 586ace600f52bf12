"""Bad-input matrix for `xapps index build|search|info`, `xapps models install|list`,
`xapps retrieval train` and `xapps demo --out` (issue 19): every refusal exits 2 with an
E-code that names the file (and line), prints no traceback and writes nothing."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_checks import assert_refused, invoke, snapshot

DOCS = [
    {"id": "rain-en", "text": "Heavy rain flooded the market.", "lang": "en"},
    {"id": "rain-sw", "text": "Mvua kubwa ilifurika sokoni.", "lang": "sw"},
    {"id": "bank-en", "text": "The central bank raised interest rates.", "lang": "en"},
]


def jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def kind_args(kind: str) -> tuple:
    """--kind, and a small projection for multi-vector builds (--dim is refused for dense)."""
    return ("--kind", kind) + (("--dim", 16) if kind == "multivector" else ())


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, min(mid + 64, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(autouse=True)
def _fresh_backbones():
    """A test may install a tiny model under the name me5-small: never leak it."""
    from xapps.backbone import clear_cache

    clear_cache()
    yield
    clear_cache()


# ----------------------------------------------------------------------------- index build
# (name, file name, content, E-code, mentions)
BUILD_CASES = [
    ("missing", "none.jsonl", None, "E004", ["none.jsonl", "no such file"]),
    ("empty", "empty.jsonl", "", "E004", ["empty.jsonl", "no records"]),
    ("blank-lines", "blank.jsonl", "\n\n", "E004", ["blank.jsonl", "no records"]),
    ("malformed", "bad.jsonl", jsonl(DOCS[:1]) + '{"id": "x", "text": \n', "E001",
     ["bad.jsonl:2"]),
    ("not-object", "list.jsonl", jsonl(DOCS[:1]) + "[1, 2]\n", "E001", ["list.jsonl:2"]),
    ("missing-field", "nofield.jsonl", jsonl(DOCS[:1]) + '{"id": "x", "body": "t"}\n', "E002",
     ["nofield.jsonl:2", "'text'", "--text-field"]),
    ("empty-text", "emptytext.jsonl", jsonl(DOCS[:1]) + '{"id": "x", "text": "  "}\n', "E003",
     ["emptytext.jsonl:2"]),
    ("text-not-string", "num.jsonl", jsonl(DOCS[:1]) + '{"id": "x", "text": 42}\n', "E058",
     ["num.jsonl:2", "'text'", "42", "a string"]),
    ("id-not-scalar", "objid.jsonl", jsonl(DOCS[:1]) + '{"id": {"a": 1}, "text": "t"}\n',
     "E058", ["objid.jsonl:2", "'id'"]),
    ("non-utf8", "latin1.jsonl", jsonl(DOCS[:1]).encode() + '{"id": "x", "text": "café"}\n'
     .encode("latin-1"), "E004", ["latin1.jsonl:2", "not UTF-8"]),
    ("binary", "blob.jsonl", b"\x00\xff\xfe\x89PNG\r\n\x1a\n\x00\x00\xde\xad", "E004",
     ["blob.jsonl:1"]),
    ("duplicate-id", "dup.jsonl", jsonl(DOCS + [DOCS[0]]), "E005",
     ["dup.jsonl:4", "rain-en", "dup.jsonl:1"]),
    ("unknown-type", "docs.csv", "id,text\na,b\n", "E004", ["docs.csv", ".csv"]),
    ("tsv-empty", "empty.tsv", "", "E004", ["empty.tsv"]),
    ("tsv-no-header-field", "nohead.tsv", "a\tHeavy rain\nb\tMvua\n", "E002",
     ["nohead.tsv:2", "'id'"]),
    ("tsv-columns", "cols.tsv", "id\ttext\na\tHeavy rain\nb\tMvua\textra\n", "E006",
     ["cols.tsv:3"]),
    ("gz-truncated", "cut.jsonl.gz", gzip.compress(jsonl(
        {"id": f"d{i}", "text": f"document number {i}"} for i in range(300)).encode())[:300],
     "E004", ["cut.jsonl.gz"]),
]


@pytest.mark.parametrize("kind", ["dense", "multivector"])
@pytest.mark.parametrize("name,fname,content,code,mentions", BUILD_CASES,
                         ids=[c[0] for c in BUILD_CASES])
def test_index_build_refuses_bad_input(tmp_path, tiny_xlmr_path, kind, name, fname, content,
                                       code, mentions):
    src = tmp_path / "in" / fname
    if content is not None:
        write(src, content)
    before = snapshot(tmp_path)
    result = invoke("index", "build", "--input", src, "--out", tmp_path / "idx",
                    *kind_args(kind), "--backbone", tiny_xlmr_path)
    assert_refused(result, code, *mentions)
    assert snapshot(tmp_path) == before


TXT_FOLDER_CASES = [
    ("no-txt-files", {"notes.md": "not a txt file"}, "E004", ["no .txt files"]),
    ("non-utf8-file", {"a.txt": "fine", "b.txt": "café".encode("latin-1")}, "E004",
     ["b.txt", "not UTF-8"]),
    ("empty-file", {"a.txt": "fine", "sub/c.txt": "  \n"}, "E003", ["c.txt:1"]),
]


@pytest.mark.parametrize("name,files,code,mentions", TXT_FOLDER_CASES,
                         ids=[c[0] for c in TXT_FOLDER_CASES])
def test_index_build_refuses_bad_txt_folder(tmp_path, tiny_xlmr_path, name, files, code,
                                            mentions):
    folder = tmp_path / "texts"
    folder.mkdir()
    for rel, content in files.items():
        write(folder / rel, content)
    before = snapshot(tmp_path)
    result = invoke("index", "build", "--input", folder, "--out", tmp_path / "idx",
                    "--backbone", tiny_xlmr_path)
    assert_refused(result, code, *mentions)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["dense", "multivector"])
def test_index_build_refuses_unwritable_out_before_loading_anything(tmp_path, readonly_dir,
                                                                    kind):
    """E068 before the model loads: the backbone named does not even exist, so a check made
    after loading (or after encoding) would report E020 instead."""
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    before = snapshot(tmp_path)
    result = invoke("index", "build", "--input", src, "--out", readonly_dir, "--kind", kind,
                    "--backbone", "no-such-model-anywhere")
    assert_refused(result, "E068", str(readonly_dir))
    assert snapshot(tmp_path) == before


def test_demo_refuses_unwritable_out(readonly_dir):
    result = invoke("demo", "--out", readonly_dir, "--backbone", "no-such-model-anywhere")
    assert_refused(result, "E068", str(readonly_dir))


def test_index_build_windows_an_over_long_record(tmp_path, tiny_xlmr_path):
    """A record far longer than the model's window (32 subwords here) is encoded in
    overlapping windows, not truncated and not refused."""
    long_text = "Heavy rain flooded the market again. " * 150
    src = write(tmp_path / "long.jsonl", jsonl(DOCS + [{"id": "long", "text": long_text}]))
    result = invoke("index", "build", "--input", src, "--out", tmp_path / "idx",
                    "--backbone", tiny_xlmr_path)
    assert result.exit_code == 0, result.output
    assert "Indexed 4 documents" in result.output
    assert "longer than the specified maximum" not in result.output
    result = invoke("index", "search", tmp_path / "idx", "rain", "--json", "-k", 4)
    assert result.exit_code == 0
    assert {h["id"] for h in json.loads(result.output.splitlines()[-1])["hits"]} >= {"long"}


# ------------------------------------------------------------------ index search / info damage
@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_xlmr_path):
    """One dense index and one multi-vector retriever, built once; tests damage copies."""
    root = tmp_path_factory.mktemp("built")
    src = write(root / "docs.jsonl", jsonl(DOCS))
    for kind in ("dense", "multivector"):
        result = invoke("index", "build", "--input", src, "--out", root / kind,
                        *kind_args(kind), "--backbone", tiny_xlmr_path)
        assert result.exit_code == 0, result.output
    return root


# (kind, file inside the saved folder, damage, E-code)
DAMAGE_CASES = [
    ("dense", "index.faiss", truncate, "E012"),
    ("dense", "index.faiss", flip, "E012"),
    ("dense", "meta.jsonl", flip, "E012"),
    ("dense", "ids.json", Path.unlink, "E012"),
    ("dense", "manifest.json", truncate, "E011"),
    ("multivector", "retriever.json", truncate, "E221"),
    ("multivector", "retriever.json", flip, "E221"),
    ("multivector", "encoder/projection.safetensors", flip, "E221"),
    ("multivector", "encoder/projection.safetensors", truncate, "E221"),
    ("multivector", "encoder/colbert.json", truncate, "E221"),
    ("multivector", "encoder/colbert.json", flip, "E221"),
    ("multivector", "index/residual_codes.npy", flip, "E012"),
    ("multivector", "index/centroids.npy", truncate, "E012"),
    ("multivector", "index/manifest.json", truncate, "E011"),
]


@pytest.mark.parametrize("command", ["search", "info"])
@pytest.mark.parametrize("kind,fname,damage,code", DAMAGE_CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[2].__name__}" for c in DAMAGE_CASES])
def test_damaged_index_is_reported_as_damage(built, tmp_path, command, kind, fname, damage,
                                             code):
    folder = tmp_path / kind
    shutil.copytree(built / kind, folder)
    damage(folder / fname)
    before = snapshot(tmp_path)
    args = ("index", command, folder) + (("rain",) if command == "search" else ())
    out = assert_refused(invoke(*args), code, Path(fname).name if code != "E011" else kind)
    # Damage is not a backbone mismatch, and no advice names a command that cannot work.
    assert "[E010]" not in out and "--backbone colbert:" not in out
    assert snapshot(tmp_path) == before


def test_intact_indexes_search_and_info(built):
    for kind in ("dense", "multivector"):
        result = invoke("index", "search", built / kind, "rain", "--json")
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.output.splitlines()[-1])["hits"]) == 3
        result = invoke("index", "info", built / kind)
        assert result.exit_code == 0 and '"kind"' in result.output


def test_missing_index_folder(tmp_path):
    for command in (("search", tmp_path / "none", "rain"), ("info", tmp_path / "none")):
        assert_refused(invoke("index", *command), "E011", "none")


def _other_tiny_model(tmp_path: Path, tiny_xlmr_path: Path) -> Path:
    """The tiny model's layout with other (re-seeded) weights."""
    import torch
    from transformers import XLMRobertaModel

    other = tmp_path / "other-weights"
    shutil.copytree(tiny_xlmr_path, other)
    model = XLMRobertaModel.from_pretrained(other, add_pooling_layer=False)
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param))
    model.save_pretrained(other)
    return other


def test_multivector_search_honours_backbone(built, tmp_path, tiny_xlmr_path):
    """--backbone is where the encoder's backbone lives now: the same weights elsewhere
    search exactly as before; other weights are refused (E224), not silently ignored."""
    expected = invoke("index", "search", built / "multivector", "rain", "--json").output
    moved = tmp_path / "moved-backbone"
    shutil.copytree(tiny_xlmr_path, moved)
    result = invoke("index", "search", built / "multivector", "rain", "--json",
                    "--backbone", moved)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == expected.splitlines()[-1]
    other = _other_tiny_model(tmp_path, tiny_xlmr_path)
    result = invoke("index", "search", built / "multivector", "rain", "--backbone", other)
    assert_refused(result, "E224", str(other))
    result = invoke("index", "search", built / "multivector", "rain", "--backbone",
                    tmp_path / "nowhere")
    assert_refused(result, "E020", "nowhere")


def test_damaged_standalone_encoder(built, tmp_path):
    """A saved encoder given with --encoder: damage is E222 naming the file."""
    enc = tmp_path / "enc"
    shutil.copytree(built / "multivector" / "encoder", enc)
    flip(enc / "projection.safetensors")
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    before = snapshot(tmp_path)
    result = invoke("index", "build", "--kind", "multivector", "--encoder", enc, "--input", src,
                    "--out", tmp_path / "mv")
    assert_refused(result, "E222", "projection.safetensors")
    result = invoke("index", "build", "--kind", "multivector", "--encoder", tmp_path / "none",
                    "--input", src, "--out", tmp_path / "mv")
    assert_refused(result, "E225", "none")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- models and read-only home
def test_models_install_into_readonly_home(readonly_dir):
    result = invoke("models", "install", "me5-small", env={"XAPPS_HOME": str(readonly_dir)})
    assert_refused(result, "E068", str(readonly_dir), "XAPPS_HOME")
    assert not readonly_dir.exists()


def test_uninstalled_model_with_readonly_home_fails_before_work(tmp_path, readonly_dir):
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    before = snapshot(tmp_path)
    result = invoke("index", "build", "--input", src, "--out", tmp_path / "idx",
                    env={"XAPPS_HOME": str(readonly_dir)})
    assert_refused(result, "E068", "xapps models install me5-small")
    assert snapshot(tmp_path) == before


def home_with_tiny_me5(home: Path, tiny_xlmr_path: Path) -> Path:
    """An $XAPPS_HOME holding an installed 'me5-small' that is the tiny model under that name
    (with the installer's marker listing each file's sha256); returns the model folder."""
    from xapps.checksums import sha256_file

    model = home / "models" / "me5-small"
    shutil.copytree(tiny_xlmr_path, model)
    info = {"name": "me5-small", "pooling": "mean", "normalize": True,
            "files": {p.name: sha256_file(p) for p in model.iterdir() if p.is_file()}}
    (model / "xapps_model.json").write_text(json.dumps(info), encoding="utf-8")
    return model


@pytest.fixture()
def immutable_home(tmp_path, tiny_xlmr_path):
    """An $XAPPS_HOME holding an installed 'me5-small' (the tiny model under that name), made
    immutable (chattr +i) so that not even root can create a lock, cache or marker in it."""
    home = tmp_path / "home"
    model = home_with_tiny_me5(home, tiny_xlmr_path)
    locked = [model, model.parent, home]
    for folder in locked:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            for done in locked:
                subprocess.run(["chattr", "-i", str(done)], capture_output=True)
            pytest.skip("chattr +i is not available here")
    try:
        (home / ".probe").touch()
    except OSError:
        pass
    else:
        (home / ".probe").unlink()
        pytest.skip("chattr +i does not stop writes here (not root)")
    yield home
    for folder in locked:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


def test_readonly_home_does_not_break_reading_commands(tmp_path, immutable_home):
    env = {"XAPPS_HOME": str(immutable_home)}
    before = snapshot(immutable_home)
    result = invoke("models", "list", "--json", env=env)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output[result.output.index("["):])
    assert rows[0]["name"] == "me5-small" and rows[0]["installed"] is True
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    result = invoke("index", "build", "--input", src, "--out", tmp_path / "idx", env=env)
    assert result.exit_code == 0, result.output
    result = invoke("index", "search", tmp_path / "idx", "rain", "--json", env=env)
    assert result.exit_code == 0, result.output
    result = invoke("models", "install", "me5-small", env=env)  # already there: a no-op
    assert result.exit_code == 0, result.output
    assert snapshot(immutable_home) == before


# ------------------------------------------------------------------------- retrieval train
TRAIN_CASES = [
    ("missing", None, "E004", ["pairs.jsonl", "no such file"]),
    ("empty", "", "E120", ["pairs.jsonl", "no rows"]),
    ("malformed", '{"query": "q", "positive": "p"}\n{"query": \n', "E001", ["pairs.jsonl:2"]),
    ("missing-field", '{"query": "q"}\n', "E120", ["pairs.jsonl:1", "'positive'"]),
    ("non-utf8", '{"query": "q", "positive": "p"}\n'.encode() + b'{"query": "caf\xe9"}\n', "E120",
     ["pairs.jsonl:2", "not UTF-8"]),
]


@pytest.mark.parametrize("name,content,code,mentions", TRAIN_CASES,
                         ids=[c[0] for c in TRAIN_CASES])
def test_retrieval_train_refuses_bad_data(tmp_path, tiny_xlmr_path, name, content, code,
                                          mentions):
    data = tmp_path / "pairs.jsonl"
    if content is not None:
        write(data, content)
    before = snapshot(tmp_path)
    result = invoke("retrieval", "train", "--data", data, "--out", tmp_path / "enc",
                    "--backbone", tiny_xlmr_path, "--dim", 16, "--steps", 1, "--batch-size", 1)
    assert_refused(result, code, *mentions)
    assert snapshot(tmp_path) == before


def test_retrieval_train_refuses_unwritable_out(tmp_path, readonly_dir):
    data = write(tmp_path / "pairs.jsonl", '{"query": "q", "positive": "p"}\n')
    result = invoke("retrieval", "train", "--data", data, "--out", readonly_dir,
                    "--backbone", "no-such-model-anywhere")
    assert_refused(result, "E068", str(readonly_dir))


@pytest.mark.parametrize("fname,damage", [("model.safetensors", flip),
                                          ("tokenizer.json", truncate),
                                          ("config.json", Path.unlink)])
def test_damaged_installed_model_is_named_with_the_fix(tmp_path, tiny_xlmr_path, fname, damage):
    """A changed file of an installed model is E226 (it would otherwise load silently, and an
    index would record the installer's checksum for other weights)."""
    home = tmp_path / "home"
    model = home_with_tiny_me5(home, tiny_xlmr_path)
    damage(model / fname)
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    before = snapshot(tmp_path)
    result = invoke("index", "build", "--input", src, "--out", tmp_path / "idx",
                    env={"XAPPS_HOME": str(home)})
    assert_refused(result, "E226", fname, "xapps models install me5-small --force")
    assert snapshot(tmp_path) == before


def test_damaged_marker_is_listed_and_refused(tmp_path, tiny_xlmr_path):
    home = tmp_path / "home"
    model = home_with_tiny_me5(home, tiny_xlmr_path)
    truncate(model / "xapps_model.json")
    env = {"XAPPS_HOME": str(home)}
    result = invoke("models", "list", env=env)
    assert result.exit_code == 0 and "damaged" in result.output, result.output
    result = invoke("index", "search", tmp_path / "none", "q", env=env)  # E011 first, cheap
    assert_refused(result, "E011")
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    result = invoke("index", "build", "--input", src, "--out", tmp_path / "idx", env=env)
    assert_refused(result, "E226", "xapps_model.json")


def test_damaged_saved_model_folder_says_recopy(tmp_path, tiny_xlmr_path):
    """A model folder xapps saved (xapps_model.json lists its files, as `xapps link
    align-encoder` writes) is checked too; its fix is not a models install."""
    model = home_with_tiny_me5(tmp_path / "h", tiny_xlmr_path)
    flip(model / "model.safetensors")
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    result = invoke("index", "build", "--input", src, "--out", tmp_path / "idx",
                    "--backbone", model)
    out = assert_refused(result, "E226", "model.safetensors", "Re-copy the folder")
    assert "models install" not in out


def test_retriever_with_another_builds_index_is_a_mismatch_not_a_backbone_command(
        built, tmp_path, tiny_xlmr_path):
    """Intact files, but the index/ of another retriever (another projection): E223 says the
    encoder does not fit the index and how to rebuild; no `--backbone colbert:...` advice."""
    from xapps.retrieval.colbert import ColBERTConfig, ColBERTEncoder
    from xapps.retrieval.retriever import build_multivector_index

    other = ColBERTEncoder(ColBERTConfig(backbone=str(tiny_xlmr_path), dim=16, seed=1))
    build_multivector_index(built / "docs.jsonl", tmp_path / "other", encoder=other,
                            progress=False)
    mixed = tmp_path / "mixed"
    shutil.copytree(built / "multivector", mixed)
    shutil.rmtree(mixed / "index")
    shutil.copytree(tmp_path / "other" / "index", mixed / "index")
    out = assert_refused(invoke("index", "search", mixed, "rain"), "E223", str(mixed),
                         "--kind multivector --encoder")
    assert "[E010]" not in out and "--backbone colbert:" not in out


@pytest.mark.parametrize("kind", ["dense", "multivector"])
@pytest.mark.parametrize("target", ["folder", "file"])
def test_index_build_never_replaces_a_foreign_folder_or_file(tmp_path, tiny_xlmr_path, kind,
                                                             target):
    """Saving replaces the whole --out folder: a folder that is not an earlier index (a
    user's documents) or a file (the input itself) is refused before any work (E227)."""
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    out = tmp_path / "precious"
    if target == "folder":
        write(out / "thesis.txt", "years of work\n")
    else:
        out = src
    before = snapshot(tmp_path)
    result = invoke("index", "build", "--input", src, "--out", out, *kind_args(kind),
                    "--backbone", "no-such-model-anywhere")
    assert_refused(result, "E227", str(out))
    assert snapshot(tmp_path) == before


def test_retrieval_train_never_replaces_a_foreign_folder(tmp_path):
    data = write(tmp_path / "pairs.jsonl", '{"query": "q", "positive": "p"}\n')
    write(tmp_path / "precious" / "thesis.txt", "years of work\n")
    before = snapshot(tmp_path)
    result = invoke("retrieval", "train", "--data", data, "--out", tmp_path / "precious",
                    "--backbone", "no-such-model-anywhere")
    assert_refused(result, "E227", "precious", "colbert.json")
    assert snapshot(tmp_path) == before


def test_multivector_whose_backbone_moved_says_to_pass_backbone(tmp_path, tiny_xlmr_path):
    backbone = tmp_path / "backbone"
    shutil.copytree(tiny_xlmr_path, backbone)
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    result = invoke("index", "build", "--kind", "multivector", "--dim", 16, "--input", src,
                    "--out", tmp_path / "mv", "--backbone", backbone)
    assert result.exit_code == 0, result.output
    backbone.rename(tmp_path / "moved")
    from xapps.backbone import clear_cache

    clear_cache()
    assert_refused(invoke("index", "search", tmp_path / "mv", "rain"), "E020",
                   str(backbone), "--backbone FOLDER")
    result = invoke("index", "search", tmp_path / "mv", "rain", "--backbone", tmp_path / "moved")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args,options", [
    (("--kind", "dense", "--nbits", "4"), "--nbits"),
    (("--encoder", "enc", "--lang-field", "lang"), "--encoder, --lang-field"),
    (("--kind", "multivector", "--index-type", "hnsw"), "--index-type"),
    (("--kind", "multivector", "--encoder", "enc", "--dim", "8"), "--dim"),
])
def test_index_build_refuses_options_its_kind_would_ignore(tmp_path, args, options):
    """Mismatched options are refused before any work (E228), not silently ignored."""
    src = write(tmp_path / "docs.jsonl", jsonl(DOCS))
    before = snapshot(tmp_path)
    result = invoke("index", "build", "--input", src, "--out", tmp_path / "idx", *args,
                    "--backbone", "no-such-model-anywhere")
    assert_refused(result, "E228", options)
    assert snapshot(tmp_path) == before


def test_index_build_with_saved_encoder_honours_backbone(built, tmp_path, tiny_xlmr_path):
    """--encoder with an explicit --backbone: the encoder's backbone from its new place (the
    same weights, so the identity and the vectors are unchanged)."""
    moved = tmp_path / "moved"
    shutil.copytree(tiny_xlmr_path, moved)
    result = invoke("index", "build", "--kind", "multivector", "--input",
                    built / "docs.jsonl", "--encoder", built / "multivector" / "encoder",
                    "--backbone", moved, "--out", tmp_path / "mv")
    assert result.exit_code == 0, result.output
    again = json.loads((tmp_path / "mv" / "retriever.json").read_text())
    first = json.loads((built / "multivector" / "retriever.json").read_text())
    assert again["encoder"]["sha256"] == first["encoder"]["sha256"]
    other = _other_tiny_model(tmp_path, tiny_xlmr_path)
    result = invoke("index", "build", "--kind", "multivector", "--input",
                    built / "docs.jsonl", "--encoder", built / "multivector" / "encoder",
                    "--backbone", other, "--out", tmp_path / "mv2")
    assert_refused(result, "E224", str(other))
    assert not (tmp_path / "mv2").exists()


def test_index_search_refuses_lang_for_a_dense_index(built):
    result = invoke("index", "search", built / "dense", "rain", "--lang", "en")
    assert_refused(result, "E228", "--lang", "dense")


@pytest.mark.parametrize("args,code,mentions", [
    (("--encoder", "enc", "--dim", "8"), "E228", ["--dim"]),
    (("--pseudo", "title"), "E228", ["--pseudo", "--unlabeled"]),
    (("--distill-weight", "0.5"), "E228", ["--distill-weight", "--teacher"]),
    (("--adapter-langs", "de"), "E074", ["adapter_languages", "train='projection'"]),
])
def test_retrieval_train_refuses_options_it_would_ignore(tmp_path, args, code, mentions):
    data = write(tmp_path / "pairs.jsonl", '{"query": "q", "positive": "p"}\n')
    before = snapshot(tmp_path)
    result = invoke("retrieval", "train", "--data", data, "--out", tmp_path / "enc", *args,
                    "--backbone", "no-such-model-anywhere")
    assert_refused(result, code, *mentions)
    assert snapshot(tmp_path) == before


def test_rebuild_in_an_immutable_parent_is_refused_before_work(built, tmp_path):
    """An existing index is replaced by renaming it aside in its parent folder: a parent that
    cannot be written is refused up front (E068), not after the encoding."""
    parent = tmp_path / "locked"
    shutil.copytree(built / "dense", parent / "idx")
    if subprocess.run(["chattr", "+i", str(parent)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        before = snapshot(tmp_path)
        result = invoke("index", "build", "--input", built / "docs.jsonl", "--out",
                        parent / "idx", "--backbone", "no-such-model-anywhere")
        assert_refused(result, "E068", str(parent))
        assert snapshot(tmp_path) == before
    finally:
        subprocess.run(["chattr", "-i", str(parent)], capture_output=True)
