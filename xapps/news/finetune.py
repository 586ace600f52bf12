"""Fine-tuning the backbone's top layers for news encoding, without re-running the rest.

The layers below the fine-tuned ones stay frozen, so their output for a news text never
changes: it is computed once per text (:class:`TokenStates`) and only the top ``n`` layers
(:class:`TopLayers`, a trainable copy) run in each training step. Pooling is the backbone's
own (mean over the window, L2-normalised), so with untouched weights the vectors equal the
frozen ones and training starts where the frozen recommender is.

Costly on a CPU (every clicked and shown news item of a batch goes through the top layers
each step); the intended use is a GPU. Encoder-only BERT / XLM-R / e5 backbones.
"""
from __future__ import annotations

import copy
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import Errors, InputError
from .vectors import PROMPT, text_key

#: news texts are short; longer ones are cut here (the frozen path windows them instead)
MAX_TOKENS = 128


def _layers(backbone) -> nn.ModuleList:
    inner = getattr(backbone.encoder, "encoder", None)
    layers = getattr(inner, "layer", None)
    if backbone.is_seq2seq or not isinstance(layers, nn.ModuleList):
        raise InputError(Errors.E196.format(
            what="finetune_layers for backbone", value=backbone.name,
            reason="top-layer fine-tuning needs an encoder that keeps its layers as "
                   "encoder.layer (BERT, XLM-R, e5)",
            fix="Use such a backbone, or finetune_layers=0 (frozen backbone)."))
    return layers


class TopLayers(nn.Module):
    """A trainable copy of the backbone's last ``n`` layers over cached lower states."""

    def __init__(self, backbone, n: int) -> None:
        super().__init__()
        layers = _layers(backbone)
        if not 1 <= n < len(layers):
            raise InputError(Errors.E196.format(
                what="finetune_layers", value=n,
                reason=f"{backbone.name} has {len(layers)} layers",
                fix=f"Pass 1 to {len(layers) - 1}, or 0 for a frozen backbone."))
        self.config = backbone.encoder.config
        self.layers = nn.ModuleList(copy.deepcopy(layer).float() for layer in layers[-n:])
        for p in self.layers.parameters():
            p.requires_grad_(True)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """states (b, t, hidden) at the first fine-tuned layer's input, mask (b, t) ->
        pooled, L2-normalised vectors (b, hidden)."""
        from transformers.masking_utils import create_bidirectional_mask

        attn = create_bidirectional_mask(config=self.config, inputs_embeds=states,
                                         attention_mask=mask)
        h = states
        for layer in self.layers:
            out = layer(h, attention_mask=attn)
            h = out[0] if isinstance(out, tuple) else out
        weights = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)


class TokenStates:
    """Per news text, the (frozen) hidden states entering the fine-tuned layers; computed
    once per text and kept in memory as float16."""

    def __init__(self, backbone, n: int, batch_size: int = 64) -> None:
        self.backbone = backbone
        self.depth = len(_layers(backbone)) - n
        self.batch_size = batch_size
        self._states: dict[str, np.ndarray] = {}

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        front, back = self.backbone.special_tokens()
        prefix = self.backbone.prefix(PROMPT)
        enc = self.backbone.tokenizer([prefix + t for t in texts], add_special_tokens=False)
        limit = min(MAX_TOKENS, self.backbone.max_length) - len(front) - len(back)
        return [front + ids[:limit] + back for ids in enc["input_ids"]]

    def _compute(self, texts: list[str]) -> list[np.ndarray]:
        out = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start:start + self.batch_size]
            ids, mask = self.backbone._pad(self._ids(chunk))
            with torch.inference_mode():
                states = self.backbone.run(ids, mask, layer=self.depth)
            out += [row[:n].astype(np.float16)
                    for row, n in zip(states.cpu().numpy(), mask.sum(1).tolist())]
        return out

    def fill(self, texts: Sequence[str]) -> None:
        todo = list(dict.fromkeys(t for t in texts if text_key(t) not in self._states))
        for text, states in zip(todo, self._compute(todo)):
            self._states[text_key(text)] = states

    def batch(self, texts: Sequence[str], device, *,
              keep: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded (b, t, hidden) float32 states and their (b, t) mask; ``keep=False``
        computes without storing (a stream of new texts)."""
        if keep:
            self.fill(texts)
            rows = [self._states[text_key(t)] for t in texts]
        else:
            rows = self._compute(list(texts))
        width = max(len(r) for r in rows)
        states = np.zeros((len(rows), width, rows[0].shape[1]), dtype=np.float32)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            states[i, :len(r)] = r
            mask[i, :len(r)] = 1
        return torch.from_numpy(states).to(device), torch.from_numpy(mask).to(device)


__all__ = ["MAX_TOKENS", "TokenStates", "TopLayers"]
