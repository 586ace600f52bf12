import doctest
import json
import math

import pytest

from xapps.errors import InputError
from xapps.oie import evaluate
from xapps.oie.evaluate import (
    Extraction,
    benchie_realisations,
    benchie_scores,
    carb_match,
    carb_scores,
    read_benchie_extractions,
    read_benchie_gold,
    read_carb_extractions,
    read_carb_gold,
    read_reoie2016,
    reoie2016_lexical_match,
    reoie2016_scores,
)
from xapps.paths import data_root

BENCHIE = data_root() / "benchie"
OIE = data_root() / "oie"


def need(path):
    if not path.exists():
        pytest.skip(f"{path} is not there (set XAPPS_DATA to the shared data folder)")
    return path


@pytest.fixture(scope="module")
def benchie_gold():
    return {lang: read_benchie_gold(need(BENCHIE / "gold" / f"benchie_gold_annotations_{lang}.txt"))
            for lang in ("en", "de")}


@pytest.fixture(scope="module")
def carb_gold():
    return read_carb_gold(need(OIE / "carb_gold_test.tsv"))


def test_doctests_pass():
    result = doctest.testmod(evaluate)
    assert result.failed == 0 and result.attempted >= 15


# ---------------------------------------------------------------------------- BenchIE: data

# Published F1 (BenchIE paper / gkiril/benchie README); P and R are the README's printout.
PUBLISHED = [
    ("en", "clausie", 0.339, 0.5029154518950437, 0.25555555555555554),
    ("en", "minie", 0.337, 0.4290617848970252, 0.2777777777777778),
    ("en", "openie6", 0.254, 0.3110871905274489, 0.21407407407407408),
    ("en", "m2oie_en", 0.228, 0.3924050632911392, 0.16074074074074074),
    ("de", "m2oie_de", 0.040, None, None),
]


@pytest.mark.parametrize("lang,system,f1,precision,recall", PUBLISHED)
def test_benchie_reproduces_published_scores(benchie_gold, lang, system, f1, precision, recall):
    path = need(BENCHIE / "system-outputs" / f"{system}_explicit.txt")
    scores = benchie_scores(benchie_gold[lang], read_benchie_extractions(path))
    assert round(scores["f1"], 3) == f1
    if precision is not None:
        assert scores["precision"] == pytest.approx(precision, abs=1e-12)
        assert scores["recall"] == pytest.approx(recall, abs=1e-12)
    assert scores["n_gold"] == {"en": 1350, "de": 1086}[lang]
    assert scores["tp"] + scores["fn"] == scores["n_gold"]
    assert scores["tp"] + scores["fp"] + scores["duplicates"] == scores["n_extractions"]


@pytest.mark.parametrize("lang", ["en", "de"])
def test_benchie_gold_against_itself(benchie_gold, lang):
    gold = benchie_gold[lang]
    # One triple per synset, avoiding triples of an earlier synset: BenchIE credits a triple
    # to the first synset that has it, so a synset all of whose triples occur earlier in the
    # sentence can never be found (1 in en, 11 in de); recall is short by exactly those.
    system, shadowed = {}, 0
    for sent_id, clusters in gold.items():
        seen = set()
        for cluster in clusters:
            fresh = [v for v in cluster if v not in seen]
            if fresh:
                system.setdefault(sent_id, []).append(fresh[0])
            else:
                shadowed += 1
            seen.update(cluster)
    scores = benchie_scores(gold, system)
    assert shadowed == {"en": 1, "de": 11}[lang]
    assert scores["precision"] == 1.0
    assert scores["recall"] == (scores["n_gold"] - shadowed) / scores["n_gold"]
    assert benchie_scores(gold, {})["f1"] == 0.0
    half = {sid: [cluster[0] for cluster in clusters]
            for i, (sid, clusters) in enumerate(gold.items()) if i % 2 == 0}
    # each triple finds the first synset having it; a synset counts once
    found = sum(len({next(i for i, c in enumerate(gold[sid]) if t in c) for t in triples})
                for sid, triples in half.items())
    kept = sum(len(v) for v in half.values())
    assert kept / scores["n_gold"] == pytest.approx(0.5, abs=0.02)
    assert benchie_scores(gold, half)["recall"] == found / scores["n_gold"]


