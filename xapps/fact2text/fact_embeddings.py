"""Fact-aware embeddings (XF2T): learned role (head / relation / tail / qualifier) and
fact-index embeddings added to the encoder's token embeddings of any Hugging Face seq2seq
model (mT5, mBART, T5, an EncoderDecoderModel).

Both tables start at zero, so a wrapped pretrained model behaves exactly as before until
training teaches it the structure. The wrapper feeds ``inputs_embeds`` to the model, which
every Hugging Face encoder-decoder accepts in ``forward`` and ``generate``.
"""
from __future__ import annotations

import torch
from torch import nn

from .encoding import N_ROLES


def _hidden_size(config) -> int:
    for name in ("d_model", "hidden_size"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    encoder = getattr(config, "encoder", None)
    if encoder is not None:
        return _hidden_size(encoder)
    raise ValueError(f"cannot tell the hidden size of {type(config).__name__}")


class FactAwareSeq2Seq(nn.Module):
    def __init__(self, model: nn.Module, max_facts: int = 32) -> None:
        super().__init__()
        self.model = model
        self.max_facts = max_facts
        hidden = _hidden_size(model.config)
        self.role_embeddings = nn.Embedding(N_ROLES, hidden)
        self.fact_embeddings = nn.Embedding(max_facts + 1, hidden)
        nn.init.zeros_(self.role_embeddings.weight)
        nn.init.zeros_(self.fact_embeddings.weight)

    def _encoder_embeddings(self) -> nn.Module:
        encoder = self.model.get_encoder() if hasattr(self.model, "get_encoder") else None
        if encoder is not None and hasattr(encoder, "get_input_embeddings"):
            return encoder.get_input_embeddings()
        return self.model.get_input_embeddings()

    def embed(self, input_ids: torch.Tensor, role_ids: torch.Tensor | None,
              fact_ids: torch.Tensor | None) -> torch.Tensor:
        emb = self._encoder_embeddings()(input_ids)
        if role_ids is not None:
            emb = emb + self.role_embeddings(role_ids).to(emb.dtype)
        if fact_ids is not None:
            emb = emb + self.fact_embeddings(fact_ids.clamp(max=self.max_facts)).to(emb.dtype)
        return emb

    def forward(self, input_ids, attention_mask=None, role_ids=None, fact_ids=None,
                labels=None, **kwargs):
        return self.model(inputs_embeds=self.embed(input_ids, role_ids, fact_ids),
                          attention_mask=attention_mask, labels=labels, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, role_ids=None, fact_ids=None, **kwargs):
        return self.model.generate(inputs_embeds=self.embed(input_ids, role_ids, fact_ids),
                                   attention_mask=attention_mask, **kwargs)
