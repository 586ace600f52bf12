import logging
import math
from datetime import datetime

import numpy as np
import pytest

from xapps.errors import InputError
from xapps.news.data import (
    CoverageReport,
    Impression,
    NewsItem,
    coverage,
    read_behaviors,
    read_news,
    restrict,
    split_by_time,
)
from xapps.news.metrics import auc, evaluate_impressions, intra_list_distance, mrr, ndcg

MIND_NEWS = (
    "N1\tsports\tfootball_nfl\tThe Brands Queen Elizabeth Swears By\tShop the notebooks.\t"
    "https://assets.msn.com/labs/mind/AAGH0ET.html\t[]\t[]\n"
    "N2\tnews\tnewsus\tDispose of unwanted prescription drugs!\t\t"
    "https://assets.msn.com/labs/mind/AAISxPN.html\t[]\t[]\n"
    "\n"
    # entity columns cut off: 5 columns, still MIND
    "N3\tlifestyle\tlifestyleroyals\t  Spaced title  \t An abstract \n"
)

XMIND_NEWS = (
    "nid\ttitle\tabstract\n"
    "N1\t伊麗莎白女王的品牌。\t購買筆記本。\n"
    "N2\t在DEA的回收日丟棄藥物\t\n"
    "N4\tNo abstract column\n"
)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ news.tsv

def test_read_news_mind_layout(tmp_path):
    news = read_news(write(tmp_path, "news.tsv", MIND_NEWS))
    assert list(news) == ["N1", "N2", "N3"]
    assert news["N1"] == NewsItem("N1", "The Brands Queen Elizabeth Swears By",
                                  "Shop the notebooks.", "sports", "football_nfl")
    assert news["N2"].abstract == ""
    assert news["N3"].title == "Spaced title" and news["N3"].abstract == "An abstract"
    assert news["N3"].category == "lifestyle"


def test_read_news_xmind_layout_with_header_and_missing_abstracts(tmp_path):
    news = read_news(write(tmp_path, "news.tsv", XMIND_NEWS))
    assert list(news) == ["N1", "N2", "N4"]
    assert news["N1"].title == "伊麗莎白女王的品牌。"
    assert news["N1"].abstract == "購買筆記本。"
    assert news["N2"].abstract == "" and news["N4"].abstract == ""
    assert news["N4"].title == "No abstract column" and news["N4"].category == ""


def test_news_text_joins_title_and_abstract_once():
    assert NewsItem("N", "Title", "Abstract.").text() == "Title. Abstract."
    assert NewsItem("N", "Title?", "Abstract.").text() == "Title? Abstract."
    assert NewsItem("N", "Title.", "Abstract.").text() == "Title. Abstract."
    assert NewsItem("N", "標題。", "摘要。").text() == "標題。摘要。"
    assert NewsItem("N", "Title", "Abstract.").text(with_abstract=False) == "Title"
    assert NewsItem("N", "Title").text() == "Title"


@pytest.mark.parametrize("line,found", [("N9\tonly four\tcolumns\there\n", "4"),
                                        ("N9\n", "1"),
                                        ("\ta\tb\n", "id")])
def test_read_news_bad_line_names_file_line_and_layouts(tmp_path, line, found):
    path = write(tmp_path, "news.tsv", XMIND_NEWS + line)
    with pytest.raises(InputError) as err:
        read_news(path)
    message = str(err.value)
    assert f"{path}:5" in message and found in message
    assert "[E194]" in message and "MIND" in message and "xMIND" in message


def test_read_news_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "news.tsv"
    path.write_bytes(b"nid\ttitle\tabstract\nN1\tok\t\nN2\t\xff\xfe\t\n")
    with pytest.raises(InputError, match=r"news\.tsv:3.*UTF-8"):
        read_news(path)


def test_read_news_duplicates_keep_first_and_warn(tmp_path, caplog):
    path = write(tmp_path, "news.tsv", "N1\tfirst\t\nN1\tsecond\t\nN2\tother\t\n")
    with caplog.at_level(logging.WARNING, logger="xapps"):
        news = read_news(path)
    assert news["N1"].title == "first" and len(news) == 2
    assert "1 duplicate" in caplog.text


# ------------------------------------------------------------------------- behaviors.tsv

BEHAVIORS = (
    "1\tU1\t11/12/2019 2:14:46 PM\tN1 N2\tN1-1 N2-0 N3-0\n"
    "2\tU2\t11/11/2019 9:05:00 AM\t\tN2-1 N9-0\n"  # empty history, unknown candidate
    "3\tU3\t\tN8 N9\tN9-1 N1-0\n"  # no time, unknown history
)


