"""Training a ColBERT encoder's projection (and per-language adapters): ``xapps retrieval train``.

Each step takes ``batch_size`` examples (query, positive, hard negatives) and minimises the
cross-entropy of the query's MaxSim scores over every document of the batch: its positive
against the other examples' positives and all hard negatives (in-batch + hard negatives, as
ColBERTv2). With a ``teacher`` (a single-vector model such as me5-small), the student's score
distribution is also pulled towards the teacher's cosine scores over the same documents
(KL distillation), so pseudo-pairs built from unlabeled text (:func:`pseudo_pairs`: inverse
cloze, or title -> body) are enough to train on.

What is trained is chosen by ``train``: the token projection on top of the frozen backbone
(cheap: the backbone runs without gradients), per-language LoRA adapters (each text routed by
its language, so texts in languages without an adapter keep the shared weights), or both.

Checkpoints (safetensors + JSON, no pickle) go to ``<out>.partial/`` every
``checkpoint_every`` steps; an interrupted run resumes from there, and the saved encoder is the
average of the last ``average_last`` checkpoints' trainable weights (checkpoint averaging).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Errors, InputError

logger = logging.getLogger("xapps")

STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
RECORD_FILE = "training.json"
TRAIN_OPTIONS = ("projection", "adapters", "projection+adapters")
PSEUDO_OPTIONS = ("ict", "title")


@dataclass
class Example:
    """One training row: a query, its positive, optional hard negatives and languages (only
    read when adapters are trained: they route each text)."""
    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    query_lang: str | None = None
    positive_lang: str | None = None
    negatives_lang: list[str | None] = field(default_factory=list)


@dataclass
class RetrievalTrainingConfig:
    steps: int = 500
    batch_size: int = 32
    #: Hard negatives used per example (the first ones of each row); rows with fewer use what
    #: they have.
    n_negatives: int = 1
    lr: float = 1e-3
    adapter_lr: float = 3e-4
    warmup: float = 0.1
    weight_decay: float = 0.0
    #: MaxSim sums ``query_length`` cosines, so scores span tens; CE runs on score / temperature.
    temperature: float = 1.0
    train: str = "projection"
    #: Languages that get a new (or continue their) LoRA adapter when adapters are trained.
    adapter_languages: list[str] = field(default_factory=list)
    teacher: str | None = None
    distill_weight: float = 1.0
    teacher_temperature: float = 0.02
    checkpoint_every: int = 100
    average_last: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for what in ("steps", "batch_size", "checkpoint_every", "average_last"):
            value = getattr(self, what)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(Errors.E074.format(what=f"RetrievalTrainingConfig.{what}",
                                                    value=value, expected="an integer >= 1"))
        if not isinstance(self.n_negatives, int) or self.n_negatives < 0:
            raise InputError(Errors.E074.format(what="RetrievalTrainingConfig.n_negatives",
                                                value=self.n_negatives,
                                                expected="an integer >= 0"))
        for what in ("lr", "adapter_lr", "temperature", "teacher_temperature"):
            value = getattr(self, what)
            if not isinstance(value, (int, float)) or value <= 0:
                raise InputError(Errors.E074.format(what=f"RetrievalTrainingConfig.{what}",
                                                    value=value, expected="a number > 0"))
        if not 0 <= self.warmup < 1:
            raise InputError(Errors.E074.format(what="RetrievalTrainingConfig.warmup",
                                                value=self.warmup, expected="0 <= warmup < 1"))
        if self.train not in TRAIN_OPTIONS:
            raise InputError(Errors.E083.format(value=self.train, options=TRAIN_OPTIONS))
        if "adapters" in self.train and not self.adapter_languages:
            raise InputError(Errors.E074.format(
                what="RetrievalTrainingConfig.adapter_languages", value=self.adapter_languages,
                expected=f"at least one language code when train={self.train!r} (which "
                         "languages get an adapter, e.g. ['de', 'sw'])"))
        if self.adapter_languages and "adapters" not in self.train:
            raise InputError(Errors.E074.format(
                what="RetrievalTrainingConfig.adapter_languages", value=self.adapter_languages,
                expected=f"no languages when train={self.train!r}, which trains no adapter "
                         "(use train='adapters' or 'projection+adapters')"))
        if self.average_last * self.checkpoint_every > self.steps and self.average_last > 1:
            raise InputError(Errors.E074.format(
                what="RetrievalTrainingConfig.average_last", value=self.average_last,
                expected=f"at most steps / checkpoint_every = "
                         f"{self.steps // self.checkpoint_every} checkpoints to average"))


# ---------------------------------------------------------------------------- data
def read_examples(path: str | Path) -> list[Example]:
    """Examples from a JSONL file of ``{"query": str, "positive": str, "negatives": [str],
    "query_lang"?, "positive_lang"?, "negatives_lang"?: [...]}`` rows (``lang`` sets all
    three languages at once). Errors name file:line."""
    from ..fileio import iter_json_lines, iter_lines

    path = Path(path)
    if not path.is_file():
        raise InputError(Errors.E004.format(path=path, reason="no such file"))
    examples = []
    def error(where: str, reason: str) -> InputError:
        return InputError(Errors.E120.format(where=where, reason=reason))

    for where, row in iter_json_lines(path, iter_lines(path, error)):
        examples.append(_example(row, where))
    if not examples:
        raise InputError(Errors.E120.format(where=path, reason="the file holds no rows"))
    return examples


def _example(row: Any, where: str) -> Example:
    def bad(reason: str) -> InputError:
        return InputError(Errors.E120.format(where=where, reason=reason))

    if not isinstance(row, dict):
        raise bad(f"the row is a {type(row).__name__}, not an object")
    for key in ("query", "positive"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise bad(f"{key!r} is missing or not a non-empty string")
    negatives = row.get("negatives") or []
    if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
        raise bad("'negatives' must be a list of strings")
    lang = row.get("lang")
    negatives_lang = row.get("negatives_lang") or [lang] * len(negatives)
    if not isinstance(negatives_lang, list) or len(negatives_lang) != len(negatives):
        raise bad("'negatives_lang' must list one language per negative")
    return Example(row["query"], row["positive"], negatives, row.get("query_lang", lang),
                   row.get("positive_lang", lang), negatives_lang)


_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")


def pseudo_pairs(records: Sequence[Any], mode: str = "ict", *, title_field: str = "title",
                 seed: int = 0) -> list[Example]:
    """Training pairs from unlabeled records (objects with ``.text`` and ``.meta``).

    ``"ict"`` (inverse cloze): one sentence of a multi-sentence text is the query, the rest of
    the text the positive. ``"title"``: the record's ``title_field`` is the query, its text the
    positive. Records that give no pair (one sentence; no title) are skipped. Language fields
    (``lang``) are carried over.
    """
    if mode not in PSEUDO_OPTIONS:
        raise InputError(Errors.E083.format(value=mode, options=PSEUDO_OPTIONS))
    rng = random.Random(seed)
    examples = []
    for record in records:
        lang = record.meta.get("lang")
        if mode == "title":
            title = record.meta.get(title_field)
            if isinstance(title, str) and title.strip() and record.text.strip():
                examples.append(Example(title, record.text, query_lang=lang,
                                        positive_lang=lang))
            continue
        sentences = [s for s in _SENTENCE_END.split(record.text.strip()) if s.strip()]
        if len(sentences) < 2:
            continue
        pick = rng.randrange(len(sentences))
        rest = " ".join(sentences[:pick] + sentences[pick + 1:])
        examples.append(Example(sentences[pick], rest, query_lang=lang, positive_lang=lang))
    return examples


# ---------------------------------------------------------------------------- model pieces
def query_scores(queries: Any, docs: Any, doc_mask: Any) -> Any:
    """MaxSim of every query against every document: (Q, Lq, d) x (D, Ld, d) -> (Q, D)."""
    import torch

    sim = torch.einsum("qid,ntd->qnit", queries, docs)
    return sim.masked_fill(~doc_mask[None, :, None, :], -1e4).amax(-1).sum(-1)


def contrastive_loss(scores: Any, temperature: float) -> Any:
    """Cross-entropy of each query's scores with its positive at column ``row index``."""
    import torch

    target = torch.arange(scores.shape[0], device=scores.device)
    return torch.nn.functional.cross_entropy(scores / temperature, target)


