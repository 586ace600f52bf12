"""Entity-ruler patterns from a knowledge base's names: the mention finder that ships with the
linking pipeline (pipelines/medlink_me5.cfg), so that the pipeline finds entities on its own,
without an NER model trained for the language.

The linker fills an entity_ruler with them at initialize when its config names one
(``ruler = "entity_ruler"``), so the KB matched is the linker's own, however it was set
(``--set components.xmen_linker.kb=...``). ``xapps.KBPatterns.v1`` (spaCy's ``misc``
registry) gives the same patterns to any ruler's ``patterns`` at initialize, from a KB path.

Phrase patterns are matched on the ruler's ``phrase_matcher_attr`` (``LOWER`` in the shipped
config: case-insensitive).
"""
from __future__ import annotations

from typing import Optional

from spacy.util import registry

from ..errors import Errors, InputError

#: Label of the mentions the KB's names find, and the shortest name matched: two-letter
#: abbreviations match ordinary words of many languages.
LABEL = "ENTITY"
MIN_CHARS = 3


@registry.misc("xapps.KBPatterns.v1")
def kb_patterns(kb: Optional[str] = None, label: str = LABEL, min_chars: int = MIN_CHARS,
                langs: Optional[list[str]] = None) -> list[dict]:
    """Patterns (see :func:`patterns_from_kb`) of the KB at ``kb`` (a KB .jsonl or a folder
    from `xapps kb build`), for an entity_ruler's ``patterns`` at initialize."""
    from .component import _load_kb

    if not kb:
        raise InputError(Errors.E255.format(
            what="xapps.KBPatterns.v1", reason="no knowledge base is given (kb is null)",
            fix="Set kb to a KB .jsonl file or a folder from `xapps kb build`."))
    return patterns_from_kb(_load_kb(kb), label=label, min_chars=min_chars, langs=langs,
                            where=f"xapps.KBPatterns.v1 on '{kb}'")


def patterns_from_kb(kb, *, label: str = LABEL, min_chars: int = MIN_CHARS,
                     langs: Optional[list[str]] = None, where: str = "KB patterns") -> list[dict]:
    """One phrase pattern ``{"label", "pattern", "id"}`` per distinct name (canonical name
    and aliases, compared case-insensitively) of ``kb``, the concept id as the pattern id;
    ``langs`` keeps only aliases in those languages (and the canonical names). E255 when no
    pattern results: the pipeline could never find an entity."""
    if not isinstance(min_chars, int) or min_chars < 1:
        raise InputError(Errors.E074.format(what=f"{where}: min_chars", value=min_chars,
                                            expected="an int >= 1"))
    keep = {code.lower() for code in langs} if langs else None
    patterns: list[dict] = []
    seen: set[str] = set()
    for concept in kb:
        names = [concept.canonical_name] + [a.text for a in concept.aliases
                                            if keep is None or (a.lang or "") in keep]
        for name in names:
            text = " ".join(name.split())
            key = text.lower()
            if len(text) < min_chars or key in seen:
                continue
            seen.add(key)
            patterns.append({"label": label, "pattern": text, "id": concept.concept_id})
    if not patterns:
        raise InputError(Errors.E255.format(
            what=where, reason=f"the KB '{kb.name}' has no name of at least {min_chars} "
                               "characters" + (f" in the languages {', '.join(sorted(keep))}"
                                               if keep else ""),
            fix="Use a KB with names (`xapps kb info` shows them), lower min_chars or widen "
                "langs."))
    return patterns
