"""The neural parts of the recommender: a news head over frozen backbone vectors, an
NRMS-style user encoder (and a mean-of-history one), and the dot-product click scorer.

NRMS (Wu et al., 2019) encodes the clicked history with multi-head self-attention (so each
click is read in the context of the others) and pools it with additive attention (so a few
telling clicks can dominate). A learned "user" slot is always attended to, which gives users
with an empty history a defined (cold-start) vector instead of an attention over nothing.
"""
from __future__ import annotations

import torch
from torch import nn


class NewsHead(nn.Module):
    """Frozen backbone vector (hidden) -> recommendation space (dim): a linear projection
    plus a residual MLP, so training starts close to a plain projection of the backbone."""

    def __init__(self, hidden: int, dim: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, dim)
        self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, dim), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        return self.norm(h + self.mlp(h))


class AdditiveAttention(nn.Module):
    """softmax(q . tanh(W h)) pooling over a masked sequence."""

    def __init__(self, dim: int, query_dim: int = 128) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, query_dim)
        self.query = nn.Parameter(torch.randn(query_dim) * 0.02)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = torch.tanh(self.proj(h)) @ self.query  # (b, n)
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        weights = torch.softmax(logits, dim=-1)
        return (weights.unsqueeze(-1) * h).sum(dim=1)


class NRMSUserEncoder(nn.Module):
    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.2) -> None:
        super().__init__()
        self.user_slot = nn.Parameter(torch.randn(dim) * 0.02)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)
        self.pool = AdditiveAttention(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """history (b, n, dim) of news vectors, mask (b, n) True for real clicks."""
        b = history.shape[0]
        slot = self.user_slot.expand(b, 1, -1)
        h = torch.cat([slot, history], dim=1)
        m = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=mask.device), mask], dim=1)
        ctx, _ = self.attn(h, h, h, key_padding_mask=~m, need_weights=False)
        h = self.norm(h + self.dropout(ctx))
        return self.pool(h, m)


class MeanUserEncoder(nn.Module):
    """The user as the mean of their clicked news (the learned slot for an empty history)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.user_slot = nn.Parameter(torch.zeros(dim))

    def forward(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.to(history.dtype).unsqueeze(-1)
        count = weights.sum(dim=1)
        mean = (history * weights).sum(dim=1) / count.clamp(min=1.0)
        return torch.where(count > 0, mean, self.user_slot.expand_as(mean))


USER_ENCODERS = ("nrms", "mean")
HEADS = ("mlp", "none")


class NewsRecModel(nn.Module):
    """Scores candidates for users: ``score(history_vecs, history_mask, candidate_vecs)``
    with backbone vectors in, click logits (dot products) out."""

    def __init__(self, hidden: int, dim: int = 256, user_encoder: str = "nrms", heads: int = 8,
                 dropout: float = 0.2, head: str = "mlp") -> None:
        super().__init__()
        # head "none": the backbone's own vectors, untrained (the mean-of-history baseline)
        self.news = NewsHead(hidden, dim, dropout) if head == "mlp" else nn.Identity()
        dim = dim if head == "mlp" else hidden
        self.user = (NRMSUserEncoder(dim, heads, dropout) if user_encoder == "nrms"
                     else MeanUserEncoder(dim))

    def encode_user(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.user(self.news(history), mask)

    def forward(self, history: torch.Tensor, mask: torch.Tensor,
                candidates: torch.Tensor) -> torch.Tensor:
        """history (b, n, hidden), mask (b, n), candidates (b, c, hidden) -> logits (b, c)."""
        user = self.encode_user(history, mask)
        return torch.einsum("bd,bcd->bc", user, self.news(candidates))


__all__ = ["HEADS", "AdditiveAttention", "MeanUserEncoder", "NRMSUserEncoder", "NewsHead",
           "NewsRecModel", "USER_ENCODERS"]
