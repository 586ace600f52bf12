import subprocess
import sys

import pytest
import spacy

from xapps.languages import MISSING_ISO_639_1, blank


def test_spacy_blank_works_for_low_resource_codes():
    for code in ("sw", "ha", "ig", "zu", "qu"):
        nlp = spacy.blank(code)
        assert nlp.lang == code
    assert [t.text for t in spacy.blank("sw")("Mvua kubwa, sokoni.")] == [
        "Mvua", "kubwa", ",", "sokoni", "."]


def test_blank_registers_any_iso_639_3_code():
    nlp = blank("quz")  # Cusco Quechua, not an ISO 639-1 code
    assert nlp.lang == "quz" and len(nlp("Allinllachu kachkanki")) == 2
    assert blank("de").lang == "de"  # spaCy's own languages are left alone
    with pytest.raises(ValueError, match="'s w!' is not a language code"):
        blank("s w!")


def test_codes_do_not_shadow_spacy_languages():
    from pathlib import Path

    spacy_langs = {p.name for p in (Path(spacy.__file__).parent / "lang").iterdir()}
    assert not set(MISSING_ISO_639_1) & spacy_langs


def test_saved_swahili_pipeline_loads_in_a_fresh_process(tmp_path):
    nlp = spacy.blank("sw")
    nlp.add_pipe("sentencizer")
    nlp.to_disk(tmp_path / "sw")
    code = f"import spacy; nlp = spacy.load({str(tmp_path / 'sw')!r}); print(nlp.lang)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "sw"
