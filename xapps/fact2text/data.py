"""Facts and their verbalisations: readers for XAlign/XF2T JSONL, WebNLG XML (2020 and 2023
releases) and the JSONL layouts of the shared data, with entity strings normalised.

Every reader yields :class:`F2TExample` (facts, reference texts in one language, id), so
training, generation and evaluation never care where an example came from. WebNLG entries
have references in several languages; the reader yields one example per entry and
requested language (English references come from ``lex`` elements with an empty or "en"
``lang``).
"""
from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import Errors, InputError
from ..fileio import iter_lines


@dataclass(frozen=True)
class Fact:
    subject: str
    predicate: str
    object: str
    qualifiers: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict:
        out = {"subject": self.subject, "predicate": self.predicate, "object": self.object}
        if self.qualifiers:
            out["qualifiers"] = [{"predicate": p, "object": o} for p, o in self.qualifiers]
        return out


@dataclass
class F2TExample:
    facts: list[Fact]
    texts: list[str] = field(default_factory=list)  # references; empty when generating
    lang: str = "en"
    id: str = ""
    meta: dict = field(default_factory=dict)


_XSD = re.compile(r'^"?(.*?)"?\^\^(?:xsd:|<http://www\.w3\.org/2001/XMLSchema#)\w+>?$')
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalize_entity(value: str) -> str:
    """``Alpena_County,_Michigan`` -> ``Alpena County, Michigan``; ``"2702.0"^^xsd:double``
    -> ``2702.0``; surrounding quotes dropped."""
    value = value.strip()
    match = _XSD.match(value)
    if match:
        value = match.group(1)
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return re.sub(r"\s+", " ", value.replace("_", " ")).strip()


def normalize_predicate(value: str) -> str:
    """``elevationAboveTheSeaLevel`` -> ``elevation above the sea level``; Wikidata labels
    (``date of birth``) stay as they are."""
    value = value.strip().replace("_", " ")
    if " " not in value:
        value = _CAMEL.sub(" ", value).lower()
    return re.sub(r"\s+", " ", value).strip()


def make_fact(subject: str, predicate: str, obj: str,
              qualifiers: Iterable[tuple[str, str]] = ()) -> Fact:
    return Fact(normalize_entity(subject), normalize_predicate(predicate), normalize_entity(obj),
                tuple((normalize_predicate(p), normalize_entity(o)) for p, o in qualifiers))


def _bad(where: str, reason: str, expected: str) -> InputError:
    return InputError(Errors.E190.format(where=where, reason=reason, expected=expected))


_EXPECTED_FACT = ('a fact {"subject", "predicate", "object", "qualifiers"?} or a '
                  "[subject, predicate, object] list")


def _fact(value, where: str) -> Fact:
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(
            isinstance(x, str) for x in value):
        return make_fact(*value)
    if isinstance(value, dict) and all(isinstance(value.get(k), str)
                                       for k in ("subject", "predicate", "object")):
        quals = []
        for q in value.get("qualifiers") or []:
            if isinstance(q, dict) and isinstance(q.get("predicate"), str) and isinstance(
                    q.get("object"), str):
                quals.append((q["predicate"], q["object"]))
            elif isinstance(q, (list, tuple)) and len(q) == 2:
                quals.append((str(q[0]), str(q[1])))
            else:
                raise _bad(where, f"qualifier {q!r} is not {{predicate, object}}", _EXPECTED_FACT)
        return make_fact(value["subject"], value["predicate"], value["object"], quals)
    raise _bad(where, f"{value!r} is not a fact", _EXPECTED_FACT)


def facts_from_json(value, where: str, strict: bool = True) -> list[Fact]:
    """The facts of a record. ``strict=False`` skips incomplete facts (the Hindi gold set has
    95 triples without predicate or object among 2,246) instead of raising."""
    if not isinstance(value, list) or not value:
        raise _bad(where, "the facts are not a non-empty list", _EXPECTED_FACT)
    if strict:
        return [_fact(v, where) for v in value]
    out = []
    for v in value:
        try:
            out.append(_fact(v, where))
        except InputError:
            continue
    if not out:
        raise _bad(where, "no complete fact", _EXPECTED_FACT)
    return out


