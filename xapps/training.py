"""Optimisation pieces shared by every xapps trainer (re-ranker, bi-encoder alignment)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def adamw(named_parameters: Iterable[tuple[str, Any]], lr: float, weight_decay: float):
    """AdamW over the trainable parameters, without weight decay on biases and norms."""
    import torch

    decay, no_decay = [], []
    for name, p in named_parameters:
        if not p.requires_grad:
            continue
        is_norm = "LayerNorm" in name or "layer_norm" in name
        (no_decay if is_norm or name.endswith(("bias", "norm.weight")) else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def linear_warmup(total: int, warmup: int) -> Callable[[int], float]:
    """LR factor for update ``s`` (0-based): rises to 1 over ``warmup`` updates, then falls
    linearly; never exactly 0, so no update is wasted."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor
