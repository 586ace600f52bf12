"""An MT model as a second opinion on span pairs, and as the translator for translate-train.

Any Hugging Face seq2seq model works (Marian, M2M100, NLLB, mT5/mBART fine-tuned for MT).
Multilingual models need their language codes (NLLB: "eng_Latn", "spa_Latn"; M2M100: "en",
"es"): they set the tokenizer's source/target language and the first generated token. With
codes, the model also scores the reverse direction, and a span pair's score is the mean of
both directions' per-token probabilities (NMTScore's translation cross-likelihood, which
is symmetric and length-normalised); a one-direction model (Marian) scores forward only.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import Errors, ModelError


class Translator:
    def __init__(self, model: str, *, source_lang: str | None = None,
                 target_lang: str | None = None, device: str | None = None,
                 batch_size: int = 16, num_beams: int = 4, max_new_tokens: int = 256) -> None:
        from ..backbone import load_backbone

        self.backbone = load_backbone(model, device=device)
        if not self.backbone.is_seq2seq:
            raise ModelError(Errors.E150.format(model=model,
                                                model_type=self.backbone.config.model_type))
        self.model = self.backbone.model
        self.tokenizer = self.backbone.tokenizer
        self.source_lang, self.target_lang = source_lang, target_lang
        self.batch_size, self.num_beams, self.max_new_tokens = batch_size, num_beams, max_new_tokens

    @property
    def bidirectional(self) -> bool:
        return bool(self.source_lang and self.target_lang)

    def translate(self, texts: Sequence[str]) -> list[str]:
        """Beam-search translations of ``texts``, in order, batched by length."""
        import torch

        self._set_langs(self.source_lang, self.target_lang)
        extra = {}
        bos = self._lang_token(self.target_lang)
        if bos is not None:
            extra["forced_bos_token_id"] = bos
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[str] = [""] * len(texts)
        with torch.inference_mode():
            for b in range(0, len(order), self.batch_size):
                idx = order[b:b + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                                     truncation=True).to(self.backbone.device)
                gen = self.model.generate(**enc, num_beams=self.num_beams,
                                          max_new_tokens=self.max_new_tokens, **extra)
                for i, text in zip(idx, self.tokenizer.batch_decode(gen,
                                                                    skip_special_tokens=True)):
                    out[i] = text.strip()
        return out

    def span_scores(self, sources: Sequence[str], targets: Sequence[str]) -> np.ndarray:
        """Per pair, the probability (geometric mean per token, in [0, 1]) of the target given
        the source, averaged with the reverse direction when the model has language codes."""
        forward = self._mean_log_prob(sources, targets, self.source_lang, self.target_lang)
        if not self.bidirectional:
            return np.exp(forward)
        backward = self._mean_log_prob(targets, sources, self.target_lang, self.source_lang)
        return (np.exp(forward) + np.exp(backward)) / 2

    def _mean_log_prob(self, sources: Sequence[str], targets: Sequence[str],
                       src_lang: str | None, tgt_lang: str | None) -> np.ndarray:
        import torch

        self._set_langs(src_lang, tgt_lang)
        out = np.zeros(len(sources))
        with torch.inference_mode():
            for b in range(0, len(sources), self.batch_size):
                enc = self.tokenizer(list(sources[b:b + self.batch_size]),
                                     text_target=list(targets[b:b + self.batch_size]),
                                     return_tensors="pt", padding=True, truncation=True)
                labels = enc.pop("labels")
                pad = self.tokenizer.pad_token_id
                mask = labels != pad if pad is not None else torch.ones_like(labels, dtype=bool)
                enc = enc.to(self.backbone.device)
                logits = self.model(**enc, labels=labels.masked_fill(~mask, -100).to(
                    self.backbone.device)).logits.float()
                logp = torch.log_softmax(logits, dim=-1).cpu()
                picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                picked = picked * mask
                out[b:b + len(labels)] = (picked.sum(1) / mask.sum(1).clamp(min=1)).numpy()
        return out

    def _set_langs(self, src: str | None, tgt: str | None) -> None:
        for attr, value in (("src_lang", src), ("tgt_lang", tgt)):
            if value is not None and hasattr(self.tokenizer, attr):
                setattr(self.tokenizer, attr, value)

    def _lang_token(self, lang: str | None) -> int | None:
        if lang is None:
            return None
        getter = getattr(self.tokenizer, "get_lang_id", None)  # M2M100
        if getter is not None:
            return int(getter(lang))
        token_id = self.tokenizer.convert_tokens_to_ids(lang)  # NLLB, mBART-50
        return None if token_id == self.tokenizer.unk_token_id else int(token_id)
