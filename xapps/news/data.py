"""MIND / xMIND readers: news items, impressions, id coverage and a leakage-free time split.

xMIND translates MIND's news into other languages but keeps MIND's ids and behaviours, so
the same ``behaviors.tsv`` can be scored against English or, say, Mandarin news. The
readers accept both news layouts (MIND's 8 columns, xMIND's 3 with a header) and
:func:`coverage` / :func:`restrict` say and fix how many clicked or shown ids a news file
lacks, which is never zero for a sample or a translated subset.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..errors import Errors, InputError
from ..fileio import iter_lines

logger = logging.getLogger("xapps")

#: MIND's impression time, e.g. ``11/12/2019 2:14:46 PM``.
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"

_SENTENCE_END = ".!?。！？"
_FULL_WIDTH_END = "。！？"


@dataclass(frozen=True)
class NewsItem:
    id: str
    title: str
    abstract: str = ""
    category: str = ""
    subcategory: str = ""

    def text(self, with_abstract: bool = True) -> str:
        """The text a news encoder reads: the title, then the abstract as a second sentence
        (without a doubled full stop when the title already ends a sentence)."""
        if not (with_abstract and self.abstract):
            return self.title
        if not self.title:
            return self.abstract
        if self.title[-1] in _FULL_WIDTH_END:  # Chinese/Japanese: no space between sentences
            return self.title + self.abstract
        if self.title[-1] in _SENTENCE_END:
            return f"{self.title} {self.abstract}"
        return f"{self.title}. {self.abstract}"


@dataclass
class Impression:
    id: str
    user: str
    time: datetime | None
    history: list[str]  # clicked news ids, oldest first
    candidates: list[str]  # news ids shown
    labels: list[int] | None  # 1 clicked / 0 not, per candidate; None in an unlabelled file


def _news_error(where: str, reason: str) -> InputError:
    return InputError(Errors.E194.format(where=where, reason=reason))


def read_news(path: str | os.PathLike[str]) -> dict[str, NewsItem]:
    """id -> :class:`NewsItem` of a MIND or xMIND ``news.tsv``; the layout is told per line
    by its column count (5-8: MIND, whose empty trailing columns may be cut; 2-3: xMIND).
    An xMIND header (first field ``nid``) is skipped; a repeated id keeps its first line."""
    path = Path(path)
    news: dict[str, NewsItem] = {}
    duplicates = 0
    first = True
    for lineno, line in iter_lines(path, _news_error):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.rstrip("\r\n").split("\t")]
        if first:
            first = False
            fields[0] = fields[0].lstrip("\ufeff")
            if fields[0].lower() == "nid":
                continue
        where = f"{path}:{lineno}"
        n = len(fields)
        if 5 <= n <= 8:
            nid, category, subcategory, title, abstract = fields[:5]
        elif n in (2, 3):
            nid, title, abstract = (fields + [""])[:3]
            category = subcategory = ""
        else:
            raise _news_error(where, f"the line has {n} tab-separated column{'s' * (n != 1)}")
        if not nid:
            raise _news_error(where, "the news id (first column) is empty")
        if nid in news:
            duplicates += 1
            continue
        news[nid] = NewsItem(nid, title, abstract, category, subcategory)
    if duplicates:
        logger.warning("%s: %d duplicate news id(s); kept the first line of each.", path,
                       duplicates)
    return news


_CANDIDATES = ("candidates as space-separated 'N123-1' (clicked) / 'N123-0' (not clicked), "
               "or all as plain ids 'N123' in an unlabelled file")


def _behaviors_error(where: str, reason: str, expected: str = "UTF-8 text") -> InputError:
    return InputError(Errors.E195.format(where=where, reason=reason, expected=expected))


def _candidates(value: str, where: str) -> tuple[list[str], list[int] | None]:
    ids: list[str] = []
    labels: list[int] = []
    unlabelled = 0
    for token in value.split():
        nid, sep, label = token.rpartition("-")
        if not sep:
            nid = token
            unlabelled += 1
        elif label not in ("0", "1"):
            raise _behaviors_error(where, f"candidate {token!r} has the label {label!r}",
                                   _CANDIDATES)
        else:
            labels.append(int(label))
        if not nid:
            raise _behaviors_error(where, f"candidate {token!r} has no news id", _CANDIDATES)
        ids.append(nid)
    if not ids:
        raise _behaviors_error(where, "the impression has no candidates", _CANDIDATES)
    if unlabelled and labels:
        raise _behaviors_error(
            where, f"{len(labels)} candidates have a label and {unlabelled} have none "
            f"(e.g. {next(t for t in value.split() if '-' not in t)!r})", _CANDIDATES)
    return ids, (labels or None)


def read_behaviors(path: str | os.PathLike[str]) -> list[Impression]:
    """The impressions of a MIND ``behaviors.tsv``, in file order; ``labels`` is None for
    an unlabelled file (MIND's test set, whose candidates carry no ``-0``/``-1``)."""
    path = Path(path)
    out: list[Impression] = []
    for lineno, line in iter_lines(path, _behaviors_error):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        fields = [f.strip() for f in line.rstrip("\r\n").split("\t")]
        if len(fields) != 5:
            raise _behaviors_error(where, f"the line has {len(fields)} tab-separated columns",
                                   "5 columns")
        imp_id, user, time_text, history, impressions = fields
        time = None
        if time_text:
            try:
                time = datetime.strptime(time_text, TIME_FORMAT)
            except ValueError:
                raise _behaviors_error(where, f"the time {time_text!r} cannot be read",
                                       "a time like '11/12/2019 2:14:46 PM' "
                                       f"({TIME_FORMAT}) or an empty column") from None
        candidates, labels = _candidates(impressions, where)
        out.append(Impression(imp_id, user, time, history.split(), candidates, labels))
    return out


@dataclass
class CoverageReport:
    """How much of the behaviours a news file covers. Id counts are occurrences (a news id
    clicked by two users counts twice); ``empty_histories`` counts impressions with no
    known clicked id (an empty history or only unknown ids); ``impressions_usable`` those
    that keep a clicked and a non-clicked known candidate, i.e. what :func:`restrict`
    keeps."""

    impressions: int = 0
    history_ids: int = 0
    history_unknown: int = 0
    candidate_ids: int = 0
    candidate_unknown: int = 0
    empty_histories: int = 0
    impressions_usable: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        def pct(part: int, whole: int) -> str:
            return f"{100 * part / whole:.1f}%" if whole else "n/a"

        return (f"{self.impressions} impressions; history ids known "
                f"{pct(self.history_ids - self.history_unknown, self.history_ids)} "
                f"({self.history_unknown} of {self.history_ids} unknown); candidate ids known "
                f"{pct(self.candidate_ids - self.candidate_unknown, self.candidate_ids)} "
                f"({self.candidate_unknown} of {self.candidate_ids} unknown); "
                f"{self.empty_histories} without a known click "
                f"({pct(self.empty_histories, self.impressions)}); "
                f"{self.impressions_usable} usable "
                f"({pct(self.impressions_usable, self.impressions)})")


def _usable(imp: Impression, news: Mapping[str, object]) -> bool:
    if imp.labels is None:
        return False
    known = [y for c, y in zip(imp.candidates, imp.labels) if c in news]
    return 1 in known and 0 in known


def coverage(impressions: Iterable[Impression], news: Mapping[str, object]) -> CoverageReport:
    """Counts of the history and candidate ids that ``news`` lacks, and of the impressions
    still usable without them (see :class:`CoverageReport`)."""
    report = CoverageReport()
    for imp in impressions:
        report.impressions += 1
        unknown = sum(n not in news for n in imp.history)
        report.history_ids += len(imp.history)
        report.history_unknown += unknown
        report.empty_histories += unknown == len(imp.history)
        report.candidate_ids += len(imp.candidates)
        report.candidate_unknown += sum(c not in news for c in imp.candidates)
        report.impressions_usable += _usable(imp, news)
    return report


def restrict(impressions: Iterable[Impression],
             news: Mapping[str, object]) -> list[Impression]:
    """New impressions without the ids ``news`` lacks (history ids, and candidates with their
    labels), in order; an impression left without a clicked or a non-clicked candidate is
    dropped, since no ranking metric is defined on it."""
    out = []
    for imp in impressions:
        if imp.labels is None:
            raise InputError(Errors.E196.format(
                what="impression", value=imp.id, reason="it has no click labels",
                fix="restrict() needs labelled impressions (candidates 'N123-1'/'N123-0'), "
                    "e.g. MIND's train or dev behaviors.tsv."))
        kept = [(c, y) for c, y in zip(imp.candidates, imp.labels) if c in news]
        labels = [y for _, y in kept]
        if 1 not in labels or 0 not in labels:
            continue
        out.append(Impression(imp.id, imp.user, imp.time,
                              [n for n in imp.history if n in news],
                              [c for c, _ in kept], labels))
    return out


def split_by_time(impressions: Sequence[Impression], test_fraction: float = 0.2,
                  dev_fraction: float = 0.1
                  ) -> tuple[list[Impression], list[Impression], list[Impression]]:
    """(train, dev, test) by time, so the model is judged on later behaviour than it saw.

    Impressions are sorted by time (impressions without a time first, otherwise in file
    order). The last ``test_fraction`` of them (of all) form the test set, from which every
    impression of a user who also appears in train or dev is then removed: a test user's
    clicks never trained the model, nor selected it. Of the earlier part, the last
    ``dev_fraction`` (again of all impressions) is dev and the rest train. The test set can
    therefore be much smaller than ``test_fraction`` when users come back often."""
    for name, value in (("test_fraction", test_fraction), ("dev_fraction", dev_fraction)):
        if not 0 <= value < 1:
            raise InputError(Errors.E196.format(
                what=name, value=value, reason="it must be in [0, 1)",
                fix="Pass e.g. test_fraction=0.2, dev_fraction=0.1."))
    if test_fraction + dev_fraction >= 1:
        raise InputError(Errors.E196.format(
            what="test_fraction + dev_fraction", value=test_fraction + dev_fraction,
            reason="nothing would be left to train on",
            fix="Pass fractions that sum to less than 1, e.g. 0.2 and 0.1."))
    ordered = sorted(impressions, key=lambda imp: (imp.time is not None,
                                                   imp.time or datetime.min))
    n = len(ordered)
    n_test = int(round(n * test_fraction))
    n_dev = int(round(n * dev_fraction))
    earlier, test = ordered[:n - n_test], ordered[n - n_test:]
    n_dev = min(n_dev, len(earlier))
    train, dev = earlier[:len(earlier) - n_dev], earlier[len(earlier) - n_dev:]
    seen = {imp.user for imp in earlier}
    return train, dev, [imp for imp in test if imp.user not in seen]