def test_benchie_sentence_ids_are_line_numbers(benchie_gold):
    lines = need(BENCHIE / "sentences" / "sample300_en.txt").read_text("utf-8").splitlines()
    assert list(benchie_gold["en"]) == [str(i) for i in range(1, len(lines) + 1)]


# ----------------------------------------------------------------------- BenchIE: by hand

def test_benchie_realisations_follow_the_reference_tokenisation():
    assert benchie_realisations("[a] [b] c") == ["a b c", "a c", "b c", "c"]
    # A part runs from a token with "[" to the next token with "]"; brackets do not nest, so
    # here "y]" is left over as a stray "]" and dropped.
    assert benchie_realisations("x [of [the] y] z") == ["x of the z", "x z"]
    assert benchie_realisations("[der Achsenmächte], das") == ["der Achsenmächte, das", "das"]
    # A token holding both brackets is optional as a whole.
    assert benchie_realisations("[``]A New") == ["``A New", "New"]
    # An unclosed "[" and a stray "]" drop their token (BenchIE's reader does the same).
    assert benchie_realisations("a [b c") == ["a c"]
    assert benchie_realisations("a b] c") == ["a c"]
    # Double spaces survive inside a form, as in the reference.
    assert benchie_realisations("a  [b]") == ["a  b", "a"]


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOLD = """sent_id:1\tHe served as PM and became a justice .
1--> Cluster 1:
He --> served as --> [the] PM
He --> served --> as [the] PM
1--> Cluster 2:
He --> became --> [a] justice
2-->Cluster 3:
He --> served --> as PM

sent_id:2\tNothing to extract .

sent_id:3\tIt rains .
3--> Cluster 1:
It --> rains --> [today]
"""


def test_read_benchie_gold(tmp_path):
    gold = read_benchie_gold(write(tmp_path, "gold.txt", GOLD))
    assert list(gold) == ["1", "2", "3"]
    assert gold["1"][0] == [("He", "served as", "the PM"), ("He", "served as", "PM"),
                            ("He", "served", "as the PM"), ("He", "served", "as PM")]
    assert len(gold["1"]) == 3 and gold["2"] == []
    assert gold["3"] == [[("It", "rains", "today"), ("It", "rains", "")]]


def test_benchie_scoring_rules(tmp_path):
    gold = read_benchie_gold(write(tmp_path, "gold.txt", GOLD))
    system = {
        "1": [(" He ", "served", "as PM"),      # slots are stripped: synset 1
              ("He", "served", "as PM"),        # synset 1 again: neither TP nor FP
              ("He", "became", "a", "justice"),  # n-ary: object "a justice", synset 2
              ("He", "became", "justice.")],    # no realisation: FP
        "2": [("It", "is", "nothing")],         # sentence without synsets: FP
        "7": [("x", "y", "z")],                 # not in the gold: ignored
    }
    s = benchie_scores(gold, system)
    # "as PM" is also in synset 3 but is credited to synset 1, the first having it.
    assert (s["tp"], s["fp"], s["duplicates"], s["ignored"], s["n_extractions"]) == (2, 2, 1, 1, 5)
    assert s["precision"] == 0.5 and s["recall"] == 2 / 4 and s["fn"] == 2
    ex = [Extraction("3", "It", "rains", [])]
    assert benchie_scores(gold, ex)["tp"] == 1


def test_read_benchie_extractions(tmp_path):
    path = write(tmp_path, "sys.txt", "1\tHe\tserved\tas PM\n\n2\tIt\trains\t\n")
    assert read_benchie_extractions(path) == {"1": [("He", "served", "as PM")],
                                              "2": [("It", "rains", "")]}


