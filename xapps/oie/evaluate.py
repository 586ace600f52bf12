"""Open-IE scorers that reproduce three published benchmarks: BenchIE, CaRB and Re-OIE2016.

Each scorer takes plain data and returns a plain dict. Extractions are :class:`Extraction`
objects, or a mapping from sentence to tuples ``(arg0, relation, arg1, ...)`` of strings
(for BenchIE the key is the sentence id, not its text). The semantics follow the reference
scorers, which the published numbers were computed with; where a reference does something
surprising, the function's docstring says so.

- **BenchIE** (gkiril/benchie, ``src/scores.py``, slot matching): gold facts are synsets of
  triples; a system triple is right when its three slots, stripped, equal one realisation of
  a gold triple of its sentence. Precision = matched synsets / (matched synsets + wrong
  triples), recall = matched synsets / all synsets.
- **CaRB** (dair-iitd/CaRB ``carb.py`` + ``matcher.py``, as copied into OpenIE6 and
  Multi2OIE): token-overlap precision/recall of each (gold, system) pair with
  ``binary_linient_tuple_match``, per-sentence greedy one-to-one matching for precision,
  best system tuple per gold tuple for recall, a curve over confidence thresholds, the F1 at
  the best threshold and the area under the curve.
- **Re-OIE2016** (youngbin-ro/Multi2OIE ``evaluate/evaluate.py``, ``Matcher.lexicalMatch``):
  a gold tuple is found by the first unused system tuple of its sentence whose bag of words
  covers more than half of the gold's words; precision/recall/F1 at the best confidence
  threshold and the area under the precision-recall curve.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import Errors, InputError
from ..fileio import iter_lines

__all__ = [
    "Extraction",
    "benchie_realisations",
    "benchie_scores",
    "carb_match",
    "carb_scores",
    "read_benchie_extractions",
    "read_benchie_gold",
    "read_carb_extractions",
    "read_carb_gold",
    "read_reoie2016",
    "reoie2016_lexical_match",
    "reoie2016_scores",
]


@dataclass
class Extraction:
    """One system tuple: subject, relation and the remaining arguments of ``sentence``
    (for BenchIE, ``sentence`` holds the sentence id)."""

    sentence: str
    arg0: str
    relation: str
    args: list[str] = field(default_factory=list)
    confidence: float = 1.0

    def as_tuple(self) -> tuple[str, ...]:
        """``(arg0, relation, arg1, ...)``, the tuple form the scorers also accept."""
        return (self.arg0, self.relation, *self.args)


Tuple = Sequence[str]
Extractions = Union[Iterable[Extraction], Mapping[str, Iterable[Union[Tuple, Extraction]]]]


# ----------------------------------------------------------------------------- input shapes

def _as_extraction(key: str, item: Any, what: str) -> Extraction:
    if isinstance(item, Extraction):
        return Extraction(key, item.arg0, item.relation, list(item.args), item.confidence)
    if (isinstance(item, Sequence) and not isinstance(item, str) and len(item) >= 2
            and all(isinstance(s, str) for s in item)):
        return Extraction(key, item[0], item[1], list(item[2:]))
    raise InputError(Errors.E165.format(
        what=what, reason=f"{item!r} for sentence {key!r} is neither an Extraction nor a "
                          "tuple of at least two strings"))


def _group(data: Extractions, what: str) -> dict[str, list[Extraction]]:
    """sentence (or id) -> its extractions, in input order, from either input shape."""
    groups: dict[str, list[Extraction]] = {}
    if isinstance(data, Mapping):
        for key, items in data.items():
            if isinstance(items, (str, Extraction)) or not isinstance(items, Iterable):
                raise InputError(Errors.E165.format(
                    what=what, reason=f"the value for sentence {key!r} is {items!r}, not a "
                                      "list of tuples"))
            groups.setdefault(str(key), []).extend(
                _as_extraction(str(key), item, what) for item in items)
        return groups
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise InputError(Errors.E165.format(what=what, reason=f"got {type(data).__name__}"))
    for item in data:
        if not isinstance(item, Extraction):
            raise InputError(Errors.E165.format(
                what=what, reason=f"{item!r} is not an Extraction (a bare tuple needs its "
                                  "sentence: pass a mapping sentence -> tuples)"))
        groups.setdefault(item.sentence, []).append(item)
    return groups


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _check_gold(groups: Mapping[str, list], what: str, unit: str) -> int:
    n = sum(len(v) for v in groups.values())
    if n == 0:
        raise InputError(Errors.E166.format(what=what, unit=unit))
    return n


# ----------------------------------------------------------------------------------- BenchIE

_ARROW = " --> "


def benchie_realisations(slot: str) -> list[str]:
    """Every surface form of one gold slot: each optional part in [brackets] kept or dropped.

    Read token by token (split on single spaces) as BenchIE's reader does, because the
    shipped gold relies on it: a token holding both brackets is one optional part (the whole
    token, so ``Crozier[,]`` is kept or dropped entirely); a token holding only ``[`` opens
    a part that runs to the next token holding ``]``; a ``[`` never closed, or a ``]`` outside
    a part, drops that token. Brackets are then removed and the form stripped.

    >>> benchie_realisations("[the] Minister [of Australia]")
    ['the Minister of Australia', 'the Minister', 'Minister of Australia', 'Minister']
    >>> benchie_realisations("John Crozier[,] Jr.")
    ['John Crozier, Jr.', 'John Jr.']
    """
    tokens = slot.split(" ")
    parts: list[tuple[str, bool]] = []  # (text, optional)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        opens, closes = "[" in token, "]" in token
        if not opens and not closes:
            parts.append((token, False))
        elif opens and closes:
            parts.append((token, True))
        elif opens:
            end = next((j for j in range(i + 1, len(tokens)) if "]" in tokens[j]), None)
            if end is not None:
                parts.append((" ".join(tokens[i:end + 1]), True))
                i = end
        i += 1
    choices = [(text, None) if optional else (text,) for text, optional in parts]
    forms: dict[str, None] = {}  # ordered set
    for picked in itertools.product(*choices):
        kept = " ".join(text for text in picked if text is not None)
        forms[re.sub(r"[\[\]]", "", kept).strip()] = None
    return list(forms)


def _benchie_error(where: str, reason: str) -> InputError:
    return InputError(Errors.E160.format(where=where, reason=reason))


def read_benchie_gold(path: str | os.PathLike[str]) -> dict[str, list[list[tuple[str, str, str]]]]:
    """sentence id -> fact synsets -> every realisation ``(subject, relation, object)``.

    The file (``benchie/gold/benchie_gold_annotations_<lang>.txt``) has a line
    ``sent_id:N<TAB>sentence``, then cluster headers (any line holding ``Cluster``, such as
    ``N--> Cluster K:``), each followed by ``subject --> relation --> object`` lines with
    optional tokens in brackets (see :func:`benchie_realisations`). A sentence without
    clusters is kept with none: its extractions can only be wrong.
    """
    path = Path(path)
    Triple = tuple[str, str, str]
    synsets: dict[str, list[dict[Triple, None]]] = {}  # a synset is an ordered set of triples
    first_seen: dict[str, str] = {}
    sentence: list[dict[Triple, None]] | None = None  # synsets of the current sentence
    for lineno, raw in iter_lines(path, _benchie_error):
        where = f"{path}:{lineno}"
        line = raw.strip()
        if _ARROW in line:  # tested first, as in BenchIE's reader
            if not sentence:
                raise _benchie_error(where, "a triple comes before any cluster header")
            slots = line.split(_ARROW)
            if len(slots) != 3:
                raise _benchie_error(where, f"the triple has {len(slots)} slots separated by "
                                            f"'{_ARROW.strip()}', not 3")
            sentence[-1].update(dict.fromkeys(
                itertools.product(*map(benchie_realisations, slots))))
        elif "sent_id:" in line:
            head, tab, _ = raw.partition("\t")
            sent_id = head.strip().removeprefix("sent_id:").strip()
            if not tab or not head.strip().startswith("sent_id:") or not sent_id:
                raise _benchie_error(where, "a sentence line must read 'sent_id:N<TAB>sentence'")
            if sent_id in first_seen:
                raise _benchie_error(where, f"sentence id {sent_id!r} repeats (first at "
                                            f"{first_seen[sent_id]})")
            first_seen[sent_id] = where
            sentence = synsets[sent_id] = []
        elif not line:
            continue
        elif "Cluster" in line:  # "1--> Cluster 1:", also the odd "78-->Cluster 6:"
            if sentence is None:
                raise _benchie_error(where, "a cluster header comes before any 'sent_id:' line")
            sentence.append({})
        else:
            raise _benchie_error(where, f"{line[:60]!r} is neither a sentence, a cluster "
                                        "header nor a triple")
    return {sent_id: [list(synset) for synset in sentence]
            for sent_id, sentence in synsets.items()}


def _extractions_error(where: str, reason: str) -> InputError:
    return InputError(Errors.E161.format(where=where, reason=reason))


def read_benchie_extractions(path: str | os.PathLike[str]) -> dict[str, list[tuple[str, str, str]]]:
    """sentence id -> ``(subject, relation, object)`` triples, from BenchIE's system-output
    format (``benchie/system-outputs/*_explicit.txt``): ``sent_id<TAB>subject<TAB>relation
    <TAB>object`` per line. Sentence ids are the 1-based line numbers of
    ``benchie/sentences/sample300_<lang>.txt``."""
    path = Path(path)
    triples: dict[str, list[tuple[str, str, str]]] = {}
    for lineno, raw in iter_lines(path, _extractions_error):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise _extractions_error(f"{path}:{lineno}", f"found {len(fields)} tab-separated "
                                                         "columns, not 4")
        sent_id = fields[0].strip()
        if not sent_id:
            raise _extractions_error(f"{path}:{lineno}", "the sentence id is empty")
        triples.setdefault(sent_id, []).append((fields[1], fields[2], fields[3]))
    return triples


def benchie_scores(gold: Mapping[str, Sequence[Sequence[Sequence[str]]]],
                   extractions: Extractions) -> dict[str, Any]:
    """BenchIE precision, recall and F1 (slot matching, as the published tables).

    A triple is right when its stripped ``(subject, relation, object)`` equals a realisation
    in one of the synsets of its sentence; it is credited to the first such synset. Each
    synset counts once: ``tp`` is the number of synsets found, ``fp`` the number of triples
    that match none, and a second triple for an already-found synset (``duplicates``) counts
    as neither. Triples of sentences absent from the gold are ``ignored``. An n-ary
    extraction's object is its arguments after ``arg0`` joined by spaces.

    >>> gold = {"1": [[("He", "served", "as PM")], [("He", "became", "justice")]]}
    >>> s = benchie_scores(gold, {"1": [("He", "served", "as PM"), ("He", "served", "as PM"),
    ...                                 ("He", "was", "PM")], "9": [("x", "y", "z")]})
    >>> (s["tp"], s["fp"], s["duplicates"], s["ignored"], s["precision"], s["recall"])
    (1, 1, 1, 1, 0.5, 0.5)
    """
    gold = {str(sent_id): clusters for sent_id, clusters in gold.items()}
    n_facts = sum(len(clusters) for clusters in gold.values())
    if n_facts == 0:
        raise InputError(Errors.E166.format(what="benchie_scores", unit="fact synsets"))
    found: dict[str, set[int]] = {}
    fp = duplicates = ignored = scored = 0
    for sent_id, items in _group(extractions, "benchie_scores").items():
        if sent_id not in gold:
            ignored += len(items)
            continue
        first: dict[tuple[str, ...], int] = {}
        for index, cluster in enumerate(gold[sent_id]):
            for variant in cluster:
                first.setdefault(tuple(s.strip() for s in variant), index)
        hits = found.setdefault(sent_id, set())
        for ex in items:
            scored += 1
            obj = " ".join(a for a in ex.args if a)
            index = first.get((ex.arg0.strip(), ex.relation.strip(), obj.strip()))
            if index is None:
                fp += 1
            elif index in hits:
                duplicates += 1
            else:
                hits.add(index)
    tp = sum(len(h) for h in found.values())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / n_facts
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall),
            "tp": tp, "fp": fp, "fn": n_facts - tp, "duplicates": duplicates,
            "n_gold": n_facts, "n_extractions": scored, "ignored": ignored}


# ------------------------------------------------------------------------------ shared keys

_PTB_ESCAPES = (("(", "-LRB-"), (")", "-RRB-"), ("[", "-LSB-"), ("]", "-RSB-"),
                ("{", "-LCB-"), ("}", "-RCB-"))
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def _sentence_key(sentence: str) -> str:
    """The references' sentence key: no spaces, PTB bracket escapes undone, no ASCII
    punctuation, so that tokenisation differences do not hide a sentence."""
    key = sentence.replace(" ", "")
    for char, escape in _PTB_ESCAPES:
        key = key.replace(escape, char)
    return _PUNCT.sub("", key)


def _by_key(groups: dict[str, list[Extraction]]) -> dict[str, list[Extraction]]:
    keyed: dict[str, list[Extraction]] = {}
    for sentence, items in groups.items():
        keyed.setdefault(_sentence_key(sentence), []).extend(items)
    return keyed


def _threshold_summary(thresholds: Sequence[float], precision: Sequence[float],
                       recall: Sequence[float]) -> dict[str, Any]:
    """Best-F1 point (lowest threshold among ties) and the trapezoidal area under the curve
    closed by the point (recall 0, precision 1), thresholds ascending."""
    f1s = [_f1(p, r) for p, r in zip(precision, recall)]
    best = int(np.argmax(f1s))
    xs = list(recall) + [0.0]
    ys = list(precision) + [1.0]
    area = sum((xs[i] - xs[i + 1]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))
    return {"precision": float(precision[best]), "recall": float(recall[best]),
            "f1": float(f1s[best]), "auc": float(area), "threshold": float(thresholds[best]),
            "curve": [[float(t), float(p), float(r)]
                      for t, p, r in zip(thresholds, precision, recall)]}


def _no_curve() -> dict[str, Any]:
    """The scores of a system with nothing to rank (the references report zeros)."""
    return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "auc": 0.0, "threshold": None,
            "curve": []}


# -------------------------------------------------------------------------------------- CaRB

def _carb_gold_error(where: str, reason: str) -> InputError:
    return InputError(Errors.E162.format(where=where, reason=reason))


def _carb_output_error(where: str, reason: str) -> InputError:
    return InputError(Errors.E163.format(where=where, reason=reason))


def read_carb_gold(path: str | os.PathLike[str]) -> dict[str, list[tuple[str, ...]]]:
    """sentence -> ``(arg0, relation, arg1, ...)`` tuples from CaRB's gold TSV
    (``sentence<TAB>relation<TAB>arg1<TAB>arg2...``, ``oie/carb_gold_test.tsv``).

    As OpenIE6's and Multi2OIE's copies of CaRB do, arguments holding ``"C: "`` (context
    annotations) are dropped, and each line is stripped before splitting, so a trailing empty
    argument disappears.
    """
    path = Path(path)
    gold: dict[str, list[tuple[str, ...]]] = {}
    for lineno, raw in iter_lines(path, _carb_gold_error):
        line = raw.strip()
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise _carb_gold_error(f"{path}:{lineno}", f"found {len(fields)} tab-separated "
                                                       "columns, need a sentence, a relation "
                                                       "and at least one argument")
        sentence, relation = fields[0].strip(), fields[1].strip()
        if not sentence:
            raise _carb_gold_error(f"{path}:{lineno}", "the sentence is empty")
        args = [a.strip() for a in fields[2:] if "C: " not in a]
        gold.setdefault(sentence, []).append((args[0] if args else "", relation, *args[1:]))
    return gold


def read_carb_extractions(path: str | os.PathLike[str]) -> list[Extraction]:
    """System tuples in CaRB's tabbed format (also Multi2OIE's ``extraction.txt``):
    ``sentence<TAB>confidence<TAB>relation<TAB>arg1<TAB>arg2...``."""
    path = Path(path)
    out: list[Extraction] = []
    for lineno, raw in iter_lines(path, _carb_output_error):
        line = raw.strip()
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise _carb_output_error(f"{path}:{lineno}", f"found {len(fields)} tab-separated "
                                                         "columns, need at least 3")
        try:
            confidence = float(fields[1])
        except ValueError:
            raise _carb_output_error(f"{path}:{lineno}", f"the confidence {fields[1]!r} is "
                                                         "not a number") from None
        if not math.isfinite(confidence):
            raise _carb_output_error(f"{path}:{lineno}", f"the confidence {fields[1]!r} is "
                                                         "not finite")
        args = fields[3:]
        out.append(Extraction(fields[0], args[0] if args else "", fields[2], args[1:],
                              confidence))
    return out


def _carb_args(ex: Extraction) -> list[str]:
    """CaRB's argument list: arg0 first, trailing empty arguments dropped (a reader's
    ``line.strip()`` drops them in the reference too)."""
    args = [ex.arg0, *ex.args]
    while args and args[-1] == "":
        args.pop()
    return args


_BE_FORMS = ("be", "is", "am", "are", "was", "were", "been", "being")
_SAID_VERBS = ("said", "told", "added", "adds", "says")
_PREPOSITIONS = frozenset((
    "above across against along among around at before behind below beneath beside between "
    "by for from in into near of off on to toward under upon with within").split())


def _overlap(gold_words: list[str], system_words: list[str]) -> int:
    """Words of the gold also in the system part, each system word used once."""
    return sum((Counter(gold_words) & Counter(system_words)).values())


def _lenient(gold_rel: str, gold_args: list[str], sys_rel: str,
             sys_args: list[str]) -> tuple[float, float]:
    """CaRB's ``linient_tuple_match``: token precision and recall over relation and
    arguments, case-sensitive, no stopword removal."""
    gold_words, sys_words = gold_rel.split(), sys_rel.split()
    hits = _overlap(gold_words, sys_words)
    # A leftover "be" in the system relation matches any form of "be" in the gold one.
    if (sys_words.count("be") > gold_words.count("be")
            and any(form in gold_words for form in _BE_FORMS)):
        hits += 1
    if hits == 0:
        return 0.0, 0.0
    p_hits = r_hits = hits
    p_total, r_total = len(sys_words), len(gold_words)
    for i, gold_arg in enumerate(gold_args):
        gold_words = gold_arg.split()
        r_total += len(gold_words)
        if i >= len(sys_args):
            if i < 2:  # a missing subject or object is no match at all
                return 0.0, 0.0
            continue
        sys_words = sys_args[i].split()
        p_total += len(sys_words)
        hits = _overlap(gold_words, sys_words)
        p_hits += hits
        r_hits += hits
    return (p_hits / p_total if p_total else 0.0, r_hits / r_total if r_total else 0.0)


def _collapse(args: list[str]) -> list[str]:
    return args if len(args) < 2 else [args[0], " ".join(args[1:])]


def carb_match(gold: Tuple | Extraction, system: Tuple | Extraction) -> tuple[float, float]:
    """CaRB's default matcher (``binary_linient_tuple_match``) on two
    ``(arg0, relation, arg1, ...)`` tuples: (precision, recall) of the system tuple's tokens.

    Arguments after the first are joined into one object on both sides; the relations must
    share a word (a system ``be`` matches ``is``/``was``/...) and the system needs a subject
    and, if the gold has one, an object, else the score is (0, 0). When the gold relation
    contains ``said``, ``told``, ``added``, ``adds`` or ``says`` (as a substring), the system
    tuple with subject and object swapped is tried too and the better pair kept. Words are
    compared slot by slot, so a word moved from the relation into the object is missed twice.

    >>> carb_match(("He", "served as", "the first PM"), ("He", "served", "as the PM"))
    (0.8, 0.6666666666666666)
    >>> carb_match(("He", "served", "PM"), ("He", "became", "PM"))
    (0.0, 0.0)
    """
    g = _as_extraction("", gold, "carb_match")
    s = _as_extraction("", system, "carb_match")
    g_args, s_args = _carb_args(g), _carb_args(s)
    score = _lenient(g.relation, _collapse(g_args), s.relation, _collapse(s_args))
    if any(verb in g.relation for verb in _SAID_VERBS):
        swapped = [" ".join(s_args[1:]), s_args[0]] if len(s_args) >= 2 else s_args
        score = max(score, _lenient(g.relation, _collapse(g_args), s.relation, swapped))
    return score


def _binarize(items: list[Extraction]) -> list[Extraction]:
    """CaRB's ``--binary``: (a0, rel, a1), then (a0, rel a1 [prep], ak) for each later ak,
    a leading preposition of ak moving into the relation.

    The reference appends one object that it keeps changing, so its output repeats the last
    of these binarisations; here each is emitted once, as the comment there intends.
    """
    out = []
    for ex in items:
        args = _carb_args(ex)
        out.append(Extraction(ex.sentence, args[0] if args else "", ex.relation, args[1:2],
                              ex.confidence))
        for arg in args[2:]:
            relation, words = f"{ex.relation} {args[1]}", arg.split()
            if words and words[0].lower() in _PREPOSITIONS:
                relation, words = f"{relation} {words[0]}", words[1:]
            out.append(Extraction(ex.sentence, args[0], relation, [" ".join(words)],
                                  ex.confidence))
    return out


def _greedy_precision(scores: np.ndarray) -> float:
    """Sum of precision over a one-to-one matching that repeatedly takes the best remaining
    (gold, system) pair, first in row-major order on ties, as CaRB does."""
    scores = scores.astype(float, copy=True)
    total = 0.0
    for _ in range(min(scores.shape)):
        i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
        total += scores[i, j]
        scores[i, :] = -np.inf
        scores[:, j] = -np.inf
    return total


def carb_scores(gold: Extractions, extractions: Extractions, *,
                binary: bool = False) -> dict[str, Any]:
    """CaRB precision, recall and F1 at the best confidence threshold, and the AUC.

    For every distinct confidence ``t`` of the system (its sentences outside the gold
    included, as in CaRB), system tuples below ``t`` are dropped; then per sentence the
    recall numerator sums, over gold tuples, the best :func:`carb_match` recall among the
    kept tuples, and the precision numerator sums :func:`carb_match` precision over a greedy
    one-to-one matching. Precision divides by the kept tuples (1.0 when none are kept),
    recall by all gold tuples. F1 is taken at the best threshold (the lowest on ties), the
    AUC by the trapezoid rule over the thresholds' (recall, precision) points plus (0, 1), as
    ``sklearn.metrics.auc`` does in CaRB and OpenIE6 (Multi2OIE's copy first merges points of
    equal recall, which can move its AUC slightly). Sentences are matched on
    :func:`_sentence_key`; system tuples of sentences without gold are ``ignored``.

    ``binary=True`` splits n-ary tuples on both sides first, as ``carb.py --binary`` (see
    :func:`_binarize`); the published CaRB numbers use the default (n-ary gold).

    >>> gold = {"s": [("He", "served as", "PM"), ("He", "became", "justice")]}
    >>> system = [Extraction("s", "He", "served as", ["PM"], 0.9),
    ...           Extraction("s", "He", "was", ["a judge"], 0.2)]
    >>> s = carb_scores(gold, system)
    >>> (s["precision"], s["recall"], s["threshold"], round(s["auc"], 3))
    (1.0, 0.5, 0.9, 0.5)
    """
    gold_groups = _by_key(_group(gold, "carb_scores gold"))
    system_groups = _by_key(_group(extractions, "carb_scores extractions"))
    if binary:
        gold_groups = {k: _binarize(v) for k, v in gold_groups.items()}
        system_groups = {k: _binarize(v) for k, v in system_groups.items()}
    n_gold = _check_gold(gold_groups, "carb_scores", "tuples")
    for items in system_groups.values():
        for ex in items:
            if not isinstance(ex.confidence, (int, float)) or not math.isfinite(ex.confidence):
                raise InputError(Errors.E165.format(
                    what="carb_scores extractions",
                    reason=f"the confidence {ex.confidence!r} of {ex.as_tuple()!r} is not a "
                           "finite number"))
    thresholds = np.array(sorted({float(ex.confidence) for items in system_groups.values()
                                  for ex in items}))
    scored = sum(len(system_groups.get(k, ())) for k in gold_groups)
    counts = {"n_gold": n_gold, "n_extractions": scored,
              "ignored": sum(len(v) for k, v in system_groups.items() if k not in gold_groups)}
    if len(thresholds) == 0:
        return {**_no_curve(), **counts}
    p_num = np.zeros(len(thresholds))
    p_den = np.zeros(len(thresholds))
    r_num = np.zeros(len(thresholds))
    for key, golds in gold_groups.items():
        systems = system_groups.get(key)
        if not systems:
            continue
        precision = np.zeros((len(golds), len(systems)))
        recall = np.zeros((len(golds), len(systems)))
        for i, g in enumerate(golds):
            for j, s in enumerate(systems):
                precision[i, j], recall[i, j] = carb_match(g.as_tuple(), s.as_tuple())
        confidence = np.array([float(s.confidence) for s in systems])
        levels = np.unique(confidence)
        level_p, level_r, level_n = [], [], []
        for level in levels:
            kept = confidence >= level
            level_p.append(_greedy_precision(precision[:, kept]))
            level_r.append(recall[:, kept].max(axis=1).sum())
            level_n.append(int(kept.sum()))
        # A global threshold t sees this sentence's tuples with confidence >= t, which are
        # those of its lowest level >= t; above its highest level it keeps none.
        level_of = np.searchsorted(levels, thresholds, side="left")
        live = level_of < len(levels)
        p_num[live] += np.asarray(level_p)[level_of[live]]
        r_num[live] += np.asarray(level_r)[level_of[live]]
        p_den[live] += np.asarray(level_n)[level_of[live]]
    precision = np.where(p_den > 0, p_num / np.maximum(p_den, 1), 1.0)
    recall = r_num / n_gold
    return {**_threshold_summary(thresholds, precision, recall), **counts}


# -------------------------------------------------------------------------------- Re-OIE2016

_REOIE_SLOTS = ("arg0", "arg1", "arg2", "arg3", "temp", "loc")


def read_reoie2016(path: str | os.PathLike[str]) -> dict[str, list[tuple[str, ...]]]:
    """sentence -> ``(arg0, relation, arg1, ...)`` tuples from Re-OIE2016's JSON
    (``{sentence: [{"arg0", "pred", "arg1", "arg2", "arg3", "temp", "loc", ...}]}``).

    As Multi2OIE's gold reader does, the relation ``<be>`` becomes ``[is]`` and a leading
    ``"<be> "`` is removed, the context is left out, and empty arguments are dropped (an empty
    ``arg0`` stays in first place); ``temp`` comes before ``loc``.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise InputError(Errors.E164.format(where=str(path),
                                            reason=exc.strerror or str(exc))) from None
    except UnicodeDecodeError as exc:
        raise InputError(Errors.E164.format(where=str(path),
                                            reason=f"not UTF-8 text ({exc.reason})")) from None
    except json.JSONDecodeError as exc:
        raise InputError(Errors.E164.format(where=f"{path}:{exc.lineno}",
                                            reason=f"not valid JSON ({exc.msg})")) from None
    if not isinstance(data, dict):
        raise InputError(Errors.E164.format(where=str(path), reason=f"the top level is a "
                                                                    f"{type(data).__name__}"))
    gold: dict[str, list[tuple[str, ...]]] = {}
    for n, (sentence, tuples) in enumerate(data.items(), 1):
        where = f"{path}, sentence {n} ({sentence[:40]!r})"
        if not isinstance(tuples, list):
            raise InputError(Errors.E164.format(where=where, reason="its value is not a list"))
        out = gold.setdefault(sentence, [])
        for k, t in enumerate(tuples, 1):
            missing = [f for f in ("pred", *_REOIE_SLOTS)
                       if not isinstance(t, dict) or not isinstance(t.get(f), str)]
            if missing:
                raise InputError(Errors.E164.format(
                    where=f"{where}, tuple {k}",
                    reason=f"field(s) {', '.join(missing)} missing or not strings"))
            relation = "[is]" if t["pred"].strip() == "<be>" else t["pred"].replace("<be> ", "")
            rest = [t[f] for f in _REOIE_SLOTS[1:] if t[f] != ""]
            out.append((t["arg0"], relation, *rest))
    return gold


def _gold_words(ex: Extraction) -> list[str]:
    return " ".join([ex.relation] + [a for a in (ex.arg0, *ex.args) if a != ""]).split(" ")


def _system_words(ex: Extraction) -> list[str]:
    return " ".join([ex.relation, ex.arg0, *ex.args]).split(" ")


def reoie2016_lexical_match(gold: Tuple | Extraction, system: Tuple | Extraction) -> bool:
    """Multi2OIE's ``lexicalMatch``: the words of relation and arguments (split on single
    spaces, case-sensitive) are compared pairwise, and the match holds when the number of
    equal (gold word, system word) pairs exceeds half the gold's word count. A repeated word
    is counted once per pair, so it can cover more than itself.

    >>> reoie2016_lexical_match(("the cat", "sat on", "the mat"), ("cat", "sat", "mat"))
    False
    >>> reoie2016_lexical_match(("the cat", "sat on", "the mat"), ("the cat", "sat", "mat"))
    True
    """
    g = _as_extraction("", gold, "reoie2016_lexical_match")
    s = _as_extraction("", system, "reoie2016_lexical_match")
    return _covers(_gold_words(g), Counter(_system_words(s)))


def _covers(gold_words: list[str], system_bag: Counter) -> bool:
    return sum(system_bag[w] for w in gold_words) / len(gold_words) > 0.5


def reoie2016_scores(gold: Extractions, extractions: Extractions, *,
                     multi2oie_compat: bool = True) -> dict[str, Any]:
    """Re-OIE2016 precision, recall and F1 at the best confidence threshold, and the AUC,
    as Multi2OIE's ``evaluate/evaluate.py`` computes them.

    Per sentence, each gold tuple in turn takes the first system tuple, not yet taken, that
    matches it by :func:`reoie2016_lexical_match`. At a threshold ``t``, precision = taken system
    tuples with confidence >= t / all system tuples with confidence >= t, and recall = taken
    ones >= t / the gold count. F1 is taken at the best threshold (the lowest on ties), the
    AUC by the trapezoid rule over the precision-recall curve (``sklearn``'s
    ``precision_recall_curve`` then ``auc``). Non-finite confidences count as 0, as there.
    System tuples of sentences without gold are ``ignored``.

    ``multi2oie_compat=True`` keeps a quirk of the reference that its published numbers
    include: a gold sentence with no system tuple at all adds its ``n`` gold tuples ``n``
    times each (``n*n``) to the recall denominator. ``False`` counts every gold tuple once.

    >>> gold = {"s": [("the cat", "sat on", "the mat")], "t": [("a", "b", "c"), ("d", "e", "f")]}
    >>> system = [Extraction("s", "the cat", "sat", ["mat"], 0.8)]
    >>> s = reoie2016_scores(gold, system)
    >>> (s["precision"], s["recall_denominator"], s["recall"])
    (1.0, 5, 0.2)
    >>> reoie2016_scores(gold, system, multi2oie_compat=False)["recall"]
    0.3333333333333333
    """
    gold_groups = _by_key(_group(gold, "reoie2016_scores gold"))
    system_groups = _by_key(_group(extractions, "reoie2016_scores extractions"))
    n_gold = _check_gold(gold_groups, "reoie2016_scores", "tuples")
    labels: list[int] = []
    scores: list[float] = []
    denominator = 0
    for key, golds in gold_groups.items():
        systems = system_groups.get(key)
        if not systems:
            denominator += len(golds) ** 2 if multi2oie_compat else len(golds)
            continue
        denominator += len(golds)
        bags = [Counter(_system_words(s)) for s in systems]
        taken = [False] * len(systems)
        for g in golds:
            words = _gold_words(g)
            j = next((j for j, bag in enumerate(bags) if not taken[j] and _covers(words, bag)),
                     None)
            if j is not None:
                taken[j] = True
        for s, hit in zip(systems, taken):
            labels.append(int(hit))
            c = s.confidence
            scores.append(float(c) if isinstance(c, (int, float)) and math.isfinite(c) else 0.0)
    counts = {"n_gold": n_gold, "n_extractions": len(labels), "matched": sum(labels),
              "recall_denominator": denominator,
              "ignored": sum(len(v) for k, v in system_groups.items() if k not in gold_groups)}
    if not any(labels):
        return {**_no_curve(), **counts}
    order = np.argsort(-np.asarray(scores), kind="stable")
    descending = np.asarray(scores)[order]
    found = np.cumsum(np.asarray(labels)[order])
    thresholds = np.unique(descending)  # ascending
    kept = np.searchsorted(-descending, -thresholds, side="right")  # tuples >= each threshold
    hits = found[kept - 1]
    return {**_threshold_summary(thresholds, hits / kept, hits / denominator), **counts}