def _example_from_json(obj, where: str, default_lang: str | None,
                       strict: bool = True) -> F2TExample:
    """XAlign (``sentence``, ``facts``, ``language``), the shared WebNLG JSONL (``triples``,
    ``texts``, ``lang``) and the Hindi layouts (``triples``/``all_triples``, ``sentence``)."""
    if not isinstance(obj, dict):
        raise _bad(where, f"a JSON {type(obj).__name__}, not an object",
                   "an object with facts/triples and sentence/texts")
    key = next((k for k in ("facts", "triples", "all_triples") if k in obj), None)
    if key is None:
        raise _bad(where, f"no 'facts' or 'triples' (fields: {', '.join(sorted(obj))})",
                   "an object with facts/triples and sentence/texts")
    facts = facts_from_json(obj[key], where, strict)
    texts = obj.get("texts")
    if texts is None:
        texts = [obj["sentence"]] if isinstance(obj.get("sentence"), str) else []
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise _bad(where, "'texts' is not a list of strings", "texts: [str, ...]")
    lang = obj.get("lang") or obj.get("language") or default_lang or "en"
    meta = {k: v for k, v in obj.items()
            if k in ("category", "size", "entity_id", "shape", "shape_type")}
    return F2TExample(facts, [t.strip() for t in texts if t.strip()], str(lang),
                      str(obj.get("id") or obj.get("entity_id") or where), meta)


def read_jsonl(path: str | os.PathLike, lang: str | None = None,
               strict: bool = True) -> Iterator[F2TExample]:
    path = Path(path)
    for lineno, line in iter_lines(path, lambda w, r: InputError(
            Errors.E004.format(path=w, reason=r))):
        if line.strip():
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(Errors.E001.format(where=where, reason=exc.msg)) from None
            yield _example_from_json(obj, where, lang, strict)


def read_json_dict(path: str | os.PathLike, lang: str | None = None,
                   strict: bool = True) -> Iterator[F2TExample]:
    """A JSON object of id -> example, or a list of examples (the Hindi gold files)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(Errors.E001.format(where=f"{path}:{exc.lineno}", reason=exc.msg)) from None
    except UnicodeDecodeError as exc:
        raise InputError(Errors.E004.format(path=path, reason=f"not UTF-8 text ({exc.reason} "
                                            f"at byte {exc.start})")) from None
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, obj in items:
        example = _example_from_json(obj, f"{path}[{key}]", lang, strict)
        example.id = str(key) if isinstance(data, dict) else example.id
        yield example


def read_webnlg_xml(path: str | os.PathLike, langs: Iterable[str] = ("en",),
                    ) -> Iterator[F2TExample]:
    """One example per entry and language of ``langs`` that has references in it (modified
    triples; ``lex`` with lang "" is English)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise _bad(str(path), f"not valid XML ({exc})", "a WebNLG benchmark XML file") from None
    langs = list(langs)
    for entry in root.iter("entry"):
        eid = entry.get("eid", "")
        where = f"{path} entry {eid}"
        triples = [t.text or "" for t in entry.iter("mtriple")]
        facts = []
        for t in triples:
            parts = [p.strip() for p in t.split("|")]
            if len(parts) != 3:
                raise _bad(where, f"triple {t!r} is not 'subject | predicate | object'",
                           "WebNLG mtriple elements")
            facts.append(make_fact(*parts))
        by_lang: dict[str, list[str]] = {}
        for lex in entry.iter("lex"):
            lang = lex.get("lang") or "en"
            if lex.text and lex.text.strip():
                by_lang.setdefault(lang, []).append(lex.text.strip())
        for lang in langs:
            if by_lang.get(lang):
                yield F2TExample(facts, by_lang[lang], lang, f"{path.stem}/{eid}",
                                 {"category": entry.get("category"),
                                  "size": int(entry.get("size", len(facts)))})


def read_examples(path: str | os.PathLike, lang: str | None = None,
                  langs: Iterable[str] | None = None, strict: bool = True) -> list[F2TExample]:
    """Any supported file, by its ending: .jsonl (XAlign, WebNLG JSONL, Hindi), .json (a
    dict or list of examples), .xml (WebNLG; ``langs`` picks the reference languages)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(Errors.E004.format(path=path, reason="it is a folder, not a file"
                                            if path.is_dir() else "no such file"))
    suffix = [s.lower() for s in path.suffixes if s.lower() != ".gz"][-1:] or [""]
    if suffix[0] in (".jsonl", ".ndjson"):
        return list(read_jsonl(path, lang, strict))
    if suffix[0] == ".json":
        return list(read_json_dict(path, lang, strict))
    if suffix[0] == ".xml":
        return list(read_webnlg_xml(path, langs or ([lang] if lang else ["en"])))
    raise InputError(Errors.E004.format(path=path, reason=f"unknown file type {suffix[0]!r}"))