@pytest.mark.parametrize("text,line,message", [
    ("sent_id:1\tS .\nHe --> served --> as PM\n", 2, "before any cluster header"),
    ("sent_id:1\tS .\n1--> Cluster 1:\nHe --> served\n", 3, "2 slots"),
    ("sent_id:1\tS .\n\nsent_id:1\tT .\n", 3, r"id '1' repeats \(first at .*:1\)"),
    ("sent_id:1\tS .\n1--> Cluster 1:\nsomething else\n", 3, "neither a sentence"),
    ("sent_id:1 S .\n", 1, "must read 'sent_id:N<TAB>sentence'"),
    ("1--> Cluster 1:\n", 1, "before any 'sent_id:' line"),
])
def test_benchie_gold_errors_name_the_line(tmp_path, text, line, message):
    path = write(tmp_path, "gold.txt", text)
    with pytest.raises(InputError, match=rf"\[E160\] .*gold.txt:{line}: .*{message}.*"
                                         r"Expected BenchIE gold annotations"):
        read_benchie_gold(path)


def test_benchie_extraction_errors_name_the_line(tmp_path):
    path = write(tmp_path, "sys.txt", "1\tHe\tserved\tas PM\n1\tHe\tserved as PM\n")
    with pytest.raises(InputError, match=r"\[E161\] .*sys.txt:2: found 3 tab-separated "
                                         r"columns, not 4\. Expected BenchIE system output"):
        read_benchie_extractions(path)
    with pytest.raises(InputError, match=r"\[E161\] .*missing.txt: No such file"):
        read_benchie_extractions(tmp_path / "missing.txt")


def test_benchie_rejects_empty_gold_and_bad_input():
    with pytest.raises(InputError, match=r"\[E166\] benchie_scores: the gold standard has no "
                                         "fact synsets"):
        benchie_scores({"1": []}, {})
    with pytest.raises(InputError, match=r"\[E165\] benchie_scores: .*neither an Extraction"):
        benchie_scores({"1": [[("a", "b", "c")]]}, {"1": [("a",)]})
    with pytest.raises(InputError, match=r"\[E165\] .*a bare tuple needs its sentence"):
        benchie_scores({"1": [[("a", "b", "c")]]}, [("a", "b", "c")])


# ------------------------------------------------------------------------------- CaRB: data

def test_carb_gold_against_itself(carb_gold):
    n_gold = sum(len(v) for v in carb_gold.values())
    assert (len(carb_gold), n_gold) == (634, 2715)
    # 14 gold lines of the CaRB test set have an empty relation column; CaRB scores any pair
    # whose relations share no word as (0, 0), so those tuples match nothing, not even
    # themselves, and the gold scores 2701/2715 against itself, not 1.
    unmatchable = sum(1 for v in carb_gold.values() for t in v if not t[1].split())
    assert unmatchable == 14
    s = carb_scores(carb_gold, carb_gold)
    ceiling = (n_gold - unmatchable) / n_gold
    assert s["precision"] == pytest.approx(ceiling, abs=1e-12)
    assert s["recall"] == pytest.approx(ceiling, abs=1e-12)
    assert s["f1"] == pytest.approx(ceiling, abs=1e-12)
    # One threshold: the curve is the segment from (0, 1) to (recall, precision).
    assert s["auc"] == pytest.approx(ceiling * (1 + ceiling) / 2, abs=1e-12)
    assert (s["threshold"], s["n_extractions"], s["ignored"]) == (1.0, n_gold, 0)


def test_carb_empty_and_half_systems(carb_gold):
    n_gold = sum(len(v) for v in carb_gold.values())
    assert {k: carb_scores(carb_gold, [])[k] for k in ("precision", "recall", "f1", "auc")} == \
        {"precision": 0.0, "recall": 0.0, "f1": 0.0, "auc": 0.0}
    half = {s: v for i, (s, v) in enumerate(carb_gold.items()) if i % 2 == 0}
    kept = sum(len(v) for v in half.values())
    found = sum(1 for v in half.values() for t in v if t[1].split())
    s = carb_scores(carb_gold, half)
    assert kept / n_gold == pytest.approx(0.5, abs=0.01)
    assert s["recall"] == pytest.approx(found / n_gold, abs=1e-12)
    assert s["precision"] == pytest.approx(found / kept, abs=1e-12)


