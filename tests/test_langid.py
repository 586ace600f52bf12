"""Per-text language identification with langid's bundled model (offline)."""
from __future__ import annotations

import pytest

from xapps.errors import InputError
from xapps.langid import LanguageIdentifier, default_identifier

SENTENCES = {
    "en": "The weather is lovely today, so we are walking to the park with the children.",
    "de": "Das Wetter ist heute herrlich, deshalb gehen wir mit den Kindern in den Park.",
    "ru": "Сегодня прекрасная погода, поэтому мы идём с детьми в парк.",
    "zh": "今天天气很好，所以我们带着孩子们去公园散步。",
}


@pytest.fixture(scope="module")
def identifier():
    return default_identifier()


def test_detects_each_text_on_its_own_deterministically(identifier):
    texts = list(SENTENCES.values())
    assert identifier.detect(texts) == list(SENTENCES)
    assert identifier.detect(texts[::-1]) == list(SENTENCES)[::-1]
    assert default_identifier() is identifier


def test_texts_without_letters_are_undetermined(identifier):
    assert identifier.detect(["", "   \n", "12345", "3.14 / 42 !"]) == ["und"] * 4
    assert identifier.detect([]) == []


def test_candidates_restrict_the_labels_without_touching_other_instances(identifier):
    narrow = LanguageIdentifier(candidates=["DE", "fr"])
    assert narrow.candidates == ["de", "fr"]
    # English is not a label any more: the closest candidate wins.
    assert narrow.detect([SENTENCES["en"], SENTENCES["de"], "7"]) == ["de", "de", "und"]
    assert identifier.detect([SENTENCES["en"]]) == ["en"]
    assert len(identifier.candidates) > 90


def test_bad_inputs_name_the_fix(identifier):
    with pytest.raises(InputError, match="'xx'.*langid's codes"):
        LanguageIdentifier(candidates=["de", "xx"])
    with pytest.raises(InputError, match="wrap one code"):
        LanguageIdentifier(candidates="de")
    with pytest.raises(InputError, match="wrap one text"):
        identifier.detect("one string")
    with pytest.raises(InputError, match="row 1"):
        identifier.detect(["fine", 3])