def test_read_behaviors(tmp_path):
    imps = read_behaviors(write(tmp_path, "behaviors.tsv", BEHAVIORS))
    assert [i.id for i in imps] == ["1", "2", "3"]
    first = imps[0]
    assert first.user == "U1" and first.time == datetime(2019, 11, 12, 14, 14, 46)
    assert first.history == ["N1", "N2"]
    assert first.candidates == ["N1", "N2", "N3"] and first.labels == [1, 0, 0]
    assert imps[1].history == [] and imps[1].labels == [1, 0]
    assert imps[2].time is None


def test_read_behaviors_unlabelled(tmp_path):
    imps = read_behaviors(write(tmp_path, "behaviors.tsv",
                                "7\tU1\t11/15/2019 8:55:22 AM\tN1\tN2 N3 N4\n"))
    assert imps[0].candidates == ["N2", "N3", "N4"] and imps[0].labels is None


@pytest.mark.parametrize("line,bad", [
    ("9\tU9\t11/12/2019 2:14:46 PM\tN1\n", "4 tab-separated columns"),
    ("9\tU9\t11/12/2019 2:14:46 PM\tN1\tN1-1 N2\n", "'N2'"),
    ("9\tU9\t11/12/2019 2:14:46 PM\tN1\tN1-1 N2-2\n", "'N2-2'"),
    ("9\tU9\t2019-11-12 14:14\tN1\tN1-1 N2-0\n", "'2019-11-12 14:14'"),
    ("9\tU9\t11/12/2019 2:14:46 PM\tN1\t \n", "no candidates"),
])
def test_read_behaviors_bad_line_names_file_line_and_value(tmp_path, line, bad):
    path = write(tmp_path, "behaviors.tsv", BEHAVIORS + line)
    with pytest.raises(InputError) as err:
        read_behaviors(path)
    message = str(err.value)
    assert "[E195]" in message and f"{path}:4" in message and bad in message


# --------------------------------------------------------------- coverage and restriction

def test_coverage_counts_on_hand_made_example(tmp_path):
    news = read_news(write(tmp_path, "news.tsv", MIND_NEWS))  # N1 N2 N3
    imps = read_behaviors(write(tmp_path, "behaviors.tsv", BEHAVIORS))
    report = coverage(imps, news)
    assert report == CoverageReport(impressions=3, history_ids=4, history_unknown=2,
                                    candidate_ids=7, candidate_unknown=2, empty_histories=2,
                                    impressions_usable=1)
    assert report.as_dict()["candidate_unknown"] == 2
    line = str(report)
    assert "\n" not in line and "3 impressions" in line and "50.0%" in line
    assert "71.4%" in line  # 5 of 7 candidates known


def test_restrict_drops_unknown_ids_and_unusable_impressions(tmp_path):
    news = {"N1": 0, "N2": 0, "N3": 0}
    imps = read_behaviors(write(tmp_path, "behaviors.tsv", BEHAVIORS
                                + "4\tU4\t\tN3 N7 N1\tN7-1 N1-0 N3-1 N8-0\n"))
    kept = restrict(imps, news)
    assert [i.id for i in kept] == ["1", "4"]  # 2 lost its negative, 3 its positive
    assert kept[0].candidates == ["N1", "N2", "N3"] and kept[0].labels == [1, 0, 0]
    assert kept[1].history == ["N3", "N1"]
    assert kept[1].candidates == ["N1", "N3"] and kept[1].labels == [0, 1]
    assert imps[3].candidates == ["N7", "N1", "N3", "N8"]  # input untouched
    unlabelled = [Impression("x", "U", None, [], ["N1", "N2"], None)]
    with pytest.raises(InputError, match="E196.*no click labels"):
        restrict(unlabelled, news)


# ---------------------------------------------------------------------------- time split

def _imp(i, user, day):
    time = None if day is None else datetime(2019, 11, day)
    return Impression(str(i), user, time, [], ["N1", "N2"], [1, 0])


def test_split_by_time_orders_and_keeps_test_users_unseen():
    days = [5, None, 1, 9, 3, 10, 2, 8, 4, 7, 6, 11, None, 12, 13, 14, 15, 16, 17, 18]
    users = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J",
             "K", "L", "M", "N", "O", "P", "A", "Q", "C", "R"]
    imps = [_imp(i, u, d) for i, (u, d) in enumerate(zip(users, days))]
    train, dev, test = split_by_time(imps, test_fraction=0.25, dev_fraction=0.1)
    assert len(train) == 13 and len(dev) == 2
    # impressions without a time come first, in file order; then by time
    assert [i.id for i in train[:2]] == ["1", "12"]
    ordered = [i.time for i in train + dev if i.time is not None]
    assert ordered == sorted(ordered)
    assert max(i.time for i in train if i.time) <= min(i.time for i in dev)
    # the last 5 by time are days 14..18 (users P, A, Q, C, R); A and C were seen earlier
    assert [i.user for i in test] == ["P", "Q", "R"]
    earlier_users = {i.user for i in train + dev}
    assert not earlier_users & {i.user for i in test}
    assert min(i.time for i in test) >= max(i.time for i in dev)


