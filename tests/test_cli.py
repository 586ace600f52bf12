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


def test_help_and_version_import_no_heavy_library():
    """The root group is lazy: `xapps --help` / `--version` must not import torch, spaCy or
    transformers (they cost 2-3 s of start-up). Run in a fresh interpreter, as sys.modules
    of this test process already holds them."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from xapps.cli import main\n"
            "for args in (['--help'], ['--version']):\n"
            "    result = CliRunner().invoke(main, args)\n"
            "    assert result.exit_code == 0, result.output\n"
            "    assert 'Commands:' in result.output or 'version' in result.output\n"
            "print(sorted(m for m in ('torch', 'spacy', 'transformers', 'faiss') "
            "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_lazy_help_strings_match_the_commands():
    """The static short help of the lazy root group is each command's own first line, and
    every lazily listed subcommand resolves to a command of that name."""
    import click

    from xapps.cli import SUBCOMMANDS

    ctx = click.Context(main)
    assert set(main.list_commands(ctx)) == set(SUBCOMMANDS)
    for name, (_, static) in SUBCOMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None and command.name == name
        real = command.get_short_help_str(limit=1000)
        assert real.rstrip(".").startswith(static.rstrip(".")), (name, real, static)


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "xapps", "index", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "Build, search and inspect vector indexes." in out.stdout