def test_carb_test_sentences_cover_the_gold(carb_gold):
    sentences = need(OIE / "carb_test_sents.txt").read_text("utf-8").splitlines()
    assert set(carb_gold) <= {s.strip() for s in sentences}


# ---------------------------------------------------------------------------- CaRB: by hand

@pytest.mark.parametrize("gold,system,expected", [
    (("He", "served as", "PM"), ("He", "served as", "PM"), (1.0, 1.0)),
    # relation words must overlap, else nothing counts
    (("He", "served", "PM"), ("He", "became", "PM"), (0.0, 0.0)),
    # a missing object when the gold has one is no match
    (("He", "served", "PM"), ("He", "served"), (0.0, 0.0)),
    # an extra system object is not counted when the gold has none
    (("It", "rains"), ("It", "rains", "today"), (1.0, 1.0)),
    # arguments after the first are joined into one object on both sides
    (("He", "served", "as PM", "in 1901"), ("He", "served", "as PM in", "1901"), (1.0, 1.0)),
    # a system "be" matches a form of be in the gold relation
    (("It", "is", "red"), ("It", "be", "red"), (1.0, 1.0)),
    # case-sensitive, and each system word is used once
    (("The cat", "sat", "the the mat"), ("the cat", "sat", "the mat"), (0.8, 4 / 6)),
    # "said"-type gold relations also try the system tuple with subject and object swapped
    (("He", "said", "it rains"), ("it rains", "said", "He"), (1.0, 1.0)),
    (("He", "stated", "it rains"), ("it rains", "stated", "He"), (1 / 4, 1 / 4)),
])
def test_carb_match(gold, system, expected):
    assert carb_match(gold, system) == pytest.approx(expected)


def test_carb_scores_curve_by_hand():
    gold = {"s1": [("A", "likes", "B"), ("A", "hates", "C")], "s2": [("D", "eats", "E")]}
    system = [
        Extraction("s1", "A", "likes", ["B"], 0.9),    # (1, 1) with gold 1
        Extraction("s1", "A", "likes", ["C"], 0.5),    # (2/3, 2/3) with gold 1, (2/3, 2/3) w/ 2
        Extraction("s2", "D", "drinks", ["E"], 0.5),   # relation differs: (0, 0)
        Extraction("other", "x", "y", ["z"], 0.7),     # no gold: ignored, but 0.7 is a threshold
    ]
    s = carb_scores(gold, system)
    # t=0.5 keeps all three: greedy precision pairs (g1, e1)=1 and (g2, e2)=0 in s1, (g3, e3)=0
    #       in s2, so P = 1/3; recall takes g1's best (1), g2 and g3 get 0, so R = 1/3.
    # t=0.7 (a confidence of the ignored sentence) and t=0.9 keep e1 only: P = 1, R = 1/3.
    # The best F1 is first reached at 0.7.
    assert (s["precision"], s["recall"], s["threshold"]) == (1.0, pytest.approx(1 / 3), 0.7)
    assert s["ignored"] == 1 and s["n_extractions"] == 3
    assert [c for point in s["curve"] for c in point] == pytest.approx(
        [0.5, 1 / 3, 1 / 3, 0.7, 1.0, 1 / 3, 0.9, 1.0, 1 / 3])
    # trapezoids: (1/3, 1/3) -> (1/3, 1) -> (1/3, 1) -> (0, 1)
    assert s["auc"] == pytest.approx(1 / 3)


def test_carb_greedy_precision_and_best_recall():
    gold = {"s": [("A", "likes", "B C"), ("A", "likes", "B")]}
    system = {"s": [("A", "likes", "B")]}
    s = carb_scores(gold, system)
    # one system tuple matches one gold tuple for precision; each gold tuple takes its
    # best system tuple for recall (3/4 and 1)
    assert s["precision"] == 1.0 and s["recall"] == pytest.approx((3 / 4 + 1) / 2)


