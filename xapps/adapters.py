"""Per-language LoRA adapters on a private copy of a backbone model.

One multilingual backbone serves every language; a language that needs more than the shared
weights gets a small LoRA adapter (peft) of its own. Each text is served by its own language's
adapter: a batch is grouped by language (:meth:`LanguageAdapters.groups`) and each group runs
under :meth:`LanguageAdapters.use`. A language without an adapter runs the shared weights
exactly. There is never one adapter for a whole collection, which would encode a mixed-language
corpus in the language of its first document.

peft swaps the adapted linear layers of the model it is given for LoRA layers, in place. So
the model must be a private copy (:func:`xapps.backbone.load_private_backbone`), never the
process-wide cached ``Backbone.model`` that other components share.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import Errors, InputError, ModelError

if TYPE_CHECKING:
    import torch

FORMAT = "xapps-language-adapter"
CONFIG_FILE = "adapter.json"
WEIGHTS_FILE = "adapter.safetensors"

#: Module-name suffixes of attention projections, by family: BERT / XLM-R / e5 first, then
#: DistilBERT, T5 / mT5, and the ``*_proj`` naming of most other models. peft's own defaults
#: for BERT and XLM-R adapt query and value only; key and the attention output are adapted
#: here too, as in ColBERT-XM's language modules.
ATTENTION_SUFFIXES = ("query", "key", "value", "attention.output.dense",
                      "q_lin", "k_lin", "v_lin", "out_lin", "q", "k", "v", "o",
                      "q_proj", "k_proj", "v_proj", "o_proj", "out_proj")
_CODE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})*")


@dataclass
class LoraSettings:
    """Shape of a LoRA adapter: ``rank`` of the update, its scale ``alpha`` (the update is
    multiplied by alpha / rank), ``dropout`` on the adapter's input while training, and the
    ``target_modules`` (module-name suffixes) it adapts; None picks the attention query, key,
    value and output projections by the model's module names."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise InputError(Errors.E074.format(what="LoraSettings.rank", value=self.rank,
                                                expected="an integer >= 1 (4 to 64 is usual)"))
        if not _is_number(self.alpha) or self.alpha <= 0:
            raise InputError(Errors.E074.format(what="LoraSettings.alpha", value=self.alpha,
                                                expected="a finite number > 0 (often 2 * rank)"))
        if not _is_number(self.dropout) or not 0 <= self.dropout < 1:
            raise InputError(Errors.E074.format(what="LoraSettings.dropout", value=self.dropout,
                                                expected="a number in [0, 1)"))
        self.alpha, self.dropout = float(self.alpha), float(self.dropout)
        if self.target_modules is not None:
            targets = self.target_modules
            if (isinstance(targets, str) or not isinstance(targets, (list, tuple)) or not targets
                    or not all(isinstance(t, str) and t.strip() for t in targets)):
                raise InputError(Errors.E074.format(
                    what="LoraSettings.target_modules", value=targets,
                    expected="None or a non-empty list of module-name suffixes such as "
                             "['query', 'value']"))
            self.target_modules = [t.strip() for t in targets]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def language_code(value: Any, what: str) -> str:
    """``value`` as adapters are named: lower case, subtags joined by '-' ("pt_BR" -> "pt-br")."""
    code = value.strip().lower().replace("_", "-") if isinstance(value, str) else None
    if code is None or not _CODE.fullmatch(code):
        raise InputError(Errors.E074.format(
            what=what, value=value,
            expected="an ISO 639 language code such as 'de', 'yue' or 'pt-br'"))
    return code


