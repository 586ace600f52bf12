"""Blank spaCy languages for the codes spaCy has no module for (Swahili, Hausa, Igbo, Zulu,
Quechua, ...), so ``spacy.blank(code)`` works for the low-resource languages xapps is for.

They use spaCy's language-neutral defaults (the tokenizer of ``xx``). pyproject.toml lists
each ISO 639-1 code below under the ``spacy_languages`` entry point, so a pipeline saved with
one of these codes loads with ``spacy.load`` without ``import xapps``. For any other code,
:func:`blank` registers a class on the fly.
"""
from __future__ import annotations

from spacy.lang.xx import MultiLanguage
from spacy.language import Language
from spacy.util import get_lang_class, registry

# ISO 639-1 codes that spaCy 3.8 has no language module for (checked against spacy/lang/).
MISSING_ISO_639_1 = (
    "aa ab ae ak an as av ay ba be bh bi bm br bs ce ch co cr cu cv cy dv dz ee eo ff fj fy "
    "gl gn gv ha ho ia ie ig ii ik io iu jv ka kg ki kj kk kl km kr ks ku kv kw li ln "
    "lo lu mg mh mi mn mt my na nd ng nr nv ny oc oj om or os pa pi ps qu rm rn rw sc sd se "
    "sg sm sn so ss st su sw tg tk to ts tw ty ug uz ve vo wa wo xh yi za zu"
).split()


def _make(code: str) -> type[Language]:
    defaults = type(f"Defaults_{code}", (MultiLanguage.Defaults,), {})
    return type(f"Lang_{code}", (Language,), {"lang": code, "Defaults": defaults,
                                              "__module__": __name__})


for _code in MISSING_ISO_639_1:
    globals()[f"Lang_{_code}"] = _make(_code)


def blank(lang: str) -> Language:
    """``spacy.blank(lang)`` that also works for codes spaCy does not know (any ISO 639 code):
    those get language-neutral tokenisation."""
    try:
        get_lang_class(lang)
    except ImportError:
        if not lang.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"'{lang}' is not a language code. Use an ISO 639 code such as "
                             "'sw', 'hau' or 'quz'.") from None
        registry.languages.register(lang, func=globals().get(f"Lang_{lang}") or _make(lang))
    import spacy

    return spacy.blank(lang)
