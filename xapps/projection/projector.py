"""The annotation projector: carries labelled spans from sentences onto their translations.

For each source span, every admissible run of target words is a candidate (candidates.py);
each candidate gets word-alignment evidence and contextual span similarity from one forward
pass of the shared backbone over both sentences (alignment.py, scoring.py), plus a
translation probability when an MT model is configured (translation.py) and the proposals of
a fine-tuned generator when one is (generator.py, T-Projection's candidates); the weighted score
picks at most one non-overlapping candidate per source span for the whole sentence
(assignment.py). Sentences are encoded in length-sorted batches and only up to the chosen
layer, which is where the speed over per-pair aligners comes from.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import Errors, InputError
from .alignment import ALIGN_METHODS, subword_links, word_links
from .assignment import ASSIGNMENTS, Choice, alignment_rule, assign
from .candidates import CandidateGrid, max_candidate_words
from .generator import candidate_runs, generator_scores
from .scoring import alignment_scores, similarity_scores
from .types import ProjectedSpan, ProjectionPair, ProjectionResult
from .words import segment, word_of_subword, words_covering_all

logger = logging.getLogger("xapps")

#: ``assignment`` values: the two candidate-based ones, and the aligner rule (ablation).
PROJECTION_METHODS = ASSIGNMENTS + ("rule",)


@dataclass
class ProjectionConfig:
    """Settings of :class:`AnnotationProjector`; the defaults are the benchmarked ones
    (benchmarks/bench_projection.py, chosen on the first 200 Europarl sentences)."""

    backbone: str = "me5-small"
    layer: int = 6
    alignment: str = "union"
    temperature: float = 0.05
    soft_threshold: float = 0.1
    alignment_weight: float = 0.7
    similarity_weight: float = 0.3
    translation_weight: float = 0.3  # used only with an mt_model
    threshold: float = 0.3
    assignment_margin: float = 0.5
    extra_words: int = 3
    # A pair longer than this many source words is projected window by window (linear cost;
    # the alignment and candidate matrices are quadratic in the words of what they see), and
    # a source span longer than it is left unprojected: it is no entity or term.
    window_words: int = 512
    assignment: str = "global"
    top_k: int = 8
    mt_model: str | None = None
    mt_source_lang: str | None = None
    mt_target_lang: str | None = None
    generator_model: str | None = None
    generator_weight: float = 0.3  # used only with a generator_model
    generator_candidates: int = 4
    batch_size: int = 32
    device: str | None = None
    # "fast": bf16 on a CPU with native bf16 (AVX512-BF16 / AMX) and on GPUs, fp32 elsewhere;
    # measured on Europarl: the same F1 as fp32 at 1.7x the pairs/s. "int8": faster still,
    # about 1 F1 lower (benchmarks/README.md).
    dtype: str | None = "fast"
    quantize: str | None = None

    def __post_init__(self) -> None:
        _choice("alignment", self.alignment, ALIGN_METHODS)
        _choice("assignment", self.assignment, PROJECTION_METHODS)
        for name in ("alignment_weight", "similarity_weight", "translation_weight",
                     "generator_weight", "temperature", "soft_threshold"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise InputError(Errors.E074.format(what=f"ProjectionConfig.{name}",
                                                    value=value, expected="a number >= 0"))
        if self.temperature == 0:
            raise InputError(Errors.E074.format(what="ProjectionConfig.temperature", value=0,
                                                expected="a number > 0, such as 0.05"))
        if not any(self._weights()):
            raise InputError(Errors.E074.format(
                what="the projection score weights", value="all 0",
                expected="at least one of alignment_weight, similarity_weight (or "
                         "translation_weight with an mt_model, generator_weight with a "
                         "generator_model) above 0"))
        for name in ("top_k", "batch_size", "generator_candidates", "window_words"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(Errors.E074.format(what=f"ProjectionConfig.{name}",
                                                    value=value, expected="an int >= 1"))
        if not isinstance(self.extra_words, int) or self.extra_words < 0:
            raise InputError(Errors.E074.format(what="ProjectionConfig.extra_words",
                                                value=self.extra_words, expected="an int >= 0"))

    def _weights(self) -> tuple[float, float, float, float]:
        return (self.alignment_weight, self.similarity_weight,
                self.translation_weight if self.mt_model else 0.0,
                self.generator_weight if self.generator_model else 0.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ProjectionConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(Errors.E074.format(what="projection settings", value=unknown,
                                                expected=f"names among {sorted(known)}"))
        return cls(**data)


def _choice(what: str, value: str, options: tuple[str, ...]) -> None:
    if value not in options:
        raise InputError(Errors.E083.format(value=value, options=list(options)) +
                         f" (ProjectionConfig.{what})")


class AnnotationProjector:
    """Projects labelled spans onto translations. ``AnnotationProjector(layer=8)`` overrides
    one setting of the default :class:`ProjectionConfig`."""

    def __init__(self, config: ProjectionConfig | None = None, **overrides) -> None:
        base = config.to_dict() if config is not None else {}
        self.config = ProjectionConfig.from_dict({**base, **overrides})
        self._backbone = None
        self._translator = None
        self._generator = None

    @property
    def backbone(self):
        if self._backbone is None:
            from ..backbone import load_backbone

            self._backbone = load_backbone(self.config.backbone, device=self.config.device,
                                           dtype=self.config.dtype,
                                           quantize=self.config.quantize)
        return self._backbone

    @property
    def translator(self):
        """The MT model that scores span pairs (and translates, for translate-train)."""
        if self._translator is None and self.config.mt_model:
            from .translation import Translator

            self._translator = Translator(self.config.mt_model,
                                          source_lang=self.config.mt_source_lang,
                                          target_lang=self.config.mt_target_lang,
                                          device=self.config.device)
        return self._translator

    @property
    def generator(self):
        """The fine-tuned seq2seq model proposing target spans (T-Projection's candidates)."""
        if self._generator is None and self.config.generator_model:
            from .generator import CandidateGenerator

            self._generator = CandidateGenerator(
                self.config.generator_model, device=self.config.device,
                num_candidates=self.config.generator_candidates,
                batch_size=self.config.batch_size)
        return self._generator

    # ------------------------------------------------------------------ projection
    def project(self, pairs: Iterable[ProjectionPair], *, chunk_size: int = 256,
                progress: bool | None = None) -> Iterator[ProjectionResult]:
        """Project every pair, streaming: pairs are read, encoded and yielded ``chunk_size``
        at a time, so memory stays bounded by the chunk. A pair without a target is
        translated first when an MT model is configured (translate-train)."""
        from tqdm.auto import tqdm

        bar = tqdm(desc="projecting", unit="pair", disable=progress is False,
                   total=len(pairs) if hasattr(pairs, "__len__") else None)
        try:
            chunk: list[ProjectionPair] = []
            for pair in pairs:
                chunk.append(pair)
                if len(chunk) >= chunk_size:
                    yield from self._project_chunk(chunk)
                    bar.update(len(chunk))
                    chunk = []
            if chunk:
                yield from self._project_chunk(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()

    def project_one(self, pair: ProjectionPair) -> ProjectionResult:
        return next(iter(self._project_chunk([pair])))

    def _project_chunk(self, pairs: list[ProjectionPair]) -> list[ProjectionResult]:
        self._fill_translations(pairs)
        for i, pair in enumerate(pairs):
            _check_pair(pair, i)
        texts = [p.source for p in pairs] + [p.target for p in pairs]
        embedded = self.backbone.embed_tokens(texts, layer=self.config.layer,
                                              batch_size=self.config.batch_size,
                                              progress=False)
        n = len(pairs)
        proposals = self._proposals(pairs)
        return [self._project_pair(pair, embedded[i], embedded[n + i], proposals[i])
                for i, pair in enumerate(pairs)]

    def _proposals(self, pairs: list[ProjectionPair]) -> list[dict[str, dict[str, float]]]:
        """Per pair, label -> generated phrase -> probability; one batched generate call for
        every (target, label) of the chunk. Empty without a generator."""
        out: list[dict[str, dict[str, float]]] = [{} for _ in pairs]
        if not self.config.generator_model:
            return out
        asks = [(i, label) for i, p in enumerate(pairs) for label in
                sorted({s.label for s in p.spans})]
        answers = self.generator.propose([pairs[i].target for i, _ in asks],
                                         [label for _, label in asks])
        for (i, label), phrases in zip(asks, answers):
            out[i][label] = phrases
        return out

    def _fill_translations(self, pairs: list[ProjectionPair]) -> None:
        missing = [p for p in pairs if not p.target.strip()]
        if not missing:
            return
        if self.translator is None:
            raise InputError(Errors.E140.format(id=missing[0].id or "(no id)",
                                                source=missing[0].source[:60]))
        for pair, translation in zip(missing, self.translator.translate(
                [p.source for p in missing])):
            pair.target, pair.target_words = translation, None

    def _project_pair(self, pair: ProjectionPair, src, tgt,
                      proposals: dict[str, dict[str, float]]) -> ProjectionResult:
        cfg = self.config
        src_words = pair.source_words or segment(pair.source, pair.source_lang, src.offsets)
        tgt_words = pair.target_words or segment(pair.target, pair.target_lang, tgt.offsets)
        spans = words_covering_all(src_words, [(s.start, s.end) for s in pair.spans])
        too_long = [i for i, (s, e) in enumerate(spans) if e - s > cfg.window_words]
        if too_long:
            logger.warning("%s: %d source span(s) longer than %d words (window_words) are "
                           "left unprojected, e.g. [%d, %d)", pair.where or pair.id or "a pair",
                           len(too_long), cfg.window_words, pair.spans[too_long[0]].start,
                           pair.spans[too_long[0]].end)
        todo = [i for i in range(len(spans)) if i not in set(too_long)]
        choices: list[Choice] = []
        for a, b, c, d in _windows(spans, todo, len(src_words), len(tgt_words),
                                   cfg.window_words):
            ids = [i for i in todo if a <= spans[i][0] < b]
            if not ids:
                continue
            found = self._project_window(
                pair, _slice(src, src_words[a:b]), _slice(tgt, tgt_words[c:d]),
                src_words[a:b], tgt_words[c:d], [(spans[i][0] - a, spans[i][1] - a) for i in ids],
                ids, proposals)
            choices.extend(Choice(ch.source_index, ch.start + c, ch.end + c, ch.score)
                           for ch in found)
        return _result(pair, tgt_words, _without_overlaps(choices))

    def _project_window(self, pair: ProjectionPair, src, tgt, src_words, tgt_words, spans,
                        ids: list[int], proposals) -> list[Choice]:
        """Choices for the source spans ``ids`` (``spans``: their words in ``src_words``) on
        ``tgt_words``; source indices are ``ids``, target words index ``tgt_words``."""
        import torch

        cfg = self.config
        src_of = word_of_subword(src.offsets, src_words)
        tgt_of = word_of_subword(tgt.offsets, tgt_words)
        device = self.backbone.device
        links, _ = subword_links(torch.from_numpy(src.vectors).to(device),
                                 torch.from_numpy(tgt.vectors).to(device),
                                 method=cfg.alignment, temperature=cfg.temperature,
                                 threshold=cfg.soft_threshold)
        links = word_links(links, src_of, tgt_of, len(src_words), len(tgt_words))
        if cfg.assignment == "rule":
            found = alignment_rule(links, spans)
        else:
            options = self._score_candidates(pair, src, tgt, src_of, tgt_of, tgt_words, spans,
                                             links, proposals, ids)
            found = assign(options, threshold=cfg.threshold, margin=cfg.assignment_margin,
                           top_k=cfg.top_k, method=cfg.assignment)
        return [Choice(ids[ch.source_index], ch.start, ch.end, ch.score) for ch in found]

    def _score_candidates(self, pair, src, tgt, src_of, tgt_of, tgt_words, spans, links,
                          proposals, ids):

        cfg = self.config
        words_text = [pair.target[s:e] for s, e in tgt_words]
        longest = max((max_candidate_words(e - s, cfg.extra_words) for s, e in spans),
                      default=0)
        grid = CandidateGrid(words_text, longest)
        src_vecs = _unit_rows(src.vectors)
        tgt_vecs = _unit_rows(tgt.vectors)
        word_sums = np.zeros((len(tgt_words), tgt_vecs.shape[1]), dtype=np.float32)
        ok = tgt_of >= 0
        np.add.at(word_sums, tgt_of[ok], tgt_vecs[ok])
        cum = np.concatenate([np.zeros((1, word_sums.shape[1]), np.float32),
                              np.cumsum(word_sums, axis=0)])
        w_align, w_sim, w_mt, w_gen = cfg._weights()
        total = w_align + w_sim + w_mt + w_gen
        runs = {label: candidate_runs(phrases, pair.target, tgt_words)
                for label, phrases in proposals.items()}
        options = []
        for k, (s, e) in enumerate(spans):
            span_index = ids[k]
            starts, ends = grid.up_to(max_candidate_words(e - s, cfg.extra_words))
            generated = runs.get(pair.spans[span_index].label, {})
            longer = [r for r in generated if r[1] - r[0] > max_candidate_words(
                e - s, cfg.extra_words)]
            if longer:  # a generated span may be longer than the word-run limit
                starts = np.concatenate([starts, [r[0] for r in longer]]).astype(np.int64)
                ends = np.concatenate([ends, [r[1] for r in longer]]).astype(np.int64)
            in_span = (src_of >= s) & (src_of < e)
            if e <= s or not len(starts) or not in_span.any():
                options.append((starts[:0], ends[:0], np.zeros(0)))
                continue
            score = np.zeros(len(starts))
            if w_align:
                score += w_align * alignment_scores(links, (s, e), starts, ends)
            if w_sim:
                score += w_sim * similarity_scores(src_vecs[in_span].mean(axis=0), cum,
                                                   starts, ends)
            if w_gen:
                score += w_gen * generator_scores(generated, starts, ends)
            if w_mt:
                score = self._add_translation(pair, span_index, tgt_words, starts, ends, score,
                                              w_mt)
            options.append((starts, ends, score / total))
        return options

    def _add_translation(self, pair, span_index, tgt_words, starts, ends, score, weight):
        """Translation probability for the span's best candidates only (``top_k`` of them):
        scoring every word run with a seq2seq model would cost one decoder pass each."""
        best = np.argsort(-score, kind="stable")[:self.config.top_k]
        span = pair.spans[span_index]
        texts = [pair.target[tgt_words[starts[j]][0]:tgt_words[ends[j] - 1][1]] for j in best]
        probs = self.translator.span_scores([pair.source[span.start:span.end]] * len(best),
                                            texts)
        out = score.copy()
        out[best] += weight * probs
        return out


def _windows(spans: list[tuple[int, int]], todo: list[int], n_src: int, n_tgt: int,
             size: int) -> list[tuple[int, int, int, int]]:
    """(source words [a, b), target words [c, d)) per window. One window for a pair of up to
    ``size`` source words; a longer one is cut between spans into windows of about ``size``
    words, each against the proportional stretch of the target plus a margin of a quarter
    window (translations keep the order of their sentences), so the cost stays linear.

    >>> _windows([(1, 3)], [0], 10, 12, 512)
    [(0, 10, 0, 12)]
    >>> _windows([(3, 6)], [0], 20, 20, 4)
    [(0, 3, 0, 11), (3, 7, 0, 15), (7, 11, 0, 19), (11, 15, 3, 20), (15, 19, 7, 20), (19, 20, 11, 20)]
    """
    if n_src <= size:
        return [(0, n_src, 0, n_tgt)]
    blocked = np.zeros(n_src + 1, dtype=bool)  # True where a cut would split a span
    for i in todo:
        s, e = spans[i]
        blocked[s + 1:e] = True
    cuts, pos = [0], 0
    while pos + size < n_src:
        free = np.nonzero(~blocked[pos + 1:pos + size + 1])[0]
        cut = pos + 1 + int(free[-1]) if len(free) else (
            pos + size + 1 + int(np.argmin(blocked[pos + size + 1:])))
        cuts.append(cut)
        pos = cut
    cuts.append(n_src)
    ratio = n_tgt / max(n_src, 1)
    out = []
    for a, b in zip(cuts, cuts[1:]):
        margin = max(8, (b - a) // 4)
        c = max(0, int(np.floor(a * ratio)) - margin)
        d = min(n_tgt, int(np.ceil(b * ratio)) + margin)
        out.append((a, b, c, max(c, d)))
    return out


def _slice(emb, words):
    """The subwords of ``emb`` (TokenEmbeddings) that start inside [first word, last word)."""
    if not words:
        return dataclasses.replace(emb, vectors=emb.vectors[:0], offsets=emb.offsets[:0],
                                   input_ids=emb.input_ids[:0])
    lo, hi = words[0][0], words[-1][1]
    starts = emb.offsets[:, 0] if len(emb.offsets) else np.zeros(0, np.int64)
    i, j = np.searchsorted(starts, lo, side="left"), np.searchsorted(starts, hi, side="left")
    if i == 0 and j == len(starts):
        return emb
    return dataclasses.replace(emb, vectors=emb.vectors[i:j], offsets=emb.offsets[i:j],
                               input_ids=emb.input_ids[i:j])


def _without_overlaps(choices: list[Choice]) -> list[Choice]:
    """Windows overlap on the target side: where their choices collide, the higher score
    wins (within one window they never collide)."""
    kept: list[Choice] = []
    for c in sorted(choices, key=lambda c: (-c.score, c.source_index)):
        if not any(c.start < k.end and k.start < c.end for k in kept):
            kept.append(c)
    return kept


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def _check_pair(pair: ProjectionPair, i: int) -> None:
    where = pair.id or f"pair {i}"
    for span in pair.spans:
        if not (0 <= span.start < span.end <= len(pair.source)):
            raise InputError(Errors.E141.format(where=where, start=span.start, end=span.end,
                                                n=len(pair.source)))


def _result(pair: ProjectionPair, tgt_words, choices: list[Choice]) -> ProjectionResult:
    projected = sorted(
        (ProjectedSpan(tgt_words[c.start][0], tgt_words[c.end - 1][1],
                       pair.spans[c.source_index].label, c.source_index, round(c.score, 6))
         for c in choices), key=lambda p: (p.start, p.end))
    chosen = {c.source_index for c in choices}
    return ProjectionResult(pair, projected, list(tgt_words),
                            [i for i in range(len(pair.spans)) if i not in chosen])
