"""Projection file formats: labelled sources (CoNLL, span JSONL, BigBIO KB, spaCy DocBin),
their translations (plain text, CoNLL, JSONL) and projected results (the four source formats).

Formats come from the file name (:data:`SUFFIXES`, ``.gz`` read too) unless named. Readers
stream, except where the format is one object (a BigBIO ``.json`` list, a DocBin), and their
errors name file:line. Writers are atomic: a failed write leaves no output and an existing
file unchanged.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin

from .. import extensions
from ..errors import Errors, InputError
from ..fileio import atomic_file, iter_json_lines, iter_lines
from ..linking.data import Document, Entity, read_bigbio_kb, write_bigbio_kb
from .types import LabeledSpan, ProjectionPair, ProjectionResult

logger = logging.getLogger("xapps")

Offsets = list[tuple[int, int]]

#: File-name ending -> format. ``.bigbio.jsonl`` is BigBIO; a plain ``.jsonl`` is span JSONL.
SUFFIXES = {".conll": "conll", ".bio": "conll", ".iob": "conll", ".tsv": "conll",
            ".jsonl": "jsonl", ".json": "bigbio", ".bigbio.jsonl": "bigbio",
            ".spacy": "docbin", ".docbin": "docbin", ".txt": "txt"}
SOURCE_FORMATS = ("conll", "jsonl", "bigbio", "docbin")
TARGET_FORMATS = ("txt", "conll", "jsonl")
OUTPUT_FORMATS = SOURCE_FORMATS

_PREFIXES = frozenset("BIESLU")
_CONLL = "CoNLL: a token and its tag per line, a blank line between sentences"
_SOURCE_JSONL = ('one object per line: {"id": str (optional), "text": str, "spans" (or '
                 '"entities"): [{"start": int, "end": int, "label": str}], "translation": str '
                 '(optional), "words" and "translation_words": [[start, end], ...] (optional)}')
_TARGET_JSONL = ('one object per line: {"text" (or "translation"): str, "words": [[start, end], '
                 '...] (optional)}')


# ------------------------------------------------------------------------------ formats


def _format_of(path: Path, fmt: str | None, allowed: Sequence[str], role: str, *,
               gz: bool) -> str:
    if fmt is None:
        name = path.name.lower()
        if gz and name.endswith(".gz"):
            name = name[:-3]
        ending = next((s for s in sorted(SUFFIXES, key=len, reverse=True) if name.endswith(s)),
                      None)
        fmt = SUFFIXES.get(ending or "")
        reason = (f"{fmt} is not a {role} format" if fmt else
                  f"the ending {Path(name).suffix or '(none)'!r} is not a known one")
    else:
        reason = f"unknown format {fmt!r}"
    if fmt in allowed:
        return fmt
    suffixes = ", ".join(f"{s} ({f})" for s, f in SUFFIXES.items() if f in allowed)
    raise InputError(Errors.E132.format(role=role, path=path, reason=reason,
                                        suffixes=suffixes + (", each also .gz" if gz else ""),
                                        formats=", ".join(allowed)))


def output_format(path: str | os.PathLike, fmt: str | None = None) -> str:
    """The format :func:`write_results` writes to ``path``: ``fmt``, else the file ending
    (no ``.gz``: output is written plain)."""
    return _format_of(Path(path), fmt, OUTPUT_FORMATS, "output", gz=False)


def _lines(path: Path, expected: str) -> Iterator[tuple[int, str]]:
    lines = iter_lines(path, lambda where, reason: InputError(
        Errors.E059.format(path=where, reason=reason, expected=expected)))
    for lineno, line in lines:
        yield lineno, (line.lstrip("\ufeff") if lineno == 1 else line)


# ---------------------------------------------------------------------------------- BIO


def bio_to_spans(tags: Sequence[str], where: str = "") -> list[tuple[int, int, str]]:
    """``(start_word, end_word_exclusive, label)`` of IOB2, IOB1, BIOES or BILOU tags.

    Read leniently as seqeval's default mode does, so every scheme decodes the same way: an
    I-/E- tag after O or after another type starts an entity. E130 names ``where`` and the
    tag number of an unknown tag.

    >>> bio_to_spans(["B-PER", "I-PER", "O", "I-LOC", "S-ORG"])
    [(0, 2, 'PER'), (3, 4, 'LOC'), (4, 5, 'ORG')]
    """
    return _chunks(tags, lambda i: f"{where}, tag {i + 1}" if where else f"tag {i + 1}")


def _chunks(tags: Sequence[str], where_of: Callable[[int], str]) -> list[tuple[int, int, str]]:
    spans: list[tuple[int, int, str]] = []
    start, label = -1, ""  # the open entity; start -1 when there is none
    for i, tag in enumerate(tags):
        prefix, sep, kind = tag.partition("-")
        if tag != "O" and (not sep or prefix not in _PREFIXES or not kind):
            raise InputError(Errors.E130.format(where=where_of(i), tag=tag))
        if start >= 0 and not (kind == label and prefix in ("I", "E", "L")):
            spans.append((start, i, label))
            start = -1
        if tag == "O":
            continue
        if start < 0:
            start, label = i, kind
        if prefix in ("E", "L", "S", "U"):
            spans.append((start, i + 1, label))
            start = -1
    if start >= 0:
        spans.append((start, len(tags), label))
    return spans


def spans_to_bio(n_words: int, spans: Iterable[tuple[int, int, str]],
                 where: str = "") -> list[str]:
    """IOB2 tags for ``n_words`` words; E137 if a span is empty, unlabelled, outside the words
    or overlaps another (CoNLL has one tag per word)."""
    tags = ["O"] * n_words
    for start, end, label in sorted(spans):
        inside = 0 <= start < end <= n_words
        problem = (f"is empty or not inside the {n_words} words" if not inside else
                   "has no label" if not label else
                   "overlaps another span" if any(t != "O" for t in tags[start:end]) else "")
        if problem:
            raise InputError(Errors.E137.format(
                where=where or "spans", reason=f"word span {start}-{end} {label!r} {problem}",
                format="CoNLL"))
        tags[start:end] = [f"B-{label}"] + [f"I-{label}"] * (end - start - 1)
    return tags


# -------------------------------------------------------------------------------- CoNLL


@dataclass
class ConllSentence:
    """A CoNLL sentence as text: the tokens joined by one space, ``words`` their character
    offsets in ``text`` and ``spans`` the decoded tags in those offsets."""

    tokens: list[str]
    tags: list[str]
    text: str
    words: Offsets
    spans: list[LabeledSpan]
    line: int = field(default=0, compare=False)  # of the first token


def read_conll(path: str | os.PathLike) -> Iterator[ConllSentence]:
    """Yield the sentences of a CoNLL file: token in the first column, tag in the last (tab
    separated, else whitespace); a 1-column line is a token tagged O (an unlabelled target).
    ``-DOCSTART-`` lines and ``#`` comment lines before a sentence are skipped, so a sentence
    cannot start with a space-separated token ``#`` (``#<TAB>tag`` is a token)."""
    path = Path(path)
    for first, tokens, tags in _conll_blocks(path):
        text, words = _join(tokens)
        chunks = _chunks(tags, lambda i, first=first: f"{path}:{first + i}")
        spans = [LabeledSpan(words[s][0], words[e - 1][1], label) for s, e, label in chunks]
        yield ConllSentence(tokens, tags, text, words, spans, first)


def _conll_blocks(path: Path) -> Iterator[tuple[int, list[str], list[str]]]:
    """(line of the first token, tokens, tags) per sentence; tags are not checked here."""
    first, tokens, tags = 0, [], []
    for lineno, line in _lines(path, _CONLL):
        line = line.rstrip()
        if not line.strip() or line.startswith("-DOCSTART-"):
            if tokens:
                yield first, tokens, tags
                first, tokens, tags = 0, [], []
            continue
        if not tokens and line.startswith("#") and not line.startswith("#\t"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        token = fields[0].strip()
        if not token:
            raise InputError(Errors.E131.format(where=f"{path}:{lineno}",
                                                reason="the token (first column) is empty"))
        first = first or lineno
        tokens.append(token)
        tags.append(fields[-1].strip() if len(fields) > 1 else "O")
    if tokens:
        yield first, tokens, tags


def _join(tokens: list[str]) -> tuple[str, Offsets]:
    words, pos = [], 0
    for token in tokens:
        words.append((pos, pos + len(token)))
        pos += len(token) + 1
    return " ".join(tokens), words


# ------------------------------------------------------------------------------ targets


def read_targets(path: str | os.PathLike,
                 fmt: str | None = None) -> Iterator[tuple[str, Offsets | None]]:
    """Yield target sentences as ``(text, words)``: ``.txt`` one per line (words None),
    CoNLL tokens (tags ignored), or JSONL ``text`` (or ``translation``) with optional
    ``words``. An empty sentence is an error (E136): nothing can be projected onto it; blank
    lines at the end of a ``.txt`` file are ignored."""
    path = Path(path)
    fmt = _format_of(path, fmt, TARGET_FORMATS, "target", gz=True)
    if fmt == "txt":
        return _txt_targets(path)
    if fmt == "conll":
        return (_join(tokens) for _, tokens, _ in _conll_blocks(path))
    return _jsonl_targets(path)


def _txt_targets(path: Path) -> Iterator[tuple[str, None]]:
    blank = 0  # a blank line is an error only once a sentence follows it
    for lineno, line in _lines(path, "UTF-8 text, one sentence per line"):
        text = line.rstrip("\r\n")
        if not text.strip():
            blank = blank or lineno
            continue
        if blank:
            raise InputError(Errors.E136.format(where=f"{path}:{blank}"))
        yield text, None


def _jsonl_targets(path: Path) -> Iterator[tuple[str, Offsets | None]]:
    for where, obj in iter_json_lines(path, _lines(path, _TARGET_JSONL)):
        field = "translation" if isinstance(obj, dict) and "text" not in obj else "text"
        text = obj.get(field) if isinstance(obj, dict) else None
        if not isinstance(text, str):
            raise _bad(where, "field 'text' (or 'translation') is missing or not a string",
                       _TARGET_JSONL)
        if not text.strip():
            raise InputError(Errors.E136.format(where=where))
        yield text, _offsets(obj.get("words"), "words", text, where, _TARGET_JSONL)


def _bad(where: str, reason: str, expected: str) -> InputError:
    return InputError(Errors.E133.format(where=where, reason=reason, expected=expected))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _offsets(value: object, field: str, text: str, where: str,
             expected: str) -> Offsets | None:
    """Word offsets of ``text``: in order, non-empty, not overlapping."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _bad(where, f"field '{field}' is not a list", expected)
    words: Offsets = []
    for k, pair in enumerate(value):
        ok = (isinstance(pair, list) and len(pair) == 2 and all(_is_int(x) for x in pair)
              and (words[-1][1] if words else 0) <= pair[0] < pair[1] <= len(text))
        if not ok:
            raise _bad(where, f"'{field}[{k}]' = {pair!r} is not [start, end] with start < end, "
                              f"after the previous word and within the {len(text)} characters "
                              "of its text", expected)
        words.append((pair[0], pair[1]))
    return words


# -------------------------------------------------------------------------------- pairs


def read_pairs(source: str | os.PathLike, target: str | os.PathLike | None = None, *,
               source_format: str | None = None, target_format: str | None = None,
               source_lang: str | None = None, target_lang: str | None = None,
               require_target: bool = True) -> Iterator[ProjectionPair]:
    """Yield a :class:`ProjectionPair` per source sentence or document.

    The translations come from ``target``, zipped in order with the source (a count mismatch
    is E134, raised when the shorter file ends), or without it from the source itself (JSONL
    ``translation``, DocBin ``doc._.translation``); a given ``target`` wins over those. CoNLL
    and DocBin fix the source words, CoNLL and JSONL ``words`` the target words. Formats and
    the need for a target are checked here, before the first pair is read. With
    ``require_target=False`` a source without a translation is no error (E135): its pair
    comes with target ``""``, for a projector with an MT model to translate (translate-train).
    """
    source = Path(source)
    fmt = _format_of(source, source_format, SOURCE_FORMATS, "source", gz=True)
    if target is None and require_target and fmt in ("conll", "bigbio"):
        raise InputError(Errors.E135.format(where=source,
                                            reason=f"a {fmt} source holds no translations"))
    targets = None if target is None else read_targets(target, target_format)
    if fmt == "conll":
        pairs = (ProjectionPair(s.text, "", s.spans, s.words, source_lang=source_lang,
                                target_lang=target_lang, where=f"{source}:{s.line}")
                 for s in read_conll(source))
    elif fmt == "bigbio":
        pairs = _bigbio_pairs(source, source_lang, target_lang)
    elif fmt == "jsonl":
        pairs = _jsonl_pairs(source, source_lang, target_lang, own_target=targets is None,
                             require_target=require_target)
    else:
        pairs = _docbin_pairs(source, source_lang, target_lang, own_target=targets is None,
                              require_target=require_target)
    return pairs if targets is None else _zip(pairs, targets, source, Path(target))


def _zip(pairs: Iterator[ProjectionPair], targets: Iterator[tuple[str, Offsets | None]],
         source: Path, target: Path) -> Iterator[ProjectionPair]:
    n = 0
    for pair, translation in zip_longest(pairs, targets):
        if pair is None or translation is None:
            longer = n + 1 + sum(1 for _ in (targets if pair is None else pairs))
            n_source, n_target = (n, longer) if pair is None else (longer, n)
            raise InputError(Errors.E134.format(source=source, n=n_source, target=target,
                                                m=n_target))
        pair.target, pair.target_words = translation
        n += 1
        yield pair


def _jsonl_pairs(path: Path, source_lang: str | None, target_lang: str | None, *,
                 own_target: bool, require_target: bool = True) -> Iterator[ProjectionPair]:
    for where, obj in iter_json_lines(path, _lines(path, _SOURCE_JSONL)):
        if not isinstance(obj, dict):
            raise _bad(where, f"a {type(obj).__name__}, not an object", _SOURCE_JSONL)
        text = obj.get("text")
        if not isinstance(text, str):
            raise _bad(where, "field 'text' is missing or not a string", _SOURCE_JSONL)
        key = "spans" if "spans" in obj or "entities" not in obj else "entities"
        pair = ProjectionPair(text, "", _labeled_spans(obj.get(key, []), key, text, where),
                              _offsets(obj.get("words"), "words", text, where, _SOURCE_JSONL),
                              id=None if obj.get("id") is None else str(obj["id"]),
                              source_lang=source_lang, target_lang=target_lang, where=where)
        translation = obj.get("translation")
        if own_target and (translation is not None or require_target):
            if translation is None:
                raise InputError(Errors.E135.format(
                    where=where, reason="the record has no 'translation' field"))
            if not isinstance(translation, str):
                raise _bad(where, "field 'translation' is not a string", _SOURCE_JSONL)
            if not translation.strip():
                raise InputError(Errors.E136.format(where=where))
            pair.target = translation
            pair.target_words = _offsets(obj.get("translation_words"), "translation_words",
                                         translation, where, _SOURCE_JSONL)
        yield pair


def _labeled_spans(value: object, key: str, text: str, where: str) -> list[LabeledSpan]:
    if not isinstance(value, list):
        raise _bad(where, f"field '{key}' is not a list", _SOURCE_JSONL)
    spans = []
    for k, span in enumerate(value):
        field = f"{key}[{k}]"
        if not isinstance(span, dict):
            raise _bad(where, f"'{field}' is not an object", _SOURCE_JSONL)
        start, end, label = span.get("start"), span.get("end"), span.get("label")
        if not (_is_int(start) and _is_int(end) and 0 <= start < end <= len(text)):
            raise _bad(where, f"'{field}' has start={start!r}, end={end!r}; expected integers "
                              f"with 0 <= start < end <= {len(text)} (the length of 'text')",
                       _SOURCE_JSONL)
        if not isinstance(label, str) or not label:
            raise _bad(where, f"'{field}.label' is missing or not a non-empty string",
                       _SOURCE_JSONL)
        spans.append(LabeledSpan(start, end, label))
    return spans


def _bigbio_pairs(path: Path, source_lang: str | None,
                  target_lang: str | None) -> Iterator[ProjectionPair]:
    """Entities as labelled spans; a discontinuous one becomes its outer span (the projector
    carries contiguous spans), with one warning per file."""
    warned = False
    for doc in read_bigbio_kb(path):
        spans = []
        for entity in doc.entities:
            if entity.type is None:
                raise InputError(Errors.E139.format(where=f"{path} document {doc.id!r}",
                                                    id=entity.id))
            start = min(s for s, _ in entity.offsets)
            end = max(e for _, e in entity.offsets)
            if entity.discontinuous and not warned:
                logger.warning("%s: entity %r of document %r is discontinuous; it and any "
                               "others in this file are projected as their outer span "
                               "[%d, %d)", path, entity.id, doc.id, start, end)
                warned = True
            spans.append(LabeledSpan(start, end, entity.type))
        yield ProjectionPair(doc.text, "", spans, id=doc.id,
                             source_lang=source_lang or doc.lang, target_lang=target_lang,
                             where=f"{path} document {doc.id!r}")


def _docbin_pairs(path: Path, source_lang: str | None, target_lang: str | None, *,
                  own_target: bool, require_target: bool = True) -> Iterator[ProjectionPair]:
    """``doc.ents`` as spans, the non-space tokens as source words; ``doc._.translation``
    survives only a DocBin written with ``store_user_data=True``."""
    extensions.register()
    try:
        doc_bin = DocBin().from_disk(path)
    except OSError as exc:
        raise InputError(Errors.E138.format(path=path, reason=exc.strerror or str(exc))) from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(Errors.E138.format(path=path, reason=f"the data is not a DocBin "
                                                              f"({exc})")) from exc
    for i, doc in enumerate(doc_bin.get_docs(spacy.blank(source_lang or "xx").vocab)):
        pair = ProjectionPair(doc.text, "",
                              [LabeledSpan(e.start_char, e.end_char, e.label_) for e in doc.ents],
                              [(t.idx, t.idx + len(t)) for t in doc if not t.is_space],
                              source_lang=source_lang, target_lang=target_lang,
                              where=f"{path} doc {i}")
        if own_target and (doc._.translation is not None or require_target):
            where = f"{path} doc {i}"
            if doc._.translation is None:
                raise InputError(Errors.E135.format(
                    where=where, reason="doc._.translation is not set (write the DocBin with "
                                        "store_user_data=True to keep it)"))
            translation = doc._.translation
            if isinstance(translation, Doc):  # a tokenised translation fixes the target words
                pair.target_words = [(t.idx, t.idx + len(t)) for t in translation
                                     if not t.is_space]
                translation = translation.text
            if not translation.strip():
                raise InputError(Errors.E136.format(where=where))
            pair.target = translation
        yield pair


# ------------------------------------------------------------------------------ writers


def write_results(results: Iterable[ProjectionResult], path: str | os.PathLike,
                  fmt: str | None = None, *, include_source: bool = False) -> int:
    """Write projected results as CoNLL (target words, IOB2), JSONL (spans with score and
    source index, the unprojected source spans, with ``include_source`` the source too),
    BigBIO KB (one single-passage document each) or a DocBin of target Docs. Ids are
    ``pair.id`` or the running index. Atomic; returns the number of results written."""
    path = Path(path)
    fmt = output_format(path, fmt)
    if fmt == "bigbio":
        return write_bigbio_kb((_document(r, i) for i, r in enumerate(results)), path)
    try:
        with atomic_file(path) as tmp:
            if fmt == "docbin":
                return _write_docbin(results, tmp)
            n = 0
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                for n, result in enumerate(results, start=1):
                    fh.write(_conll_block(result, n - 1) if fmt == "conll" else
                             _json_line(result, n - 1, include_source))
                fh.flush()
                os.fsync(fh.fileno())
            return n
    except OSError as exc:
        raise InputError(Errors.E068.format(path=path, reason=exc.strerror or str(exc),
                                            fix="Check that the folder exists and is "
                                                "writable.")) from exc


def _doc_id(result: ProjectionResult, i: int) -> str:
    return result.pair.id if result.pair.id is not None else str(i)


def _where(result: ProjectionResult, i: int) -> str:
    return f"result {i}" + (f" (id {result.pair.id!r})" if result.pair.id is not None else "")


def _conll_block(result: ProjectionResult, i: int) -> str:
    target, words, where = result.pair.target, result.target_words, _where(result, i)
    starts = {s: k for k, (s, _) in enumerate(words)}
    ends = {e: k for k, (_, e) in enumerate(words)}
    spans = []
    for span in result.spans:
        if span.start not in starts or span.end not in ends:
            raise InputError(Errors.E137.format(
                where=where, format="CoNLL",
                reason=f"span {span.start}-{span.end} {target[span.start:span.end]!r} does "
                       "not start and end on target words"))
        spans.append((starts[span.start], ends[span.end] + 1, span.label))
    tokens = [target[s:e] for s, e in words]
    bad = next((k for k, t in enumerate(tokens) if not t or t != t.strip()
                or any(c in t for c in "\t\r\n")), None)
    if not tokens or bad is not None:
        reason = ("the target has no words" if not tokens else
                  f"word {bad} {tokens[bad]!r} is empty, has surrounding space or holds a line "
                  "break or tab")
        raise InputError(Errors.E137.format(where=where, reason=reason, format="CoNLL"))
    tags = spans_to_bio(len(tokens), spans, where)
    return "".join(f"{t}\t{tag}\n" for t, tag in zip(tokens, tags)) + "\n"


def _span_json(span: LabeledSpan, text: str) -> dict:
    return {"start": span.start, "end": span.end, "label": span.label,
            "text": text[span.start:span.end]}


def _json_line(result: ProjectionResult, i: int, include_source: bool) -> str:
    pair = result.pair
    record = {"id": _doc_id(result, i), "text": pair.target, "words": result.target_words,
              "spans": [{**_span_json(s.labeled, pair.target), "score": float(s.score),
                         "source_index": int(s.source_index)} for s in result.spans],
              "unprojected": [_span_json(pair.spans[k], pair.source) for k in result.unprojected]}
    if include_source:
        record["source"] = pair.source
        record["source_spans"] = [_span_json(s, pair.source) for s in pair.spans]
    return json.dumps(record, ensure_ascii=False) + "\n"


def _document(result: ProjectionResult, i: int) -> Document:
    """BigBIO has no score field: the entities keep offsets, text and label only."""
    doc_id, target = _doc_id(result, i), result.pair.target
    entities = [Entity(f"{doc_id}_e{k}", target[s.start:s.end], [(s.start, s.end)], s.label)
                for k, s in enumerate(result.spans)]
    return Document(doc_id, target, result.pair.target_lang, entities)


def _write_docbin(results: Iterable[ProjectionResult], tmp: Path) -> int:
    doc_bin, blanks = DocBin(), {}
    for i, result in enumerate(results):
        lang = result.pair.target_lang or "xx"
        if lang not in blanks:
            blanks[lang] = spacy.blank(lang)
        target, where = result.pair.target, _where(result, i)
        if result.target_words:
            doc = Doc(blanks[lang].vocab, *words_and_spaces(target, result.target_words))
            if doc.text != target:
                raise InputError(Errors.E137.format(
                    where=where, reason="the target words overlap or are out of order",
                    format="DocBin"))
        else:
            doc = blanks[lang].make_doc(target)
        ents = []
        for span in result.spans:
            ent = doc.char_span(span.start, span.end, label=span.label, alignment_mode="expand")
            if ent is None:
                raise InputError(Errors.E137.format(
                    where=where, reason=f"span {span.start}-{span.end} covers no token",
                    format="DocBin"))
            ents.append(ent)
        try:
            doc.ents = ents
        except ValueError as exc:
            raise InputError(Errors.E137.format(where=where, reason=f"spans overlap ({exc})",
                                                format="DocBin")) from exc
        doc_bin.add(doc)
    doc_bin.to_disk(tmp)
    return len(doc_bin)


def words_and_spaces(text: str, words: Offsets) -> tuple[list[str], list[bool]]:
    """spaCy words and spaces that rebuild ``text``: one space after a word is its trailing
    space, any other gap becomes a token of its own (as spaCy keeps whitespace)."""
    tokens: list[str] = []
    spaces: list[bool] = []
    pos = 0
    for start, end in [*words, (len(text), len(text))]:
        gap = text[pos:start]
        if tokens and gap.startswith(" "):
            spaces[-1], gap = True, gap[1:]
        if gap:
            tokens.append(gap)
            spaces.append(False)
        if start < end:
            tokens.append(text[start:end])
            spaces.append(False)
        pos = max(pos, end)
    return tokens, spaces
