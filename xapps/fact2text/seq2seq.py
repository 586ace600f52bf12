"""A trained fact-to-text generator: any Hugging Face seq2seq model (mT5, mBART) or an
encoder-decoder warm-started from the shared encoder, with structure-aware input, fact-aware
embeddings and a trimmed vocabulary.

Warm start (the CPU default): me5-small becomes both encoder and decoder (decoder layers taken
from its first ``decoder_layers`` layers, cross-attention new), as in Rothe et al.'s BERT2BERT.
Vocabulary trimming keeps only the subwords that the training texts, the facts and the
language tags use: the model's behaviour on those is unchanged, and the 250k-row embedding
(most of me5-small's weights) shrinks to a few tens of thousands of rows, so training fits a
2-core CPU. The tokenizer stays the original one; ids are mapped into the kept rows
(``VocabMap``), and anything outside them becomes ``<unk>``.

Users with a GPU and an mT5 checkpoint use the same class with ``backbone="google/mt5-base"``
(trimming optional).
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
from torch import nn

from ..artifacts import FILES_KEY, read_cfg, record_files, verify_files
from ..errors import Errors, InputError, ModelError
from ..fileio import atomic_write_text
from .data import F2TExample, Fact
from .encoding import lang_tag, linearise, token_roles
from .evaluate import coverage
from .fact_embeddings import FactAwareSeq2Seq

logger = logging.getLogger("xapps")

KIND = "seq2seq"
CFG_FILE = "cfg.json"
MODEL_DIR = "model"
TOKENIZER_DIR = "tokenizer"
VOCAB_FILE = "vocab_keep.json"
FACT_TABLES = "fact_embeddings.safetensors"
#: how a damaged or missing generator is made again (in error messages)
REMAKE = "xapps f2t train --kind seq2seq --train ... --out <folder>"


@dataclass
class Seq2SeqConfig:
    backbone: str = "me5-small"
    #: warm start only: encoder / decoder layers taken from the backbone's first ones (None:
    #: all); fewer layers is what makes CPU training affordable
    encoder_layers: int | None = None
    decoder_layers: int = 6
    trim_vocab: bool = True
    max_facts: int = 16
    max_source_len: int = 128
    max_target_len: int = 64
    num_beams: int = 4
    length_penalty: float = 1.0
    #: rerank the beams by how many input entities they contain (the entity constraint)
    constrain_entities: bool = True
    #: hard constraint: the decoder may not stop before every subject/object appears, and
    #: is made to copy the missing ones when its length budget runs out (force-copy)
    force_entities: bool = False
    #: write the targets of Indic languages in Devanagari (shared subwords), and convert
    #: generated text back to the language's script (xapps.fact2text.script)
    script_unification: bool = False


def _unified(text: str, lang: str, cfg: Seq2SeqConfig) -> str:
    if not cfg.script_unification:
        return text
    from .script import to_devanagari, unifies

    return to_devanagari(text) if unifies(lang) else text


class VocabMap:
    """Original tokenizer ids <-> rows of the trimmed embedding."""

    def __init__(self, keep: Sequence[int], vocab_size: int, unk_id: int) -> None:
        self.keep = np.asarray(sorted(set(int(i) for i in keep)), dtype=np.int64)
        self.old2new = np.full(vocab_size, -1, dtype=np.int64)
        self.old2new[self.keep] = np.arange(len(self.keep))
        self.unk = int(self.old2new[unk_id])
        self.old2new[self.old2new < 0] = self.unk

    def __len__(self) -> int:
        return len(self.keep)

    def to_new(self, ids: Sequence[int]) -> list[int]:
        return self.old2new[np.asarray(ids, dtype=np.int64)].tolist()

    def to_old(self, ids: Sequence[int]) -> list[int]:
        return self.keep[np.asarray(ids, dtype=np.int64)].tolist()


def _resolve(backbone: str) -> str:
    """An installed xapps model name -> its folder; anything else as given."""
    from ..models.store import installed_path

    path = installed_path(backbone) if "/" not in backbone else None
    return str(path) if path is not None else backbone


def build_model(backbone: str, decoder_layers: int, encoder_layers: int | None = None):
    """A seq2seq model: the backbone itself when it is one, else an encoder-decoder
    warm-started from the (encoder) backbone."""
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, EncoderDecoderModel

    from ..backbone import quiet_transformers

    path = _resolve(backbone)
    config = AutoConfig.from_pretrained(path)
    # Quiet unless -vv: a warm start's cross-attention and LM head are missing by design.
    with quiet_transformers():
        if getattr(config, "is_encoder_decoder", False):
            return AutoModelForSeq2SeqLM.from_pretrained(path)
        extra = {"encoder_num_hidden_layers": encoder_layers} if encoder_layers else {}
        model = EncoderDecoderModel.from_encoder_decoder_pretrained(
            path, path, decoder_num_hidden_layers=decoder_layers, **extra)
    init_cross_attention_from_self(model.decoder)
    return model


def init_cross_attention_from_self(decoder: nn.Module) -> int:
    """Start each new cross-attention block as a copy of its layer's pretrained
    self-attention (XLM / MASS-style warm start); returns how many blocks were copied.

    Randomly initialised cross-attention (small weights) gives the encoder almost no say in
    the first updates, and on a few thousand examples the warm-started decoder settles as a
    language model that ignores its input: with me5-small, 1500 steps left the loss on
    shuffled inputs equal to the loss on the right ones (1.8071 vs 1.8074). Copied weights
    attend to encoder tokens like the decoder's own from the first step.
    """
    copied = 0
    for module in decoder.modules():
        self_attn = getattr(module, "attention", None)
        cross = getattr(module, "crossattention", None)
        if not isinstance(self_attn, nn.Module) or not isinstance(cross, nn.Module):
            continue
        source, target = self_attn.state_dict(), cross.state_dict()
        if source.keys() == target.keys() and all(
                source[k].shape == target[k].shape for k in source):
            cross.load_state_dict(source)
            copied += 1
    return copied


def _position_limit(model, side: str = "encoder") -> int:
    """How many input positions the encoder (or decoder) has (RoBERTa-style models reserve
    pad+1)."""
    config = getattr(model.config, side, model.config)
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return 10**9  # relative positions (T5): no fixed limit
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        limit -= (config.pad_token_id or 0) + 1
    return limit


def _parts(model) -> list[nn.Module]:
    from transformers import EncoderDecoderModel

    return [model.encoder, model.decoder] if isinstance(model, EncoderDecoderModel) else [model]


def trim_vocabulary(model, keep: np.ndarray) -> None:
    """Keep only the embedding (and output) rows of ``keep``, in that order; tied output
    layers stay tied."""
    idx = torch.as_tensor(keep, dtype=torch.long)
    for part in _parts(model):
        old = part.get_input_embeddings()
        new = nn.Embedding(len(keep), old.weight.shape[1])
        new.weight.data = old.weight.data[idx].clone()
        out = part.get_output_embeddings() if hasattr(part, "get_output_embeddings") else None
        tied = out is not None and out.weight is old.weight
        part.set_input_embeddings(new)
        if out is not None:
            lin = nn.Linear(out.weight.shape[1], len(keep), bias=out.bias is not None)
            lin.weight = new.weight if tied else nn.Parameter(out.weight.data[idx].clone())
            if out.bias is not None:
                lin.bias = nn.Parameter(out.bias.data[idx].clone())
            part.set_output_embeddings(lin)
            # LM heads keep their own handle on the output bias (RoBERTa's lm_head.bias,
            # BERT's cls.predictions.bias): point it at the trimmed one
            for module in part.modules():
                bias = module._parameters.get("bias")
                if (module is not lin and bias is not None and bias.dim() == 1
                        and bias.shape[0] == old.weight.shape[0] and lin.bias is not None):
                    module.bias = lin.bias
        part.config.vocab_size = len(keep)
    if hasattr(model.config, "decoder"):
        model.config.decoder.vocab_size = len(keep)
        model.config.encoder.vocab_size = len(keep)
    model.config.vocab_size = len(keep)


class Seq2SeqGenerator:
    """``Seq2SeqGenerator.create(cfg, examples)``, ``.train(examples)``, ``.generate(fact_sets,
    lang)``, ``.save(dir)`` / ``.load(dir)``."""

    def __init__(self, cfg: Seq2SeqConfig, model: FactAwareSeq2Seq, tokenizer,
                 vocab: VocabMap | None) -> None:
        self.cfg, self.model, self.tokenizer, self.vocab = cfg, model, tokenizer, vocab
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self._set_special_ids()
        self._source_limit = min(cfg.max_source_len, _position_limit(self.model.model))
        # the decoder sees the start token and then up to this many generated ones
        self._target_limit = min(cfg.max_target_len,
                                 _position_limit(self.model.model, "decoder") - 1)

    # -------------------------------------------------------------------- construction
    @classmethod
    def create(cls, cfg: Seq2SeqConfig, examples: Sequence[F2TExample],
               langs: Sequence[str] = (),
               vocab_texts: Mapping[str, Sequence[str]] | None = None) -> "Seq2SeqGenerator":
        """Build an untrained generator. A trimmed vocabulary keeps the subwords of the
        examples, the language tags of ``langs`` and of ``vocab_texts`` ({language: unpaired
        sentences}): text in target languages without training examples (zero-shot), whose
        own subwords the model could not write otherwise."""
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(_resolve(cfg.backbone))
        model = build_model(cfg.backbone, cfg.decoder_layers, cfg.encoder_layers)
        vocab = None
        if cfg.trim_vocab:
            texts = [_unified(t, ex.lang, cfg) for ex in examples for t in ex.texts]
            texts += [linearise(ex.facts, ex.lang).text for ex in examples]
            vocab_texts = vocab_texts or {}
            covered = {ex.lang for ex in examples} | set(vocab_texts)
            texts += [lang_tag(lang) for lang in set(langs) | covered]
            texts += [_unified(t, lang, cfg) for lang, ts in vocab_texts.items() for t in ts]
            unseen = set(langs) - covered
            if unseen:
                logger.warning("fact2text: no example and no vocabulary text for %s: the "
                               "trimmed vocabulary lacks their own subwords; pass "
                               "vocab_texts (CLI: --vocab-text) with text in them",
                               ", ".join(sorted(unseen)))
            keep = set(tokenizer.all_special_ids)
            for start in range(0, len(texts), 1000):
                for ids in tokenizer(texts[start:start + 1000])["input_ids"]:
                    keep.update(ids)
            vocab = VocabMap(sorted(keep), len(tokenizer), tokenizer.unk_token_id)
            trim_vocabulary(model, vocab.keep)
            logger.info("fact2text: vocabulary trimmed to %d of %d subwords", len(vocab),
                        len(tokenizer))
        return cls(cfg, FactAwareSeq2Seq(model, max_facts=cfg.max_facts), tokenizer, vocab)

    def _map(self, ids: list[int]) -> list[int]:
        return self.vocab.to_new(ids) if self.vocab is not None else ids

    def _set_special_ids(self) -> None:
        tok = self.tokenizer
        inner = self.model.model
        is_t5_like = getattr(inner.config, "is_encoder_decoder", False) and not hasattr(
            inner.config, "decoder")
        start = tok.pad_token_id if is_t5_like or tok.bos_token_id is None else (
            tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id)
        eos = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id
        self.start_id, self.eos_id, self.pad_id = (self._map([start])[0], self._map([eos])[0],
                                                   self._map([tok.pad_token_id])[0])
        for conf in (inner.config, inner.generation_config):
            conf.decoder_start_token_id = self.start_id
            conf.eos_token_id = self.eos_id
            conf.pad_token_id = self.pad_id
        self._bos_old = start if not is_t5_like else None

    # ------------------------------------------------------------------------ tensors
    def _sources(self, fact_sets: Sequence[Sequence[Fact]], langs: Sequence[str]):
        rows = []
        for facts, lang in zip(fact_sets, langs):
            lin = linearise(facts, lang)
            enc = self.tokenizer(lin.text, return_offsets_mapping=True, truncation=True,
                                 max_length=self._source_limit)
            roles, fact_ids = token_roles(lin, enc["offset_mapping"], self.cfg.max_facts)
            rows.append((self._map(enc["input_ids"]), roles, fact_ids))
        width = max(len(r[0]) for r in rows)

        def pad(seqs, value):
            return torch.tensor([s + [value] * (width - len(s)) for s in seqs],
                                device=self.device)

        ids = pad([r[0] for r in rows], self.pad_id)
        mask = pad([[1] * len(r[0]) for r in rows], 0)
        return ids, mask, pad([r[1] for r in rows], 0), pad([r[2] for r in rows], 0)

    def _labels(self, texts: Sequence[str]) -> torch.Tensor:
        seqs = []
        for ids in self.tokenizer(list(texts), truncation=True,
                                  max_length=self._target_limit)["input_ids"]:
            if self._bos_old is not None and ids and ids[0] == self._bos_old:
                ids = ids[1:]  # the decoder start token is prepended by the model
            seqs.append(self._map(ids))
        width = max(len(s) for s in seqs)
        return torch.tensor([s + [-100] * (width - len(s)) for s in seqs], device=self.device)

    # ------------------------------------------------------------------------ training
    def train(self, examples: Sequence[F2TExample], *, steps: int = 1000, batch_size: int = 16,
              lr: float = 1e-4, fact_lr: float = 1e-3, warmup: float = 0.05, seed: int = 0,
              texts_per_example: int = 2, progress: bool = True) -> dict:
        """Teacher-forced cross-entropy on (facts, reference) pairs; AdamW with linear warm-up
        and decay. Returns the loss curve and timing."""
        from tqdm import tqdm

        pairs = [(ex.facts, ex.lang, _unified(t, ex.lang, self.cfg))
                 for ex in examples for t in ex.texts[:texts_per_example]]
        if not pairs:
            raise InputError(Errors.E190.format(where="Seq2SeqGenerator.train",
                                                reason="no example has a reference text",
                                                expected="training examples with texts"))
        rng = random.Random(seed)
        torch.manual_seed(seed)
        fact_params = list(self.model.role_embeddings.parameters()) + list(
            self.model.fact_embeddings.parameters())
        fact_ids = {id(p) for p in fact_params}
        base = [p for p in self.model.parameters() if id(p) not in fact_ids and p.requires_grad]
        opt = torch.optim.AdamW([{"params": base, "lr": lr},
                                 {"params": fact_params, "lr": fact_lr}], weight_decay=0.01)
        n_warm = max(1, int(steps * warmup))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / n_warm) * max(0.0, (steps - s) / max(1, steps - n_warm))
            if s >= n_warm else (s + 1) / n_warm)
        self.model.train()
        order: list[int] = []
        losses: list[float] = []
        started = time.perf_counter()
        bar = tqdm(range(steps), desc="training fact2text", unit="step", disable=not progress)
        for step in bar:
            if len(order) < batch_size:
                more = list(range(len(pairs)))
                rng.shuffle(more)
                order += more
            batch = [pairs[i] for i in order[:batch_size]]
            del order[:batch_size]
            ids, mask, roles, facts = self._sources([b[0] for b in batch], [b[1] for b in batch])
            labels = self._labels([b[2] for b in batch])
            loss = self.model(ids, attention_mask=mask, role_ids=roles, fact_ids=facts,
                              labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        self.model.eval()
        seconds = time.perf_counter() - started
        curve = [round(float(np.mean(losses[i:i + 50])), 4) for i in range(0, len(losses), 50)]
        return {"steps": steps, "batch_size": batch_size, "lr": lr, "pairs": len(pairs),
                "seconds": round(seconds, 1), "loss_first": round(float(np.mean(losses[:10])), 4),
                "loss_last": round(float(np.mean(losses[-10:])), 4),
                "loss_every_50": curve}

    @torch.no_grad()
    def input_dependence(self, examples: Sequence[F2TExample], batch_size: int = 32) -> dict:
        """Teacher-forced loss of the references from their own facts and from another
        example's facts (rotated by one within each batch). A model that reads its input
        loses clearly more on the second; equal losses mean the decoder ignores the encoder.
        """
        self.model.eval()
        pairs = [(ex.facts, ex.lang, _unified(ex.texts[0], ex.lang, self.cfg))
                 for ex in examples if ex.texts]
        totals = {"right": 0.0, "shuffled": 0.0}
        batches = seen = 0
        for start in range(0, len(pairs) - 1, batch_size):
            chunk = pairs[start:start + batch_size]
            if len(chunk) < 2:
                break
            labels = self._labels([c[2] for c in chunk])
            for key, facts in (("right", [c[0] for c in chunk]),
                               ("shuffled", [c[0] for c in chunk[1:] + chunk[:1]])):
                ids, mask, roles, fids = self._sources(facts, [c[1] for c in chunk])
                totals[key] += float(self.model(ids, attention_mask=mask, role_ids=roles,
                                                fact_ids=fids, labels=labels).loss)
            batches, seen = batches + 1, seen + len(chunk)
        if not batches:
            raise InputError(Errors.E190.format(
                where="Seq2SeqGenerator.input_dependence", reason="fewer than 2 references",
                expected="at least two examples with a reference text"))
        return {"loss": round(totals["right"] / batches, 4),
                "loss_shuffled_facts": round(totals["shuffled"] / batches, 4),
                "examples": seen}

    # ---------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(self, fact_sets: Sequence[Sequence[Fact]], lang: str,
                 batch_size: int = 16) -> list[str]:
        self.model.eval()
        out: list[str] = []
        beams = max(1, self.cfg.num_beams)
        keep = beams if self.cfg.constrain_entities and beams > 1 else 1
        for start in range(0, len(fact_sets), batch_size):
            chunk = [list(fs) for fs in fact_sets[start:start + batch_size]]
            ids, mask, roles, facts = self._sources(chunk, [lang] * len(chunk))
            extra = {}
            if self.cfg.force_entities:
                from transformers import LogitsProcessorList

                extra["logits_processor"] = LogitsProcessorList([ForceEntities(
                    [self._entity_ids(fs) for fs in chunk], beams, self.eos_id,
                    self._target_limit)])
            gen = self.model.generate(ids, attention_mask=mask, role_ids=roles, fact_ids=facts,
                                      num_beams=beams, num_return_sequences=keep, **extra,
                                      max_new_tokens=self._target_limit,
                                      length_penalty=self.cfg.length_penalty,
                                      decoder_start_token_id=self.start_id,
                                      eos_token_id=self.eos_id, pad_token_id=self.pad_id)
            texts = [self._decode(row) for row in gen.tolist()]
            if self.cfg.script_unification:
                from .script import from_devanagari

                texts = [from_devanagari(t, lang) for t in texts]
            for i, fs in enumerate(chunk):
                options = texts[i * keep:(i + 1) * keep]
                # beams come best-first; the first one with the most input entities wins
                best = max(range(len(options)), key=lambda j: (coverage(fs, options[j])[0], -j))
                out.append(options[best])
        return out

    def _entity_ids(self, facts: Sequence[Fact]) -> list[list[int]]:
        from .evaluate import fact_entities

        out = []
        for entity in fact_entities(facts):
            ids = self.tokenizer(entity, add_special_tokens=False)["input_ids"]
            ids = [i for i in self._map(ids) if self.vocab is None or i != self.vocab.unk]
            if ids:
                out.append(ids)
        return out

    def _decode(self, ids: list[int]) -> str:
        if self.vocab is not None:
            ids = self.vocab.to_old(ids)
        return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

    # --------------------------------------------------------------------- persistence
    def save(self, folder: str | os.PathLike) -> None:
        """The folder appears whole or not at all; cfg.json records the sha256 of every
        other file (weights, tokenizer, fact tables, vocabulary)."""
        from safetensors.torch import save_file

        from ..index.manifest import atomic_directory

        with atomic_directory(folder) as tmp:
            self.model.model.save_pretrained(tmp / MODEL_DIR)
            self.tokenizer.save_pretrained(tmp / TOKENIZER_DIR)
            save_file({"role": self.model.role_embeddings.weight.detach().cpu().contiguous(),
                       "fact": self.model.fact_embeddings.weight.detach().cpu().contiguous()},
                      str(tmp / FACT_TABLES))
            if self.vocab is not None:
                atomic_write_text(tmp / VOCAB_FILE, json.dumps(
                    {"keep": self.vocab.keep.tolist(), "vocab_size": len(self.tokenizer)}))
            files = record_files(tmp, exclude=(CFG_FILE,))
            atomic_write_text(tmp / CFG_FILE, json.dumps(
                {"kind": KIND, **asdict(self.cfg), FILES_KEY: files}, indent=2))

    @classmethod
    def load(cls, folder: str | os.PathLike, raw: dict | None = None) -> "Seq2SeqGenerator":
        """A saved generator, its files checked against cfg.json before transformers reads
        them (E235 names a damaged one)."""
        from safetensors import SafetensorError

        folder = Path(folder)
        if raw is None:
            raw = read_cfg(folder, lambda reason: InputError(Errors.E192.format(
                path=folder, reason=reason)), CFG_FILE)
        verify_files(folder, raw, what="fact-to-text generator", remake=REMAKE)
        raw = {k: v for k, v in raw.items() if k not in ("kind", FILES_KEY)}
        unknown = sorted(set(raw) - {f.name for f in fields(Seq2SeqConfig)})
        if unknown:
            raise InputError(Errors.E192.format(path=folder, reason=f"{CFG_FILE} has fields "
                                                f"this xapps does not know: {unknown}"))
        try:
            return cls._load(folder, Seq2SeqConfig(**raw))
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            # an older folder without checksums, damaged: name it instead of a traceback
            raise ModelError(Errors.E235.format(
                what="fact-to-text generator", path=folder, file="(one of its files)",
                problem=f"cannot be loaded ({type(exc).__name__}: {exc})",
                remake=REMAKE)) from None

    @classmethod
    def _load(cls, folder: Path, cfg: Seq2SeqConfig) -> "Seq2SeqGenerator":
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder / TOKENIZER_DIR)
        config = AutoConfig.from_pretrained(folder / MODEL_DIR)
        from ..backbone import quiet_transformers

        with quiet_transformers():  # the files were checked against their sha256 already
            if getattr(config, "model_type", "") == "encoder-decoder":
                from transformers import EncoderDecoderModel

                model = EncoderDecoderModel.from_pretrained(folder / MODEL_DIR)
            else:
                model = AutoModelForSeq2SeqLM.from_pretrained(folder / MODEL_DIR)
        vocab = None
        if (folder / VOCAB_FILE).is_file():
            data = json.loads((folder / VOCAB_FILE).read_text())
            vocab = VocabMap(data["keep"], data["vocab_size"], tokenizer.unk_token_id)
        wrapped = FactAwareSeq2Seq(model, max_facts=cfg.max_facts)
        tables = load_file(str(folder / FACT_TABLES))
        wrapped.role_embeddings.weight.data.copy_(tables["role"])
        wrapped.fact_embeddings.weight.data.copy_(tables["fact"])
        return cls(cfg, wrapped.eval(), tokenizer, vocab)


def _contains(seq: list[int], sub: list[int]) -> bool:
    n = len(sub)
    return any(seq[i:i + n] == sub for i in range(len(seq) - n + 1))


def _pending_prefix(seq: list[int], entity: list[int]) -> int:
    """How many leading tokens of ``entity`` end ``seq`` (0 if none)."""
    for k in range(min(len(entity) - 1, len(seq)), 0, -1):
        if seq[-k:] == entity[:k]:
            return k
    return 0


class ForceEntities:
    """A logits processor for ``generate``: while an entity's token sequence is missing from
    a hypothesis, end-of-sequence is forbidden; a started entity is continued; and the next
    missing entity is forced when the hypothesis would end there (end-of-sequence is its most
    likely token) or the remaining length budget is just enough for the missing entities.
    Forcing at the would-be end shortens the repetitions that a decoder only barred from
    ending writes before the entities are copied; loops where ending is likely but not the
    top token remain (benchmarks/README.md). Rows are (example, beam) pairs in
    ``generate``'s order."""

    def __init__(self, entities: list[list[list[int]]], beams: int, eos_id: int,
                 max_new_tokens: int) -> None:
        self.entities, self.beams, self.eos, self.max_new = entities, beams, eos_id, max_new_tokens
        self.start_len: int | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor):
        if self.start_len is None:
            self.start_len = input_ids.shape[1]
        used = input_ids.shape[1] - self.start_len
        for row in range(input_ids.shape[0]):
            seq = input_ids[row].tolist()
            missing = [e for e in self.entities[row // self.beams] if not _contains(seq, e)]
            if not missing:
                continue
            would_end = int(scores[row].argmax()) == self.eos
            scores[row, self.eos] = float("-inf")
            started = [(e, k) for e in missing if (k := _pending_prefix(seq, e))]
            budget = self.max_new - used
            need = sum(len(e) for e in missing)
            if started:
                e, k = max(started, key=lambda ek: ek[1])
                forced = e[k]
            elif would_end or budget <= need:
                forced = missing[0][0]
            else:
                continue
            keep = scores[row, forced].clone()
            scores[row, :] = float("-inf")
            scores[row, forced] = keep if torch.isfinite(keep) else 0.0
        return scores


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


__all__ = ["ForceEntities", "Seq2SeqConfig", "Seq2SeqGenerator", "VocabMap", "build_model",
           "init_cross_attention_from_self", "trim_vocabulary", "parameter_count"]
