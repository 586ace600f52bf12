"""Translation pairs from the parallel data in ../shared/data, as retriever training rows.

Used by bench_multivector.py to train a language-neutral projection; XQuAD-R is never read
here. Sources (see ../shared/data/README.md for licences):

- WebNLG 2020 train (en, ru) and the silver/MT WebNLG train sets (es, de, cs): texts of one
  triple set in two languages;
- Europarl NER parallel gold (en, de, es): 799 aligned sentences;
- MIND (en) / xMIND (zh) news titles and abstracts with the same news id;
- Hindi sentences aligned with English Wikidata triples (the English side is the triples
  written out: "subject: relation object; ...", a weak but real cross-lingual pair).

Arabic WebNLG has no English triples (it cannot be paired) and there is no Vietnamese text:
for those languages only monolingual text (Arabic) or nothing (Vietnamese) is available.

Each row: query in language A, positive = the same content in language B, one hard negative
= another text in language A, so the loss pays for ranking the query's own language first.
"""
from __future__ import annotations

import collections
import json
import random
from pathlib import Path


def _webnlg(root: Path) -> dict[tuple, dict[str, list[str]]]:
    files = [root / "webnlg-2020-train/en_train.jsonl", root / "webnlg-2020-train/ru_train.jsonl",
             *sorted((root / "webnlg-xlang-silver-train").glob("*_train.jsonl"))]
    by_key: dict[tuple, dict[str, list[str]]] = collections.defaultdict(dict)
    for path in files:
        if not path.exists():
            continue
        for line in path.open(encoding="utf-8"):
            row = json.loads(line)
            if row.get("texts") and row.get("triples"):
                key = (row["category"], row["size"], tuple(sorted(map(tuple, row["triples"]))))
                by_key[key].setdefault(row["lang"], []).extend(row["texts"])
    return by_key


def europarl_sentences(root: Path) -> dict[str, list[str]]:
    out = {}
    for lang in ("en", "de", "es"):
        path = root / f"europarl-ner/{lang}.conll"
        if not path.exists():
            return {}
        sentences, current = [], []
        for line in path.open(encoding="utf-8"):
            line = line.rstrip("\n")
            if line:
                current.append(line.split("\t")[0])
            elif current:
                sentences.append(" ".join(current))
                current = []
        if current:
            sentences.append(" ".join(current))
        out[lang] = sentences
    return out


def _mind_zh(root: Path) -> list[tuple[str, str]]:
    en_path, zh_path = root / "mind-small-sample/news.tsv", root / "xmind-cmn-dev/news.tsv"
    if not (en_path.exists() and zh_path.exists()):
        return []
    english = {}
    for line in en_path.open(encoding="utf-8"):
        parts = line.rstrip("\n").split("\t")
        english[parts[0]] = (parts[3], parts[4])
    pairs = []
    for line in zh_path.open(encoding="utf-8"):
        parts = line.rstrip("\n").split("\t")
        if parts[0] in english and len(parts) >= 3:
            title, abstract = english[parts[0]]
            pairs.append((title, parts[1]))
            if abstract.strip() and parts[2].strip():
                pairs.append((abstract, parts[2]))
    return pairs


def _hindi(root: Path) -> list[tuple[str, str]]:
    pairs = []
    for path in sorted((root / "hindi-f2t-aligned-train").glob("*.jsonl")):
        for line in path.open(encoding="utf-8"):
            row = json.loads(line)
            facts = "; ".join(f"{p} {o}" for _, p, o in row["triples"])
            pairs.append((f"{row['triples'][0][0]}: {facts}.", row["sentence"]))
    return pairs


def translation_pairs(root: Path, per_language: int = 600,
                      seed: int = 0) -> list[tuple[str, str, str, str]]:
    """(text_a, lang_a, text_b, lang_b) pairs, up to ``per_language`` per non-English
    language, English on side a."""
    rng = random.Random(seed)
    pairs: list[tuple[str, str, str, str]] = []
    webnlg = _webnlg(root)
    keys = sorted(webnlg, key=repr)
    rng.shuffle(keys)
    europarl = europarl_sentences(root)
    for lang in ("de", "es", "ru", "cs"):
        chosen = [k for k in keys if "en" in webnlg[k] and lang in webnlg[k]]
        n_europarl = min(per_language // 3, len(europarl.get(lang, [])))
        for key in chosen[:per_language - n_europarl]:
            pairs.append((rng.choice(webnlg[key]["en"]), "en", rng.choice(webnlg[key][lang]),
                          lang))
        for i in rng.sample(range(len(europarl.get(lang, []))), n_europarl):
            pairs.append((europarl["en"][i], "en", europarl[lang][i], lang))
    for lang, found in (("zh", _mind_zh(root)), ("hi", _hindi(root))):
        rng.shuffle(found)
        pairs += [(a, "en", b, lang) for a, b in found[:per_language]]
    return pairs


def monolingual_texts(root: Path, per_language: int = 600, seed: int = 0) -> dict[str, list[str]]:
    """Unlabeled text per language (for language statistics), including languages that have
    no pair (Arabic WebNLG)."""
    rng = random.Random(seed)
    texts: dict[str, list[str]] = collections.defaultdict(list)
    for a, lang_a, b, lang_b in translation_pairs(root, per_language, seed):
        texts[lang_a].append(a)
        texts[lang_b].append(b)
    arabic = root / "webnlg-xlang-silver-train/ar_train.jsonl"
    if arabic.exists():
        rows = [t for line in arabic.open(encoding="utf-8") for t in json.loads(line)["texts"]]
        texts["ar"] = rng.sample(rows, min(per_language, len(rows)))
    return {lang: sorted(set(v))[:4 * per_language] for lang, v in texts.items()}


def training_rows(pairs: list[tuple[str, str, str, str]], seed: int = 0) -> list[dict]:
    """Both directions of every pair, each with a same-language hard negative."""
    rng = random.Random(seed)
    by_lang: dict[str, list[str]] = collections.defaultdict(list)
    for a, lang_a, b, lang_b in pairs:
        by_lang[lang_a].append(a)
        by_lang[lang_b].append(b)
    rows = []
    for a, lang_a, b, lang_b in pairs:
        for query, q_lang, positive, p_lang in ((a, lang_a, b, lang_b), (b, lang_b, a, lang_a)):
            negative = rng.choice(by_lang[q_lang])
            while negative == query and len(by_lang[q_lang]) > 1:
                negative = rng.choice(by_lang[q_lang])
            rows.append({"query": query, "positive": positive, "negatives": [negative],
                         "query_lang": q_lang, "positive_lang": p_lang,
                         "negatives_lang": [q_lang]})
    rng.shuffle(rows)
    return rows