def distillation_loss(scores: Any, teacher: Any, temperature: float,
                      teacher_temperature: float) -> Any:
    """KL(teacher || student) between the score distributions over the same documents."""
    import torch

    target = torch.softmax(teacher / teacher_temperature, dim=-1)
    log_student = torch.log_softmax(scores / temperature, dim=-1)
    return torch.nn.functional.kl_div(log_student, target, reduction="batchmean")


class _Student:
    """Differentiable ColBERT encoding of one batch: the same inputs as
    :meth:`ColBERTEncoder.encode_queries` / ``encode_documents`` (documents cut to
    ``doc_max_length`` rather than windowed), routed through adapters per text."""

    def __init__(self, encoder, train_backbone: bool) -> None:
        self.encoder = encoder
        self.train_backbone = train_backbone

    def queries(self, texts: list[str], langs: list[str | None]):
        import torch

        ids = torch.tensor(self.encoder.query_token_ids(texts), dtype=torch.long)
        return self._states(ids, torch.ones_like(ids), texts, langs)

    def documents(self, texts: list[str], langs: list[str | None]):
        import torch

        ids, keep = self.encoder.document_token_ids(texts)
        length = max(len(row) for row in ids)
        pad = self.encoder.backbone.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([row + [pad] * (length - len(row)) for row in ids])
        mask = torch.tensor([[1] * len(row) + [0] * (length - len(row)) for row in ids])
        keep_mask = torch.tensor([row + [False] * (length - len(row)) for row in keep])
        states = self._states(input_ids, mask, texts, langs)
        return states, keep_mask.to(states.device)

    def _states(self, input_ids, mask, texts, langs):
        import torch

        # Without trainable adapters the backbone runs without a graph: only the projection
        # learns, at the cost of a forward pass.
        grad = torch.enable_grad() if self.train_backbone else torch.no_grad()
        with grad:
            states = self.encoder.run_routed(input_ids, mask, texts, langs)
        return self.encoder.project(states)


