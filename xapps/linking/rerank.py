"""Cross-encoder re-ranking of generated candidates (xMEN-style).

Each candidate is scored jointly with its mention: the pair
``left [START] mention [END] right`` / ``canonical [TITLE] alias ; alias [TYPE] type`` goes
through a trainable copy of the backbone and a linear head on the first-token state. The
scores of one mention's candidates, plus a ``[NIL]`` pair (so "none of these" is a learned,
mention-dependent option), are normalised with one softmax. Training minimises the listwise
cross-entropy plus xMEN's rank regularisation, which keeps the logits near the candidate
generator's scores so a small training set cannot undo what the generator already ranks well
(and so training on one language's documents transfers to another's).

Memory: a mention's candidate list is long (64 candidates + NIL), so the encoder runs over the
flattened (mention, candidate) pairs of a micro-batch in chunks of ``candidate_chunk`` pairs,
each chunk under activation checkpointing (:func:`torch.utils.checkpoint.checkpoint`). The
forward pass keeps only each chunk's logits; backward recomputes one chunk at a time, so peak
activation memory is that of one chunk, whatever the list length, at the price of one extra
forward pass. The listwise softmax still sees the whole list, so gradients are exact (the
checkpoint replays the dropout RNG state). When a micro-batch fits in one chunk nothing is
recomputed. Measured once on CPU (me5-small, 1 mention x 64 candidates + NIL, max_length 64,
2 threads): peak RSS 3.9 GB with ``candidate_chunk=16`` against 5.8 GB without chunking, about
13 s a step; the rest of the peak is AdamW state, mostly for the 96M-parameter word embeddings.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backbone import quiet_transformers
from ..errors import Errors, InputError, ModelError
from ..training import adamw, linear_warmup
from .types import Candidate, Mention

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("xapps")

START, END, TITLE, TYPE, NIL = "[START]", "[END]", "[TITLE]", "[TYPE]", "[NIL]"
MARKERS = (START, END, TITLE, TYPE, NIL)
FORMAT = "xapps.cross_encoder_reranker"
FORMAT_VERSION = 1
CFG_NAME = "cfg.json"
MODEL_DIR = "model"
HEAD_NAME = "head.safetensors"
#: ``Candidate.sources`` key for the cross-encoder's probability, and for the score the
#: candidate arrived with (kept so later stages can still ensemble with the generator).
SOURCE_NAME = "cross_encoder"
GENERATOR_SOURCE = "generator"


# --------------------------------------------------------------------------- config
@dataclass
class RerankerConfig:
    """Settings saved with a re-ranker (``cfg.json``).

    ``max_length`` counts subwords of the pair (special tokens included) and is capped by the
    backbone's limit; ``context_window`` is characters of context kept on each side of the
    mention; ``dropout`` (None: the backbone's own) overrides hidden and attention dropout.
    """

    backbone: str
    max_length: int = 96
    use_types: bool = False
    nil: bool = True
    rank_reg_weight: float = 1.0
    max_aliases: int = 5
    context_window: int = 64
    dropout: float | None = None
    #: Keep the (250k-row) word embeddings fixed: ~1.5 GB less optimizer state on
    #: me5-small, faster CPU steps, and languages absent from training keep the subword
    #: embeddings the backbone aligned across languages.
    freeze_embeddings: bool = True
    #: Add ``generator_prior * generator score`` to each candidate's logit, so the
    #: cross-encoder learns a correction of the generator's ranking instead of a ranking from
    #: scratch: an untrained or briefly trained re-ranker then keeps the generator's order
    #: (measured on Mantra: 50 CPU steps without it fell from 53.6% to 15.3% accuracy@1).
    #: Rank regularisation then pulls the logits towards the scaled scores, i.e. keeps the
    #: correction small. 0 is plain xMEN.
    generator_prior: float = 0.0

    def __post_init__(self) -> None:
        checks = [("max_length", self.max_length, isinstance(self.max_length, int)
                   and self.max_length >= 8, "an integer >= 8"),
                  ("rank_reg_weight", self.rank_reg_weight, self.rank_reg_weight >= 0,
                   "a number >= 0 (0 turns rank regularisation off)"),
                  ("max_aliases", self.max_aliases, self.max_aliases >= 0, "an integer >= 0"),
                  ("context_window", self.context_window, self.context_window >= 0,
                   "characters >= 0"),
                  ("dropout", self.dropout, self.dropout is None or 0 <= self.dropout < 1,
                   "None or a probability in [0, 1)")]
        for what, value, ok, expected in checks:
            if not ok:
                raise InputError(Errors.E074.format(what=f"RerankerConfig.{what}", value=value,
                                                    expected=expected))


@dataclass
class TrainingExample:
    """One annotated mention with the generator's candidates. ``gold`` is a concept id; a gold
    that is not among the (first ``max_candidates``) candidates is a NIL target."""

    mention: Mention
    candidates: list[Candidate]
    gold: str


@dataclass
class _Prepared:
    mention_text: str
    candidate_texts: list[str]
    generator_scores: list[float]
    gold_index: int  # len(candidate_texts) = the NIL slot
    lang: str | None = field(default=None)


def _lang_key(lang: str | None) -> str | None:
    """"pt-BR", "pt_br" and "pt" compare equal: the primary language subtag, lower case."""
    if not lang or not isinstance(lang, str):
        return None
    return lang.strip().lower().replace("_", "-").split("-")[0] or None


# --------------------------------------------------------------------------- loss
def listwise_loss(logits: torch.Tensor, gold_index: torch.Tensor,
                  generator_scores: torch.Tensor, mask: torch.Tensor | None = None,
                  rank_reg_weight: float = 1.0, *, reduction: str = "mean") -> torch.Tensor:
    r"""Listwise softmax cross-entropy plus xMEN's rank regularisation.

    For mention :math:`b` with candidate logits :math:`z_{b,1..C}`, the NIL logit
    :math:`z_{b,C+1}` (present when ``logits`` has ``C + 1`` columns), valid candidates
    :math:`V_b` (``mask``) and generator scores :math:`s_{b,c}`:

    .. math::

        L_b = -z_{b,g_b} + \log\Big(\sum_{c \in V_b} e^{z_{b,c}} + e^{z_{b,C+1}}\Big)
              + \lambda \sqrt{\textstyle\sum_{c \in V_b} (z_{b,c} - s_{b,c})^2}

    The regulariser is the Euclidean (L2) distance between the candidates' logits and the
    generator's scores, as in xMEN (``PairwiseDistance(p=2)``); the NIL slot is not part of it.
    ``gold_index`` is ``C`` (0-based) for NIL. ``reduction``: "mean" or "sum" over mentions,
    or "none" for the per-mention losses.

    >>> import torch
    >>> round(float(listwise_loss(torch.zeros(1, 3), torch.tensor([0]),
    ...                           torch.tensor([[3.0, 4.0]]), None, 1.0)), 4)  # log 3 + 5
    6.0986
    """
    import torch

    if logits.dim() != 2 or generator_scores.dim() != 2 or gold_index.dim() != 1:
        raise InputError(Errors.E077.format(
            problem=f"got logits {tuple(logits.shape)}, gold_index {tuple(gold_index.shape)}, "
                    f"generator_scores {tuple(generator_scores.shape)}"))
    batch, n_cand = generator_scores.shape
    if logits.shape[0] != batch or gold_index.shape[0] != batch or \
            logits.shape[1] not in (n_cand, n_cand + 1):
        raise InputError(Errors.E077.format(
            problem=f"got logits {tuple(logits.shape)}, gold_index {tuple(gold_index.shape)}, "
                    f"generator_scores {tuple(generator_scores.shape)}"))
    if mask is None:
        mask = torch.ones((batch, n_cand), dtype=torch.bool, device=logits.device)
    elif tuple(mask.shape) != (batch, n_cand):
        raise InputError(Errors.E077.format(
            problem=f"mask has shape {tuple(mask.shape)}, generator_scores {(batch, n_cand)}"))
    mask = mask.to(torch.bool)
    logits = logits.float()
    full_mask = mask
    if logits.shape[1] == n_cand + 1:  # the NIL slot is always a valid choice
        full_mask = torch.cat([mask, mask.new_ones((batch, 1))], dim=1)
    masked = logits.masked_fill(~full_mask, float("-inf"))
    ce = torch.logsumexp(masked, dim=1) - masked.gather(1, gold_index.long()[:, None])[:, 0]
    diff = (logits[:, :n_cand] - generator_scores.to(logits.dtype)) * mask
    loss = ce + rank_reg_weight * torch.linalg.vector_norm(diff, dim=1) \
        if rank_reg_weight else ce
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise InputError(Errors.E074.format(what="reduction", value=reduction,
                                        expected="'mean', 'sum' or 'none'"))


# --------------------------------------------------------------------------- model
class CrossEncoderReranker:
    """A trainable cross-encoder over its own copy of the backbone's weights.

    ``score`` returns only real concepts; the NIL probability of each mention comes from
    :meth:`score_with_nil` (the concept probabilities plus it sum to 1).
    """

    def __init__(self, config: RerankerConfig, *, device: str | None = None) -> None:
        from ..backbone import _resolve_source

        source, _ = _resolve_source(config.backbone)
        self._setup(config, source, device=device, fresh=True)

    # ---------------------------------------------------------------- building
    def _setup(self, config: RerankerConfig, source: str, *, device: str | None,
               fresh: bool) -> None:
        import torch

        from ..backbone import _max_length, load_trainable, resolve_device

        self.config = config
        self.device = resolve_device(device)
        hf_config, tokenizer, model = load_trainable(source, name=config.backbone,
                                                     dropout=config.dropout)
        # fork_rng: resizing for the markers must not move the caller's RNG either.
        with torch.random.fork_rng(devices=[]):
            # What the markers look like as plain text, before they become single tokens:
            # a fresh marker embedding starts as the mean of those subwords (deterministic,
            # and not a random vector the small training set must first make sense of).
            plain = {m: tokenizer(m, add_special_tokens=False)["input_ids"] for m in MARKERS}
            added = tokenizer.add_tokens(list(MARKERS), special_tokens=True)
            if added:
                emb = model.get_input_embeddings()
                if len(tokenizer) > emb.weight.shape[0]:
                    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
                    emb = model.get_input_embeddings()
                with torch.no_grad():
                    for marker, ids in plain.items():
                        new_id = tokenizer.convert_tokens_to_ids(marker)
                        if fresh and ids:
                            emb.weight[new_id] = emb.weight[ids].mean(0)
        hidden = int(hf_config.hidden_size)
        head = torch.nn.Linear(hidden, 1)
        gen = torch.Generator().manual_seed(0)
        std = float(getattr(hf_config, "initializer_range", 0.02))
        with torch.no_grad():
            torch.nn.init.normal_(head.weight, std=std, generator=gen)
            head.bias.zero_()
        if config.freeze_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        self.model = model.to(self.device)
        self.head = head.to(self.device)
        self.tokenizer = tokenizer
        self.hf_config = hf_config
        self.max_length = min(config.max_length, _max_length(hf_config, tokenizer, {}))
        self.model.eval()
        self.head.eval()

    def parameters(self):
        """Every trainable parameter: the encoder's, then the head's."""
        yield from self.model.parameters()
        yield from self.head.parameters()

    def named_parameters(self):
        for name, p in self.model.named_parameters():
            yield f"model.{name}", p
        for name, p in self.head.named_parameters():
            yield f"head.{name}", p

    def train(self, mode: bool = True) -> CrossEncoderReranker:
        self.model.train(mode)
        self.head.train(mode)
        return self

    @property
    def training(self) -> bool:
        return bool(self.model.training)

    # ---------------------------------------------------------------- texts
    def candidate_text(self, concept: Any, lang: str | None = None) -> str:
        """``canonical [TITLE] alias ; alias`` (+ `` [TYPE] type, type``). Up to
        ``max_aliases`` distinct aliases, those in ``lang`` first (the mention's language,
        so a concept with hundreds of names shows the ones that can match)."""
        canonical = " ".join(str(concept.canonical_name).split())
        seen = {canonical.casefold()}
        ranked = []
        want = _lang_key(lang)
        for pos, alias in enumerate(getattr(concept, "aliases", None) or []):
            text = " ".join(str(getattr(alias, "text", alias)).split())
            same = want is not None and _lang_key(getattr(alias, "lang", None)) == want
            ranked.append((0 if same else 1, pos, text))
        aliases = []
        for _, _, text in sorted(ranked):
            if len(aliases) >= self.config.max_aliases:
                break
            if text and text.casefold() not in seen:
                seen.add(text.casefold())
                aliases.append(text)
        out = f"{canonical} {TITLE} " + " ; ".join(aliases)
        types = [str(t) for t in (getattr(concept, "types", None) or [])]
        if self.config.use_types and types:
            out = out.rstrip() + f" {TYPE} " + ", ".join(types)
        return out.strip()

    def mention_text(self, mention: Mention) -> str:
        """``left [START] text [END] right`` with at most ``context_window`` characters of
        context on each side, cut at a word boundary."""
        window = self.config.context_window
        left, right = mention.left or "", mention.right or ""
        if len(left) > window:
            start = len(left) - window
            left = left[start:]
            if left and not left[0].isspace() and not mention.left[start - 1].isspace():
                left = left.split(None, 1)[1] if len(left.split(None, 1)) > 1 else ""
        if len(right) > window:
            tail = right[window:]
            right = right[:window]
            if right and not right[-1].isspace() and not tail[0].isspace():
                right = right.rsplit(None, 1)[0] if len(right.rsplit(None, 1)) > 1 else ""
        parts = [" ".join(left.split()), START, " ".join(mention.text.split()), END,
                 " ".join(right.split())]
        return " ".join(p for p in parts if p)

    def _concept(self, kb: Any, concept_id: str, mention: Mention) -> Any:
        try:
            return kb[concept_id]
        except (KeyError, IndexError, LookupError):
            raise InputError(Errors.E072.format(concept_id=concept_id,
                                                mention=mention.text)) from None

    def _prepare(self, mention: Mention, candidates: Sequence[Candidate], kb: Any,
                 cache: dict, gold: str | None = None) -> _Prepared:
        texts = []
        for cand in candidates:
            key = (cand.concept_id, mention.lang)
            text = cache.get(key)
            if text is None:
                text = self.candidate_text(self._concept(kb, cand.concept_id, mention),
                                           mention.lang)
                cache[key] = text
            texts.append(text)
        ids = [c.concept_id for c in candidates]
        gold_index = ids.index(gold) if gold is not None and gold in ids else len(ids)
        return _Prepared(self.mention_text(mention), texts, [float(c.score) for c in candidates],
                         gold_index, mention.lang)

    # ---------------------------------------------------------------- forward
    def _pairs(self, items: Sequence[_Prepared]) -> list[tuple[str, str]]:
        """Flattened pairs: each item's candidates, then its NIL pair when ``nil``."""
        pairs = []
        for it in items:
            pairs.extend((it.mention_text, c) for c in it.candidate_texts)
            if self.config.nil and it.candidate_texts:
                pairs.append((it.mention_text, NIL))
        return pairs

    def _tokenize(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        if not pairs:
            return []
        enc = self.tokenizer([p[0] for p in pairs], [p[1] for p in pairs],
                             truncation="longest_first", max_length=self.max_length,
                             return_attention_mask=False)
        return enc["input_ids"]

    def _pad(self, seqs: Sequence[list[int]]):
        import torch

        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, :len(s)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _pair_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        """One logit per pair from the first-token state (float32)."""
        import torch

        use_bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        ctx = (torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16
               else torch.autocast(self.device.type, enabled=False))
        with ctx:
            states = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                return_dict=True).last_hidden_state
            logits = self.head(states[:, 0])
        return logits[:, 0].float()

    def _logits(self, seqs: Sequence[list[int]], chunk: int,
                checkpointed: bool | None = None) -> torch.Tensor:
        """Logits of all sequences, ``chunk`` at a time, longest first (less padding);
        under autograd with more than one chunk each chunk is checkpointed (see module doc)."""
        import torch
        from torch.utils.checkpoint import checkpoint

        n = len(seqs)
        if n == 0:
            return torch.zeros(0, device=self.device)
        order = sorted(range(n), key=lambda i: -len(seqs[i]))
        if checkpointed is None:
            checkpointed = torch.is_grad_enabled() and n > chunk
        parts = []
        for start in range(0, n, chunk):
            idx = order[start:start + chunk]
            ids, mask = self._pad([seqs[i] for i in idx])
            if checkpointed:
                parts.append(checkpoint(self._pair_logits, ids, mask, use_reentrant=False))
            else:
                parts.append(self._pair_logits(ids, mask))
        flat = torch.cat(parts)
        inverse = torch.empty(n, dtype=torch.long, device=flat.device)
        inverse[torch.tensor(order, device=flat.device)] = torch.arange(n, device=flat.device)
        return flat[inverse]

    def _batch_logits(self, items: Sequence[_Prepared], chunk: int,
                      checkpointed: bool | None = None):
        """(logits (B, C+1 or C), gold (B,), generator scores (B, C), mask (B, C)), where C is
        the longest list in the batch; a list's NIL logit sits in the last column."""
        import torch

        seqs = self._tokenize(self._pairs(items))
        flat = self._logits(seqs, chunk, checkpointed)
        width = max(len(it.candidate_texts) for it in items)
        nil = self.config.nil
        rows, scores, masks, gold = [], [], [], []
        pos = 0
        for it in items:
            k = len(it.candidate_texts)
            cand = flat[pos:pos + k]
            pad = flat.new_zeros(width - k)
            row = [cand, pad]
            if nil:
                row.append(flat[pos + k:pos + k + 1])
            pos += k + (1 if nil else 0)
            rows.append(torch.cat(row))
            scores.append(it.generator_scores + [0.0] * (width - k))
            masks.append([True] * k + [False] * (width - k))
            gold.append(width if it.gold_index == k else it.gold_index)
        dev = flat.device
        logits = torch.stack(rows)
        prior = torch.tensor(scores, dtype=torch.float32, device=dev) * \
            self.config.generator_prior
        mask_t = torch.tensor(masks, dtype=torch.bool, device=dev)
        if self.config.generator_prior:
            logits = torch.cat([logits[:, :width] + prior * mask_t, logits[:, width:]], dim=1)
            scores_t = prior
        else:
            scores_t = torch.tensor(scores, dtype=torch.float32, device=dev)
        return logits, torch.tensor(gold, dtype=torch.long, device=dev), scores_t, mask_t

    def loss(self, examples: Sequence[TrainingExample], kb: Any, *, candidate_chunk: int = 16,
             max_candidates: int = 64, reduction: str = "mean") -> torch.Tensor:
        """The differentiable training loss of one batch (:func:`listwise_loss` with this
        config's rank regularisation), for custom training loops; call ``.backward()`` on it.
        Examples :func:`train_reranker` would skip are left out; none left gives a zero."""
        import torch

        items, _ = _prepare_examples(self, examples, kb, max_candidates)
        if not items:
            return torch.zeros((), device=self.device, requires_grad=torch.is_grad_enabled())
        logits, gold, scores, mask = self._batch_logits(items, candidate_chunk)
        return listwise_loss(logits, gold, scores, mask, self.config.rank_reg_weight,
                             reduction=reduction)

    # ---------------------------------------------------------------- scoring
    def score(self, mentions: Sequence[Mention], candidates: Sequence[Sequence[Candidate]],
              kb: Any, *, batch_size: int = 64) -> list[list[Candidate]]:
        """Each mention's candidates re-sorted by cross-encoder probability.

        ``Candidate.score`` is the probability from the softmax over the list and NIL (so the
        scores of a list sum to 1 minus its NIL probability, see :meth:`score_with_nil`);
        ``sources`` keeps the generator's entries, adds ``"generator"`` (the score the
        candidate came with) unless present, and ``"cross_encoder"`` (the probability).
        A mention without candidates gets ``[]``.
        """
        return self.score_with_nil(mentions, candidates, kb, batch_size=batch_size)[0]

    def score_with_nil(self, mentions: Sequence[Mention],
                       candidates: Sequence[Sequence[Candidate]], kb: Any, *,
                       batch_size: int = 64) -> tuple[list[list[Candidate]], list[float]]:
        """:meth:`score` plus each mention's NIL probability (0.0 with ``nil=False``; 1.0 for
        a mention without candidates: nothing to link to). A caller links a mention to the
        top candidate only where it beats NIL."""
        import torch

        if len(mentions) != len(candidates):
            raise InputError(Errors.E073.format(n=len(mentions), m=len(candidates)))
        if batch_size < 1:
            raise InputError(Errors.E074.format(what="batch_size", value=batch_size,
                                                expected="an integer >= 1"))
        cache: dict = {}
        items = [self._prepare(m, list(c), kb, cache) for m, c in zip(mentions, candidates)]
        seqs = self._tokenize(self._pairs(items))
        was_training = self.training
        self.train(False)
        try:
            with torch.inference_mode():
                flat = self._logits(seqs, batch_size).cpu()
        finally:
            self.train(was_training)
        ranked, nil_probs = [], []
        pos = 0
        for cands in candidates:
            k = len(cands)
            if k == 0:
                ranked.append([])
                nil_probs.append(1.0)
                continue
            width = k + (1 if self.config.nil else 0)
            logits = flat[pos:pos + width].double().clone()
            if self.config.generator_prior:
                logits[:k] += self.config.generator_prior * torch.tensor(
                    [float(c.score) for c in cands], dtype=torch.float64)
            probs = torch.softmax(logits, dim=0).tolist()
            pos += width
            out = []
            for cand, p in zip(cands, probs[:k]):
                sources = dict(cand.sources)
                sources.setdefault(GENERATOR_SOURCE, float(cand.score))
                sources[SOURCE_NAME] = float(p)
                out.append(Candidate(cand.concept_id, float(p), sources))
            order = sorted(range(k), key=lambda i: -probs[i])  # stable: ties keep input order
            ranked.append([out[i] for i in order])
            nil_probs.append(float(probs[k]) if self.config.nil else 0.0)
        return ranked, nil_probs

    # ---------------------------------------------------------------- persistence
    def save(self, folder: str | Path) -> Path:
        """Write ``cfg.json``, ``model/`` (transformers config, ``model.safetensors``,
        tokenizer with the markers) and ``head.safetensors``, atomically; no pickle."""
        from safetensors.torch import save_file

        from .. import __version__
        from ..checksums import sha256_file
        from ..index.manifest import atomic_directory

        folder = Path(folder)
        with atomic_directory(folder) as tmp:
            with quiet_transformers():
                self.model.save_pretrained(tmp / MODEL_DIR, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp / MODEL_DIR)
            head = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
            save_file(head, str(tmp / HEAD_NAME))
            files = {}
            for rel in (f"{MODEL_DIR}/model.safetensors", HEAD_NAME):
                files[rel] = sha256_file(tmp / rel)
            cfg = {"format": FORMAT, "version": FORMAT_VERSION, "xapps_version": __version__,
                   "config": dataclasses.asdict(self.config), "max_length": self.max_length,
                   "hidden_size": int(self.hf_config.hidden_size), "markers": list(MARKERS),
                   "files": files}
            (tmp / CFG_NAME).write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n",
                                        encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> CrossEncoderReranker:
        """Load a saved re-ranker offline; checks the recorded sha256 of the weights."""
        from safetensors.torch import load_file

        from ..checksums import sha256_file

        folder = Path(folder)
        path = folder / CFG_NAME
        try:
            cfg = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(Errors.E070.format(path=folder, reason=f"no {CFG_NAME}")) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(Errors.E070.format(path=folder, reason=f"{CFG_NAME}: {exc}")) from exc
        found_format = cfg.get("format") if isinstance(cfg, dict) else None
        if found_format != FORMAT:
            raise ModelError(Errors.E070.format(
                path=folder, reason=f"{CFG_NAME} has format {found_format!r}, expected "
                                    f"{FORMAT!r}"))
        if int(cfg.get("version", 0)) > FORMAT_VERSION:
            raise ModelError(Errors.E070.format(
                path=folder, reason=f"format version {cfg.get('version')} is newer than this "
                                    f"xapps reads ({FORMAT_VERSION}); upgrade xapps"))
        for rel, expected in (cfg.get("files") or {}).items():
            file = folder / rel
            if not file.is_file():
                raise ModelError(Errors.E070.format(path=folder, reason=f"{rel} is missing"))
            found = sha256_file(file)
            if found != expected:
                raise ModelError(Errors.E071.format(file=rel, path=folder, found=found,
                                                    expected=expected))
        try:
            config = RerankerConfig(**cfg["config"])
        except (TypeError, KeyError) as exc:
            raise ModelError(Errors.E070.format(
                path=folder, reason=f"bad 'config' in {CFG_NAME}: {exc}")) from exc
        obj = cls.__new__(cls)
        obj._setup(config, str(folder / MODEL_DIR), device=device, fresh=False)
        state = load_file(str(folder / HEAD_NAME), device=str(obj.device))
        obj.head.load_state_dict(state)
        return obj

    def __repr__(self) -> str:
        return (f"CrossEncoderReranker(backbone={self.config.backbone!r}, device={self.device}, "
                f"nil={self.config.nil}, max_length={self.max_length})")


# --------------------------------------------------------------------------- training
def _prepare_examples(reranker: CrossEncoderReranker, examples: Sequence[TrainingExample],
                      kb: Any, max_candidates: int) -> tuple[list[_Prepared], dict[str, int]]:
    cache: dict = {}
    prepared, skipped = [], {"no_candidates": 0, "gold_not_in_candidates": 0}
    for ex in examples:
        cands = list(ex.candidates)[:max_candidates]
        if not cands:
            skipped["no_candidates"] += 1
            continue
        item = reranker._prepare(ex.mention, cands, kb, cache, gold=ex.gold)
        if item.gold_index == len(cands) and not reranker.config.nil:
            skipped["gold_not_in_candidates"] += 1
            continue
        prepared.append(item)
    return prepared, skipped


def evaluate_reranker(reranker: CrossEncoderReranker, examples: Sequence[TrainingExample],
                      kb: Any, *, max_candidates: int = 64, batch_size: int = 8) -> dict:
    """Loss (as trained: listwise + rank regularisation) and accuracy@1 over the list and NIL,
    on the examples :func:`train_reranker` would use; for dev sets and callbacks."""
    import torch

    items, skipped = _prepare_examples(reranker, examples, kb, max_candidates)
    total, correct = 0.0, 0
    was_training = reranker.training
    reranker.train(False)
    try:
        with torch.inference_mode():
            for start in range(0, len(items), batch_size):
                batch = items[start:start + batch_size]
                logits, gold, scores, mask = reranker._batch_logits(batch, 64)
                total += float(listwise_loss(logits, gold, scores, mask,
                                             reranker.config.rank_reg_weight, reduction="sum"))
                masked = logits.masked_fill(~_full_mask(mask, logits), float("-inf"))
                correct += int((masked.argmax(1) == gold).sum())
    finally:
        reranker.train(was_training)
    n = len(items)
    return {"loss": total / n if n else float("nan"), "accuracy@1": correct / n if n else 0.0,
            "n": n, "skipped": skipped}


def _full_mask(mask: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    import torch

    if logits.shape[1] == mask.shape[1] + 1:
        return torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
    return mask


def train_reranker(reranker: CrossEncoderReranker, examples: Sequence[TrainingExample], kb: Any,
                   *, epochs: int = 1, lr: float = 2e-5, batch_size: int = 8, grad_accum: int = 1,
                   candidate_chunk: int = 16, max_candidates: int = 64, seed: int = 0,
                   warmup: float = 0.1, weight_decay: float = 0.01, max_grad_norm: float = 1.0,
                   progress: bool = True,
                   callback: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune ``reranker`` in place on annotated mentions (any language).

    One optimizer update sees ``batch_size * grad_accum`` mentions; the loss is the mean of
    :func:`listwise_loss` over them (the same update as one batch of that size). The encoder
    sees at most ``candidate_chunk`` (mention, candidate) pairs with activations held at once
    (see the module doc). Mentions with no candidates, and with ``nil=False`` those whose gold
    is not among the first ``max_candidates``, carry no signal and are skipped (counted in
    the result). AdamW with linear warmup (``warmup``: fraction of updates) and decay.

    Returns a history: ``loss`` (per update), ``step_seconds``, ``seconds``, ``steps``,
    ``examples`` and ``skipped``. ``callback`` gets ``{"step", "epoch", "loss", "lr",
    "seconds"}`` after every update.
    """
    import torch
    from tqdm.auto import tqdm

    for what, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("grad_accum", grad_accum), ("candidate_chunk", candidate_chunk),
                        ("max_candidates", max_candidates)):
        if not isinstance(value, int) or value < 1:
            raise InputError(Errors.E074.format(what=f"train_reranker {what}", value=value,
                                                expected="an integer >= 1"))
    if not 0 <= warmup < 1:
        raise InputError(Errors.E074.format(what="train_reranker warmup", value=warmup,
                                            expected="a fraction in [0, 1)"))
    started = time.perf_counter()
    items, skipped = _prepare_examples(reranker, examples, kb, max_candidates)
    if any(skipped.values()):
        logger.warning("train_reranker: skipped %s of %d examples (%s).", sum(skipped.values()),
                       len(examples), ", ".join(f"{k}: {v}" for k, v in skipped.items() if v))
    if not items:
        raise InputError(Errors.E075.format(n=len(examples), skipped=skipped))
    torch.manual_seed(seed)
    shuffler = torch.Generator().manual_seed(seed)
    group = batch_size * grad_accum
    per_epoch = math.ceil(len(items) / group)
    total = per_epoch * epochs
    optimizer = adamw(reranker.named_parameters(), lr, weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_warmup(total, round(warmup * total)))
    params = [p for p in reranker.parameters() if p.requires_grad]
    history: dict[str, Any] = {"loss": [], "step_seconds": [], "steps": 0,
                               "examples": len(items), "skipped": skipped}
    reranker.train(True)
    bar = tqdm(total=total, desc="training re-ranker", unit="step", disable=not progress)
    step = 0
    try:
        for epoch in range(epochs):
            order = torch.randperm(len(items), generator=shuffler).tolist()
            for g_start in range(0, len(order), group):
                t0 = time.perf_counter()
                members = [items[i] for i in order[g_start:g_start + group]]
                optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for b_start in range(0, len(members), batch_size):
                    batch = members[b_start:b_start + batch_size]
                    logits, gold, scores, mask = reranker._batch_logits(batch, candidate_chunk)
                    loss = listwise_loss(logits, gold, scores, mask,
                                         reranker.config.rank_reg_weight,
                                         reduction="sum") / len(members)
                    loss.backward()
                    step_loss += float(loss.detach())
                if max_grad_norm and max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
                current_lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                step += 1
                seconds = time.perf_counter() - t0
                history["loss"].append(step_loss)
                history["step_seconds"].append(seconds)
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}")
                if callback is not None:
                    callback({"step": step, "epoch": epoch, "loss": step_loss,
                              "lr": current_lr, "seconds": seconds})
    finally:
        bar.close()
        reranker.train(False)
        optimizer.zero_grad(set_to_none=True)
    history["steps"] = step
    history["seconds"] = time.perf_counter() - started
    return history
