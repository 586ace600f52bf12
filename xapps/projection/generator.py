"""Target-span candidates from a generator model (T-Projection's first step).

A seq2seq model (mT5 in T-Projection) is fine-tuned on labelled source-language sentences to
write, given ``"<label>: <sentence>"``, the spans of that label (``"a ; b"``). Being
multilingual, it then proposes spans in the target sentence; every proposal found there on
word boundaries becomes a candidate with the model's sequence probability as its generator
score (candidates.py's word runs get 0 from it), including runs longer than the word-run
length limit. Fine-tuning (:func:`train_generator`, ``xapps projection train-generator``)
checkpoints to ``<out>.partial`` and resumes after an interruption.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Errors, InputError, ModelError

logger = logging.getLogger("xapps")

SEPARATOR = " ; "
GENERATOR_FILE = "generator.json"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


def prompt(label: str, text: str) -> str:
    return f"{label}: {text}"


def generator_examples(sentences: Iterable[tuple[str, Sequence[Any]]]) -> list[tuple[str, str]]:
    """(prompt, target) per label present in each (text, spans) sentence: the spans of that
    label in order, joined by ``SEPARATOR``. Spans need ``start``, ``end`` and ``label``."""
    out = []
    for text, spans in sentences:
        by_label: dict[str, list[str]] = {}
        for span in sorted(spans, key=lambda s: (s.start, s.end)):
            by_label.setdefault(span.label, []).append(text[span.start:span.end])
        out += [(prompt(label, text), SEPARATOR.join(texts)) for label, texts in
                sorted(by_label.items())]
    return out


def match_phrase(text: str, words: Sequence[tuple[int, int]], phrase: str) -> list[tuple[int, int]]:
    """Every occurrence of ``phrase`` in ``text`` that starts and ends on word boundaries, as
    [first word, last word + 1)."""
    phrase = phrase.strip()
    if not phrase:
        return []
    starts = {s: i for i, (s, _) in enumerate(words)}
    ends = {e: i for i, (_, e) in enumerate(words)}
    found, at = [], text.find(phrase)
    while at >= 0:
        end = at + len(phrase)
        if at in starts and end in ends:
            found.append((starts[at], ends[end] + 1))
        at = text.find(phrase, at + 1)
    return found


class CandidateGenerator:
    """A fine-tuned seq2seq model proposing spans of a label in a sentence."""

    def __init__(self, model: str, *, device: str | None = None, num_candidates: int = 4,
                 max_new_tokens: int = 48, batch_size: int = 16) -> None:
        from ..backbone import load_backbone

        self.backbone = load_backbone(model, device=device)
        if not self.backbone.is_seq2seq:
            raise ModelError(Errors.E150.format(model=model,
                                                model_type=self.backbone.config.model_type))
        self.num_candidates, self.max_new_tokens = num_candidates, max_new_tokens
        self.batch_size = batch_size

    def propose(self, texts: Sequence[str], labels: Sequence[str]) -> list[dict[str, float]]:
        """Per (text, label): generated phrase -> probability (the best beam that wrote it)."""
        import torch

        model, tok = self.backbone.model, self.backbone.tokenizer
        out: list[dict[str, float]] = []
        with torch.inference_mode():
            for b in range(0, len(texts), self.batch_size):
                prompts = [prompt(lab, t) for t, lab in zip(texts[b:b + self.batch_size],
                                                            labels[b:b + self.batch_size])]
                enc = tok(prompts, return_tensors="pt", padding=True, truncation=True).to(
                    self.backbone.device)
                gen = model.generate(**enc, num_beams=self.num_candidates,
                                     num_return_sequences=self.num_candidates,
                                     max_new_tokens=self.max_new_tokens, output_scores=True,
                                     return_dict_in_generate=True)
                decoded = tok.batch_decode(gen.sequences, skip_special_tokens=True)
                probs = torch.exp(gen.sequences_scores.float()).cpu().numpy()
                for i in range(len(prompts)):
                    phrases: dict[str, float] = {}
                    for j in range(i * self.num_candidates, (i + 1) * self.num_candidates):
                        for phrase in decoded[j].split(SEPARATOR.strip()):
                            phrase = phrase.strip()
                            if phrase:
                                phrases[phrase] = max(phrases.get(phrase, 0.0), float(probs[j]))
                    out.append(phrases)
        return out


# ------------------------------------------------------------------------------ training
@dataclass
class GeneratorTrainingConfig:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 3e-4
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_source_length: int = 256
    max_target_length: int = 64
    checkpoint_every: int = 200
    seed: int = 0


def train_generator(examples: Sequence[tuple[str, str]], model: str, out: str | Path,
                    config: GeneratorTrainingConfig | None = None, *,
                    device: str | None = None, resume: bool = True, progress: bool = True,
                    callback: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune the seq2seq ``model`` (folder or hub name) on (prompt, target) examples
    (:func:`generator_examples`) and save it to ``out`` (a transformers folder plus
    generator.json). Returns the training record."""
    import torch
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ..backbone import quiet_transformers, resolve_device
    from ..fileio import atomic_write_text
    from ..training import (
        adamw,
        distinct_batches,
        linear_warmup,
        optimizer_checkpoint,
        read_resume_state,
        remove_tree,
        restore_optimizer,
        take_step,
        write_resume_state,
    )

    config = config or GeneratorTrainingConfig()
    examples = list(examples)
    if len(examples) < config.batch_size:
        raise InputError(Errors.E151.format(n=len(examples), batch_size=config.batch_size))
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    resuming = resume and (partial / STATE_FILE).exists()
    if not resuming:
        remove_tree(partial)
    # checked before the checkpoint's weights load: E239 names a damaged file, E152 a run
    # started with another config
    state = read_resume_state(partial / STATE_FILE, config, Errors.E152) if resuming else None
    dev = resolve_device(device)
    source = str(partial / "model") if resuming else model
    try:
        tok = AutoTokenizer.from_pretrained(model)
        with quiet_transformers():  # transformers' load bar and report only with -vv
            net = AutoModelForSeq2SeqLM.from_pretrained(source, dtype=torch.float32).to(dev)
    except OSError as exc:
        from ..models import store

        raise ModelError(Errors.E020.format(name=model, reason=str(exc).splitlines()[0],
                                            installed=store.installed_names())) from exc
    except ValueError as exc:  # a config AutoModelForSeq2SeqLM does not map: not seq2seq
        raise ModelError(Errors.E150.format(model=model, model_type=str(exc).splitlines()[0])
                         ) from exc
    net.train()
    optimizer = adamw(net.named_parameters(), config.lr, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_warmup(config.steps, round(config.warmup * config.steps)))
    record: dict[str, Any] = {"loss": [], "step": 0, "seconds": 0.0}
    if state is not None:
        record = state["record"]
        restore_optimizer(optimizer, scheduler, load_file(str(partial / OPTIMIZER_FILE)), state)
        logger.info("Resuming generator training at step %d of %d", record["step"], config.steps)
    rng = random.Random(config.seed)
    batches = distinct_batches(len(examples), config.batch_size, rng)
    for _ in range(record["step"]):  # the same data order as an uninterrupted run
        next(batches)
    torch.manual_seed(config.seed + record["step"])
    params = [p for p in net.parameters() if p.requires_grad]
    started = time.perf_counter() - record["seconds"]
    bar = tqdm(total=config.steps, initial=record["step"], desc="training generator",
               unit="step", disable=not progress)
    try:
        while record["step"] < config.steps:
            chosen = [examples[i] for i in next(batches)]
            enc = tok([p for p, _ in chosen], max_length=config.max_source_length,
                      truncation=True, padding=True, return_tensors="pt")
            labels = tok(text_target=[t for _, t in chosen], max_length=config.max_target_length,
                         truncation=True, padding=True, return_tensors="pt")["input_ids"]
            labels = labels.masked_fill(labels == tok.pad_token_id, -100)
            loss = net(**enc.to(dev), labels=labels.to(dev)).loss
            take_step(loss, optimizer, scheduler, params, record, started, bar, callback)
            if record["step"] % config.checkpoint_every == 0 and record["step"] < config.steps:
                with quiet_transformers():  # no "Writing model shards" bar per checkpoint
                    net.save_pretrained(partial / "model")
                moments, optimizer_state = optimizer_checkpoint(optimizer, scheduler)
                save_file(moments, str(partial / OPTIMIZER_FILE))
                write_resume_state(partial / STATE_FILE, {
                    "config": dataclasses.asdict(config), "record": record, **optimizer_state})
    finally:
        bar.close()
    net.eval()
    with quiet_transformers():
        net.save_pretrained(out)
    tok.save_pretrained(out)
    record.update(config=dataclasses.asdict(config), examples=len(examples), base_model=model,
                  separator=SEPARATOR, prompt=prompt("{label}", "{text}"))
    atomic_write_text(out / GENERATOR_FILE, json.dumps(record, indent=1))
    remove_tree(partial)
    return record


def candidate_runs(proposals: dict[str, float], text: str,
                   words: Sequence[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """Word runs of the proposed phrases found in ``text``, each with its probability."""
    runs: dict[tuple[int, int], float] = {}
    for phrase, prob in proposals.items():
        for run in match_phrase(text, words, phrase):
            runs[run] = max(runs.get(run, 0.0), prob)
    return runs


def generator_scores(runs: dict[tuple[int, int], float], starts: np.ndarray,
                     ends: np.ndarray) -> np.ndarray:
    return np.array([runs.get((int(s), int(e)), 0.0) for s, e in zip(starts, ends)])
