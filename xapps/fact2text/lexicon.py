"""How a language writes the entity words of the facts, learned from its training examples.

Facts often name entities in English (Wikidata labels) while the references write them in
the target language's own form or script: ``Biswas`` is ``बिस्वास`` in Hindi. A word of a fact's subject or object and a word of the reference with
the same romanised consonant skeleton (:func:`~xapps.fact2text.evaluate.skeleton`) are
counted as one rendering when the reference word is in another script (within one script,
equal skeletons are mostly different words); generation then writes each entity word as its most frequent
rendering, and leaves unseen words as they are.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

from .data import F2TExample
from .evaluate import skeleton

# words with their combining marks (Devanagari vowel signs are not \w in Python's re)
_WORD = re.compile(r"(?:\w|[\u0300-\u036f\u0900-\u0dff\u1000-\u109f])+", re.UNICODE)


class EntityLexicon:
    def __init__(self) -> None:
        self.renderings: dict[str, Counter] = {}

    def __len__(self) -> int:
        return len(self.renderings)

    def learn(self, examples: Sequence[F2TExample]) -> "EntityLexicon":
        for ex in examples:
            words = {w for f in ex.facts for e in (f.subject, f.object)
                     for w in _WORD.findall(e) if not w.isdigit()}
            if not words:
                continue
            by_skeleton: dict[str, set[str]] = {}
            for text in ex.texts:
                for token in _WORD.findall(text):
                    by_skeleton.setdefault(skeleton(token), set()).add(token)
            for word in words:
                skel = skeleton(word)
                if len(skel) < 2:
                    continue
                for token in by_skeleton.get(skel, ()):
                    # another script only: within one script, words with one skeleton are
                    # mostly different words (measured: English BLEU 43.8 -> 30.5)
                    if token != word and not any("a" <= c.lower() <= "z" for c in token):
                        self.renderings.setdefault(word, Counter())[token] += 1
        return self

    def render(self, entity: str) -> str:
        """``entity`` with each learned word replaced by its most frequent rendering."""
        def one(match: re.Match) -> str:
            options = self.renderings.get(match.group(0))
            return options.most_common(1)[0][0] if options else match.group(0)

        return _WORD.sub(one, entity)
