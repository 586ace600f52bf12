"""Language modules of the open-IE tagger (LoRA per language, mixed by a learned gate), the
BIO-constrained decoding and the merging of duplicate training sentences."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xapps.errors import InputError
from xapps.oie.data import ARGUMENT_TAGS, OIESentence, merge_same_text, whitespace_words
from xapps.oie.extract import Extractor
from xapps.oie.model import OIEConfig, OIETagger, bio_spans, bio_viterbi
from xapps.oie.training import OIETrainingConfig, train_oie

TEXTS = ["Bob lebt in Rom .", "Marie Curie entdeckte Radium ."]


def tagger_with(tiny_xlmr_path, languages=()):
    return OIETagger(OIEConfig(backbone=str(tiny_xlmr_path), attention_heads=2, dropout=0.0,
                               languages=list(languages)))


def states(tagger, lang):
    words = [whitespace_words(t) for t in TEXTS]
    with torch.inference_mode():
        return tagger.word_states(TEXTS, words, lang=lang)[0]


def german(text, pred, arg0, arg1):
    words = whitespace_words(text)
    return OIESentence(text, words, [(pred, {"ARG0": arg0, "ARG1": arg1})], lang="de")


SILVER = [german("Bob lebt in Rom .", (1, 2), (0, 1), (2, 4)),
          german("Marie Curie entdeckte Radium .", (2, 3), (0, 2), (3, 4)),
          german("Die Firma verkaufte Aktien .", (2, 3), (0, 2), (3, 4)),
          german("Anna liest Bücher .", (1, 2), (0, 1), (2, 3))]


def test_untrained_modules_change_nothing_and_unknown_languages_run_shared(tiny_xlmr_path):
    plain = tagger_with(tiny_xlmr_path)
    with_modules = tagger_with(tiny_xlmr_path, ["de", "es"])
    shared = states(plain, None)
    assert torch.allclose(states(with_modules, "de"), shared, atol=1e-6)  # B starts at zero
    with torch.no_grad():
        for name, p in with_modules.modules.params.named_parameters():
            if name.endswith(".B"):
                p.normal_(0, 0.5)
    assert not torch.allclose(states(with_modules, "de"), shared, atol=1e-3)
    assert not torch.allclose(states(with_modules, "de"), states(with_modules, "es"), atol=1e-3)
    assert torch.allclose(states(with_modules, "de-CH"), states(with_modules, "de"))
    for lang in (None, "fi"):  # no module: the shared weights exactly
        assert torch.equal(states(with_modules, lang), shared)
    mixed = states(with_modules, ["de", None])  # routed per text, not per batch
    assert torch.allclose(mixed[0], states(with_modules, "de")[0], atol=1e-5)
    assert torch.allclose(mixed[1], shared[1], atol=1e-5)


def test_module_training_moves_only_the_modules_and_round_trips(tiny_xlmr_path, tmp_path):
    tagger = tagger_with(tiny_xlmr_path)
    before = {n: p.detach().clone() for n, p in tagger.named_parameters()}
    with pytest.raises(InputError, match="E182"):  # no modules yet
        train_oie(SILVER, tmp_path / "x", OIETrainingConfig(train="language_modules",
                                                            batch_size=2), tagger=tagger,
                  progress=False)
    tagger.add_language_modules(["de", "es"], rank=4)
    with pytest.raises(InputError, match="E182.*no module of theirs"):
        train_oie(SILVER + [OIESentence("A b .", [(0, 1), (2, 3)], [((1, 2), {})], lang="fi")],
                  tmp_path / "x", OIETrainingConfig(train="language_modules", batch_size=2),
                  tagger=tagger, progress=False)
    config = OIETrainingConfig(epochs=2, batch_size=2, head_lr=1e-2, warmup=0.0,
                               train="language_modules")
    train_oie(SILVER, tmp_path / "de", config, tagger=tagger, progress=False)
    after = dict(tagger.named_parameters())
    for name, p in before.items():  # shared encoder and heads untouched
        assert torch.equal(p, after[name].detach()), name
    moved = [n for n, p in after.items() if n.startswith("modules.") and n.endswith(".B")
             and p.abs().sum() > 0]
    assert moved
    loaded = OIETagger.load(tmp_path / "de")
    assert loaded.config.languages == ["de", "es"] and loaded.config.module_rank == 4
    assert torch.allclose(states(loaded, "de"), states(tagger, "de"), atol=1e-6)
    found = Extractor(loaded).extract(TEXTS, lang="de")
    assert [[t.to_dict() for t in ts] for ts in found] == \
        [[t.to_dict() for t in ts] for ts in Extractor(tagger).extract(TEXTS, lang="de")]


def test_language_modules_need_distinct_codes(tiny_xlmr_path):
    with pytest.raises(InputError, match="E180"):
        tagger_with(tiny_xlmr_path, ["de", "de"])


def test_viterbi_keeps_spans_whole_and_valid():
    p = np.full((4, len(ARGUMENT_TAGS)), 0.01)
    p[0, ARGUMENT_TAGS.index("B-ARG1")] = 0.9
    p[1, ARGUMENT_TAGS.index("I-ARG1")] = 0.9
    p[2, 0], p[2, ARGUMENT_TAGS.index("I-ARG1")] = 0.5, 0.45  # argmax would cut here
    p[3, ARGUMENT_TAGS.index("I-ARG1")] = 0.9
    assert bio_spans(p.argmax(1), ARGUMENT_TAGS) == [(0, 2, "ARG1"), (3, 4, "ARG1")]
    assert bio_spans(bio_viterbi(p, ARGUMENT_TAGS), ARGUMENT_TAGS) == [(0, 4, "ARG1")]
    rng = np.random.default_rng(0)
    for _ in range(20):  # never an I-X after O or after another role
        tags = bio_viterbi(rng.dirichlet(np.ones(len(ARGUMENT_TAGS)), size=12), ARGUMENT_TAGS)
        names = [ARGUMENT_TAGS[t] for t in tags]
        for prev, cur in zip(["O"] + names, names):
            if cur.startswith("I-"):
                assert prev != "O" and prev[2:] == cur[2:]
    assert bio_viterbi(np.zeros((0, 3)), ("O", "B-P", "I-P")).shape == (0,)


def test_duplicate_sentences_merge_their_tuples():
    words = whitespace_words("Bob lives in Rome .")
    a = OIESentence("Bob lives in Rome .", words, [((1, 2), {"ARG0": (0, 1)})])
    b = OIESentence("Bob lives in Rome .", words, [((1, 2), {"ARG0": (0, 1)}),
                                                   ((1, 3), {"ARG1": (3, 4)})])
    c = OIESentence("Bob lives in Rome .", words, [((1, 2), {})], lang="en")
    merged = merge_same_text([a, b, c])
    assert len(merged) == 2  # same text in another language stays apart
    assert merged[0].tuples == [((1, 2), {"ARG0": (0, 1)}), ((1, 3), {"ARG1": (3, 4)})]


# ---------------------------------------------------------------- silver data by projection
class FixedExtractor:
    """Stands in for a trained tagger: one known triple per sentence."""

    def extract(self, texts, words, lang=None):
        from xapps.oie.extract import Argument, Triple

        out = []
        for text, w in zip(texts, words):
            def arg(role, a, b):
                return Argument(role, w[a][0], w[b - 1][1], text[w[a][0]:w[b - 1][1]])
            out.append([Triple(text, arg("REL", 1, 2), [arg("ARG0", 0, 1), arg("ARG1", 2, 4)],
                               0.9),
                        Triple(text, arg("REL", 2, 3), [arg("ARG1", 3, 4)], 0.1)])
        return out


def test_projected_triples_become_target_training_records(tiny_xlmr_path):
    from xapps.oie.data import read_oie_jsonl
    from xapps.oie.silver import ParallelSentence, project_triples
    from xapps.projection import AnnotationProjector

    # A "translation" equal to the source: every encoder aligns it onto itself.
    texts = ["Bob lives in Rome .", "Anna reads many books ."]
    pairs = [ParallelSentence(t, whitespace_words(t), t, whitespace_words(t)) for t in texts]
    projector = AnnotationProjector(backbone=str(tiny_xlmr_path), layer=2, dtype=None)
    stats: dict = {}
    records = list(project_triples(FixedExtractor(), projector, pairs, source_lang="en",
                                   target_lang="de", min_confidence=0.5, stats=stats))
    assert stats == {"sentences": 2, "triples": 4, "kept": 2}  # the 0.1 triples stay home
    assert records[0] == {"sentence": texts[0], "lang": "de", "source": "projected",
                          "tuples": [{"arg0": "Bob", "pred": "lives", "args": ["in Rome"]}]}
    assert records[1]["tuples"] == [{"arg0": "Anna", "pred": "reads", "args": ["many books"]}]
    import json
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "silver.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        sentences = list(read_oie_jsonl(path))
    assert [s.lang for s in sentences] == ["de", "de"]
    assert sentences[0].tuples == [((1, 2), {"ARG0": (0, 1), "ARG1": (2, 4)})]


def test_carb_style_moves_auxiliaries_and_the_objects_preposition_into_the_relation(tmp_path):
    import json

    from xapps.oie.data import read_oie_jsonl

    records = [{"sentence": "St. Michael was considered the patron saint .",
                "tuples": [{"arg0": "St. Michael", "pred": "considered",
                            "args": ["the patron saint"]}]},
               {"sentence": "He served as the first PM .",
                "tuples": [{"arg0": "He", "pred": "served", "args": ["as the first PM"]}]},
               {"sentence": "Er war in Rom .", "lang": "de",
                "tuples": [{"arg0": "Er", "pred": "war", "args": ["in Rom"]}]}]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    stats: dict = {}
    carb = list(read_oie_jsonl(path, stats=stats, relation_style="carb"))
    assert carb[0].tuples == [((2, 4), {"ARG0": (0, 2), "ARG1": (4, 7)})]  # was considered
    assert carb[1].tuples == [((1, 3), {"ARG0": (0, 1), "ARG1": (3, 6)})]  # served as
    assert carb[2].tuples == [((1, 2), {"ARG0": (0, 1), "ARG1": (2, 4)})]  # German: as given
    assert stats["restyled"] == 2
    given = list(read_oie_jsonl(path))
    assert given[1].tuples == [((1, 2), {"ARG0": (0, 1), "ARG1": (2, 6)})]
    with pytest.raises(ValueError, match="relation_style"):
        list(read_oie_jsonl(path, relation_style="openie6"))
