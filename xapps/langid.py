"""Language identification per text, offline: ISO 639-1 codes from the `langid` package's
model (97 languages; the model ships inside the package, nothing is downloaded).

Used to route each query and each document to its own language's adapter
(:mod:`xapps.adapters`) when the caller does not say which language a text is in.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

from .errors import Errors, InputError

#: The code for a text with no letters (empty, whitespace, digits or punctuation only).
UNDETERMINED = "und"
#: langid's character n-gram evidence settles long before this; a long document is identified
#: by its start, which keeps detection cost flat in the document length.
MAX_CHARS = 4096


class LanguageIdentifier:
    """``detect(texts)`` gives one ISO 639-1 code per text, deterministic, or ``"und"`` for a
    text without letters. ``candidates`` restricts the labels to those codes (langid's
    ``set_languages``), e.g. the languages a corpus is known to contain."""

    def __init__(self, candidates: Sequence[str] | None = None) -> None:
        from langid.langid import LanguageIdentifier as LangidModel
        from langid.langid import model

        # An instance of our own: restricting its labels must not change langid's global
        # classifier, which other code in the process may use. norm_probs=False: only the
        # best label is used, so the probability normalisation would be wasted work.
        self._model = LangidModel.from_modelstring(model, norm_probs=False)
        if candidates is not None:
            self._model.set_languages(_check_candidates(candidates, self._model.nb_classes))
        #: The labels ``detect`` chooses from, sorted.
        self.candidates: list[str] = sorted(self._model.nb_classes)

    def detect(self, texts: Sequence[str]) -> list[str]:
        if isinstance(texts, str):
            raise InputError(Errors.E074.format(
                what="LanguageIdentifier.detect texts", value=texts[:40],
                expected="a list of strings; wrap one text: [text]"))
        codes = []
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise InputError(Errors.E074.format(
                    what=f"LanguageIdentifier.detect text at row {row}",
                    value=type(text).__name__, expected="a str"))
            if any(ch.isalpha() for ch in text):
                codes.append(str(self._model.classify(text[:MAX_CHARS])[0]))
            else:
                codes.append(UNDETERMINED)
        return codes

    def __repr__(self) -> str:
        return f"LanguageIdentifier({len(self.candidates)} languages)"


@functools.cache
def default_identifier() -> LanguageIdentifier:
    """One unrestricted identifier per process: building one decodes langid's model (~1 s)."""
    return LanguageIdentifier()


def _check_candidates(candidates: Sequence[str], supported: Sequence[str]) -> list[str]:
    if isinstance(candidates, str):
        raise InputError(Errors.E074.format(
            what="LanguageIdentifier candidates", value=candidates,
            expected="a list of ISO 639-1 codes; wrap one code: [code]"))
    codes = sorted({str(code).strip().lower() for code in candidates})
    unknown = [code for code in codes if code not in supported]
    if not codes or unknown:
        raise InputError(Errors.E058.format(
            what="LanguageIdentifier candidates", value=unknown or list(candidates),
            expected=f"one or more of langid's codes: {', '.join(sorted(supported))}",
            fix="Drop the codes langid does not know (their texts get the closest known "
                "language), or pass candidates=None for all of them."))
    return codes
