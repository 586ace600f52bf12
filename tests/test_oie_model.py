"""The open-IE tagger: training data as BIO tags, the two-stage model, training, extraction."""
from __future__ import annotations

import json

import numpy as np
import pytest

from xapps.errors import InputError, ModelError
from xapps.oie.data import (
    ARGUMENT_TAGS,
    PREDICATE_TAGS,
    find_words,
    longest_run,
    read_oie_jsonl,
    sentence_from_tuples,
)
from xapps.oie.extract import Extractor
from xapps.oie.model import OIEConfig, OIETagger, bio_spans
from xapps.oie.training import OIETrainingConfig, train_oie
from xapps.paths import data_root

TRAIN = data_root() / "oie-train" / "oie_train_unified.jsonl"
RECORDS = [
    {"sentence": "Courtaulds ' spinoff reflects pressure on British industry to boost prices .",
     "tuples": [{"arg0": "Courtaulds ' spinoff", "pred": "reflects",
                 "args": ["pressure on British industry"]},
                {"arg0": "British industry", "pred": "might boost", "pred_head": "boost",
                 "args": ["prices"]}]},
    {"sentence": "Marie Curie discovered radium in Paris .",
     "tuples": [{"arg0": "Marie Curie", "pred": "discovered", "args": ["radium", "in Paris"]}]},
    {"sentence": "The company sold its shares .",
     "tuples": [{"arg0": "The company", "pred": "sold", "args": ["its shares"]}]},
    {"sentence": "Bob lives in Rome .",
     "tuples": [{"arg0": "Bob", "pred": "lives in", "args": ["Rome"]}]},
]


def test_phrases_are_found_on_words():
    tokens = "British industry to boost prices".split()
    assert find_words(tokens, "boost prices") == (3, 5)
    assert find_words(tokens, "industr") is None
    assert longest_run(tokens, "might boost") == (3, 4)


def test_tuples_become_predicate_and_argument_tags():
    stats = {"tuples": 0, "dropped_tuples": 0, "untagged_arguments": 0}
    sentence = sentence_from_tuples(RECORDS[0]["sentence"], RECORDS[0]["tuples"], "x", stats)
    assert [sentence.text[slice(*sentence.words[i])] for i in range(3, 4)] == ["reflects"]
    pred = [PREDICATE_TAGS[t] for t in sentence.predicate_tags()]
    assert pred[3] == "B-P" and pred[9] == "B-P" and pred.count("O") == len(pred) - 2
    args = [ARGUMENT_TAGS[t] for t in sentence.argument_tags(1)]
    assert args[6:8] == ["B-ARG0", "I-ARG0"] and args[10] == "B-ARG1"
    assert stats == {"tuples": 2, "dropped_tuples": 0, "untagged_arguments": 0}
    dropped = sentence_from_tuples("A b c .", [{"arg0": "A", "pred": "zzz", "args": []}],
                                   "x", stats)
    assert not dropped.tuples and stats["dropped_tuples"] == 1


def test_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(RECORDS[1]) + "\n" + json.dumps({"text": "x"}) + "\n",
                    encoding="utf-8")
    with pytest.raises(InputError, match=r"E170.*t.jsonl:2"):
        list(read_oie_jsonl(path))


@pytest.mark.skipif(not TRAIN.is_file(), reason=f"{TRAIN} not found (set XAPPS_DATA)")
def test_the_shipped_training_data_reads_with_few_drops():
    stats: dict = {}
    sentences = list(read_oie_jsonl(TRAIN, stats=stats))
    assert len(sentences) > 2500 and stats["tuples"] == 9168
    assert stats["dropped_tuples"] < 0.05 * stats["tuples"]


def test_bio_spans_reads_runs_and_orphan_inside_tags():
    tags = np.array([0, 1, 2, 0, 2, 2, 3])  # O B-ARG0 I-ARG0 O I-ARG0 I-ARG0 B-ARG1
    assert bio_spans(tags, ARGUMENT_TAGS) == [(1, 3, "ARG0"), (4, 6, "ARG0"), (6, 7, "ARG1")]


@pytest.fixture(scope="module")
def sentences():
    stats = {"tuples": 0, "dropped_tuples": 0, "untagged_arguments": 0}
    return [sentence_from_tuples(r["sentence"], r["tuples"], "x", stats) for r in RECORDS]


def test_train_resume_save_load_and_extract(tmp_path, tiny_xlmr_path, sentences):
    config = OIETrainingConfig(epochs=3, batch_size=2, lr=1e-3, average_last=2)
    model_config = OIEConfig(backbone=str(tiny_xlmr_path), attention_heads=2)

    def stop(info):
        if info["step"] == 3:  # inside epoch 2: resumes after epoch 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_oie(sentences, tmp_path / "oie", config, model_config=model_config,
                  progress=False, callback=stop)
    # a damaged checkpoint is refused, naming the file, not resumed from
    [checkpoint] = (tmp_path / "oie.partial").glob("epoch-*.safetensors")
    good = checkpoint.read_bytes()
    checkpoint.write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match=rf"E239.*{checkpoint.name}"):
        train_oie(sentences, tmp_path / "oie", config, model_config=model_config,
                  progress=False)
    checkpoint.write_bytes(good)
    record = train_oie(sentences, tmp_path / "oie", config, model_config=model_config,
                       progress=False)
    assert record["epoch"] == 3 and record["step"] == 6 and len(record["loss"]) == 6
    assert len(record["checkpoints"]) == 2
    assert not (tmp_path / "oie.partial").exists()
    tagger = OIETagger.load(tmp_path / "oie")
    triples = Extractor(tagger).extract([s.text for s in sentences])
    again = Extractor(OIETagger.load(tmp_path / "oie")).extract([s.text for s in sentences])
    assert [[t.to_dict() for t in ts] for ts in triples] == \
        [[t.to_dict() for t in ts] for ts in again]
    for sentence, found in zip(sentences, triples):
        for triple in found:
            assert 0.0 <= triple.confidence <= 1.0
            for part in [triple.relation, *triple.arguments]:
                assert sentence.text[part.start:part.end] == part.text
    (tmp_path / "oie" / "heads.safetensors").write_bytes(b"broken")
    with pytest.raises(ModelError, match="E171"):
        OIETagger.load(tmp_path / "oie")


def test_training_learns_the_tiny_set(tiny_xlmr_path, sentences, tmp_path):
    """Loss must fall: the heads can memorise four sentences."""
    config = OIETrainingConfig(epochs=12, batch_size=4, lr=3e-3, head_lr=1e-2, warmup=0.0)
    record = train_oie(sentences, tmp_path / "m", config, progress=False,
                       model_config=OIEConfig(backbone=str(tiny_xlmr_path), attention_heads=2,
                                              dropout=0.0))
    assert np.mean(record["loss"][-2:]) < 0.6 * np.mean(record["loss"][:2])


def test_every_word_gets_its_subwords(tiny_xlmr_path):
    from xapps.oie.data import whitespace_words

    tagger = OIETagger(OIEConfig(backbone=str(tiny_xlmr_path), attention_heads=2))
    texts = ["Bob lives in Rome .", "Marie Curie discovered radium"]
    words = [whitespace_words(t) for t in texts]
    import torch

    with torch.inference_mode():
        states, mask = tagger.word_states(texts, words)
    assert mask.sum().item() == 9
    norms = states.norm(dim=-1)
    assert bool((norms[mask] > 0).all())  # no word left without a subword
    assert bool((norms[~mask] == 0).all())