def _teacher_scores(teacher, queries: list[str], docs: list[str]):
    import torch

    q = teacher.encode(queries, prompt="query", batch_size=64)
    d = teacher.encode(docs, prompt="passage", batch_size=64)
    return torch.from_numpy(q @ d.T)


# ---------------------------------------------------------------------------- training
def train_retriever(examples: Sequence[Example], out: str | Path,
                    config: RetrievalTrainingConfig | None = None, *,
                    encoder: Any = None, device: str | None = None, resume: bool = True,
                    progress: bool = True,
                    callback: Callable[[dict], None] | None = None) -> dict:
    """Train ``encoder`` (a :class:`ColBERTEncoder`, a saved encoder folder, or None for a new
    one on me5-small) on ``examples`` and save the trained encoder to ``out``.

    Returns the training record (also written to ``out/training.json``).
    """
    import torch
    from tqdm.auto import tqdm

    from ..backbone import load_backbone
    from ..training import linear_warmup, remove_tree, take_step
    from .colbert import ColBERTConfig, ColBERTEncoder

    config = config or RetrievalTrainingConfig()
    examples = list(examples)
    if len(examples) < config.batch_size:
        raise InputError(Errors.E121.format(n=len(examples), batch_size=config.batch_size))
    out = Path(out)
    if encoder is None:
        encoder = ColBERTEncoder(ColBERTConfig(), device=device, dtype="float32")
    elif isinstance(encoder, (str, Path)):
        encoder = ColBERTEncoder.load(encoder, device=device, dtype="float32")
    if encoder.projection is None and "projection" in config.train:
        raise InputError(Errors.E074.format(
            what="encoder dim", value=None,
            expected="a projected encoder (ColBERTConfig.dim set, e.g. 128) to train its "
                     "projection; an unprojected encoder can only train adapters"))
    train_adapters = "adapters" in config.train
    groups = _trainable(encoder, config)
    params = [p for group in groups for p in group["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, linear_warmup(config.steps, round(config.warmup * config.steps)))
    teacher = load_backbone(config.teacher, device=device) if config.teacher else None
    partial = out.with_name(out.name + ".partial")
    record: dict[str, Any] = {"loss": [], "step": 0, "seconds": 0.0, "checkpoints": []}
    if resume and (partial / STATE_FILE).exists():
        record = _load_checkpoint(partial, config, encoder, optimizer, scheduler)
        logger.info("Resuming retriever training at step %d of %d from %s", record["step"],
                    config.steps, partial)
    elif partial.exists():
        remove_tree(partial)
    rng = random.Random(config.seed)
    batches = _batches(examples, config, rng)
    for _ in range(record["step"]):  # replay the sampler so a resumed run sees the same data
        next(batches)
    torch.manual_seed(config.seed + record["step"])
    student = _Student(encoder, train_adapters)
    started = time.perf_counter() - record["seconds"]
    bar = tqdm(total=config.steps, initial=record["step"], desc="training retriever",
               unit="step", disable=not progress)
    try:
        while record["step"] < config.steps:
            batch = next(batches)
            queries, docs, q_langs, d_langs = _flatten(batch, config.n_negatives)
            q = student.queries(queries, q_langs)
            d, d_mask = student.documents(docs, d_langs)
            scores = query_scores(q, d, d_mask)
            loss = contrastive_loss(scores, config.temperature)
            if teacher is not None and config.distill_weight > 0:
                target = _teacher_scores(teacher, queries, docs).to(scores.device)
                loss = loss + config.distill_weight * distillation_loss(
                    scores, target, config.temperature, config.teacher_temperature)
            take_step(loss, optimizer, scheduler, params, record, started, bar, callback)
            if record["step"] % config.checkpoint_every == 0 or record["step"] == config.steps:
                _save_checkpoint(partial, config, encoder, optimizer, scheduler, record)
    finally:
        bar.close()
    _average_checkpoints(partial, encoder, config, record)
    record["config"] = dataclasses.asdict(config)
    record["examples"] = len(examples)
    _save_encoder(out, encoder, record)
    remove_tree(partial)
    return record


def _trainable(encoder, config: RetrievalTrainingConfig) -> list[dict]:
    """Optimizer parameter groups: the projection at ``lr``, new adapters at ``adapter_lr``;
    everything else frozen."""
    for p in encoder.backbone.model.parameters():
        p.requires_grad_(False)
    groups = []
    if "projection" in config.train:
        encoder.projection.weight.requires_grad_(True)
        groups.append({"params": [encoder.projection.weight], "lr": config.lr})
    elif encoder.projection is not None:
        encoder.projection.weight.requires_grad_(False)
    if "adapters" in config.train:
        adapter_params = []
        for lang in config.adapter_languages:
            adapter_params += encoder.train_adapter(lang)
        groups.append({"params": adapter_params, "lr": config.adapter_lr})
    return groups


def _trainable_state(encoder, config: RetrievalTrainingConfig) -> dict[str, Any]:
    """Name -> tensor of everything this run trains (what checkpoints and averaging hold)."""
    state = {}
    if "projection" in config.train:
        state["projection.weight"] = encoder.projection.weight
    if "adapters" in config.train:
        for lang in config.adapter_languages:
            for name, tensor in encoder.adapter_state(lang).items():
                state[f"adapter.{lang}.{name}"] = tensor
    return state


def _batches(examples: list[Example], config: RetrievalTrainingConfig,
             rng: random.Random) -> Iterator[list[Example]]:
    from ..training import distinct_batches

    for chosen in distinct_batches(len(examples), config.batch_size, rng):
        yield [examples[i] for i in chosen]


def _flatten(batch: list[Example], n_negatives: int):
    """Queries, and documents = all positives (column i is query i's) then the negatives."""
    queries = [e.query for e in batch]
    q_langs = [e.query_lang for e in batch]
    docs = [e.positive for e in batch]
    d_langs = [e.positive_lang for e in batch]
    for e in batch:
        docs += e.negatives[:n_negatives]
        d_langs += e.negatives_lang[:n_negatives]
    return queries, docs, q_langs, d_langs


# ---------------------------------------------------------------------------- saving
def _save_checkpoint(partial: Path, config, encoder, optimizer, scheduler, record) -> None:
    """Trainable weights of this step (kept for averaging), optimizer moments, the record."""
    from safetensors.torch import save_file

    from ..training import optimizer_checkpoint, write_resume_state

    partial.mkdir(parents=True, exist_ok=True)
    name = f"step-{record['step']:07d}.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in
               _trainable_state(encoder, config).items()}
    save_file(tensors, str(partial / name))
    record["checkpoints"] = (record["checkpoints"] + [name])[-config.average_last:]
    for old in partial.glob("step-*.safetensors"):
        if old.name not in record["checkpoints"]:
            old.unlink()
    moments, optimizer_state = optimizer_checkpoint(optimizer, scheduler)
    save_file(moments, str(partial / OPTIMIZER_FILE))
    state = {"config": dataclasses.asdict(config), "record": record, **optimizer_state}
    # Written last, atomically, with the sha256 of the weights and moments it names: a resume
    # refuses a damaged checkpoint (E239) instead of training on from garbage.
    write_resume_state(partial / STATE_FILE, state)


def _load_checkpoint(partial: Path, config, encoder, optimizer, scheduler) -> dict:
    import torch
    from safetensors.torch import load_file

    from ..training import read_resume_state, restore_optimizer

    state = read_resume_state(partial / STATE_FILE, config, Errors.E122)
    record = state["record"]
    weights = load_file(str(partial / record["checkpoints"][-1]))
    with torch.no_grad():
        for name, tensor in _trainable_state(encoder, config).items():
            tensor.copy_(weights[name])
    restore_optimizer(optimizer, scheduler, load_file(str(partial / OPTIMIZER_FILE)), state)
    return record


def _average_checkpoints(partial: Path, encoder, config, record: dict) -> None:
    """Set the trainable weights to the mean of the kept checkpoints (the last one alone when
    ``average_last`` is 1)."""
    import torch
    from safetensors.torch import load_file

    names = record["checkpoints"][-config.average_last:]
    loaded = [load_file(str(partial / name)) for name in names]
    with torch.no_grad():
        for key, tensor in _trainable_state(encoder, config).items():
            tensor.copy_(torch.stack([w[key] for w in loaded]).mean(0))
    record["averaged"] = names


def _save_encoder(out: Path, encoder, record: dict) -> None:
    """The encoder folder (written atomically by ``save``) plus its training record."""
    from ..fileio import atomic_file

    encoder.save(out)
    with atomic_file(out / RECORD_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
