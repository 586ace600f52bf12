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

import json
import os
from pathlib import Path

from ..errors import Errors, InputError


def load_generator(folder: str | os.PathLike):
    """A saved generator, whichever kind its cfg.json names."""
    from .retrieval import CFG_FILE, KIND, RetrievalGenerator

    folder = Path(folder)
    cfg_path = folder / CFG_FILE
    if not cfg_path.is_file():
        raise InputError(Errors.E192.format(path=folder, reason=f"it has no {CFG_FILE}"))
    kind = json.loads(cfg_path.read_text(encoding="utf-8")).get("kind")
    if kind == KIND:
        return RetrievalGenerator.load(folder)
    from .seq2seq import KIND as SEQ2SEQ
    from .seq2seq import Seq2SeqGenerator

    if kind == SEQ2SEQ:
        return Seq2SeqGenerator.load(folder)
    raise InputError(Errors.E192.format(path=folder, reason=f"unknown generator kind {kind!r}"))
