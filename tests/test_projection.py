"""The annotation projector: words, candidates, scores, assignment, and end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xapps.errors import InputError, ModelError
from xapps.paths import data_root
from xapps.projection import (
    AnnotationProjector,
    LabeledSpan,
    ProjectionConfig,
    ProjectionPair,
    span_scores,
)
from xapps.projection.alignment import subword_links, word_links
from xapps.projection.assignment import Choice, alignment_rule, assign
from xapps.projection.candidates import CandidateGrid
from xapps.projection.scoring import alignment_scores, similarity_scores
from xapps.projection.words import segment, word_of_subword, words_covering

EUROPARL = data_root() / "europarl-ner"


# ------------------------------------------------------------------------------ words
def test_segment_uses_spacy_rules_and_subwords_for_languages_without_spaces():
    assert segment("La Comisión (CE) habló.", "es", np.zeros((0, 2))) == [
        (0, 2), (3, 11), (12, 13), (13, 15), (15, 16), (17, 22), (22, 23)]
    subwords = np.array([[0, 2], [2, 4], [4, 4]])
    assert segment("欧洲议会", "zh", subwords) == [(0, 2), (2, 4)]


def test_word_of_subword_maps_gaps_and_misses():
    offsets = np.array([[0, 3], [3, 5], [6, 9], [9, 9], [10, 12]])
    assert word_of_subword(offsets, [(0, 5), (6, 9), (11, 12)]).tolist() == [0, 0, 1, -1, 2]
    assert word_of_subword(offsets, []).tolist() == [-1] * 5
    # SentencePiece offsets that start on the space before a word (me5's tokenizer)
    spaced = np.array([[0, 3], [3, 9], [9, 12], [12, 13]])
    assert word_of_subword(spaced, [(0, 3), (4, 9), (10, 12)]).tolist() == [0, 1, 2, -1]
    assert words_covering([(0, 3), (4, 9), (10, 12)], 4, 12) == (1, 3)
    assert words_covering([(0, 3)], 5, 6) == (0, 0)


# ------------------------------------------------------------------------------ candidates
def test_candidates_never_start_or_end_on_punctuation_or_break_brackets():
    words = ["Comité", "(", "CEN", ")", ",", "no"]
    grid = CandidateGrid(words, max_len=6)
    runs = {(int(s), int(e)) for s, e in zip(grid.starts, grid.ends)}
    assert (0, 4) in runs  # "Comité ( CEN )": the bracket is closed inside
    assert (1, 4) in runs  # "( CEN )"
    assert (0, 2) not in runs and (0, 3) not in runs  # unbalanced
    assert (0, 5) not in runs  # ends on a comma
    assert all(words[s] != "," for s in grid.starts)
    short = grid.up_to(1)
    assert set(zip(short[0].tolist(), short[1].tolist())) == {(0, 1), (2, 3), (5, 6)}


# ------------------------------------------------------------------------------ scores
def test_alignment_score_fills_unlinked_gaps_and_penalises_words_linked_elsewhere():
    # source: Cohesion(0) Fund(1) is(2) ; target: Fondo(0) de(1) Cohesión(2) es(3)
    links = np.zeros((3, 4), dtype=np.float32)
    links[0, 2] = links[1, 0] = links[2, 3] = 1
    starts, ends = np.array([0, 2, 0, 1]), np.array([3, 3, 4, 3])
    got = alignment_scores(links, (0, 2), starts, ends)
    assert got[0] == pytest.approx(1.0)  # "Fondo de Cohesión": 'de' is an unlinked gap
    assert got[1] < got[0]  # "Cohesión" misses "Fund"
    assert got[2] < got[0]  # "... es" takes a word linked to "is"
    assert got[3] < got[0]  # "de Cohesión" starts on an unlinked word


def test_similarity_score_is_the_cosine_of_mean_vectors():
    word_vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    cum = np.concatenate([np.zeros((1, 2)), np.cumsum(word_vectors, axis=0)])
    got = similarity_scores(np.array([1.0, 0.0]), cum, np.array([0, 1, 0]), np.array([1, 2, 2]))
    assert got == pytest.approx([1.0, 0.0, np.sqrt(0.5)])


def test_links_union_contains_argmax_and_soft_links():
    torch.manual_seed(0)
    src, tgt = torch.randn(5, 8), torch.randn(6, 8)
    argmax, sim = subword_links(src, tgt, method="argmax")
    soft, _ = subword_links(src, tgt, method="soft", temperature=0.05, threshold=0.1)
    union, _ = subword_links(src, tgt, method="union", temperature=0.05, threshold=0.1)
    assert torch.equal(union, torch.maximum(argmax, soft))
    for i, j in argmax.nonzero().tolist():  # each argmax link is a mutual best match
        assert sim[i].argmax() == j and sim[:, j].argmax() == i
    words = word_links(argmax, np.array([0, 0, 1, 2, -1]), np.array([0, 1, 1, 2, 3, -1]), 3, 4)
    assert words.shape == (3, 4) and set(np.unique(words)) <= {0.0, 1.0}
    with pytest.raises(InputError, match="E083"):
        subword_links(src, tgt, method="mwmf")


# ------------------------------------------------------------------------------ assignment
def _option(runs, scores):
    return (np.array([r[0] for r in runs]), np.array([r[1] for r in runs]), np.array(scores))


def test_global_assignment_beats_greedy_where_greedy_blocks_a_better_pair():
    # Source 0 prefers [0,2) (0.9) but also fits [0,1) (0.85); source 1 only fits [1,2) (0.8).
    options = [_option([(0, 2), (0, 1)], [0.9, 0.85]), _option([(1, 2)], [0.8])]
    greedy = assign(options, threshold=0.3, method="greedy")
    best = assign(options, threshold=0.3, margin=0.5, method="global")
    assert {(c.source_index, c.start, c.end) for c in greedy} == {(0, 0, 2)}
    assert {(c.source_index, c.start, c.end) for c in best} == {(0, 0, 1), (1, 1, 2)}


def test_margin_keeps_one_confident_span_over_two_doubtful_ones():
    options = [_option([(0, 2), (0, 1)], [0.95, 0.6]), _option([(1, 2)], [0.6])]
    chosen = assign(options, threshold=0.3, margin=0.7, method="global")
    assert [(c.source_index, c.start, c.end) for c in chosen] == [(0, 0, 2)]


def test_threshold_leaves_spans_unprojected_and_choices_never_overlap():
    options = [_option([(0, 3)], [0.2]), _option([(2, 4), (4, 5)], [0.9, 0.8]),
               _option([(3, 5)], [0.85])]
    chosen = assign(options, threshold=0.3)
    assert 0 not in {c.source_index for c in chosen}
    spans = sorted((c.start, c.end) for c in chosen)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


def test_alignment_rule_fills_gaps_and_resolves_overlaps_longer_first():
    links = np.zeros((4, 6), dtype=np.float32)
    links[0, 0] = links[0, 3] = 1  # span 0 -> words 0..3 (gap filled)
    links[1, 2] = 1  # span 1 -> word 2, inside span 0's projection: dropped
    links[3, 5] = 1  # span 2 -> word 5
    chosen = alignment_rule(links, [(0, 1), (1, 2), (3, 4), (2, 3)])
    assert chosen == [Choice(0, 0, 4, 1.0), Choice(2, 5, 6, 1.0)]


# ------------------------------------------------------------------------------ evaluation
def test_span_scores_need_exact_boundaries_and_type():
    gold = [[LabeledSpan(0, 5, "PER"), LabeledSpan(6, 9, "LOC")], []]
    pred = [[LabeledSpan(0, 5, "PER"), LabeledSpan(6, 9, "ORG")], [LabeledSpan(0, 1, "LOC")]]
    got = span_scores(gold, pred)
    assert got["precision"] == pytest.approx(1 / 3) and got["recall"] == pytest.approx(0.5)
    assert got["per_label"]["PER"]["f1"] == 1.0 and got["per_label"]["ORG"]["f1"] == 0.0
    with pytest.raises(ValueError):
        span_scores(gold, pred[:1])


# ------------------------------------------------------------------------------ config
def test_config_rejects_bad_values_with_coded_errors():
    with pytest.raises(InputError, match="E083"):
        ProjectionConfig(assignment="hungarian")
    with pytest.raises(InputError, match="E074"):
        ProjectionConfig(alignment_weight=0, similarity_weight=0)
    with pytest.raises(InputError, match="E074"):
        ProjectionConfig.from_dict({"layers": 6})
    config = ProjectionConfig(layer=8)
    assert ProjectionConfig.from_dict(config.to_dict()) == config
    assert AnnotationProjector(config, threshold=0.5).config.layer == 8


# ------------------------------------------------------------------------------ end to end
SOURCE = "The European Commission met in Brussels on Monday ."
TARGET = "La Comisión Europea se reunió en Bruselas el lunes ."


def _pair(**kw) -> ProjectionPair:
    spans = [LabeledSpan(4, 23, "ORG"), LabeledSpan(31, 39, "LOC")]
    return ProjectionPair(SOURCE, TARGET, spans, source_lang="en", target_lang="es", **kw)


@pytest.fixture(scope="module")
def tiny_projector(tiny_xlmr_path):
    return AnnotationProjector(backbone=str(tiny_xlmr_path), layer=1, threshold=0.0)


def test_projection_runs_end_to_end_and_respects_words(tiny_projector):
    results = list(tiny_projector.project([_pair(), _pair(id="b")], progress=False))
    assert len(results) == 2
    for result in results:
        starts = {s for s, _ in result.target_words}
        ends = {e for _, e in result.target_words}
        for span in result.spans:
            assert span.start in starts and span.end in ends
            assert span.label == result.pair.spans[span.source_index].label
            assert 0.0 <= span.score <= 1.0
        assert len(result.spans) + len(result.unprojected) == 2
    strict = AnnotationProjector(tiny_projector.config, threshold=1.01)
    strict._backbone = tiny_projector.backbone
    assert strict.project_one(_pair()).unprojected == [0, 1]


def test_given_target_words_are_kept(tiny_projector):
    words = [(0, 2), (3, 19), (20, 22), (23, 29), (30, 32), (33, 40), (41, 43), (44, 49),
             (50, 51)]
    result = tiny_projector.project_one(_pair(target_words=words))
    assert result.target_words == words


def test_bad_span_and_missing_target_raise(tiny_projector):
    bad = ProjectionPair("short", TARGET, [LabeledSpan(2, 40, "X")], id="p7")
    with pytest.raises(InputError, match=r"E141.*p7"):
        tiny_projector.project_one(bad)
    with pytest.raises(InputError, match="E140"):
        tiny_projector.project_one(ProjectionPair(SOURCE, "", [LabeledSpan(4, 23, "ORG")]))


def test_mt_model_scores_spans_and_translates_missing_targets(tiny_xlmr_path, tiny_mt5_path):
    projector = AnnotationProjector(backbone=str(tiny_xlmr_path), layer=1, threshold=0.0,
                                    mt_model=str(tiny_mt5_path))
    projector._translator = None
    from xapps.projection.translation import Translator

    projector._translator = Translator(str(tiny_mt5_path), max_new_tokens=6, num_beams=1)
    result = projector.project_one(_pair())
    assert all(0.0 <= s.score <= 1.0 for s in result.spans)
    untranslated = ProjectionPair(SOURCE, "", [LabeledSpan(4, 23, "ORG")])
    result = projector.project_one(untranslated)
    assert result.pair.target.strip()  # filled by the (random) MT model
    with pytest.raises(ModelError, match="E150"):
        Translator(str(tiny_xlmr_path))


def test_backbone_runs_only_up_to_the_requested_layer(tiny_xlmr_path):
    from xapps.backbone import load_backbone

    backbone = load_backbone(str(tiny_xlmr_path))
    ids, mask = backbone._pad([[0, 5, 6, 7, 2], [0, 8, 2]])
    with torch.inference_mode():
        full = backbone.encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True,
                                return_dict=True).hidden_states
        for layer in (0, 1, 2, -1, -2):
            assert torch.allclose(backbone.run(ids, mask, layer=layer), full[layer].float())
    with pytest.raises(ModelError, match="layer=5"):
        backbone.run(ids, mask, layer=5)


@pytest.mark.skipif(not (EUROPARL / "en.conll").is_file(),
                    reason=f"europarl-ner not under {EUROPARL} (set XAPPS_DATA)")
def test_real_model_projects_europarl_entities(me5_small_path):
    from xapps.projection import read_pairs

    pairs = list(read_pairs(EUROPARL / "en.conll", EUROPARL / "es.conll", source_lang="en",
                            target_lang="es"))[200:260]
    from xapps.projection.io import read_conll

    gold = [s.spans for s in read_conll(EUROPARL / "es.conll")][200:260]
    projector = AnnotationProjector(backbone=str(me5_small_path))
    predicted = [[s.labeled for s in r.spans] for r in projector.project(pairs, progress=False)]
    # 60 held-out pairs; the full benchmark (benchmarks/bench_projection.py) measures ~94.
    assert span_scores(gold, predicted)["f1"] >= 0.85


# ------------------------------------------------------------------------------ generator
def test_generator_examples_and_phrase_matching():
    from xapps.projection.generator import (
        candidate_runs,
        generator_examples,
        match_phrase,
    )

    spans = [LabeledSpan(31, 39, "LOC"), LabeledSpan(4, 23, "ORG")]
    assert generator_examples([(SOURCE, spans)]) == [
        (f"LOC: {SOURCE}", "Brussels"), (f"ORG: {SOURCE}", "European Commission")]
    words = [(0, 2), (3, 11), (12, 19), (20, 22), (23, 29), (30, 32), (33, 41)]
    text = "La Comisión Europea se reunió en Bruselas"
    assert match_phrase(text, words, "Comisión Europea") == [(1, 3)]
    assert match_phrase(text, words, "omisión") == []  # not on word boundaries
    assert candidate_runs({"Bruselas": 0.4, "en Bruselas": 0.2, "Roma": 0.9}, text, words) == {
        (6, 7): 0.4, (5, 7): 0.2}


def test_generator_trains_resumes_and_proposes(tmp_path, tiny_mt5_path):
    from xapps.projection.generator import (
        CandidateGenerator,
        GeneratorTrainingConfig,
        generator_examples,
        train_generator,
    )

    examples = generator_examples([(SOURCE, [LabeledSpan(4, 23, "ORG")]),
                                   (TARGET, [LabeledSpan(3, 19, "ORG")])] * 2)
    config = GeneratorTrainingConfig(steps=4, batch_size=2, checkpoint_every=1,
                                     max_target_length=8)

    def stop_at_two(info):
        if info["step"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_generator(examples, str(tiny_mt5_path), tmp_path / "gen", config,
                        progress=False, callback=stop_at_two)
    assert (tmp_path / "gen.partial" / "state.json").exists()
    with pytest.raises(InputError, match="E152"):
        train_generator(examples, str(tiny_mt5_path), tmp_path / "gen",
                        GeneratorTrainingConfig(steps=5, batch_size=2, checkpoint_every=1),
                        progress=False)
    # a damaged checkpoint is refused, naming the file, not resumed from
    weights = tmp_path / "gen.partial" / "model" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:100] + bytes(b ^ 0xFF for b in good[100:164]) + good[164:])
    with pytest.raises(InputError, match=r"E239.*gen.partial.*model/model.safetensors.*Delete"):
        train_generator(examples, str(tiny_mt5_path), tmp_path / "gen", config, progress=False)
    weights.write_bytes(good)
    record = train_generator(examples, str(tiny_mt5_path), tmp_path / "gen", config,
                             progress=False)
    assert record["step"] == 4 and len(record["loss"]) == 4  # 1 checkpointed + 3 resumed
    assert not (tmp_path / "gen.partial").exists()
    assert (tmp_path / "gen" / "generator.json").exists()
    generator = CandidateGenerator(str(tmp_path / "gen"), num_candidates=2, max_new_tokens=4)
    proposals = generator.propose([TARGET], ["ORG"])
    assert len(proposals) == 1 and all(0.0 <= p <= 1.0 for p in proposals[0].values())
    with pytest.raises(InputError, match="E151"):
        train_generator(examples[:1], str(tiny_mt5_path), tmp_path / "g2", config)


def test_generator_proposals_become_candidates_even_beyond_the_length_limit(tiny_projector):
    class Proposer:
        def propose(self, texts, labels):
            return [{"Comisión Europea se reunió en Bruselas": 1.0} for _ in texts]

    projector = AnnotationProjector(tiny_projector.config, generator_model="stub",
                                    generator_weight=50.0, extra_words=0)
    projector._backbone, projector._generator = tiny_projector.backbone, Proposer()
    pair = ProjectionPair(SOURCE, TARGET, [LabeledSpan(31, 39, "LOC")])  # 1 word -> limit 2
    (span,) = projector.project_one(pair).spans
    assert TARGET[span.start:span.end] == "Comisión Europea se reunió en Bruselas"


def test_words_covering_all_matches_words_covering():
    import random

    from xapps.projection.words import words_covering_all

    rng = random.Random(0)
    words, pos = [], 0
    for _ in range(50):
        pos += rng.randint(0, 2)
        length = rng.randint(1, 6)
        words.append((pos, pos + length))
        pos += length
    spans = [(s, s + rng.randint(1, 30)) for s in (rng.randint(0, pos) for _ in range(200))]
    assert words_covering_all(words, spans) == [words_covering(words, s, e) for s, e in spans]
    assert words_covering_all([], [(0, 1)]) == [(0, 0)]


def test_windows_cut_between_spans_and_cover_everything():
    from xapps.projection.projector import _windows

    assert _windows([(1, 3)], [0], 10, 12, 512) == [(0, 10, 0, 12)]
    spans = [(3, 6), (60, 70), (125, 131)]
    windows = _windows(spans, [0, 1, 2], 200, 240, 64)
    cuts = [a for a, _, _, _ in windows] + [windows[-1][1]]
    assert cuts[0] == 0 and cuts[-1] == 200 and all(b - a <= 64 for a, b in zip(cuts, cuts[1:]))
    assert not any(s < cut < e for cut in cuts for s, e in spans)  # never inside a span
    for a, b, c, d in windows:  # the target window holds the proportional stretch
        assert c <= a * 240 // 200 and d >= min(240, -(-b * 240 // 200))
