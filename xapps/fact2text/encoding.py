"""Structure-aware input encoding: facts linearised with role markers and a target-language
tag, plus per-token role and fact-index ids for the fact-aware embeddings.

``<2cy> <H> Aarhus <R> leader <T> Jacob Bundsgaard <Q> start time <T> 2010 <H> ...``

Every subword of the linearised text gets the role of the piece it came from (0 the language
tag and markers, 1 head, 2 relation, 3 tail, 4 qualifier) and the 1-based index of its fact
(0 outside facts), found from the tokenizer's character offsets, so any Hugging Face fast
tokenizer works.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .data import Fact

ROLE_NONE, ROLE_HEAD, ROLE_RELATION, ROLE_TAIL, ROLE_QUALIFIER = range(5)
N_ROLES = 5
MARKERS = {ROLE_HEAD: "<H>", ROLE_RELATION: "<R>", ROLE_TAIL: "<T>", ROLE_QUALIFIER: "<Q>"}


def lang_tag(lang: str) -> str:
    return f"<2{lang}>"


@dataclass
class LinearisedFacts:
    text: str
    #: (start, end, role, fact index) of each piece of ``text`` (markers have role 0)
    pieces: list[tuple[int, int, int, int]]


def linearise(facts: Sequence[Fact], lang: str) -> LinearisedFacts:
    """The facts as one string, with the character span, role and fact of every piece."""
    parts: list[str] = []
    pieces: list[tuple[int, int, int, int]] = []
    pos = 0

    def add(text: str, role: int, fact: int) -> None:
        nonlocal pos
        if parts:
            parts.append(" ")
            pos += 1
        parts.append(text)
        pieces.append((pos, pos + len(text), role, fact))
        pos += len(text)

    add(lang_tag(lang), ROLE_NONE, 0)
    for i, fact in enumerate(facts, start=1):
        add(MARKERS[ROLE_HEAD], ROLE_NONE, i)
        add(fact.subject, ROLE_HEAD, i)
        add(MARKERS[ROLE_RELATION], ROLE_NONE, i)
        add(fact.predicate, ROLE_RELATION, i)
        add(MARKERS[ROLE_TAIL], ROLE_NONE, i)
        add(fact.object, ROLE_TAIL, i)
        for predicate, obj in fact.qualifiers:
            add(MARKERS[ROLE_QUALIFIER], ROLE_NONE, i)
            add(predicate, ROLE_QUALIFIER, i)
            add(MARKERS[ROLE_TAIL], ROLE_NONE, i)
            add(obj, ROLE_QUALIFIER, i)
    return LinearisedFacts("".join(parts), pieces)


def token_roles(lin: LinearisedFacts, offsets: Sequence[tuple[int, int]],
                max_facts: int) -> tuple[list[int], list[int]]:
    """Role and fact ids for tokens with character ``offsets`` into ``lin.text`` (special
    tokens, offsets (0, 0), get 0); facts beyond ``max_facts`` share the last index."""
    roles, facts = [], []
    j = 0
    for start, end in offsets:
        if end <= start:
            roles.append(ROLE_NONE)
            facts.append(0)
            continue
        while j + 1 < len(lin.pieces) and lin.pieces[j][1] <= start:
            j += 1
        p_start, p_end, role, fact = lin.pieces[j]
        inside = p_start <= start < p_end or (start < p_end and end > p_start)
        roles.append(role if inside else ROLE_NONE)
        facts.append(min(fact, max_facts) if inside else 0)
    return roles, facts
