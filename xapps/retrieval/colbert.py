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
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Errors, InputError, ModelError

CONFIG_FILE = "colbert.json"
PROJECTION_FILE = "projection.safetensors"
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

    def __post_init__(self) -> None:
        checks = (("dim", self.dim, 1, True), ("query_length", self.query_length, 4, False),
                  ("doc_max_length", self.doc_max_length, 3, False))
        for what, value, low, optional in checks:
            if value is None and optional:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InputError(Errors.E074.format(what=f"ColBERTConfig.{what}", value=value,
                                                    expected=f"an integer >= {low}"))


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
                 dtype: str | None = None, projection: Any = None) -> None:
        import torch

        from ..backbone import load_backbone

        self.config = config or ColBERTConfig()
        self.backbone = load_backbone(self.config.backbone, device=device, dtype=dtype)
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

    # ------------------------------------------------------------------ identity
    @property
    def dim(self) -> int:
        return self.config.dim or self.backbone.hidden_size

    @property
    def identity(self) -> dict:
        """What a multi-vector index records so it refuses tokens from another encoder: the
        backbone's weights and this projection together."""
        digest = hashlib.sha256((self.backbone.sha256 or self.backbone.name).encode())
        if self.projection is not None:
            digest.update(self.projection.weight.detach().cpu().float().numpy().tobytes())
        digest.update(json.dumps(dataclasses.asdict(self.config), sort_keys=True).encode())
        return {"name": f"colbert:{self.backbone.name}:{self.dim}", "sha256": digest.hexdigest(),
                "dim": self.dim}

    # ------------------------------------------------------------------ encoding
    def encode_queries(self, texts: Sequence[str], *, batch_size: int = 64) -> list[np.ndarray]:
        """One (query_length, dim) matrix per query: marker + text, cut to the query length,
        padded with mask tokens that the query attends to."""
        import torch

        texts = _check_texts(texts, "encode_queries")
        if not texts:
            return []
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
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                input_ids = torch.tensor(rows[start:start + batch_size], dtype=torch.long)
                mask = torch.ones_like(input_ids)
                states = self._project(self.backbone.run(input_ids, mask))
                out.extend(states.cpu().numpy())
        return [np.ascontiguousarray(q, dtype=np.float32) for q in out]

    def encode_documents(self, texts: Sequence[str], *, batch_size: int = 32,
                         progress: bool | None = None) -> list[np.ndarray]:
        """One (kept subwords, dim) matrix per document; long documents are windowed, never
        truncated; punctuation-only subwords are dropped when ``skiplist`` is on (a document
        of punctuation only keeps its subwords, so it stays searchable)."""
        import torch

        texts = _check_texts(texts, "encode_documents")
        embedded = self.backbone.embed_tokens(texts, prompt=self.config.doc_prompt,
                                              batch_size=batch_size, progress=progress,
                                              max_length=self.config.doc_max_length)
        out = []
        for emb in embedded:
            vectors = emb.vectors
            if self.config.skiplist and len(vectors):
                keep = np.array([not is_punctuation(emb.text[a:b]) for a, b in emb.offsets])
                if keep.any():
                    vectors = vectors[keep]
            if not len(vectors):  # an empty or whitespace-only text: its pooled vector
                vectors = emb.pooled[None]
            with torch.inference_mode():
                projected = self._project(torch.from_numpy(np.ascontiguousarray(vectors)))
            out.append(np.ascontiguousarray(projected.cpu().numpy(), dtype=np.float32))
        return out

    def _project(self, states):
        import torch

        if self.projection is not None:
            states = self.projection(states.to(self.projection.weight.device))
        return torch.nn.functional.normalize(states.float(), dim=-1)

    # ------------------------------------------------------------------ saving
    def save(self, folder: str | Path) -> Path:
        """``colbert.json`` (config, backbone reference and checksum) and
        ``projection.safetensors``, written atomically; the backbone weights stay where they
        are (an installed model or a folder)."""
        from safetensors.torch import save_file

        from .. import __version__
        from ..index.manifest import atomic_directory

        folder = Path(folder)
        with atomic_directory(folder) as tmp:
            if self.projection is not None:
                save_file({"weight": self.projection.weight.detach().cpu().contiguous()},
                          str(tmp / PROJECTION_FILE))
            record = {"format": FORMAT, "xapps_version": __version__,
                      "config": dataclasses.asdict(self.config),
                      "backbone": {"name": self.backbone.name, "sha256": self.backbone.sha256},
                      "identity": self.identity}
            (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, device: str | None = None,
             dtype: str | None = None) -> ColBERTEncoder:
        """Load a saved encoder offline; refuses one whose backbone weights changed."""
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            record = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
            if record.get("format") != FORMAT:
                raise ValueError(f"format is {record.get('format')!r}, not {FORMAT!r}")
            config = ColBERTConfig(**record["config"])
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"'{folder}' is not a saved xapps ColBERT encoder ({exc}). Save one "
                             "with ColBERTEncoder.save(folder).") from exc
        projection = None
        if config.dim is not None:
            projection = load_file(str(folder / PROJECTION_FILE))["weight"]
        encoder = cls(config, device=device, dtype=dtype, projection=projection)
        saved = (record.get("backbone") or {}).get("sha256")
        if saved and encoder.backbone.sha256 and saved != encoder.backbone.sha256:
            raise ModelError(f"The encoder in '{folder}' was saved with backbone "
                             f"{config.backbone!r} of sha256 {saved[:12]}, but that name now "
                             f"loads weights {encoder.backbone.sha256[:12]}. Point the backbone "
                             "at the original weights or re-train the projection.")
        return encoder

    def __repr__(self) -> str:
        return (f"ColBERTEncoder({self.config.backbone!r}, dim={self.dim}, "
                f"query_length={self.config.query_length})")


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