def test_carb_sentences_match_without_spaces_punctuation_or_ptb_escapes():
    gold = {"He said ( hello ) .": [("He", "said", "hello")]}
    system = [Extraction("He said (hello).", "He", "said", ["hello"]),
              Extraction("He said -LRB- hello -RRB- .", "He", "said", ["hello"])]
    s = carb_scores(gold, system)
    assert s["ignored"] == 0 and s["recall"] == 1.0 and s["precision"] == 0.5


def test_carb_system_tuples_of_a_sentence_without_gold_tuples_count_as_wrong():
    gold = {"s": [("A", "likes", "B")], "t": []}
    s = carb_scores(gold, {"s": [("A", "likes", "B")], "t": [("C", "is", "D")]})
    assert (s["precision"], s["recall"], s["ignored"]) == (0.5, 1.0, 0)


def test_carb_binary_splits_nary_tuples():
    gold = {"s": [("He", "flew", "to Paris", "in May")]}
    system = {"s": [("He", "flew", "to Paris"), ("He", "flew to Paris in", "May")]}
    assert carb_scores(gold, system, binary=True)["f1"] == 1.0
    assert carb_scores(gold, system)["f1"] < 1.0


def test_read_carb_files(tmp_path):
    gold = read_carb_gold(write(tmp_path, "gold.tsv",
                                "S one .\tis\tA\tB\tC: context\nS one .\thas\tA\t\n\nS two .\tgo\tX\n"))
    assert gold == {"S one .": [("A", "is", "B"), ("A", "has")], "S two .": [("X", "go")]}
    ex = read_carb_extractions(write(tmp_path, "sys.tsv", "S one .\t0.25\tis\tA\tB\tC\n"
                                                          "S two .\t1\tgo\n"))
    assert ex == [Extraction("S one .", "A", "is", ["B", "C"], 0.25),
                  Extraction("S two .", "", "go", [], 1.0)]


def test_carb_reader_errors_name_the_line(tmp_path):
    with pytest.raises(InputError, match=r"\[E162\] .*gold.tsv:2: found 2 tab-separated "
                                         r"columns, need a sentence, a relation and at least "
                                         r"one argument\. Expected CaRB gold"):
        read_carb_gold(write(tmp_path, "gold.tsv", "S .\tis\tA\tB\nS .\tis\n"))
    with pytest.raises(InputError, match=r"\[E163\] .*sys.tsv:1: the confidence 'high' is not "
                                         r"a number\. Expected CaRB's tabbed system output"):
        read_carb_extractions(write(tmp_path, "sys.tsv", "S .\thigh\tis\tA\n"))
    with pytest.raises(InputError, match=r"\[E163\] .*sys.tsv:1: the confidence 'nan' is not "
                                         "finite"):
        read_carb_extractions(write(tmp_path, "sys.tsv", "S .\tnan\tis\tA\n"))


def test_carb_rejects_bad_confidence_and_empty_gold():
    with pytest.raises(InputError, match=r"\[E165\] carb_scores extractions: the confidence nan"):
        carb_scores({"s": [("a", "b", "c")]}, [Extraction("s", "a", "b", ["c"], math.nan)])
    with pytest.raises(InputError, match=r"\[E166\] carb_scores: the gold standard has no "
                                         "tuples"):
        carb_scores({}, [])


# ------------------------------------------------------------------------- Re-OIE2016: data

@pytest.mark.parametrize("name,n_gold", [("Re-OIE2016.json", 1508),
                                         ("Re-OIE2016-Spanish.json", 1496)])
def test_reoie2016_gold_against_itself(name, n_gold):
    gold = read_reoie2016(need(OIE / name))
    assert (len(gold), sum(len(v) for v in gold.values())) == (595, n_gold)
    s = reoie2016_scores(gold, gold)
    assert (s["precision"], s["recall"], s["f1"], s["auc"]) == (1.0, 1.0, 1.0, 1.0)
    assert s["matched"] == n_gold
    empty = reoie2016_scores(gold, {})
    assert (empty["precision"], empty["recall"], empty["f1"], empty["auc"]) == (0, 0, 0, 0)
    half = {k: v for i, (k, v) in enumerate(gold.items()) if i % 2 == 0}
    kept = sum(len(v) for v in half.values())
    missed = sum(len(v) ** 2 for k, v in gold.items() if k not in half)
    fair = reoie2016_scores(gold, half, multi2oie_compat=False)
    assert fair["recall"] == kept / n_gold and fair["precision"] == 1.0
    assert fair["recall"] == pytest.approx(0.5, abs=0.01)
    # Multi2OIE's evaluate.py counts a missed sentence's n gold tuples n*n times.
    compat = reoie2016_scores(gold, half)
    assert compat["recall"] == kept / (kept + missed) and compat["recall_denominator"] == \
        kept + missed


