"""ColBERT-style late-interaction encoder on the shared backbone.

Queries get the model's query marker (e5's "query: " prefix), are cut to ``query_length``
slots and padded with the tokenizer's mask token, which the query attends to (ColBERT's query
augmentation: the mask slots become soft expansion terms); every slot gives a vector.
Documents get the passage marker, are split into overlapping windows of ``doc_max_length``
subwords (never truncated) and lose their punctuation-only subwords (the skiplist). Token
states go through a linear projection to ``dim`` (default 128) and are L2-normalised; with
``dim=None`` the backbone's hidden states are used as they are (untrained MaxSim).

An untrained projection is a seeded random orthogonal map: it keeps inner products up to the
distortion of a random projection, so MaxSim works before any training.

Optional per-language LoRA adapters (:mod:`xapps.adapters`) run on a private copy of the
backbone. Every query and document is encoded with its own language's adapter (given, or
detected per text); a language without one runs the shared weights. An encoder without
adapters routes nothing and detects nothing.

Language centering (:meth:`ColBERTEncoder.fit_language_means`): a multilingual encoder's
token states carry a per-language offset, which makes MaxSim prefer documents in the query's
own language. Subtracting each language's mean token state (estimated from any unlabeled text
in that language) before the projection removes most of that offset (Libovicky et al., 2020,
"On the language neutrality of pre-trained multilingual representations"); texts in a
language without a mean are left as they are.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..adapters import LoraSettings, language_code
from ..errors import Errors, InputError, ModelError
from ..artifacts import read_record, seal, verify_record_files

if TYPE_CHECKING:
    import torch

    from ..adapters import LanguageAdapters
    from ..langid import LanguageIdentifier

CONFIG_FILE = "colbert.json"
PROJECTION_FILE = "projection.safetensors"
MEANS_FILE = "language_means.safetensors"
ADAPTERS_DIR = "adapters"
FORMAT = "xapps-colbert"


@dataclass
class ColBERTConfig:
    backbone: str = "me5-small"
    #: Output size of the token projection; None keeps the backbone's hidden size, unprojected.
    dim: int | None = 128
    query_length: int = 32
    doc_max_length: int = 256
    #: Which of the backbone's prompt prefixes marks queries and documents.
    query_prompt: str | None = "query"
    doc_prompt: str | None = "passage"
    skiplist: bool = True
    seed: int = 0
    #: Languages with a LoRA adapter (saved under adapters/<lang>/ of the encoder folder); texts
    #: in any other language run the shared backbone weights.
    adapters: list[str] = field(default_factory=list)
    #: LoraSettings (as a dict) for adapters add_adapter() creates; each saved adapter also
    #: records its own.
    lora: dict | None = None
    #: Languages with a stored mean token state (language centering).
    centered: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        checks = (("dim", self.dim, 1, True), ("query_length", self.query_length, 4, False),
                  ("doc_max_length", self.doc_max_length, 3, False))
        for what, value, low, optional in checks:
            if value is None and optional:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InputError(Errors.E074.format(what=f"ColBERTConfig.{what}", value=value,
                                                    expected=f"an integer >= {low}"))
        if isinstance(self.adapters, str) or not isinstance(self.adapters, (list, tuple)):
            raise InputError(Errors.E074.format(what="ColBERTConfig.adapters", value=self.adapters,
                                                expected="a list of language codes"))
        self.adapters = sorted({language_code(code, "ColBERTConfig.adapters entry")
                                for code in self.adapters})
        if isinstance(self.lora, LoraSettings):
            self.lora = self.lora.to_dict()
        elif self.lora is not None:
            try:
                self.lora = LoraSettings(**self.lora).to_dict()
            except TypeError as exc:  # not a dict, or a key LoraSettings does not have
                raise InputError(Errors.E074.format(
                    what="ColBERTConfig.lora", value=self.lora,
                    expected="None or a dict of LoraSettings fields (rank, alpha, dropout, "
                             "target_modules)")) from exc


def is_punctuation(text: str) -> bool:
    """True for a non-empty string of punctuation and symbols only (the skiplist test).

    >>> [is_punctuation(t) for t in (",", "。", "--", "a.", "", "¿")]
    [True, True, True, False, False, True]
    """
    text = text.strip()
    return bool(text) and all(unicodedata.category(ch)[0] in "PS" for ch in text)


class ColBERTEncoder:
    """Token-level encoder for late interaction: :meth:`encode_queries` gives one
    (query_length, dim) matrix per query, :meth:`encode_documents` one (kept tokens, dim)
    matrix per document, both L2-normalised float32."""

    def __init__(self, config: ColBERTConfig | None = None, *, device: str | None = None,
                 dtype: str | None = None, projection: Any = None,
                 adapter_folder: str | Path | None = None,
                 language_means: dict[str, Any] | None = None) -> None:
        """``adapter_folder`` holds ``<lang>/`` adapter folders for the languages
        ``config.adapters`` names (``ColBERTEncoder.load`` passes the saved ones);
        ``language_means`` maps the languages ``config.centered`` names to their mean token
        states."""
        import torch

        from ..backbone import load_backbone, load_private_backbone

        config = config or ColBERTConfig()
        if config.adapters and adapter_folder is None:
            raise InputError(Errors.E093.format(languages=config.adapters))
        # A copy: config.adapters lists the adapters this encoder holds as they are loaded.
        self.config = dataclasses.replace(config, adapters=[], centered=[])
        #: The backbone reference the identity is computed with, where the backbone was loaded
        #: from elsewhere (ColBERTEncoder.load(backbone=...)); None: config.backbone.
        self._identity_backbone: str | None = None
        self._device, self._dtype = device, dtype
        #: Per-language LoRA adapters; None until the first is added or loaded.
        self.adapters: LanguageAdapters | None = None
        #: Detects the language of texts given without one; None: the shared default.
        self.language_identifier: LanguageIdentifier | None = None
        # Adapters change the model in place, so an encoder with adapters runs a private copy
        # of the backbone; the cached one stays as other components expect it.
        self._private = bool(config.adapters)
        load = load_private_backbone if self._private else load_backbone
        self.backbone = load(self.config.backbone, device=device, dtype=dtype)
        tok = self.backbone.tokenizer
        if self.backbone.is_seq2seq:
            raise ModelError(Errors.E076.format(name=self.config.backbone,
                                                model_type=self.backbone.config.model_type))
        if tok.mask_token_id is None:
            raise ModelError(f"Backbone {self.config.backbone!r} has no mask token, which "
                             "ColBERT's query augmentation pads queries with. Use an encoder "
                             "trained with masked-language modelling (XLM-R, BERT, e5).")
        hidden = self.backbone.hidden_size
        self.projection = None
        if self.config.dim is not None:
            layer = torch.nn.Linear(hidden, self.config.dim, bias=False)
            if projection is not None:
                weight = torch.as_tensor(projection, dtype=torch.float32)
                if tuple(weight.shape) != (self.config.dim, hidden):
                    raise ModelError(f"Projection weights have shape {tuple(weight.shape)}, "
                                     f"expected ({self.config.dim}, {hidden}) for "
                                     f"{self.config.backbone!r}; the saved encoder belongs to "
                                     "another backbone or dim.")
                with torch.no_grad():
                    layer.weight.copy_(weight)
            else:
                gen = torch.Generator().manual_seed(self.config.seed)
                with torch.no_grad():
                    layer.weight.copy_(_orthogonal(self.config.dim, hidden, gen))
            self.projection = layer.to(self.backbone.device).eval()
        for lang in config.adapters:
            self.load_adapter(lang, Path(adapter_folder) / lang)
        #: Mean token state per language, subtracted before the projection.
        self.language_means: dict[str, torch.Tensor] = {}
        missing = set(config.centered) - set(language_means or {})
        if missing:
            raise ModelError(f"ColBERTConfig.centered names {sorted(missing)} but no mean "
                             "token state was given for them; load the encoder with "
                             "ColBERTEncoder.load(folder) or re-fit with fit_language_means().")
        for lang in config.centered:
            self.set_language_mean(lang, language_means[lang])

    # ------------------------------------------------------------------ identity
    @property
    def dim(self) -> int:
        return self.config.dim or self.backbone.hidden_size

    @property
    def identity(self) -> dict:
        """What a multi-vector index records so it refuses tokens from another encoder: the
        backbone's weights, this projection and the language adapters' weights together."""
        digest = hashlib.sha256((self.backbone.sha256 or self.backbone.name).encode())
        if self.projection is not None:
            digest.update(self.projection.weight.detach().cpu().float().numpy().tobytes())
        for lang in self.config.adapters:
            for key, param in sorted(self.adapters.named_parameters(lang).items()):
                digest.update(f"{lang}:{key}".encode())
                digest.update(param.detach().cpu().float().numpy().tobytes())
        for lang in self.config.centered:
            digest.update(f"mean:{lang}".encode())
            digest.update(self.language_means[lang].cpu().numpy().tobytes())
        config = dataclasses.asdict(self.config)
        if self._identity_backbone is not None:
            config["backbone"] = self._identity_backbone
        if not self.config.centered:
            del config["centered"]  # keeps the identity of indexes built before centering
        if not self.config.adapters:
            # Adapter settings change no vector without adapters; leaving them out keeps the
            # identity of indexes built before adapters existed.
            del config["adapters"], config["lora"]
        digest.update(json.dumps(config, sort_keys=True).encode())
        return {"name": f"colbert:{self.backbone.name}:{self.dim}", "sha256": digest.hexdigest(),
                "dim": self.dim}

    # ------------------------------------------------------------------ adapters
    def add_adapter(self, lang: str,
                    settings: LoraSettings | None = None) -> list[torch.nn.Parameter]:
        """Create a LoRA adapter for ``lang`` (to train) and return its parameters; the
        encoder's output for ``lang`` is unchanged until they are trained. ``settings``
        default to ``config.lora``, else :class:`LoraSettings` defaults."""
        params = self._adapter_holder(settings).add(lang, settings)
        self.config.adapters = self.adapters.languages
        return params

    def load_adapter(self, lang: str, folder: str | Path) -> list[torch.nn.Parameter]:
        """Add ``lang``'s adapter from a folder written by :meth:`LanguageAdapters.save` (or
        an encoder's ``adapters/<lang>/``); refuses one trained on another backbone."""
        params = self._adapter_holder(None).load(lang, folder)
        self.config.adapters = self.adapters.languages
        return params

    def _adapter_holder(self, settings: LoraSettings | None) -> LanguageAdapters:
        from ..adapters import LanguageAdapters
        from ..backbone import load_private_backbone

        if self.adapters is None:
            if not self._private:
                self.backbone = load_private_backbone(self.config.backbone, device=self._device,
                                                      dtype=self._dtype)
                self._private = True
            if settings is None and self.config.lora is not None:
                settings = LoraSettings(**self.config.lora)
            self.adapters = LanguageAdapters(self.backbone.model, settings,
                                             base=self.backbone.sha256 or self.backbone.name)
            self.config.lora = self.adapters.settings.to_dict()
        return self.adapters

    def train_adapter(self, lang: str) -> list[torch.nn.Parameter]:
        """Parameters of ``lang``'s adapter, made trainable; a new adapter if it has none."""
        if self.adapters is not None and lang in self.adapters.languages:
            params = list(self.adapters.named_parameters(lang).values())
            for param in params:
                param.requires_grad_(True)
            return params
        return self.add_adapter(lang)

    def adapter_state(self, lang: str) -> dict[str, torch.Tensor]:
        """Name -> tensor of ``lang``'s adapter weights (checkpoints, averaging)."""
        return self.adapters.named_parameters(lang)

    # ------------------------------------------------------------------ language centering
    def fit_language_means(self, texts_by_language: dict[str, Sequence[str]], *,
                           batch_size: int = 32, progress: bool | None = None) -> None:
        """Estimate each language's mean token state from unlabeled ``texts`` in it (a few
        hundred sentences are plenty) and subtract it from that language's queries and
        documents from now on. Re-fit after training adapters: the means describe the
        states the encoder produces when they are fitted."""
        import torch

        for lang, texts in texts_by_language.items():
            code = language_code(lang, "fit_language_means language")
            texts = [t for t in _check_texts(texts, "fit_language_means") if t.strip()]
            if not texts:
                raise InputError(Errors.E074.format(
                    what=f"fit_language_means texts for {code!r}", value=[],
                    expected="at least one non-empty text in that language"))
            self.language_means.pop(code, None)  # fit on the uncentered states
            with self._use(code):
                embedded = self.backbone.embed_tokens(
                    texts, prompt=self.config.doc_prompt, batch_size=batch_size,
                    progress=progress, max_length=self.config.doc_max_length)
            tokens = np.concatenate([self._kept(emb) for emb in embedded])
            self.set_language_mean(code, torch.from_numpy(tokens.mean(0)))

    def set_language_mean(self, lang: str, mean: Any) -> None:
        """Use ``mean`` (a hidden-size vector) as ``lang``'s mean token state."""
        import torch

        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        if mean.shape[0] != self.backbone.hidden_size:
            raise ModelError(f"The mean token state for {lang!r} has {mean.shape[0]} values, "
                             f"expected {self.backbone.hidden_size} for "
                             f"{self.config.backbone!r}; it was fitted on another backbone. "
                             "Re-fit with fit_language_means().")
        self.language_means[lang] = mean.to(self.backbone.device)
        self.config.centered = sorted(self.language_means)

    def _center(self, states, lang: str | None):
        mean = self.language_means.get(lang) if lang else None
        return states if mean is None else states - mean.to(states.device)

    # ------------------------------------------------------------------ routing
    def _route(self, texts: list[str], languages: str | Sequence[str | None] | None,
               method: str) -> list[tuple[str | None, list[int]]]:
        """Rows grouped by language, in input order: all rows together (None) when the
        encoder has neither adapters nor language means (nothing is detected), else each
        text by its given or detected language (a None or empty code is detected); languages
        with neither an adapter nor a mean share the None group."""
        if languages is not None and not isinstance(languages, str):
            languages = list(languages)
            if len(languages) != len(texts):
                raise InputError(Errors.E092.format(method=method, n=len(languages),
                                                    m=len(texts)))
        has_adapters = self.adapters is not None and bool(self.adapters.languages)
        if not has_adapters and not self.language_means:
            return [(None, list(range(len(texts))))]
        if languages is None or isinstance(languages, str):
            languages = [languages] * len(texts)
        unknown = [row for row, code in enumerate(languages) if code is None or code == ""]
        if unknown:
            from ..langid import default_identifier

            identifier = self.language_identifier or default_identifier()
            for row, code in zip(unknown, identifier.detect([texts[i] for i in unknown])):
                languages[row] = code
        groups: dict[str | None, list[int]] = {}
        for row, code in enumerate(languages):
            code = language_code(code, f"{method} language")
            served = (code in self.language_means
                      or (has_adapters and self.adapters.adapter_for(code) is not None))
            groups.setdefault(code if served else None, []).append(row)
        return list(groups.items())

    def _use(self, lang: str | None):
        return contextlib.nullcontext() if self.adapters is None else self.adapters.use(lang)

    def run_routed(self, input_ids, attention_mask, texts: Sequence[str],
                   languages: Sequence[str | None]):
        """Centered hidden states of a padded batch of ``texts``' ids, each row run with its
        language's adapter (None: detected from the text): the differentiable forward that
        training uses."""
        import torch

        groups = self._route(list(texts), list(languages), "run_routed")
        if len(groups) == 1:
            lang = groups[0][0]
            with self._use(lang):
                return self._center(self.backbone.run(input_ids, attention_mask), lang)
        parts, order = [], []
        for lang, rows in groups:
            index = torch.tensor(rows)
            with self._use(lang):
                states = self.backbone.run(input_ids[index], attention_mask[index])
            parts.append(self._center(states, lang))
            order += rows
        states = torch.cat(parts)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return states[inverse.to(states.device)]

    # ------------------------------------------------------------------ encoding
    def query_token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Input ids of each query: marker + text cut to ``query_length``, padded with the
        mask token (query augmentation)."""
        tok = self.backbone.tokenizer
        prefix = self.backbone.prefix(self.config.query_prompt)
        length = min(self.config.query_length, self.backbone.max_length)
        front, back = self.backbone.special_tokens()
        body = length - len(front) - len(back)
        ids = tok([prefix + t for t in texts], add_special_tokens=False)["input_ids"]
        rows = []
        for seq in ids:
            row = front + seq[:body] + back
            rows.append(row + [tok.mask_token_id] * (length - len(row)))
        return rows

    def document_token_ids(self, texts: Sequence[str]) -> tuple[list[list[int]],
                                                                list[list[bool]]]:
        """Input ids of each document cut to ``doc_max_length`` (training; encoding windows
        long documents instead), and which positions give vectors: the text's subwords, not
        the marker, special tokens or (with ``skiplist``) punctuation."""
        tok = self.backbone.tokenizer
        prefix = self.backbone.prefix(self.config.doc_prompt)
        front, back = self.backbone.special_tokens()
        body = min(self.config.doc_max_length, self.backbone.max_length) - 2
        enc = tok([prefix + t for t in texts], add_special_tokens=False,
                  return_offsets_mapping=True)
        all_ids, all_keep = [], []
        for text, seq, offsets in zip(texts, enc["input_ids"], enc["offset_mapping"]):
            keep = []
            for a, b in offsets[:body]:
                a, b = a - len(prefix), b - len(prefix)
                keep.append(b > 0 and not (self.config.skiplist
                                           and is_punctuation(text[max(a, 0):b])))
            if not any(keep):  # punctuation only: keep its subwords, as encoding does
                keep = [b > len(prefix) for _, b in offsets[:body]]
            # The two-slot layout of the backbone's windows: front, content, back.
            all_ids.append(front + seq[:body] + back)
            all_keep.append([False] * len(front) + keep + [False] * len(back))
        return all_ids, all_keep

    def encode_queries(self, texts: Sequence[str], *,
                       languages: str | Sequence[str | None] | None = None,
                       batch_size: int = 64) -> list[np.ndarray]:
        """One (query_length, dim) matrix per query: marker + text, cut to the query length,
        padded with mask tokens that the query attends to. ``languages`` (one code per text,
        or one for all; None: detected) route each query to its language's adapter and
        mean."""
        import torch

        texts = _check_texts(texts, "encode_queries")
        groups = self._route(texts, languages, "encode_queries")
        if not texts:
            return []
        rows = self.query_token_ids(texts)
        out: list[np.ndarray] = [np.empty(0)] * len(rows)
        with torch.inference_mode():
            for lang, members in groups:
                with self._use(lang):
                    for start in range(0, len(members), batch_size):
                        batch = members[start:start + batch_size]
                        input_ids = torch.tensor([rows[i] for i in batch], dtype=torch.long)
                        mask = torch.ones_like(input_ids)
                        states = self.backbone.run(input_ids, mask)
                        states = self.project(self._center(states, lang))
                        for row, q in zip(batch, states.cpu().numpy()):
                            out[row] = np.ascontiguousarray(q, dtype=np.float32)
        return out

    def encode_documents(self, texts: Sequence[str], *,
                         languages: str | Sequence[str | None] | None = None,
                         batch_size: int = 32, progress: bool | None = None) -> list[np.ndarray]:
        """One (kept subwords, dim) matrix per document; long documents are windowed, never
        truncated; punctuation-only subwords are dropped when ``skiplist`` is on (a document
        of punctuation only keeps its subwords, so it stays searchable). ``languages`` (one
        code per text, or one for all; None: detected) route each document to its language's
        adapter and mean."""
        import torch

        texts = _check_texts(texts, "encode_documents")
        out: list[np.ndarray] = [np.empty(0)] * len(texts)
        for lang, members in self._route(texts, languages, "encode_documents"):
            with self._use(lang):
                embedded = self.backbone.embed_tokens(
                    [texts[i] for i in members], prompt=self.config.doc_prompt,
                    batch_size=batch_size, progress=progress,
                    max_length=self.config.doc_max_length)
            for row, emb in zip(members, embedded):
                with torch.inference_mode():
                    states = torch.from_numpy(np.ascontiguousarray(self._kept(emb)))
                    projected = self.project(self._center(states, lang))
                out[row] = np.ascontiguousarray(projected.cpu().numpy(), dtype=np.float32)
        return out

    def _kept(self, emb) -> np.ndarray:
        """A document's subword states after the skiplist (its pooled vector when no subword
        is left: an empty or whitespace-only text stays searchable)."""
        vectors = emb.vectors
        if self.config.skiplist and len(vectors):
            keep = np.array([not is_punctuation(emb.text[a:b]) for a, b in emb.offsets])
            if keep.any():
                vectors = vectors[keep]
        return vectors if len(vectors) else emb.pooled[None]

    def project(self, states):
        """Projection (when the encoder has one) and L2 normalisation of token states;
        differentiable outside inference mode."""
        import torch

        if self.projection is not None:
            states = self.projection(states.to(self.projection.weight.device))
        return torch.nn.functional.normalize(states.float(), dim=-1)

    # ------------------------------------------------------------------ saving
    def save(self, folder: str | Path) -> Path:
        """``colbert.json`` (config, backbone reference and checksum),
        ``projection.safetensors`` and ``adapters/<lang>/`` per language adapter, written
        atomically; the backbone weights stay where they are (an installed model or a
        folder)."""
        from safetensors.torch import save_file

        from .. import __version__
        from ..index.manifest import atomic_directory, check_replaceable

        folder = Path(folder)
        check_replaceable(folder, CONFIG_FILE, "a ColBERT encoder")
        with atomic_directory(folder) as tmp:
            if self.projection is not None:
                save_file({"weight": self.projection.weight.detach().cpu().contiguous()},
                          str(tmp / PROJECTION_FILE))
            for lang in self.config.adapters:
                self.adapters.save(lang, tmp / ADAPTERS_DIR / lang)
            if self.language_means:
                save_file({lang: mean.detach().cpu().contiguous()
                           for lang, mean in self.language_means.items()}, str(tmp / MEANS_FILE))
            record = {"format": FORMAT, "xapps_version": __version__,
                      "config": dataclasses.asdict(self.config),
                      "backbone": {"name": self.backbone.name, "sha256": self.backbone.sha256},
                      "identity": self.identity}
            if self._identity_backbone is not None:
                record["identity_backbone"] = self._identity_backbone
            # sha256 of every weight file and of the record itself: damage reads as damage.
            record = seal(record, tmp)
            (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device: str | None = None,
             dtype: str | None = None, backbone: str | None = None) -> ColBERTEncoder:
        """Load a saved encoder (and its language adapters) offline, after checking every
        file against the checksums its colbert.json records (E222 names a damaged file).

        ``backbone`` loads the backbone from another place (the folder moved, or another
        machine) than the one recorded; its weights must be the recorded ones (E224)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)

        def damaged(reason: str) -> ModelError:
            return ModelError(Errors.E222.format(path=folder, reason=reason))

        def not_encoder(reason: str) -> ModelError:
            return ModelError(Errors.E225.format(path=folder, reason=reason))

        if not folder.is_dir():
            raise not_encoder("no such folder" if not folder.exists() else "it is a file")
        if not (folder / CONFIG_FILE).is_file():
            raise not_encoder(f"it has no {CONFIG_FILE}")
        record = read_record(folder / CONFIG_FILE, damaged)
        if record.get("format") != FORMAT:
            raise not_encoder(f"{CONFIG_FILE} has format {record.get('format')!r}, not "
                              f"{FORMAT!r}")
        verify_record_files(record, folder, damaged)
        try:
            config = ColBERTConfig(**record["config"])
        except (TypeError, KeyError) as exc:
            raise damaged(f"{CONFIG_FILE} holds no usable config ({exc})") from None
        saved_backbone = config.backbone
        if backbone:
            config = dataclasses.replace(config, backbone=str(backbone))
        try:
            projection = None
            if config.dim is not None:
                projection = load_file(str(folder / PROJECTION_FILE))["weight"]
            means = load_file(str(folder / MEANS_FILE)) if config.centered else None
        except (OSError, SafetensorError, KeyError) as exc:  # folders saved without checksums
            raise damaged(f"its weights cannot be read ({exc})") from None
        encoder = cls(config, device=device, dtype=dtype, projection=projection,
                      adapter_folder=folder / ADAPTERS_DIR, language_means=means)
        # The identity (which indexes record) keeps the backbone reference it was saved with,
        # so a backbone given from its new place still matches the indexes built before.
        encoder._identity_backbone = record.get("identity_backbone", saved_backbone)
        if encoder._identity_backbone == encoder.config.backbone:
            encoder._identity_backbone = None
        saved = (record.get("backbone") or {}).get("sha256")
        if saved and encoder.backbone.sha256 and saved != encoder.backbone.sha256:
            raise ModelError(Errors.E224.format(
                path=folder, saved_name=(record.get("backbone") or {}).get("name"),
                saved=saved[:12], given=config.backbone, found=encoder.backbone.sha256[:12]))
        return encoder

    def __repr__(self) -> str:
        adapters = f", adapters={self.config.adapters}" if self.config.adapters else ""
        return (f"ColBERTEncoder({self.config.backbone!r}, dim={self.dim}, "
                f"query_length={self.config.query_length}{adapters})")


def _check_texts(texts: Sequence[str], method: str) -> list[str]:
    if isinstance(texts, str):
        raise InputError(Errors.E074.format(what=f"{method} texts", value=texts[:40],
                                            expected="a list of strings; wrap one text: [text]"))
    texts = list(texts)
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(Errors.E074.format(what=f"{method} text at row {row}",
                                                value=type(text).__name__, expected="a str"))
    return texts


def _orthogonal(rows: int, cols: int, generator) -> Any:
    """A (rows, cols) matrix with orthonormal rows (rows <= cols) or columns, seeded."""
    import torch

    gauss = torch.randn(max(rows, cols), min(rows, cols), generator=generator)
    q, _ = torch.linalg.qr(gauss)
    return q.T.contiguous() if rows <= cols else q.contiguous()