class LanguageAdapters:
    """Zero or more named LoRA adapters, one per language code, on ``model`` (changed in place:
    pass a private copy). ``settings`` shape the adapters :meth:`add` creates; ``base`` names
    the base weights (e.g. the backbone's sha256) so :meth:`load` refuses an adapter trained on
    other weights.

    Outside :meth:`use` the model runs the shared weights, adapters off. Switching adapters
    changes the model's state, so :meth:`use` holds a lock: threads sharing one instance take
    turns rather than mixing languages.
    """

    def __init__(self, model: torch.nn.Module, settings: LoraSettings | None = None, *,
                 base: str | None = None) -> None:
        import torch
        from peft.tuners.tuners_utils import BaseTunerLayer

        if not isinstance(model, torch.nn.Module):
            raise InputError(Errors.E074.format(what="LanguageAdapters model",
                                                value=type(model).__name__,
                                                expected="a torch.nn.Module"))
        if any(isinstance(m, BaseTunerLayer) for m in model.modules()):
            raise ModelError(Errors.E058.format(
                what="LanguageAdapters model", value=type(model).__name__,
                expected="a model without peft layers",
                fix="Pass a fresh private copy (xapps.backbone.load_private_backbone); one "
                    "LanguageAdapters holds every language's adapter for its model."))
        settings = settings if settings is not None else LoraSettings()
        if not isinstance(settings, LoraSettings):
            raise InputError(Errors.E074.format(what="LanguageAdapters settings",
                                                value=type(settings).__name__,
                                                expected="a LoraSettings"))
        self.model = model
        self.base = base
        # Resolved now: once LoRA layers are in, the attention projections no longer are
        # plain nn.Linear modules to find.
        if settings.target_modules is None:
            settings = dataclasses.replace(settings, target_modules=_attention_targets(model))
        self.settings = settings
        self._settings: dict[str, LoraSettings] = {}
        self._layers: list[tuple[str, Any]] = []  # (module name, peft LoRA layer)
        self._active: str | None = None
        self._lock = threading.RLock()

    @property
    def languages(self) -> list[str]:
        return sorted(self._settings)

    def adapter_for(self, lang: str | None, *, what: str = "language") -> str | None:
        """The adapter that serves ``lang``: its own, else its primary language's ("de-ch" ->
        "de"), else None (the shared weights), also for None."""
        if lang is None or lang == "":
            return None
        code = language_code(lang, what)
        if code in self._settings:
            return code
        primary = code.split("-", 1)[0]
        return primary if primary in self._settings else None

    def groups(self, languages: Sequence[str | None]) -> list[tuple[str | None, list[int]]]:
        """Row indices of a batch grouped by the adapter that serves them (None: the shared
        weights), groups in order of first appearance and rows in input order."""
        if isinstance(languages, str):
            raise InputError(Errors.E074.format(
                what="LanguageAdapters.groups languages", value=languages,
                expected="one language code per row: a list, not one string"))
        grouped: dict[str | None, list[int]] = {}
        for row, lang in enumerate(languages):
            grouped.setdefault(self.adapter_for(lang, what=f"language at row {row}"),
                               []).append(row)
        return list(grouped.items())

    @contextlib.contextmanager
    def use(self, lang: str | None) -> Iterator[str | None]:
        """Run the model with ``lang``'s adapter (yields its name), or with the shared weights
        (yields None) for None or a language without an adapter."""
        name = self.adapter_for(lang)
        with self._lock:
            previous = self._active
            self._switch(name)
            try:
                yield name
            finally:
                self._switch(previous)

    def named_parameters(self, lang: str) -> dict[str, torch.nn.Parameter]:
        """``lang``'s adapter weights by a stable name (module path + LoRA factor)."""
        return self._tensors(self._existing(lang, "named_parameters"))

    # ------------------------------------------------------------------ adding, removing
    def add(self, lang: str, settings: LoraSettings | None = None) -> list[torch.nn.Parameter]:
        """Create a trainable adapter for ``lang`` and return its parameters. LoRA's second
        factor starts at zero, so the model's output is unchanged until it is trained; the
        base weights stay frozen."""
        code = language_code(lang, "LanguageAdapters.add language")
        with self._lock:
            if code in self._settings:
                raise InputError(Errors.E058.format(
                    what="LanguageAdapters.add language", value=code,
                    expected=f"a language without an adapter (these have one: "
                             f"{', '.join(self.languages)})",
                    fix="Train the existing adapter further, or remove(lang) it first."))
            params = self._inject(code, settings or self.settings)
            for param in params.values():
                param.requires_grad_(True)
            return list(params.values())

    def remove(self, lang: str) -> None:
        """Delete ``lang``'s adapter; its texts run the shared weights again."""
        code = self._existing(lang, "remove")
        with self._lock:
            flags = self._grad_flags()
            for _, layer in self._layers:
                # No active adapter first, so peft does not pick (and warn about) another one;
                # _restore_state sets the real state.
                layer.set_adapter([])
                layer.delete_adapter(code)
            getattr(self.model, "peft_config", {}).pop(code, None)
            del self._settings[code]
            self._restore_state(flags)

    # ------------------------------------------------------------------ saving
    def save(self, lang: str, folder: str | Path) -> Path:
        """``adapter.safetensors`` (the LoRA weights) and ``adapter.json`` (settings, base
        weights, model shape), written atomically."""
        from safetensors.torch import save_file

        from .index.manifest import atomic_directory

        code = self._existing(lang, "save")
        tensors = {key: param.detach().cpu().contiguous()
                   for key, param in self._tensors(code).items()}
        record = {"format": FORMAT, "language": code, "lora": self._settings[code].to_dict(),
                  "base": self.base, "model": _model_shape(self.model)}
        folder = Path(folder)
        with atomic_directory(folder) as tmp:
            save_file(tensors, str(tmp / WEIGHTS_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return folder

    def load(self, lang: str, folder: str | Path) -> list[torch.nn.Parameter]:
        """Add ``lang``'s adapter from a folder written by :meth:`save` (offline; the saved
        language may differ, e.g. a German adapter serving Luxembourgish) and return its
        parameters, trainable."""
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        code = language_code(lang, "LanguageAdapters.load language")
        folder = Path(folder)
        try:
            if not folder.is_dir():
                raise FileNotFoundError("no such folder")
            record = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            if record.get("format") != FORMAT:
                raise ValueError(f"{CONFIG_FILE} has format {record.get('format')!r}, "
                                 f"not {FORMAT!r}")
            settings = LoraSettings(**record["lora"])
            tensors = load_file(str(folder / WEIGHTS_FILE))
        except (OSError, ValueError, TypeError, KeyError, SafetensorError) as exc:
            raise ModelError(Errors.E090.format(path=folder, reason=exc)) from exc
        saved_base, saved_shape, shape = record.get("base"), record.get("model"), _model_shape(
            self.model)
        if (saved_base and self.base and saved_base != self.base) or saved_shape != shape:
            # Name the model shapes only where they are what differs.
            same = saved_shape == shape
            raise ModelError(Errors.E091.format(
                path=folder, saved=_describe(saved_base, None if same else saved_shape),
                current=_describe(self.base, None if same else shape)))
        with self._lock:
            if code in self._settings:
                raise InputError(Errors.E058.format(
                    what="LanguageAdapters.load language", value=code,
                    expected="a language without an adapter yet",
                    fix="remove(lang) first to replace its adapter."))
            params = self._inject(code, settings)
            wrong = sorted(set(params) ^ set(tensors)) or [
                key for key in params if params[key].shape != tensors[key].shape]
            if wrong:
                self.remove(code)
                raise ModelError(Errors.E091.format(
                    path=folder, saved=f"a model with other layers ({', '.join(wrong[:3])})",
                    current=_describe(self.base, shape)))
            with torch.no_grad():
                for key, param in params.items():
                    param.copy_(tensors[key])
                    param.requires_grad_(True)
            return list(params.values())

    # ------------------------------------------------------------------ internals
    def _inject(self, code: str, settings: LoraSettings) -> dict[str, torch.nn.Parameter]:
        import torch
        from peft import LoraConfig, inject_adapter_in_model
        from peft.tuners.tuners_utils import BaseTunerLayer

        targets = settings.target_modules or self.settings.target_modules
        config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha,
                            lora_dropout=settings.dropout, target_modules=list(targets),
                            bias="none")
        # peft marks the new adapter the only trainable one; keep the caller's choices.
        flags = self._grad_flags()
        try:
            with warnings.catch_warnings():
                # peft warns when a model gets a second adapter: several is the point here.
                warnings.filterwarnings("ignore", message=".*peft_config.*")
                inject_adapter_in_model(config, self.model, adapter_name=code)
        except ValueError as exc:
            raise ModelError(Errors.E058.format(
                what="LoraSettings.target_modules", value=list(targets),
                expected=f"suffixes of layers in {type(self.model).__name__} ({exc})",
                fix="Name the model's linear layers, or leave target_modules=None for the "
                    "attention projections.")) from exc
        self._settings[code] = dataclasses.replace(settings, target_modules=list(targets))
        self._layers = [(name, module) for name, module in self.model.named_modules()
                        if isinstance(module, BaseTunerLayer)]
        params = self._tensors(code)
        for param in params.values():
            # float32 factors on a bf16/fp16 backbone, so small training updates are not
            # rounded away; peft casts the adapter's input to match.
            if param.dtype in (torch.float16, torch.bfloat16):
                param.data = param.data.float()
        self._restore_state(flags)
        return params

    def _tensors(self, code: str) -> dict[str, torch.nn.Parameter]:
        import torch

        out = {}
        for name, layer in self._layers:
            for attr in layer.adapter_layer_names:
                container = getattr(layer, attr)
                if code not in container:
                    continue
                item = container[code]
                if isinstance(item, torch.nn.Parameter):
                    out[f"{name}.{attr}"] = item
                else:
                    for pname, param in item.named_parameters():
                        out[f"{name}.{attr}.{pname}"] = param
        return out

    def _existing(self, lang: str, method: str) -> str:
        code = language_code(lang, f"LanguageAdapters.{method} language")
        if code not in self._settings:
            raise InputError(Errors.E058.format(
                what=f"LanguageAdapters.{method} language", value=code,
                expected=f"one with an adapter ({', '.join(self.languages) or 'none yet'})",
                fix="add(lang) or load(lang, folder) it first."))
        return code

    def _switch(self, name: str | None) -> None:
        if name == self._active:
            return
        flags = self._grad_flags()
        self._active = name
        self._restore_state(flags)

    def _restore_state(self, flags: list[tuple[Any, bool]]) -> None:
        """Put the layers in the ``_active`` state (peft's switches reset requires_grad, so
        the flags the caller had are put back after)."""
        if self._active is not None and self._active not in self._settings:
            self._active = None
        for _, layer in self._layers:
            if self._active is None:
                layer.enable_adapters(False)
            else:
                layer.enable_adapters(True)
                layer.set_adapter(self._active)
        for param, flag in flags:
            param.requires_grad_(flag)

    def _grad_flags(self) -> list[tuple[Any, bool]]:
        return [(param, param.requires_grad) for code in self._settings
                for param in self._tensors(code).values()]

    def __repr__(self) -> str:
        return f"LanguageAdapters({type(self.model).__name__}, languages={self.languages})"


def _attention_targets(model) -> list[str]:
    import torch

    names = [name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear)]
    found = [suffix for suffix in ATTENTION_SUFFIXES
             if any(name == suffix or name.endswith("." + suffix) for name in names)]
    if not found:
        raise ModelError(Errors.E094.format(model=type(model).__name__,
                                            examples=", ".join(names[:6]) or "none"))
    return found


def _model_shape(model) -> dict:
    """What identifies the architecture an adapter's weights fit."""
    config = getattr(model, "config", None)
    shape = {"class": type(model).__name__}
    for attr in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size"):
        value = getattr(config, attr, None)
        if value is not None:
            shape[attr] = value
    return shape


def _describe(base: str | None, shape: dict | None) -> str:
    if base and re.fullmatch(r"[0-9a-f]{64}", base):
        base = f"sha256 {base[:12]}"
    parts = [f"base weights {base}" if base else None,
             ", ".join(f"{k}={v}" for k, v in (shape or {}).items()) or None]
    return "; ".join(p for p in parts if p) or "an unrecorded model"


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))
