"""Multilingual news recommendation (xMIND-style): MIND/xMIND news and behaviour readers,
time-based splits without user leakage, and the MIND ranking metrics, so that a recommender
trained on English clicks can be evaluated on news in other languages."""

from .data import (
    CoverageReport,
    Impression,
    NewsItem,
    coverage,
    read_behaviors,
    read_news,
    restrict,
    split_by_time,
)
from .metrics import evaluate_impressions
from .recommender import NewsRecConfig, NewsRecommender
from .vectors import NewsVectorCache

__all__ = ["CoverageReport", "Impression", "NewsItem", "NewsRecConfig", "NewsRecommender",
           "NewsVectorCache", "coverage", "evaluate_impressions", "read_behaviors", "read_news",
           "restrict", "split_by_time"]
