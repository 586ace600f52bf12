"""The news recommender: train on impressions, score impressions in batches, recommend from
a news pool, save and load.

The backbone is frozen and its news vectors come from :class:`~.vectors.NewsVectorCache`,
so training touches only the head and the user encoder (a few hundred thousand parameters)
and fits a laptop CPU. Training follows NRMS/MIND practice: every clicked candidate of an
impression is one sample, scored against ``negatives`` non-clicked candidates of the same
impression (drawn with replacement when the impression shows fewer), softmax cross-entropy
over the 1 + K scores; the epoch with the best dev AUC is kept (early stopping).
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from ..artifacts import FILES_KEY, read_cfg, record_files, verify_files
from ..errors import Errors, InputError, ModelError
from ..fileio import atomic_write_text
from ..index.manifest import atomic_directory
from .data import Impression, NewsItem
from .metrics import evaluate_impressions
from .model import HEADS, USER_ENCODERS, NewsRecModel
from .vectors import NewsVectorCache

logger = logging.getLogger("xapps")

KIND = "news-recommender"
CFG_FILE = "cfg.json"
WEIGHTS_FILE = "model.safetensors"
#: how a damaged or missing recommender is made again (in error messages)
REMAKE = "xapps news train --behaviors ... --news ... --out <folder>"


@dataclass
class NewsRecConfig:
    backbone: str = "me5-small"
    user_encoder: str = "nrms"
    dim: int = 256
    heads: int = 8
    dropout: float = 0.2
    #: the most recent clicks the user encoder reads
    history_len: int = 50
    #: non-clicked candidates scored against each click in training
    negatives: int = 4
    #: encode title + abstract (False: the title alone)
    with_abstract: bool = True
    #: fine-tune the backbone's top layers with the head (0: frozen backbone, the CPU
    #: default; xapps.news.finetune)
    finetune_layers: int = 0
    #: "mlp": a trained news head; "none": the frozen backbone's vectors as they are, with
    #: the mean user encoder: the untrained mean-of-history recommender (nothing to train)
    head: str = "mlp"

    def check(self) -> None:
        if self.user_encoder not in USER_ENCODERS:
            raise InputError(Errors.E196.format(
                what="user_encoder", value=self.user_encoder,
                reason=f"expected one of {list(USER_ENCODERS)}", fix="Use 'nrms' or 'mean'."))
        for name in ("dim", "heads", "history_len", "negatives"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(Errors.E196.format(what=name, value=value,
                                                    reason="it must be a positive integer",
                                                    fix=f"Pass a positive {name}."))
        if not isinstance(self.finetune_layers, int) or self.finetune_layers < 0:
            raise InputError(Errors.E196.format(
                what="finetune_layers", value=self.finetune_layers,
                reason="it must be 0 (frozen) or a positive number of layers",
                fix="Pass e.g. finetune_layers=2."))
        if self.head not in HEADS:
            raise InputError(Errors.E196.format(
                what="head", value=self.head, reason=f"expected one of {list(HEADS)}",
                fix="Use 'mlp' (trained) or 'none' (untrained, frozen backbone vectors)."))
        if self.head == "none" and (self.user_encoder != "mean" or self.finetune_layers):
            raise InputError(Errors.E196.format(
                what="head", value=self.head,
                reason="the untrained recommender has no head to put NRMS or fine-tuned "
                       "layers on", fix="Use user_encoder='mean' and finetune_layers=0."))
        if self.user_encoder == "nrms" and self.dim % self.heads:
            raise InputError(Errors.E196.format(
                what="dim", value=self.dim, reason=f"it is not divisible by heads={self.heads}",
                fix="Choose dim a multiple of heads (e.g. 256 with 8 heads)."))


class _Table:
    """The backbone vectors of the news an operation needs, as one tensor plus an id -> row
    map (row 0 is a zero padding row)."""

    def __init__(self, ids: Sequence[str], vectors: np.ndarray, device,
                 texts: Sequence[str] = ()) -> None:
        self.row = {nid: i + 1 for i, nid in enumerate(ids)}
        self.texts = [""] + list(texts)  # by row; what fine-tuned top layers re-encode
        pad = np.zeros((1, vectors.shape[1]), dtype=np.float32)
        self.vectors = torch.from_numpy(np.concatenate([pad, vectors])).to(device)


def candidate_vectors(impressions: Sequence[Impression], news: Mapping[str, NewsItem],
                      cache: NewsVectorCache, with_abstract: bool = True) -> list[np.ndarray]:
    """Per impression, the backbone vectors of its candidates (for diversity)."""
    ids = list(dict.fromkeys(c for imp in impressions for c in imp.candidates))
    vec = dict(zip(ids, cache.vectors([news[n].text(with_abstract) for n in ids])))
    return [np.stack([vec[c] for c in imp.candidates]) for imp in impressions]


class NewsRecommender:
    """``NewsRecommender(cfg).train(train, news, dev=dev)``, ``.score(impressions, news)``,
    ``.evaluate(impressions, news)``, ``.recommend(history, news, k)``, ``.save(dir)`` /
    ``NewsRecommender.load(dir)``. ``news`` maps news ids to :class:`NewsItem` in whatever
    language the texts are: the same trained model serves every language the backbone reads.
    """

    def __init__(self, cfg: NewsRecConfig | None = None, *,
                 cache: NewsVectorCache | None = None) -> None:
        self.cfg = cfg or NewsRecConfig()
        self.cfg.check()
        self.cache = cache or NewsVectorCache(self.cfg.backbone)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = NewsRecModel(self.cache.dim, self.cfg.dim, self.cfg.user_encoder,
                                  self.cfg.heads, self.cfg.dropout, self.cfg.head)
        self.token_states = None
        if self.cfg.finetune_layers:
            from .finetune import TokenStates, TopLayers

            # a submodule of the model: trained, saved and loaded with it
            self.model.top = TopLayers(self.cache.backbone, self.cfg.finetune_layers)
            self.token_states = TokenStates(self.cache.backbone, self.cfg.finetune_layers)
        self.model.to(self.device)

    @classmethod
    def untrained(cls, backbone: str = "me5-small", *,
                  cache: NewsVectorCache | None = None) -> "NewsRecommender":
        """The recommender that needs no training: frozen backbone vectors, the user as the
        mean of their clicks. The measured baseline (benchmarks/README.md, news): ahead of
        the trained NRMS on nDCG@10 with 1,702 training impressions."""
        return cls(NewsRecConfig(backbone=backbone, user_encoder="mean", head="none"),
                   cache=cache)

    @property
    def dim(self) -> int:
        """Dimension of news and user vectors."""
        return self.cfg.dim if self.cfg.head == "mlp" else self.cache.dim

    # ------------------------------------------------------------------------ vectors
    def backbone_vectors(self, ids: Sequence[str], news: Mapping[str, NewsItem]) -> np.ndarray:
        """The frozen backbone's (cached) vectors of the news texts."""
        return self.cache.vectors(self._texts(ids, news))

    def _texts(self, ids: Sequence[str], news: Mapping[str, NewsItem]) -> list[str]:
        unknown = [nid for nid in ids if nid not in news]
        if unknown:
            raise InputError(Errors.E201.format(
                n=len(unknown), example=unknown[0],
                fix="Pass news that cover them, or drop unknown ids first with "
                    "xapps.news.data.restrict()."))
        return [news[nid].text(self.cfg.with_abstract) for nid in ids]

    def _top(self, texts: Sequence[str], *, keep: bool = True,
             chunk: int = 64) -> torch.Tensor:
        """Texts through the fine-tuned top layers (with gradients in training mode)."""
        out = []
        for start in range(0, len(texts), chunk):
            states, mask = self.token_states.batch(texts[start:start + chunk], self.device,
                                                   keep=keep)
            out.append(self.model.top(states, mask))
        return torch.cat(out) if out else torch.zeros((0, self.cache.dim), device=self.device)

    def base_vectors(self, ids: Sequence[str], news: Mapping[str, NewsItem]) -> np.ndarray:
        """What the news head reads: the frozen backbone's vectors, or those of the
        fine-tuned top layers."""
        if self.token_states is None:
            return self.backbone_vectors(ids, news)
        with torch.no_grad():
            return self._top(self._texts(ids, news)).float().cpu().numpy()

    def _table(self, impressions: Sequence[Impression], news: Mapping[str, NewsItem],
               extra: Sequence[str] = ()) -> _Table:
        ids: dict[str, None] = {}
        for imp in impressions:
            known = [nid for nid in imp.history if nid in news][-self.cfg.history_len:]
            ids.update((nid, None) for nid in known)
            ids.update((nid, None) for nid in imp.candidates)
        ids.update((nid, None) for nid in extra)
        order = list(ids)
        texts = self._texts(order, news) if self.token_states is not None else ()
        return _Table(order, self.base_vectors(order, news), self.device, texts)

    def _histories(self, impressions: Sequence[Impression], table: _Table):
        rows = self._history_rows(impressions, table)
        return table.vectors[rows], rows > 0

    def _history_rows(self, impressions: Sequence[Impression], table: _Table) -> torch.Tensor:
        """(b, n) table rows of each user's most recent known clicks, left-padded with 0."""
        width = min(max(1, max((len(i.history) for i in impressions), default=1)),
                    self.cfg.history_len)
        rows = np.zeros((len(impressions), width), dtype=np.int64)
        for r, imp in enumerate(impressions):
            known = [table.row[n] for n in imp.history if n in table.row][-width:]
            if known:
                rows[r, width - len(known):] = known
        return torch.from_numpy(rows).to(self.device)

    @torch.no_grad()
    def news_vectors(self, ids: Sequence[str], news: Mapping[str, NewsItem]) -> np.ndarray:
        """News in the recommendation space (what scores are dot products in)."""
        self.model.eval()
        base = torch.from_numpy(self.base_vectors(ids, news)).to(self.device)
        return self.model.news(base).float().cpu().numpy()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Raw news texts (not cached: a stream of new articles) in the recommendation
        space."""
        from .vectors import PROMPT

        self.model.eval()
        if self.token_states is not None:
            base = self._top(list(texts), keep=False, chunk=batch_size)
        else:
            base = torch.from_numpy(self.cache.backbone.encode(
                list(texts), prompt=PROMPT, batch_size=batch_size, progress=False))
        return self.model.news(base.to(self.device)).float().cpu().numpy()

    @torch.no_grad()
    def user_vectors(self, histories: Sequence[Sequence[str]],
                     news: Mapping[str, NewsItem], batch_size: int = 256) -> np.ndarray:
        self.model.eval()
        imps = [Impression(str(i), "", None, list(h), [], None) for i, h in enumerate(histories)]
        table = self._table(imps, news)
        out = []
        for start in range(0, len(imps), batch_size):
            hist, mask = self._histories(imps[start:start + batch_size], table)
            out.append(self.model.encode_user(hist, mask).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), dtype=np.float32)

    # ------------------------------------------------------------------------ training
    def train(self, train: Sequence[Impression], news: Mapping[str, NewsItem], *,
              dev: Sequence[Impression] = (), epochs: int = 5, batch_size: int = 64,
              lr: float = 1e-3, patience: int = 2, seed: int = 0,
              progress: bool = True) -> dict:
        from tqdm import tqdm

        if self.cfg.head == "none":
            raise InputError(Errors.E202.format(
                what="the untrained recommender", reason="with head='none' it has nothing to "
                "learn", fix="Train with head='mlp' (the default of NewsRecConfig)."))
        rng = random.Random(seed)
        torch.manual_seed(seed)
        samples = []
        for imp in train:
            if imp.labels is None:
                raise InputError(Errors.E202.format(
                    what=f"impression {imp.id}", reason="it has no click labels",
                    fix="Train on labelled behaviors (candidates written as N123-1 / N123-0)."))
            negs = [c for c, y in zip(imp.candidates, imp.labels) if y == 0]
            for c, y in zip(imp.candidates, imp.labels):
                if y == 1 and negs:
                    samples.append((imp, c, negs))
        if not samples:
            raise InputError(Errors.E202.format(
                what=f"the {len(train)} training impressions",
                reason="none has both a clicked and a non-clicked candidate",
                fix="Check the labels, or pass more impressions."))
        table = self._table(train, news)
        k = self.cfg.negatives
        opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.01)
        history: list[dict] = []
        best = (-1.0, None, 0)
        started = time.perf_counter()
        for epoch in range(epochs):
            self.model.train()
            rng.shuffle(samples)
            losses = []
            bar = tqdm(range(0, len(samples), batch_size), desc=f"news epoch {epoch + 1}",
                       unit="batch", disable=not progress)
            for start in bar:
                chunk = samples[start:start + batch_size]
                hist_rows = self._history_rows([s[0] for s in chunk], table)
                cand_rows = torch.tensor([[table.row[c]] + [table.row[n] for n in (
                    rng.sample(negs, k) if len(negs) >= k else rng.choices(negs, k=k))]
                    for _, c, negs in chunk], device=self.device)
                vectors = table.vectors
                if self.token_states is not None:
                    # this batch's news through the top layers, with gradients
                    hist_rows, cand_rows, vectors = self._batch_vectors(hist_rows, cand_rows,
                                                                        table)
                logits = self.model(vectors[hist_rows], hist_rows > 0, vectors[cand_rows])
                loss = torch.nn.functional.cross_entropy(
                    logits, torch.zeros(len(chunk), dtype=torch.long, device=self.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                opt.step()
                losses.append(float(loss.detach()))
            record = {"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 4)}
            if dev:
                record["dev_auc"] = self.evaluate(dev, news)["auc"]
                if record["dev_auc"] > best[0]:
                    state = {k_: v.detach().clone() for k_, v in self.model.state_dict().items()}
                    best = (record["dev_auc"], state, epoch + 1)
            history.append(record)
            logger.info("news: %s", record)
            if dev and epoch + 1 - best[2] >= patience:
                break
        if best[1] is not None:
            self.model.load_state_dict(best[1])
        self.model.eval()
        return {"samples": len(samples), "impressions": len(train), "epochs": history,
                "best_epoch": best[2] or len(history), "seconds":
                round(time.perf_counter() - started, 1), "lr": lr, "batch_size": batch_size}

    def _batch_vectors(self, hist_rows: torch.Tensor, cand_rows: torch.Tensor,
                       table: _Table):
        """Re-encode the batch's distinct news through the fine-tuned layers; rows remapped
        into that small table (row 0 stays padding)."""
        used = torch.unique(torch.cat([hist_rows.flatten(), cand_rows.flatten()]))
        used = used[used > 0]
        remap = torch.zeros(len(table.texts), dtype=torch.long, device=self.device)
        remap[used] = torch.arange(1, len(used) + 1, device=self.device)
        fresh = self._top([table.texts[i] for i in used.tolist()])
        vectors = torch.cat([torch.zeros_like(fresh[:1]), fresh])
        return remap[hist_rows], remap[cand_rows], vectors

    # ------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def score(self, impressions: Sequence[Impression], news: Mapping[str, NewsItem], *,
              batch_size: int = 256) -> list[np.ndarray]:
        """Click scores of every impression's candidates, in candidate order. History ids
        missing from ``news`` are skipped; candidates must all be in ``news``."""
        self.model.eval()
        table = self._table(impressions, news)
        heads = self.model.news(table.vectors)  # every needed news item once
        out: list[np.ndarray] = []
        for start in range(0, len(impressions), batch_size):
            chunk = impressions[start:start + batch_size]
            rows = self._history_rows(chunk, table)
            users = self.model.user(heads[rows], rows > 0)
            for imp, user in zip(chunk, users):
                cand = heads[torch.tensor([table.row[c] for c in imp.candidates],
                                          device=self.device)]
                out.append((cand @ user).float().cpu().numpy())
        return out

    def evaluate(self, impressions: Sequence[Impression], news: Mapping[str, NewsItem]) -> dict:
        """AUC, MRR, nDCG@5/10 (MIND definitions), and diversity and coverage of the top 10.
        Diversity is measured on the frozen backbone vectors, a space every recommender
        (and every baseline) shares."""
        scores = self.score(impressions, news)
        return evaluate_impressions([imp.labels for imp in impressions], scores,
                                    vectors=candidate_vectors(impressions, news, self.cache,
                                                              self.cfg.with_abstract),
                                    ids=[imp.candidates for imp in impressions])

    # ---------------------------------------------------------------------- recommending
    def build_pool(self, news: Mapping[str, NewsItem], ids: Sequence[str] | None = None):
        """A FAISS index (inner product) of news in the recommendation space: the candidate
        pool that :meth:`recommend` retrieves from."""
        from ..index import DenseIndex

        ids = list(news) if ids is None else list(ids)
        pool = DenseIndex(self.dim, metric="ip", index_type="auto")
        pool.build(ids, self.news_vectors(ids, news))
        return pool

    def recommend(self, history: Sequence[str], news: Mapping[str, NewsItem], *, k: int = 10,
                  pool=None, exclude_history: bool = True) -> list[tuple[str, float]]:
        """The top ``k`` news of ``pool`` (default: all of ``news``) for a user who clicked
        ``history``, best first, as (id, score). Retrieval by the user vector is the scoring
        itself (dot product), so no candidate is lost between the two."""
        if not isinstance(k, int) or k < 1:
            raise InputError(Errors.E196.format(what="k", value=k, reason="it must be a "
                                                "positive integer", fix="Pass e.g. k=10."))
        unknown = [n for n in history if n not in news]
        if len(unknown) == len(history) and history:
            raise InputError(Errors.E201.format(
                n=len(unknown), example=unknown[0],
                fix="Pass news that cover the user's history (none of it is known)."))
        pool = pool if pool is not None else self.build_pool(news)
        user = self.user_vectors([list(history)], news)
        skip = set(history) if exclude_history else set()
        hits = pool.search(user, k=min(len(pool), k + len(skip)))[0]
        return [(h.id, float(h.score)) for h in hits if h.id not in skip][:k]

    # --------------------------------------------------------------------- persistence
    def save(self, folder: str | os.PathLike) -> Path:
        """Write cfg.json (with the sha256 of the weights) and model.safetensors; the folder
        appears whole or not at all."""
        from safetensors.torch import save_file

        folder = Path(folder)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        with atomic_directory(folder) as tmp:
            save_file(state, str(tmp / WEIGHTS_FILE))
            files = record_files(tmp, exclude=(CFG_FILE,))
            atomic_write_text(tmp / CFG_FILE, json.dumps(
                {"kind": KIND, "backbone_dim": self.cache.dim, **asdict(self.cfg),
                 FILES_KEY: files}, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, *,
             cache: NewsVectorCache | None = None) -> "NewsRecommender":
        """A saved recommender, its files checked against the sha256 in cfg.json before the
        backbone is loaded (E235 names a damaged file)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)

        def not_saved(reason: str) -> InputError:
            return InputError(Errors.E203.format(path=folder, reason=reason))

        raw = read_cfg(folder, not_saved, CFG_FILE)
        if raw.pop("kind", None) != KIND:
            raise not_saved(f"{CFG_FILE} is not a news recommender's")
        if not (folder / WEIGHTS_FILE).is_file():
            raise not_saved(f"it lacks {WEIGHTS_FILE}")
        verify_files(folder, raw, what="news recommender", remake=REMAKE)
        raw.pop(FILES_KEY, None)
        dim = raw.pop("backbone_dim", None)
        known = {f.name for f in fields(NewsRecConfig)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise not_saved(f"{CFG_FILE} has fields this xapps does not know: "
                            f"{', '.join(unknown)}")
        try:
            state = load_file(str(folder / WEIGHTS_FILE))
        except (SafetensorError, OSError) as exc:  # an unverified (older) folder
            raise ModelError(Errors.E235.format(
                what="news recommender", path=folder, file=WEIGHTS_FILE,
                problem=f"cannot be read ({exc})", remake=REMAKE)) from None
        rec = cls(NewsRecConfig(**raw), cache=cache)
        if dim is not None and dim != rec.cache.dim:
            raise InputError(Errors.E203.format(
                path=folder, reason=f"it was trained on {dim}-d backbone vectors, and "
                f"{rec.cfg.backbone} gives {rec.cache.dim}-d ones"))
        try:
            rec.model.load_state_dict(state)
        except RuntimeError as exc:  # other shapes or names: another configuration
            raise not_saved(f"{WEIGHTS_FILE} does not fit its {CFG_FILE} "
                            f"({str(exc).splitlines()[0]})") from None
        rec.model.eval()
        return rec


__all__ = ["NewsRecConfig", "NewsRecommender", "candidate_vectors"]