def test_reoie2016_reader_relabels_be(tmp_path):
    record = {"arg0": "", "arg1": "x", "arg2": "", "arg3": "", "temp": "today", "loc": "here",
              "context": "he said", "pred": "<be> named"}
    path = write(tmp_path, "g.json", json.dumps({"S .": [record, {**record, "pred": "<be>"}]}))
    assert read_reoie2016(path) == {"S .": [("", "named", "x", "today", "here"),
                                            ("", "[is]", "x", "today", "here")]}


# --------------------------------------------------------------------- Re-OIE2016: by hand

def test_reoie2016_lexical_match_rules():
    # 3 of 6 gold words is not more than half
    assert not reoie2016_lexical_match(("a b", "c d", "e f"), ("a", "c", "e"))
    assert reoie2016_lexical_match(("a b", "c d", "e f"), ("a", "c", "e f"))
    # every (gold word, system word) pair counts: a repeated word covers more than itself
    assert reoie2016_lexical_match(("the x", "y", "z"), ("the", "the", "the"))
    # case-sensitive
    assert not reoie2016_lexical_match(("A", "B", "C"), ("a", "b", "c"))


def test_reoie2016_each_system_tuple_matches_once_in_order():
    gold = {"s": [("a", "b", "c"), ("a", "b", "c d")]}
    system = [Extraction("s", "a", "b", ["c"], 0.9), Extraction("s", "a", "b", ["c d"], 0.4)]
    s = reoie2016_scores(gold, system)
    assert (s["matched"], s["precision"], s["recall"], s["threshold"]) == (2, 1.0, 1.0, 0.4)
    one = reoie2016_scores(gold, system[:1])
    assert (one["matched"], one["recall"]) == (1, 0.5)


def test_reoie2016_curve_and_nonfinite_confidence():
    gold = {"s": [("a", "b", "c"), ("d", "e", "f")]}
    system = [Extraction("s", "a", "b", ["c"], 0.9), Extraction("s", "x", "y", ["z"], 0.8),
              Extraction("s", "d", "e", ["f"], math.nan)]  # counts as confidence 0
    s = reoie2016_scores(gold, system)
    assert [c for point in s["curve"] for c in point] == pytest.approx(
        [0.0, 2 / 3, 1.0, 0.8, 0.5, 0.5, 0.9, 1.0, 0.5])
    assert (s["f1"], s["threshold"]) == (pytest.approx(0.8), 0.0)
    # (1, 2/3) -> (0.5, 0.5) -> (0.5, 1) -> (0, 1)
    assert s["auc"] == pytest.approx(0.5 * (2 / 3 + 0.5) / 2 + 0.5)


def test_reoie2016_reader_errors(tmp_path):
    with pytest.raises(InputError, match=r"\[E164\] .*bad.json:2: not valid JSON"):
        read_reoie2016(write(tmp_path, "bad.json", '{"S .": [\n}'))
    path = write(tmp_path, "g.json", json.dumps({"S .": [{"arg0": "a", "pred": "b"}]}))
    with pytest.raises(InputError, match=r"\[E164\] .*g.json, sentence 1 \('S \.'\), tuple 1: "
                                         r"field\(s\) arg1, arg2, arg3, temp, loc missing"):
        read_reoie2016(path)
    with pytest.raises(InputError, match=r"\[E164\] .*g.json: the top level is a list"):
        read_reoie2016(write(tmp_path, "g.json", "[]"))
