"""SapBERT-style self-alignment of the dense generator's encoder on a knowledge base.

Two names of one concept (across languages where the KB has translated aliases) should
encode close together and far from other concepts' names. Each step draws one name pair
from each of ``batch_size`` distinct concepts and minimises a symmetric InfoNCE loss over the
in-batch negatives (names spelled alike in two concepts are masked, not pushed apart). No
annotated mentions are needed: the KB is the training data, so this is fair to run before a
zero-shot evaluation on any corpus.

The result is an ordinary model folder (transformers weights, tokenizer, ``xapps_model.json``)
that :class:`~xapps.linking.candidates.DenseGenerator` takes as ``backbone``. Training
checkpoints to ``<out>.partial/`` every ``checkpoint_every`` steps (safetensors, no pickle)
and resumes from there after an interruption.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backbone import quiet_transformers
from ..errors import Errors, InputError

logger = logging.getLogger("xapps")

STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"


@dataclass
class AlignmentConfig:
    backbone: str = "me5-small"
    #: The prefix the dense generator encodes with (e5's symmetric "query: ").
    prompt: str | None = "query"
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-5
    temperature: float = 0.05
    max_length: int = 32
    warmup: float = 0.1
    weight_decay: float = 0.01
    #: The word-embedding matrix is most of a multilingual model (96M of me5-small's 118M
    #: parameters); freezing it keeps every language's vocabulary intact and Adam's state small.
    freeze_embeddings: bool = True
    #: Share of pairs drawn across two languages when a concept has names in several.
    cross_lingual: float = 0.7
    seed: int = 0
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        for what in ("steps", "batch_size", "max_length", "checkpoint_every"):
            value = getattr(self, what)
            if not isinstance(value, int) or value < 1:
                raise InputError(Errors.E074.format(what=f"AlignmentConfig.{what}", value=value,
                                                    expected="an integer >= 1"))
        if self.batch_size < 2:
            raise InputError(Errors.E074.format(
                what="AlignmentConfig.batch_size", value=self.batch_size,
                expected="at least 2 (the other pairs of a batch are the negatives)"))
        for what, lo, hi in (("warmup", 0, 1), ("cross_lingual", 0, 1.000001)):
            value = getattr(self, what)
            if not lo <= value < hi:
                raise InputError(Errors.E074.format(what=f"AlignmentConfig.{what}", value=value,
                                                    expected=f"a fraction in [{lo}, 1]"))
        if not self.temperature > 0:
            raise InputError(Errors.E074.format(what="AlignmentConfig.temperature",
                                                value=self.temperature, expected="> 0"))


def synonym_groups(kb) -> list[list[tuple[str, str | None]]]:
    """Per concept with at least two distinct names: its (name, language) pairs, one per
    case-insensitive spelling."""
    groups = []
    for concept in kb.concepts:
        seen: dict[str, tuple[str, str | None]] = {}
        for alias in concept.names():
            text = alias.text.strip()
            if text and text.lower() not in seen:
                seen[text.lower()] = (text, alias.lang)
        if len(seen) >= 2:
            groups.append(list(seen.values()))
    return groups


def sample_pair(names: list[tuple[str, str | None]], rng: random.Random,
                cross_lingual: float) -> tuple[str, str]:
    """Two different names of one concept; from two languages with probability
    ``cross_lingual`` when the concept has names in more than one (None = the KB's main
    language, usually English)."""
    langs = {lang for _, lang in names}
    if len(langs) > 1 and rng.random() < cross_lingual:
        first, second = rng.sample(sorted(langs, key=str), 2)
        a = rng.choice([n for n, lang in names if lang == first])
        b = rng.choice([n for n, lang in names if lang == second])
        return a, b
    a, b = rng.sample(names, 2)
    return a[0], b[0]


def info_nce(a: Any, b: Any, temperature: float, same_text: Any | None = None) -> Any:
    """Symmetric InfoNCE over a batch of L2-normalised pairs ``a[i] ~ b[i]``; entries of
    ``same_text`` (i != j with equal spelling) are excluded from the negatives."""
    import torch

    logits = a @ b.T / temperature
    if same_text is not None:
        logits = logits.masked_fill(same_text, float("-inf"))
    target = torch.arange(len(a), device=a.device)
    return (torch.nn.functional.cross_entropy(logits, target)
            + torch.nn.functional.cross_entropy(logits.T, target)) / 2


class _Encoder:
    """The trainable copy of a backbone: float32 weights, mean pooling, its prompt prefix."""

    def __init__(self, config: AlignmentConfig, source: str, device) -> None:
        from ..backbone import load_trainable, prompt_prefixes, read_model_info

        _, self.tokenizer, model = load_trainable(source, name=config.backbone)
        if config.freeze_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        self.model = model.to(device)
        self.device = device
        self.info = read_model_info(Path(source))
        prefixes = prompt_prefixes(config.backbone, Path(source), self.info)
        self.prefix = prefixes.get(config.prompt, "") if config.prompt else ""
        self.max_length = config.max_length

    def __call__(self, texts: list[str]):
        import torch

        from ..backbone import mean_pool

        enc = self.tokenizer([self.prefix + t for t in texts], padding=True, truncation=True,
                             max_length=self.max_length, return_tensors="pt").to(self.device)
        states = self.model(input_ids=enc["input_ids"],
                            attention_mask=enc["attention_mask"]).last_hidden_state
        return torch.nn.functional.normalize(mean_pool(states, enc["attention_mask"]), dim=-1)


def train_alignment(kb, out: str | Path, config: AlignmentConfig | None = None, *,
                    device: str | None = None, resume: bool = True, progress: bool = True,
                    callback: Callable[[dict], None] | None = None) -> dict:
    """Fine-tune ``config.backbone`` on the synonyms of ``kb`` and save it to ``out``.

    Returns the training record (also written into ``out/xapps_model.json``): steps, seconds,
    the loss per step and how many concepts and names the KB offered.
    """
    import torch
    from tqdm.auto import tqdm

    from ..backbone import _resolve_source, resolve_device
    from ..training import adamw, linear_warmup, remove_tree, take_step

    config = config or AlignmentConfig()
    out = Path(out)
    groups = synonym_groups(kb)
    if len(groups) < config.batch_size:
        raise InputError(Errors.E085.format(n=len(groups), kb=getattr(kb, "name", "kb"),
                                            batch_size=config.batch_size))
    source, _ = _resolve_source(config.backbone)
    dev = resolve_device(device)
    encoder = _Encoder(config, source, dev)
    params = [p for p in encoder.model.parameters() if p.requires_grad]
    optimizer = adamw(encoder.model.named_parameters(), config.lr, config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_warmup(config.steps, round(config.warmup * config.steps)))
    partial = out.with_name(out.name + ".partial")
    record: dict[str, Any] = {"loss": [], "step": 0, "seconds": 0.0}
    if resume and (partial / STATE_FILE).exists():
        record = _load_checkpoint(partial, config, encoder, optimizer, scheduler)
        logger.info("Resuming alignment at step %d of %d from %s", record["step"],
                    config.steps, partial)
    elif partial.exists():
        remove_tree(partial)
    rng = random.Random(config.seed)
    # The sampler is replayed up to the resumed step, so a resumed run sees the same batches.
    batches = _batches(groups, config, rng)
    for _ in range(record["step"]):
        next(batches)
    torch.manual_seed(config.seed + record["step"])
    encoder.model.train()
    started = time.perf_counter() - record["seconds"]
    bar = tqdm(total=config.steps, initial=record["step"], desc="aligning encoder on KB names",
               unit="step", disable=not progress)
    try:
        while record["step"] < config.steps:
            left, right = next(batches)
            same = _same_text_mask(left, right).to(dev)
            loss = info_nce(encoder(left), encoder(right), config.temperature, same)
            take_step(loss, optimizer, scheduler, params, record, started, bar, callback)
            if (record["step"] % config.checkpoint_every == 0
                    and record["step"] < config.steps):
                _save_checkpoint(partial, config, encoder, optimizer, scheduler, record)
    finally:
        bar.close()
        encoder.model.eval()
    record.update({"concepts": len(groups), "names": sum(len(g) for g in groups),
                   "config": dataclasses.asdict(config)})
    _save_model(out, encoder, config, record)
    if partial.exists():
        remove_tree(partial)
    return record


def _batches(groups, config: AlignmentConfig, rng: random.Random):
    """Endless batches of one pair per distinct concept, each pass a fresh permutation."""
    from ..training import distinct_batches

    for chosen in distinct_batches(len(groups), config.batch_size, rng):
        pairs = [sample_pair(groups[i], rng, config.cross_lingual) for i in chosen]
        yield [a for a, _ in pairs], [b for _, b in pairs]


def _same_text_mask(left: list[str], right: list[str]):
    import torch

    keys_l = [t.lower() for t in left]
    keys_r = [t.lower() for t in right]
    return torch.tensor([[i != j and keys_l[i] == keys_r[j] for j in range(len(right))]
                         for i in range(len(left))], dtype=torch.bool)


def _save_model(out: Path, encoder: _Encoder, config: AlignmentConfig, record: dict) -> None:
    from .. import __version__
    from ..checksums import sha256_file
    from ..index.manifest import atomic_directory

    with atomic_directory(out) as tmp:
        with quiet_transformers():  # no "Writing model shards" bar
            encoder.model.save_pretrained(tmp, safe_serialization=True)
        encoder.tokenizer.save_pretrained(tmp)
        # A fresh record, not the base model's: its checksums describe other weights.
        info = {"name": out.name, "base_model": config.backbone,
                "pooling": encoder.info.get("pooling", "mean"),
                "normalize": True, "prefixes": encoder.info.get("prefixes"),
                "max_length": encoder.info.get("max_length"),
                "files": {"model.safetensors": sha256_file(tmp / "model.safetensors")},
                "trained_with": "xapps.linking.synonym_training", "xapps_version": __version__,
                "training": {k: v for k, v in record.items() if k != "loss"},
                "first_loss": record["loss"][0] if record["loss"] else None,
                "final_loss": record["loss"][-1] if record["loss"] else None}
        (tmp / "xapps_model.json").write_text(
            json.dumps({k: v for k, v in info.items() if v is not None}, indent=2) + "\n",
            encoding="utf-8")


def _save_checkpoint(partial: Path, config, encoder, optimizer, scheduler, record) -> None:
    """Weights, optimizer moments and the step, atomically (safetensors + JSON)."""
    from safetensors.torch import save_file

    from ..index.manifest import atomic_directory
    from ..training import optimizer_checkpoint, write_resume_state

    with atomic_directory(partial) as tmp:
        with quiet_transformers():
            encoder.model.save_pretrained(tmp, safe_serialization=True)
        tensors, optimizer_state = optimizer_checkpoint(optimizer, scheduler)
        save_file(tensors, str(tmp / OPTIMIZER_FILE))
        state = {"config": dataclasses.asdict(config), "record": record, **optimizer_state}
        write_resume_state(tmp / STATE_FILE, state)


def _load_checkpoint(partial: Path, config, encoder, optimizer, scheduler) -> dict:
    from safetensors.torch import load_file

    from ..training import read_resume_state, restore_optimizer

    state = read_resume_state(partial / STATE_FILE, config, Errors.E086)
    weights = load_file(str(partial / "model.safetensors"))
    _, unexpected = encoder.model.load_state_dict(weights, strict=False)
    if unexpected:
        raise InputError(Errors.E086.format(path=partial, changed="model weights"))
    restore_optimizer(optimizer, scheduler, load_file(str(partial / OPTIMIZER_FILE)), state)
    return state["record"]
