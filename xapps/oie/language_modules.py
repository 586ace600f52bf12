"""Language modules for the open-IE tagger: per-language LoRA updates of the encoder's
attention projections, combined by a learned gate (the MT4CrossOIE idea).

Every adapted linear layer gets one low-rank update per module language and a gate. For a
text routed to the modules, each token's update is the gate-weighted sum of all modules'
updates: ``W x + sum_k g_k(x, lang) * B_k A_k x * alpha / rank`` with ``g = softmax(G x +
bias[lang])``. The per-language bias starts in favour of the text's own module, so modules
specialise, and the gate learns how much of the other languages' modules to mix in. Texts of
a language without a module (or with no language given) run the shared weights exactly.

The updates are added by forward hooks on the backbone's own layers, so the backbone's
weights, names and ``save_pretrained`` files stay those of the shared model; the modules are
saved beside it.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import Errors, InputError

#: Module-name suffixes of attention projections (BERT / XLM-R / e5 naming).
TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value",
           "attention.output.dense")
#: Gate logit bias of a text's own module at initialisation (softmax weight ~0.88 of 2).
OWN_BIAS = 2.0


@dataclass
class ModuleSettings:
    languages: list[str] = field(default_factory=list)
    rank: int = 8
    alpha: float = 16.0


class LanguageModules:
    """LoRA modules for ``settings.languages`` hooked into ``model`` (a torch module)."""

    def __init__(self, model, settings: ModuleSettings) -> None:
        import torch

        if not settings.languages or len(set(settings.languages)) != len(settings.languages):
            raise InputError(Errors.E180.format(languages=settings.languages))
        self.settings = settings
        self.index = {lang: i for i, lang in enumerate(settings.languages)}
        n, r = len(settings.languages), settings.rank
        layers = [(name, m) for name, m in model.named_modules()
                  if isinstance(m, torch.nn.Linear) and name.endswith(TARGETS)]
        if not layers:
            raise InputError(Errors.E181.format(model=type(model).__name__,
                                                targets=", ".join(TARGETS)))
        device = layers[0][1].weight.device
        self.params = torch.nn.ModuleDict()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for name, layer in layers:
                part = torch.nn.Module()
                part.A = torch.nn.Parameter(torch.empty(n, r, layer.in_features))
                for k in range(n):  # LoRA's init: A random, B zero (no change at the start)
                    torch.nn.init.kaiming_uniform_(part.A.data[k], a=math.sqrt(5))
                part.B = torch.nn.Parameter(torch.zeros(n, layer.out_features, r))
                part.gate = torch.nn.Linear(layer.in_features, n)
                torch.nn.init.zeros_(part.gate.weight)
                torch.nn.init.zeros_(part.gate.bias)
                self.params[name.replace(".", "__")] = part
        self.params["language_bias"] = torch.nn.Embedding(n, n)
        with torch.no_grad():
            self.params["language_bias"].weight.copy_(torch.eye(n) * OWN_BIAS)
        self.params.to(device)
        self._rows = None  # (batch,) module-language index per text, -1: shared weights
        self._handles = [layer.register_forward_hook(self._hook(self.params[
            name.replace(".", "__")])) for name, layer in layers]

    @property
    def languages(self) -> list[str]:
        return list(self.settings.languages)

    def module_for(self, lang: str | None) -> int:
        """Index of the language's module row (its primary language's: "de-ch" -> "de"),
        -1 for the shared weights."""
        if not lang:
            return -1
        lang = lang.lower()
        return self.index.get(lang, self.index.get(lang.split("-", 1)[0], -1))

    @contextlib.contextmanager
    def route(self, languages: Sequence[str | None] | str | None, batch: int) -> Iterator[None]:
        """Within the block, row ``i`` of the encoder's batch uses ``languages[i]``'s
        modules (one language for all rows when a string or None is given)."""
        import torch

        if languages is None or isinstance(languages, str):
            languages = [languages] * batch
        if len(languages) != batch:
            raise ValueError(f"{len(languages)} languages for a batch of {batch}")
        rows = torch.tensor([self.module_for(lang) for lang in languages])
        self._rows = rows if (rows >= 0).any() else None
        try:
            yield
        finally:
            self._rows = None

    def _hook(self, part):
        import torch

        scale = self.settings.alpha / self.settings.rank

        def hook(module, inputs, output):
            rows = self._rows
            if rows is None:
                return output
            x = inputs[0]
            on = (rows >= 0).to(x.device)
            bias = self.params["language_bias"].weight[rows.clamp(min=0).to(x.device)]
            gate = torch.softmax(part.gate(x) + bias[:, None, :], dim=-1)  # (B, T, n)
            low = torch.einsum("bti,nri->btnr", x, part.A)
            delta = torch.einsum("btnr,nor->bto", gate.unsqueeze(-1) * low, part.B)
            return output + delta * scale * on[:, None, None].to(delta.dtype)

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

