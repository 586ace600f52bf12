"""The knowledge base of the entity linker: concepts with a canonical name, aliases (each may
carry a language), types and a definition.

Two on-disk forms:

* JSONL, one concept per line, in the scispaCy / xMEN dictionary format, so their
  dictionaries load as they are. An alias is a string or ``{"text": ..., "lang": ...}``.
* A compact folder (``concepts.msgpack`` + ``manifest.json``): column arrays, no pickle,
  loads without per-field validation (about twice as fast as the JSONL: ~80 ms vs ~170 ms,
  medians, for the 14k-concept benchmark KB on 2 CPU cores), checked against the sha256
  values of its manifest.

A knowledge base is treated as immutable once built: builders and :func:`merge` return new
ones. Its :attr:`KnowledgeBase.sha256` hashes the content (ids, names, languages, types,
definitions, in order) and not the name or the file form, so index manifests can record
which knowledge base their vectors belong to.
"""
from __future__ import annotations

import gc
import gzip
import hashlib
import json
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from .. import fileio
from ..checksums import sha256_file
from ..errors import Errors, InputError
from ..fileio import atomic_file

logger = logging.getLogger("xapps")

#: The coverage key of names without a language (canonical names, untagged aliases).
UNKNOWN_LANG = "und"
MANIFEST_NAME = "manifest.json"
DATA_NAME = "concepts.msgpack"
KIND = "xapps.kb"
#: Bumped when the compact folder layout changes in a way older readers cannot handle.
FORMAT_VERSION = 1
_JSONL_EXPECTED = "a .jsonl (or .jsonl.gz) file of concepts or a folder written by `xapps kb build`"


@dataclass(frozen=True)
class Alias:
    """One name of a concept. ``lang`` is an ISO code (lower case) or None when unknown."""

    text: str
    lang: str | None = None


@dataclass
class Concept:
    """A concept. Aliases given as strings or ``{"text", "lang"}`` dicts become :class:`Alias`."""

    concept_id: str
    canonical_name: str
    aliases: list[Alias] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    definition: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.aliases, list):
            self.aliases = list(self.aliases)
        if any(not isinstance(a, Alias) for a in self.aliases):
            self.aliases = [_coerce_alias(a) for a in self.aliases]
        if not isinstance(self.types, list):
            self.types = list(self.types)

    def names(self) -> list[Alias]:
        """The canonical name (lang None) first, then the aliases, without redundant repeats.

        Names compare case-insensitively (``str.casefold``) after trimming spaces. A name is
        dropped when the same text came earlier with the same language or with no language:
        a lang-None name is kept by every language filter of :meth:`KnowledgeBase.alias_table`,
        so it stands for all. The same text in two different languages is kept twice, so that
        filtering on either language still finds it.
        """
        seen: dict[str, set[str | None]] = {}
        out = []
        for alias in (Alias(self.canonical_name), *self.aliases):
            key = alias.text.strip().casefold()
            if not key:
                continue
            langs = seen.get(key)
            if langs is None:
                seen[key] = {alias.lang}
            elif None in langs or alias.lang in langs:
                continue
            else:
                langs.add(alias.lang)
            out.append(alias)
        return out


def _coerce_alias(value: Any) -> Alias:
    if isinstance(value, Alias):
        return value
    if isinstance(value, str):
        return Alias(value)
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return Alias(value["text"], normalize_lang(value.get("lang")))
    if isinstance(value, (tuple, list)) and len(value) == 2 and isinstance(value[0], str):
        return Alias(value[0], normalize_lang(value[1]))
    raise TypeError(f"an alias must be a str, an Alias, {{'text', 'lang'}} or (text, lang), "
                    f"not {value!r}")


def normalize_lang(lang: Any) -> str | None:
    """ISO codes compare in lower case; empty means unknown (None)."""
    if lang is None:
        return None
    if not isinstance(lang, str):
        raise TypeError(f"a language must be a string or None, not {lang!r}")
    lang = lang.strip().lower().replace("_", "-")
    return lang or None


