"""Training the open-IE tagger: predicate and argument BIO cross-entropy, summed.

Each epoch visits every sentence once in a seeded order. After each epoch the trainable
weights (encoder layers and heads; the frozen embeddings are not copied) and the optimizer go
to ``<out>.partial``: an interrupted run resumes from the last finished epoch, and
``average_last`` > 1 averages the weights of the last epochs (checkpoint averaging).
Records with the same sentence text are merged first (see ``merge_same_text``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Errors, InputError
from .data import OIESentence, merge_same_text
from .model import OIEConfig, OIETagger

logger = logging.getLogger("xapps")

STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


@dataclass
class OIETrainingConfig:
    # The benchmarked setting (benchmarks/README.md): 8 epochs at 1e-4, the last 2 averaged.
    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-4
    head_lr: float = 1e-3
    warmup: float = 0.1
    weight_decay: float = 0.01
    average_last: int = 2
    seed: int = 0
    #: "all": encoder and heads; "language_modules": only the tagger's language modules (at
    #: ``head_lr``), the shared encoder and heads frozen (stage 2 of MT4CrossOIE's tuning).
    train: str = "all"


def train_oie(sentences: Sequence[OIESentence], out: str | Path,
              config: OIETrainingConfig | None = None, *, tagger: OIETagger | None = None,
              model_config: OIEConfig | None = None, device: str | None = None,
              resume: bool = True, progress: bool = True,
              callback: Callable[[dict], None] | None = None) -> dict:
    """Train ``tagger`` (default: a new one from ``model_config``) and save it to ``out``."""
    import torch
    from safetensors.torch import load_file, save_file
    from tqdm.auto import tqdm

    from ..training import (
        linear_warmup,
        optimizer_checkpoint,
        read_resume_state,
        remove_tree,
        restore_optimizer,
        take_step,
        write_resume_state,
    )

    config = config or OIETrainingConfig()
    sentences = [s for s in merge_same_text(sentences) if s.tuples]
    if len(sentences) < config.batch_size:
        raise InputError(Errors.E172.format(n=len(sentences), batch_size=config.batch_size))
    tagger = tagger or OIETagger(model_config, device=device)
    if config.train not in ("all", "language_modules"):
        raise ValueError(f"train must be 'all' or 'language_modules', not {config.train!r}")
    if config.train == "language_modules":
        _freeze_shared(tagger, sentences)
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    params = [p for _, p in tagger.named_parameters() if p.requires_grad]
    # Heads and language modules are new weights: they learn at head_lr.
    head_ids = {id(p) for p in tagger.heads.parameters()}
    if tagger.modules is not None:
        head_ids |= {id(p) for p in tagger.modules.params.parameters()}
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in params if id(p) not in head_ids], "lr": config.lr},
         {"params": [p for p in params if id(p) in head_ids], "lr": config.head_lr}],
        weight_decay=config.weight_decay)
    per_epoch = math.ceil(len(sentences) / config.batch_size)
    total = per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_warmup(total, round(config.warmup * total)))
    record: dict[str, Any] = {"loss": [], "step": 0, "epoch": 0, "seconds": 0.0,
                              "checkpoints": []}
    trainable = {n: p for n, p in tagger.named_parameters() if p.requires_grad}
    if resume and (partial / STATE_FILE).exists():
        state = read_resume_state(partial / STATE_FILE, config, Errors.E173)
        record = state["record"]
        weights = load_file(str(partial / record["checkpoints"][-1]))
        with torch.no_grad():
            for name, p in trainable.items():
                p.copy_(weights[name])
        restore_optimizer(optimizer, scheduler, load_file(str(partial / OPTIMIZER_FILE)), state)
        logger.info("Resuming open-IE training after epoch %d of %d", record["epoch"],
                    config.epochs)
    else:
        remove_tree(partial)
    started = time.perf_counter() - record["seconds"]
    bar = tqdm(total=total, initial=record["step"], desc="training open IE", unit="step",
               disable=not progress)
    tagger.train()
    try:
        while record["epoch"] < config.epochs:
            order = list(range(len(sentences)))
            random.Random(config.seed + record["epoch"]).shuffle(order)
            torch.manual_seed(config.seed + record["epoch"])
            for b in range(0, len(order), config.batch_size):
                batch = [sentences[i] for i in order[b:b + config.batch_size]]
                loss = batch_loss(tagger, batch)
                take_step(loss, optimizer, scheduler, params, record, started, bar, callback)
            record["epoch"] += 1
            name = f"epoch-{record['epoch']:03d}.safetensors"
            partial.mkdir(parents=True, exist_ok=True)
            save_file({n: p.detach().cpu().contiguous() for n, p in trainable.items()},
                      str(partial / name))
            record["checkpoints"] = (record["checkpoints"] + [name])[-config.average_last:]
            for old in partial.glob("epoch-*.safetensors"):
                if old.name not in record["checkpoints"]:
                    old.unlink()
            moments, optimizer_state = optimizer_checkpoint(optimizer, scheduler)
            save_file(moments, str(partial / OPTIMIZER_FILE))
            write_resume_state(partial / STATE_FILE, {"config": dataclasses.asdict(config),
                                                      "record": record, **optimizer_state})
    finally:
        bar.close()
        tagger.eval()
    if len(record["checkpoints"]) > 1:
        loaded = [load_file(str(partial / n)) for n in record["checkpoints"]]
        with torch.no_grad():
            for name, p in trainable.items():
                p.copy_(sum(w[name] for w in loaded) / len(loaded))
    record.update(config=dataclasses.asdict(config), sentences=len(sentences),
                  tuples=sum(len(s.tuples) for s in sentences))
    tagger.save(out, record=record)
    remove_tree(partial)
    return record


def _freeze_shared(tagger: OIETagger, sentences: Sequence[OIESentence]) -> None:
    """Only the language modules train; every sentence must be routed to one."""
    if tagger.modules is None:
        raise InputError(Errors.E182.format(
            where="train_oie", languages="the training sentences",
            reason="that has none",
            fix="Load the English tagger and call add_language_modules(['de', ...]) first "
                "(`xapps oie train --init DIR --languages de,...`)."))
    unrouted = sorted({str(s.lang) for s in sentences if tagger.modules.module_for(s.lang) < 0})
    if unrouted:
        raise InputError(Errors.E182.format(
            where="train_oie", languages=tagger.modules.languages,
            reason=f"from sentences in {', '.join(unrouted)} (no module of theirs)",
            fix="Give every training record a \"lang\" that has a module, or add modules for "
                "those languages."))
    for p in [*tagger.model.parameters(), *tagger.heads.parameters()]:
        p.requires_grad_(False)


def batch_loss(tagger: OIETagger, batch: Sequence[OIESentence]):
    """Predicate tagging loss over all words plus argument tagging loss over every
    (sentence, tuple) of the batch."""
    import torch
    import torch.nn.functional as F

    states, mask = tagger.word_states([s.text for s in batch], [s.words for s in batch],
                                      lang=[s.lang for s in batch])
    n = states.shape[1]
    pred_gold = torch.full((len(batch), n), -100, dtype=torch.long)
    predicates, arg_gold = [], []
    for b, sentence in enumerate(batch):
        pred_gold[b, :len(sentence.words)] = torch.tensor(sentence.predicate_tags())
        for t, (span, _) in enumerate(sentence.tuples):
            predicates.append((b, span))
            row = torch.full((n,), -100, dtype=torch.long)
            row[:len(sentence.words)] = torch.tensor(sentence.argument_tags(t))
            arg_gold.append(row)
    logits = tagger.predicate_logits(states)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                           pred_gold.reshape(-1).to(logits.device), ignore_index=-100)
    arg_logits = tagger.argument_logits(states, mask, predicates)
    arg_gold_t = torch.stack(arg_gold).to(arg_logits.device)
    return loss + F.cross_entropy(arg_logits.reshape(-1, arg_logits.shape[-1]),
                                  arg_gold_t.reshape(-1), ignore_index=-100)
