"""Cross-lingual fact-to-text generation (XF2T-style): facts in, a sentence in the target
language out, with faithfulness metrics.

- :mod:`.data`: readers (XAlign JSONL, WebNLG XML and JSONL, the Hindi layouts), entity
  normalisation;
- :mod:`.encoding`: structure-aware linearisation with role and fact ids;
- :mod:`.fact_embeddings`: fact-aware embeddings for any Hugging Face seq2seq model;
- :mod:`.retrieval`: the retrieval-and-relexicalise generator (no training);
- :mod:`.evaluate`: BLEU, chrF++, fact coverage, hallucination rate;
- :mod:`.component`: the ``fact2text`` spaCy component.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..artifacts import read_cfg
from ..errors import Errors, InputError


def load_generator(folder: str | os.PathLike):
    """A saved generator, whichever kind its cfg.json names; its files are checked against
    the sha256 in cfg.json before any model is loaded (E235 names a damaged one)."""
    from .retrieval import CFG_FILE, KIND, RetrievalGenerator

    folder = Path(folder)
    cfg = read_cfg(folder, lambda reason: InputError(Errors.E192.format(path=folder,
                                                                       reason=reason)), CFG_FILE)
    kind = cfg.get("kind")
    if kind == KIND:
        return RetrievalGenerator.load(folder, cfg)
    from .seq2seq import KIND as SEQ2SEQ
    from .seq2seq import Seq2SeqGenerator

    if kind == SEQ2SEQ:
        return Seq2SeqGenerator.load(folder, cfg)
    raise InputError(Errors.E192.format(path=folder, reason=f"unknown generator kind {kind!r}"))


def generate_detailed(generator, fact_sets, lang: str):
    """:class:`~.retrieval.Generation` per fact set from any generator (a trained one has no
    fallbacks to report)."""
    from .retrieval import Generation

    if hasattr(generator, "generate_detailed"):
        return generator.generate_detailed(fact_sets, lang)
    return [Generation(text) for text in generator.generate(fact_sets, lang)]