@pytest.mark.parametrize("test_fraction,dev_fraction", [(1.0, 0.0), (-0.1, 0.1), (0.6, 0.4)])
def test_split_by_time_rejects_bad_fractions(test_fraction, dev_fraction):
    with pytest.raises(InputError, match="E196"):
        split_by_time([_imp(0, "A", 1)], test_fraction, dev_fraction)


# ------------------------------------------------------------------------------- metrics

def test_metrics_hand_computed():
    assert auc([1, 0, 0], [0.9, 0.5, 0.1]) == 1.0
    assert mrr([1, 0, 0], [0.9, 0.5, 0.1]) == 1.0
    assert ndcg([1, 0, 0], [0.9, 0.5, 0.1], 5) == 1.0
    assert auc([0, 1, 0], [0.9, 0.5, 0.1]) == 0.5
    assert mrr([0, 1, 0], [0.9, 0.5, 0.1]) == 0.5
    assert ndcg([0, 1, 0], [0.9, 0.5, 0.1], 5) == pytest.approx(1 / math.log2(3))
    # two positives at ranks 1 and 3: mrr (1 + 1/3) / 2; ideal dcg 1 + 1/log2(3)
    assert mrr([1, 0, 1], [0.9, 0.5, 0.1]) == pytest.approx(2 / 3)
    assert ndcg([1, 0, 1], [0.9, 0.5, 0.1], 10) == pytest.approx(
        (1 + 0.5) / (1 + 1 / math.log2(3)))
    # k cuts the list: the only click at rank 3 is outside the top 2
    assert ndcg([0, 0, 1], [0.9, 0.5, 0.1], 2) == 0.0


def test_auc_ties_count_half_and_one_class_is_nan():
    assert auc([1, 0], [0.5, 0.5]) == 0.5
    assert auc([1, 0, 0], [0.5, 0.5, 0.1]) == 0.75
    assert math.isnan(auc([1, 1], [0.2, 0.3]))
    assert math.isnan(auc([0, 0], [0.2, 0.3]))


def test_auc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 30))
        y = rng.integers(0, 2, n)
        if y.min() == y.max():
            continue
        s = rng.integers(0, 5, n) / 4  # many ties
        assert auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s))


def test_intra_list_distance():
    assert intra_list_distance(np.ones((3, 4))) == pytest.approx(0.0)
    assert intra_list_distance(np.eye(3)) == pytest.approx(1.0)
    assert intra_list_distance(np.ones((1, 4))) == 0.0


def test_evaluate_impressions_aggregates_skips_and_reports_diversity_coverage():
    labels = [[1, 0, 0], [0, 1, 0], [1, 1]]
    scores = [[0.9, 0.5, 0.1], [0.9, 0.5, 0.1], [0.3, 0.2]]
    ids = [["N1", "N2", "N3"], ["N4", "N1", "N5"], ["N6", "N7"]]
    vectors = [np.eye(3), np.ones((3, 2)), np.eye(2)]
    out = evaluate_impressions(labels, scores, vectors=vectors, ids=ids, k_diversity=2)
    assert out["impressions"] == 3 and out["auc_skipped"] == 1
    assert out["auc"] == 0.75
    assert out["mrr"] == round((1 + 0.5 + (1 + 1 / 2) / 2) / 3, 4)  # MIND: 2 clicks -> 0.75
    assert out["ndcg@5"] == round((1 + 1 / math.log2(3) + 1) / 3, 4)
    assert out["diversity@2"] == round((1 + 0 + 1) / 3, 4)
    # top-2 lists: {N1, N2}, {N4, N1}, {N6, N7} -> 5 of 7 distinct ids
    assert out["coverage@2"] == round(5 / 7, 4)
    assert all(type(out[k]) is float for k in ("auc", "mrr", "ndcg@10", "coverage@2"))
    plain = evaluate_impressions(labels, scores)
    assert "diversity@10" not in plain and "coverage@10" not in plain


def test_evaluate_impressions_mismatch_names_the_impression():
    with pytest.raises(InputError, match=r"Impression 1: 3 labels but 2 scores"):
        evaluate_impressions([[1, 0], [1, 0, 0]], [[0.1, 0.2], [0.1, 0.2]])
    with pytest.raises(InputError, match=r"Impression 0: .*vectors of shape"):
        evaluate_impressions([[1, 0]], [[0.1, 0.2]], vectors=[np.eye(3)])
    with pytest.raises(InputError, match=r"E197.*2 impressions have labels but 1 have scores"):
        evaluate_impressions([[1, 0], [0, 1]], [[0.1, 0.2]])
