"""The two-stage open-IE tagger (Multi2OIE-style) on the shared backbone.

Stage 1 tags predicates (BIO) on word states (the mean of each word's subword states from a
fine-tuned copy of the backbone). Stage 2 runs once per predicate: the word states plus the
predicate's mean state and a position-in-predicate embedding go through one self-attention
layer (the "predicate attended to"), then a BIO classifier over ARG0..ARG3. One encoder pass
serves every predicate of a sentence.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backbone import quiet_transformers
from ..errors import Errors, ModelError
from ..projection.words import word_of_subword
from .data import ARGUMENT_TAGS, PREDICATE_TAGS, Span
from .language_modules import LanguageModules, ModuleSettings

FORMAT = "xapps-oie-tagger"
FORMAT_VERSION = 1
CFG_NAME = "cfg.json"
MODEL_DIR = "model"
HEADS_NAME = "heads.safetensors"
MODULES_NAME = "language_modules.safetensors"


@dataclass
class OIEConfig:
    backbone: str = "me5-small"
    max_length: int = 128
    dropout: float = 0.1
    attention_heads: int = 4
    freeze_embeddings: bool = True
    #: Languages with LoRA language modules (see language_modules.py); none by default.
    languages: list[str] = field(default_factory=list)
    module_rank: int = 8
    module_alpha: float = 16.0


class OIETagger:
    def __init__(self, config: OIEConfig | None = None, *, device: str | None = None,
                 source: str | None = None) -> None:
        import torch

        from ..backbone import (
            _max_length,
            _resolve_source,
            load_trainable,
            resolve_device,
        )

        self.config = config or OIEConfig()
        self.device = resolve_device(device)
        source = source or _resolve_source(self.config.backbone)[0]
        hf_config, self.tokenizer, self.model = load_trainable(
            source, name=self.config.backbone, dropout=self.config.dropout)
        self.max_length = min(self.config.max_length,
                              _max_length(hf_config, self.tokenizer, {}))
        if self.config.freeze_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        hidden = int(hf_config.hidden_size)
        heads = self.config.attention_heads if hidden % self.config.attention_heads == 0 else 1
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.heads = torch.nn.ModuleDict({
                "predicate": torch.nn.Linear(hidden, len(PREDICATE_TAGS)),
                "predicate_state": torch.nn.Linear(hidden, hidden),
                "position": torch.nn.Embedding(2, hidden),
                "attention": torch.nn.TransformerEncoderLayer(
                    hidden, heads, dim_feedforward=2 * hidden, dropout=self.config.dropout,
                    batch_first=True),
                "argument": torch.nn.Linear(hidden, len(ARGUMENT_TAGS)),
            })
        self.model.to(self.device)
        self.heads.to(self.device)
        self.modules: LanguageModules | None = None
        if self.config.languages:
            self.modules = LanguageModules(self.model, self._module_settings())
        self.eval()

    def _module_settings(self) -> ModuleSettings:
        return ModuleSettings(list(self.config.languages), self.config.module_rank,
                              self.config.module_alpha)

    def add_language_modules(self, languages: list[str], *, rank: int = 8,
                             alpha: float = 16.0) -> None:
        """Give a tagger without language modules (e.g. one trained on English) modules for
        ``languages``; they change nothing until trained."""
        if self.modules is not None:
            raise ValueError(f"this tagger already has language modules for "
                             f"{self.modules.languages}")
        self.config = dataclasses.replace(self.config, languages=list(languages),
                                          module_rank=rank, module_alpha=alpha)
        self.modules = LanguageModules(self.model, self._module_settings())

    # ---------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> "OIETagger":
        self.model.train(mode)
        self.heads.train(mode)
        if self.modules is not None:
            self.modules.params.train(mode)
        return self

    def eval(self) -> "OIETagger":
        return self.train(False)

    def named_parameters(self):
        for name, p in self.model.named_parameters():
            yield f"model.{name}", p
        for name, p in self.heads.named_parameters():
            yield f"heads.{name}", p
        if self.modules is not None:
            for name, p in self.modules.params.named_parameters():
                yield f"modules.{name}", p

    # ---------------------------------------------------------------- forward
    def word_states(self, texts: list[str], words: list[list[Span]], *,
                    lang: str | None = None):
        """(B, max words, hidden) mean subword state per word, and the (B, max words) mask.
        Subwords beyond ``max_length`` are cut: their words get zero states. ``lang`` (one
        code, or one per text) routes the language modules; None runs the shared model."""
        import torch

        enc = self.tokenizer(texts, return_offsets_mapping=True, truncation=True,
                             max_length=self.max_length, padding=True,
                             return_tensors="pt")
        offsets = enc.pop("offset_mapping")
        routing = (self.modules.route(lang, len(texts)) if self.modules is not None
                   else contextlib.nullcontext())
        with routing:
            states = self.model(**{k: v.to(self.device)
                                   for k, v in enc.items()}).last_hidden_state
        n_words = max(len(w) for w in words)
        pool = torch.zeros(len(texts), n_words, states.shape[1])
        for b, spans in enumerate(words):
            o = offsets[b].numpy()
            real = (o[:, 1] > o[:, 0]) & (enc["attention_mask"][b].numpy() > 0)
            # SentencePiece offsets of "▁word" may start on the space before the word:
            # word_of_subword gives such a subword to the word it reaches.
            word = torch.from_numpy(word_of_subword(o, spans))
            ok = torch.from_numpy(real) & (word >= 0)
            pool[b, word[ok], torch.nonzero(ok).squeeze(1)] = 1.0
        counts = pool.sum(-1, keepdim=True)
        pooled = (pool.to(self.device) @ states) / counts.clamp(min=1).to(self.device)
        mask = torch.zeros(len(texts), n_words, dtype=torch.bool)
        for b, spans in enumerate(words):
            mask[b, :len(spans)] = True
        return pooled, mask.to(self.device)

    def predicate_logits(self, states):
        return self.heads["predicate"](states)

    def argument_logits(self, states, mask, predicates: list[tuple[int, Span]]):
        """Argument logits (P, words, tags) for (sentence index, predicate span) pairs."""
        import torch

        rows = torch.tensor([b for b, _ in predicates], device=self.device)
        x = states[rows]
        flag = torch.zeros(x.shape[:2], dtype=torch.long, device=self.device)
        for i, (_, (s, e)) in enumerate(predicates):
            flag[i, s:e] = 1
        pred_mean = (x * flag.unsqueeze(-1)).sum(1) / flag.sum(1, keepdim=True).clamp(min=1)
        x = x + self.heads["predicate_state"](pred_mean).unsqueeze(1) + \
            self.heads["position"](flag)
        x = self.heads["attention"](x, src_key_padding_mask=~mask[rows])
        return self.heads["argument"](x)

    # ---------------------------------------------------------------- persistence
    def save(self, folder: str | Path, *, record: dict | None = None) -> Path:
        from safetensors.torch import save_file

        from .. import __version__
        from ..checksums import sha256_file
        from ..index.manifest import atomic_directory

        folder = Path(folder)
        with atomic_directory(folder) as tmp:
            with quiet_transformers():
                self.model.save_pretrained(tmp / MODEL_DIR, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp / MODEL_DIR)
            save_file({k: v.detach().cpu().contiguous()
                       for k, v in self.heads.state_dict().items()}, str(tmp / HEADS_NAME))
            saved = [f"{MODEL_DIR}/model.safetensors", HEADS_NAME]
            if self.modules is not None:
                save_file({k: v.detach().cpu().contiguous()
                           for k, v in self.modules.params.state_dict().items()},
                          str(tmp / MODULES_NAME))
                saved.append(MODULES_NAME)
            files = {rel: sha256_file(tmp / rel) for rel in saved}
            cfg = {"format": FORMAT, "version": FORMAT_VERSION, "xapps_version": __version__,
                   "config": dataclasses.asdict(self.config), "files": files,
                   "training": record or {}}
            (tmp / CFG_NAME).write_text(json.dumps(cfg, indent=1) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str | None = None) -> "OIETagger":
        from safetensors.torch import load_file

        from ..checksums import sha256_file

        folder = Path(folder)
        try:
            cfg = json.loads((folder / CFG_NAME).read_text(encoding="utf-8"))
            if cfg.get("format") != FORMAT:
                raise ValueError(f"format {cfg.get('format')!r}, expected {FORMAT!r}")
            for rel, expected in cfg["files"].items():
                if sha256_file(folder / rel) != expected:
                    raise ValueError(f"{rel} does not match the sha256 in {CFG_NAME} (modified "
                                     "or partly copied)")
            config = OIEConfig(**cfg["config"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(Errors.E171.format(path=folder, reason=exc)) from exc
        tagger = cls(config, device=device, source=str(folder / MODEL_DIR))
        tagger.heads.load_state_dict(load_file(str(folder / HEADS_NAME),
                                               device=str(tagger.device)))
        if tagger.modules is not None:
            tagger.modules.params.load_state_dict(load_file(str(folder / MODULES_NAME),
                                                            device=str(tagger.device)))
        tagger.eval()
        return tagger


def bio_viterbi(probs: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:
    """The most probable tag-id sequence of ``probs`` (words, tags) that is valid BIO: an
    I-X only after B-X or I-X. Per-word argmax breaks spans apart ("on" for "on the sixth
    floor" when one inner word's I- loses to O by a hair); the constrained path keeps them
    whole."""
    n, k = probs.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    inside = np.array([name.startswith("I-") for name in labels])
    role = [name[2:] for name in labels]
    allowed = np.ones((k, k), dtype=bool)  # allowed[previous, next]
    for j in np.nonzero(inside)[0]:
        allowed[:, j] = [role[i] == role[j] and labels[i] != "O" for i in range(k)]
    penalty = np.where(allowed, 0.0, -np.inf)
    logp = np.log(np.clip(probs, 1e-12, None))
    score = np.where(inside, -np.inf, logp[0])
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        total = score[:, None] + penalty
        back[t] = total.argmax(0)
        score = total.max(0) + logp[t]
    path = np.zeros(n, dtype=np.int64)
    path[-1] = int(score.argmax())
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def bio_spans(tags: np.ndarray, labels: tuple[str, ...]) -> list[tuple[int, int, str]]:
    """(start, end, role) runs of a BIO tag-id sequence; an I- without its B- starts a run."""
    out, current = [], None
    for i, tag in enumerate(list(tags) + [0]):
        name = labels[tag]
        continues = current is not None and name.startswith("I-") and name[2:] == current[1]
        if continues:
            continue
        if current is not None:
            out.append((current[0], i, current[1]))
            current = None
        if name != "O":
            current = (i, name[2:])
    return out
