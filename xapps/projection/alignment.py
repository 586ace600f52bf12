"""Word-alignment evidence from the backbone's contextual subword vectors (SimAlign-style).

The similarity matrix between a sentence's and its translation's subwords (cosine, from one
layer) is turned into links: ``argmax`` keeps the pairs that are each other's best match
(SimAlign's argmax, high precision); ``soft`` keeps pairs whose forward x backward softmax
probability passes a threshold (awesome-align's rule, higher recall); ``union`` takes both,
which links the second half of "Fondo de Cohesion" that argmax alone leaves out. Computed in
torch on the backbone's device (a GPU when there is one).
"""
from __future__ import annotations

import numpy as np

ALIGN_METHODS = ("argmax", "soft", "union")


def subword_links(src, tgt, *, method: str = "union", temperature: float = 0.05,
                  threshold: float = 0.1):
    """0/1 link matrix (n_src, n_tgt) between two sets of subword vectors (torch tensors on
    one device), and the cosine similarity matrix it came from."""
    import torch

    if method not in ALIGN_METHODS:
        from ..errors import Errors, InputError

        raise InputError(Errors.E083.format(value=method, options=list(ALIGN_METHODS)))
    src = torch.nn.functional.normalize(src, dim=-1)
    tgt = torch.nn.functional.normalize(tgt, dim=-1)
    sim = src @ tgt.T
    links = torch.zeros_like(sim)
    if sim.numel() == 0:
        return links, sim
    if method in ("argmax", "union"):
        fwd = sim.argmax(dim=1)
        bwd = sim.argmax(dim=0)
        rows = torch.arange(sim.shape[0], device=sim.device)
        mutual = bwd[fwd] == rows
        links[rows[mutual], fwd[mutual]] = 1.0
    if method in ("soft", "union"):
        prob = torch.softmax(sim / temperature, dim=1) * torch.softmax(sim / temperature, dim=0)
        links = torch.maximum(links, (prob > threshold).to(links.dtype))
    return links, sim


def word_links(links, src_word: np.ndarray, tgt_word: np.ndarray, n_src: int,
               n_tgt: int) -> np.ndarray:
    """Word-level links (n_src, n_tgt): two words are linked when any of their subwords are."""
    out = np.zeros((n_src, n_tgt), dtype=np.float32)
    pairs = links.nonzero().cpu().numpy()
    if len(pairs):
        i, j = src_word[pairs[:, 0]], tgt_word[pairs[:, 1]]
        keep = (i >= 0) & (j >= 0)
        out[i[keep], j[keep]] = 1.0
    return out