@dataclass
class AliasTable:
    """Flat view for candidate generators: row ``i`` is name ``names[i]`` of concept
    ``kb.concepts[concept_index[i]]``, in language ``langs[i]``."""

    names: list[str]
    concept_index: np.ndarray  # int32
    langs: list[str | None]

    def __len__(self) -> int:
        return len(self.names)


class KnowledgeBase:
    """Concepts in a fixed order; ``index_of`` gives the row used by vector indexes."""

    def __init__(self, concepts: Iterable[Concept], name: str = "kb") -> None:
        self.name = name
        self.concepts: list[Concept] = list(concepts)
        self._index: dict[str, int] = {}
        for i, concept in enumerate(self.concepts):
            if not isinstance(concept, Concept):
                raise InputError(Errors.E051.format(
                    where=f"{name}: concept #{i}",
                    problem=f"a {type(concept).__name__}, not a Concept"))
            if not isinstance(concept.concept_id, str) or not concept.concept_id.strip() or \
                    not isinstance(concept.canonical_name, str) or \
                    not concept.canonical_name.strip():
                raise InputError(Errors.E051.format(
                    where=f"{name}: concept #{i}",
                    problem=f"concept_id {concept.concept_id!r} / canonical_name "
                    f"{concept.canonical_name!r} is not a non-empty string"))
            first = self._index.setdefault(concept.concept_id, i)
            if first != i:
                raise InputError(Errors.E050.format(where=f"{name}: concept #{i}",
                                                    id=concept.concept_id,
                                                    first=f"concept #{first}"))

    @classmethod
    def _trusted(cls, concepts: list[Concept], name: str) -> KnowledgeBase:
        """Skip the per-concept checks for concepts a reader has already validated (they are
        a third of a compact load); ids must still be unique."""
        kb = cls.__new__(cls)
        kb.name, kb.concepts = name, concepts
        kb._index = {c.concept_id: i for i, c in enumerate(concepts)}
        if len(kb._index) != len(concepts):
            return cls(concepts, name)  # raises E050 naming the duplicate
        return kb

    # -- mapping-like access -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self) -> Iterator[Concept]:
        return iter(self.concepts)

    def __contains__(self, concept_id: object) -> bool:
        return concept_id in self._index

    def __getitem__(self, concept_id: str) -> Concept:
        return self.concepts[self.index_of(concept_id)]

    def index_of(self, concept_id: str) -> int:
        try:
            return self._index[concept_id]
        except (KeyError, TypeError):
            raise KeyError(f"concept_id {concept_id!r} is not in knowledge base "
                           f"{self.name!r} ({len(self)} concepts)") from None

    def __eq__(self, other: object) -> bool:
        """Same concepts in the same order; the name does not count (as for :attr:`sha256`)."""
        if not isinstance(other, KnowledgeBase):
            return NotImplemented
        return self.concepts == other.concepts

    __hash__ = None  # type: ignore[assignment]  (mutable, like a list)

    def __repr__(self) -> str:
        return f"KnowledgeBase(name={self.name!r}, concepts={len(self)})"

    # -- views ---------------------------------------------------------------------------

    def alias_table(self, langs: Iterable[str] | None = None) -> AliasTable:
        """All names (see :meth:`Concept.names`); with ``langs``, only names with no language
        or a language in ``langs``."""
        keep = None if langs is None else {normalize_lang(lang) for lang in langs}
        names: list[str] = []
        index: list[int] = []
        out_langs: list[str | None] = []
        for i, concept in enumerate(self.concepts):
            for alias in concept.names():
                if keep is None or alias.lang is None or alias.lang in keep:
                    names.append(alias.text)
                    index.append(i)
                    out_langs.append(alias.lang)
        return AliasTable(names, np.asarray(index, dtype=np.int32), out_langs)

    def coverage(self) -> dict[str, Any]:
        """Per language: concepts with at least one name in it, and its names.

        ``by_lang[UNKNOWN_LANG]`` counts names without a language (every canonical name).
        Per language, a name counts once per concept (case-insensitively), even when it is
        spelled like the English name: a Spanish "Anemia" covers the concept in Spanish.
        ``names`` (total) is the size of the unfiltered :meth:`alias_table`.
        """
        per_lang_concepts: dict[str, int] = {}
        per_lang_names: dict[str, int] = {}
        total_names = 0
        for concept in self.concepts:
            total_names += len(concept.names())
            seen: set[tuple[str, str | None]] = set()
            langs: set[str] = set()
            for alias in (Alias(concept.canonical_name), *concept.aliases):
                key = (alias.text.strip().casefold(), alias.lang)
                if not key[0] or key in seen:
                    continue
                seen.add(key)
                lang = alias.lang or UNKNOWN_LANG
                per_lang_names[lang] = per_lang_names.get(lang, 0) + 1
                langs.add(lang)
            for lang in langs:
                per_lang_concepts[lang] = per_lang_concepts.get(lang, 0) + 1
        n = len(self.concepts)
        order = sorted(per_lang_names, key=lambda lang: (lang != UNKNOWN_LANG, lang))
        return {
            "name": self.name,
            "concepts": n,
            "names": total_names,
            "by_lang": {lang: {"concepts": per_lang_concepts[lang],
                               "pct": round(100.0 * per_lang_concepts[lang] / n, 1) if n else 0.0,
                               "names": per_lang_names[lang]} for lang in order},
        }

    @property
    def sha256(self) -> str:
        """Hash of the content (not the name, not the file form): equal after save/load and
        after a JSONL round trip; changes with any id, name, language, type or order."""
        digest = hashlib.sha256(f"{KIND}.v{FORMAT_VERSION}\n".encode())
        dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
        for c in self.concepts:
            row = [c.concept_id, c.canonical_name, [[a.text, a.lang] for a in c.aliases],
                   c.types, c.definition]
            digest.update(dumps(row).encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()

    # -- JSONL ---------------------------------------------------------------------------

    @classmethod
    def from_jsonl(cls, path: str | os.PathLike[str], name: str | None = None) -> KnowledgeBase:
        """Read a scispaCy / xMEN dictionary (``.jsonl`` or ``.jsonl.gz``).

        ``concept_id`` may be a number (it becomes a string); ``aliases``, ``types`` and
        ``definition`` may be absent; other fields are ignored. A concept without a
        ``canonical_name`` (xMEN writes these for concepts with no preferred name in the
        chosen languages) takes its first alias, and the count is logged.
        """
        path = Path(path)
        concepts: list[Concept] = []
        first_seen: dict[str, str] = {}
        no_canonical = 0
        with gc_paused():
            for where, obj in fileio.iter_json_lines(path, iter_lines(path, _JSONL_EXPECTED)):
                concept, borrowed = concept_from_dict(obj, where)
                no_canonical += borrowed
                if concept.concept_id in first_seen:
                    raise InputError(Errors.E050.format(where=where, id=concept.concept_id,
                                                        first=first_seen[concept.concept_id]))
                first_seen[concept.concept_id] = where
                concepts.append(concept)
        if no_canonical:
            logger.info("%s: %d concepts had no canonical_name; their first alias is used",
                        path, no_canonical)
        return cls._trusted(concepts, name=name or name_from_path(path))

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Write the scispaCy / xMEN format (untagged aliases stay plain strings), atomically;
        gzipped when the name ends in ``.gz``."""
        path = Path(path)
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        with atomic_file(path) as tmp:
            opener = gzip.open if path.suffix.lower() == ".gz" else open
            with opener(tmp, "wt", encoding="utf-8", newline="\n") as fh:
                for c in self.concepts:
                    fh.write(dumps(concept_to_dict(c)))
                    fh.write("\n")
        return path

    # -- compact folder ------------------------------------------------------------------

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the compact form: ``concepts.msgpack`` (column arrays) + ``manifest.json``.
        The folder appears complete or not at all."""
        import srsly

        from ..index.manifest import atomic_directory

        folder = Path(folder)
        lang_codes: dict[str | None, int] = {}
        type_codes: dict[str, int] = {}
        alias_text: list[str] = []
        alias_lang: list[int] = []
        alias_offsets = [0]
        type_ids: list[int] = []
        type_offsets = [0]
        for c in self.concepts:
            for a in c.aliases:
                alias_text.append(a.text)
                alias_lang.append(lang_codes.setdefault(a.lang, len(lang_codes)))
            alias_offsets.append(len(alias_text))
            type_ids.extend(type_codes.setdefault(t, len(type_codes)) for t in c.types)
            type_offsets.append(len(type_ids))
        data = {
            "concept_id": [c.concept_id for c in self.concepts],
            "canonical_name": [c.canonical_name for c in self.concepts],
            "definition": [c.definition for c in self.concepts],
            "alias_text": alias_text,
            "alias_lang": alias_lang,
            "alias_offsets": alias_offsets,
            "langs": list(lang_codes),
            "types": list(type_codes),
            "type_ids": type_ids,
            "type_offsets": type_offsets,
        }
        with atomic_directory(folder) as tmp:
            (tmp / DATA_NAME).write_bytes(srsly.msgpack_dumps(data))
            coverage = self.coverage()
            manifest = {
                "kind": KIND,
                "format_version": FORMAT_VERSION,
                "name": self.name,
                "count": len(self),
                "names": coverage["names"],
                "aliases": len(alias_text),
                "langs": {lang: v["names"] for lang, v in coverage["by_lang"].items()},
                "sha256": self.sha256,
                "files": {DATA_NAME: sha256_file(tmp / DATA_NAME)},
                "xapps_version": _xapps_version(),
                "created_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            }
            (tmp / MANIFEST_NAME).write_text(
                json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike[str], *, verify: bool = True) -> KnowledgeBase:
        """Read a folder written by :meth:`save`; with ``verify``, check the file checksums."""
        import srsly

        folder = Path(folder)
        manifest = read_kb_manifest(folder)
        file = folder / DATA_NAME
        if verify:
            expected = manifest["files"].get(DATA_NAME)
            found = sha256_file(file) if file.is_file() else "<missing>"
            if found != expected:
                raise InputError(Errors.E053.format(file=DATA_NAME, path=folder, found=found,
                                                    expected=expected))
        try:
            data = srsly.msgpack_loads(file.read_bytes())
        except (OSError, ValueError) as exc:
            raise InputError(Errors.E052.format(
                path=folder, reason=f"{DATA_NAME} cannot be read ({exc})")) from None
        try:
            with gc_paused():
                concepts = _concepts_from_columns(data)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise InputError(Errors.E052.format(
                path=folder, reason=f"{DATA_NAME} is malformed ({type(exc).__name__}: {exc})"
            )) from None
        if len(concepts) != manifest["count"]:
            raise InputError(Errors.E052.format(
                path=folder, reason=f"{DATA_NAME} holds {len(concepts)} concepts, the manifest "
                f"says {manifest['count']}"))
        return cls._trusted(concepts, name=manifest["name"])


def _concepts_from_columns(data: dict[str, Any]) -> list[Concept]:
    """Rebuild Concept objects without re-validating each field: the checksum already
    vouches for the file, and this loop is the whole load time."""
    langs = data["langs"]
    types = data["types"]
    texts, codes, a_off = data["alias_text"], data["alias_lang"], data["alias_offsets"]
    type_ids, t_off = data["type_ids"], data["type_offsets"]
    new_alias = Alias.__new__
    new_concept = Concept.__new__
    # Alias is frozen: fill __dict__ directly rather than through object.__setattr__.
    aliases_all = []
    for text, code in zip(texts, codes, strict=True):
        alias = new_alias(Alias)
        alias.__dict__.update(text=text, lang=langs[code])
        aliases_all.append(alias)
    concepts = []
    for i, (cid, canonical, definition) in enumerate(
            zip(data["concept_id"], data["canonical_name"], data["definition"], strict=True)):
        concept = new_concept(Concept)
        concept.__dict__.update(
            concept_id=cid, canonical_name=canonical,
            aliases=aliases_all[a_off[i]:a_off[i + 1]],
            types=[types[t] for t in type_ids[t_off[i]:t_off[i + 1]]],
            definition=definition)
        concepts.append(concept)
    return concepts


def read_kb_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``manifest.json`` of a compact knowledge base folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(Errors.E052.format(
            path=folder, reason="no such folder" if not folder.exists() else "it is a file, "
            "not a folder"))
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(Errors.E052.format(path=folder,
                                            reason=f"it has no {MANIFEST_NAME}")) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(Errors.E052.format(
            path=folder, reason=f"{MANIFEST_NAME} cannot be read ({exc})")) from None
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        kind = manifest.get("kind") if isinstance(manifest, dict) else None
        raise InputError(Errors.E052.format(
            path=folder, reason=f"its manifest has kind {kind!r}, not {KIND!r}"))
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(Errors.E052.format(
            path=folder, reason=f"format_version={version!r} is newer than this xapps reads "
            f"({FORMAT_VERSION}); upgrade xapps"))
    problems = [f for f in ("name", "count", "files") if f not in manifest]
    if problems or not isinstance(manifest["files"], dict):
        raise InputError(Errors.E052.format(
            path=folder, reason=f"its manifest lacks {', '.join(problems) or 'a files object'}"))
    return manifest


def load_kb(path: str | os.PathLike[str], name: str | None = None) -> KnowledgeBase:
    """A compact folder or a JSONL file, whichever ``path`` is."""
    path = Path(path)
    if path.is_dir():
        kb = KnowledgeBase.load(path)
        if name:
            kb.name = name
        return kb
    return KnowledgeBase.from_jsonl(path, name=name)


def is_jsonl_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a JSONL file (``.jsonl``, ``.jsonl.gz``) rather than a folder."""
    name = Path(path).name.lower()
    return name.endswith((".jsonl", ".jsonl.gz", ".ndjson"))


def save_kb(kb: KnowledgeBase, path: str | os.PathLike[str]) -> Path:
    """JSONL when ``path`` ends in ``.jsonl`` (or ``.jsonl.gz``), else the compact folder."""
    path = Path(path)
    if is_jsonl_path(path):
        return kb.to_jsonl(path)
    if path.is_file():
        raise InputError(Errors.E058.format(
            what="the output path", value=str(path), expected="a name ending in .jsonl or a "
            "folder for the compact form", fix="Remove the file or choose another name."))
    return kb.save(path)


def merge(kbs: Sequence[KnowledgeBase], name: str = "merged") -> KnowledgeBase:
    """Union by concept_id, in order of first appearance.

    The first canonical name and the first definition win; a later, different canonical
    name becomes an alias. Aliases (deduplicated by :func:`unique_aliases`) and types are
    united in order. The inputs are not changed.
    """
    merged: dict[str, Concept] = {}
    for kb in kbs:
        for c in kb.concepts:
            have = merged.get(c.concept_id)
            if have is None:
                merged[c.concept_id] = Concept(c.concept_id, c.canonical_name, list(c.aliases),
                                               list(c.types), c.definition)
                continue
            have.aliases.extend([Alias(c.canonical_name), *c.aliases])
            have.types.extend(t for t in c.types if t not in have.types)
            if have.definition is None:
                have.definition = c.definition
    for c in merged.values():
        c.aliases = unique_aliases(c.canonical_name, c.aliases)
    return KnowledgeBase(merged.values(), name=name)


def unique_aliases(canonical_name: str, aliases: Iterable[Alias]) -> list[Alias]:
    """Aliases without repeats of (case-insensitive text, language); an untagged alias that
    repeats the canonical name goes too. Unlike :meth:`Concept.names`, a tagged alias spelled
    like an untagged name stays: it records that the name exists in that language (for
    :meth:`KnowledgeBase.coverage`)."""
    seen = {(canonical_name.strip().casefold(), None)}
    out = []
    for alias in aliases:
        key = (alias.text.strip().casefold(), alias.lang)
        if key[0] and key not in seen:
            seen.add(key)
            out.append(alias)
    return out


# -- record conversion (shared with the builders) ----------------------------------------


def concept_from_dict(obj: Any, where: str) -> tuple[Concept, bool]:
    """A validated Concept from one JSONL record, and whether it borrowed its canonical name
    from its first alias."""
    def bad(problem: str) -> InputError:
        return InputError(Errors.E051.format(where=where, problem=problem))

    if not isinstance(obj, dict):
        raise bad(f"the line is a JSON {type(obj).__name__}, not an object")
    cid = obj.get("concept_id")
    if isinstance(cid, int) and not isinstance(cid, bool):
        cid = str(cid)
    if "concept_id" not in obj:
        raise bad(f"field 'concept_id' is missing (fields: {', '.join(sorted(obj)) or 'none'})")
    if not isinstance(cid, str) or not cid.strip():
        raise bad(f"concept_id {cid!r} is not a non-empty string")
    raw_aliases = obj.get("aliases") or []
    if not isinstance(raw_aliases, list):
        raise bad(f"aliases is a {type(raw_aliases).__name__}, not a list")
    aliases = []
    for k, raw in enumerate(raw_aliases):
        if isinstance(raw, str):
            text, lang = raw, None
        elif isinstance(raw, dict):
            text, lang = raw.get("text"), raw.get("lang")
            if lang is not None and not isinstance(lang, str):
                raise bad(f"aliases[{k}].lang {lang!r} is not a string or null")
        else:
            raise bad(f"aliases[{k}] is {raw!r}; an alias is a string or "
                      "{\"text\": ..., \"lang\": ...}")
        if not isinstance(text, str) or not text.strip():
            raise bad(f"aliases[{k}] has empty or missing text")
        aliases.append(Alias(text, normalize_lang(lang)))
    canonical = obj.get("canonical_name")
    borrowed = False
    if canonical is None or (isinstance(canonical, str) and not canonical.strip()):
        if not aliases:
            raise bad(f"concept {cid!r} has no canonical_name and no aliases; every concept "
                      "needs at least one name")
        canonical, borrowed = aliases[0].text, True
    elif not isinstance(canonical, str):
        raise bad(f"canonical_name {canonical!r} is not a string")
    types = obj.get("types")
    if types is None:
        types = []
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise bad(f"types {types!r} is not a list of strings")
    definition = obj.get("definition")
    if definition is not None and not isinstance(definition, str):
        raise bad(f"definition {definition!r} is not a string or null")
    concept = Concept.__new__(Concept)  # fields are validated; skip __post_init__
    concept.__dict__.update(concept_id=cid, canonical_name=canonical, aliases=aliases,
                            types=list(types), definition=definition)
    return concept, borrowed


def concept_to_dict(c: Concept) -> dict[str, Any]:
    out: dict[str, Any] = {
        "concept_id": c.concept_id,
        "canonical_name": c.canonical_name,
        "aliases": [a.text if a.lang is None else {"text": a.text, "lang": a.lang}
                    for a in c.aliases],
        "types": c.types,
    }
    if c.definition is not None:
        out["definition"] = c.definition
    return out


# -- small file helpers (shared with the builders) ---------------------------------------


def iter_lines(path: Path, expected: str) -> Iterator[tuple[int, str]]:
    """Lines of a KB source file; errors (E059) say what kind of file was expected."""
    if not path.is_file():
        reason = "it is a folder" if path.is_dir() else "no such file"
        raise InputError(Errors.E059.format(path=path, reason=reason, expected=expected))
    yield from fileio.iter_lines(path, lambda where, reason: InputError(
        Errors.E059.format(path=where, reason=reason, expected=expected)))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small objects that hold no
    cycles: its repeated passes over the growing heap otherwise take most of a load."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def name_from_path(path: str | os.PathLike[str]) -> str:
    """Default knowledge base name: the file or folder name without its data suffixes."""
    path = Path(path)
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".tsv", ".obo"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "kb"


def _xapps_version() -> str:
    from .. import __version__

    return __version__
