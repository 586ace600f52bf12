"""Optimisation pieces shared by every xapps trainer (re-ranker, bi-encoder alignment)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any


def adamw(named_parameters: Iterable[tuple[str, Any]], lr: float, weight_decay: float):
    """AdamW over the trainable parameters, without weight decay on biases and norms."""
    import torch

    decay, no_decay = [], []
    for name, p in named_parameters:
        if not p.requires_grad:
            continue
        is_norm = "LayerNorm" in name or "layer_norm" in name
        (no_decay if is_norm or name.endswith(("bias", "norm.weight")) else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr)


def linear_warmup(total: int, warmup: int) -> Callable[[int], float]:
    """LR factor for update ``s`` (0-based): rises to 1 over ``warmup`` updates, then falls
    linearly; never exactly 0, so no update is wasted."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def optimizer_checkpoint(optimizer, scheduler) -> tuple[dict[str, Any], dict[str, Any]]:
    """An optimizer's moments as tensors (for safetensors) and its step counters, learning
    rates and scheduler state as JSON-able values: what a resumed run needs, no pickle."""
    tensors, scalars = {}, {}
    for i, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if hasattr(value, "shape") and value.dim() > 0:
                tensors[f"{i}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{i}.{key}"] = float(value)
    return tensors, {"optimizer_scalars": scalars, "scheduler": scheduler.state_dict()}


def restore_optimizer(optimizer, scheduler, tensors: dict[str, Any],
                      state: dict[str, Any]) -> None:
    """Undo :func:`optimizer_checkpoint` on a freshly built optimizer and scheduler."""
    import torch

    optim_state = optimizer.state_dict()
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        optim_state["state"].setdefault(int(i), {})[name] = value
    for key, value in state["optimizer_scalars"].items():
        i, name = key.split(".", 1)
        optim_state["state"].setdefault(int(i), {})[name] = torch.tensor(value)
    optimizer.load_state_dict(optim_state)
    scheduler.load_state_dict(state["scheduler"])
    # The scheduler's state does not reach the optimizer: the next update would run at the
    # learning rate of step 0.
    for group, lr in zip(optimizer.param_groups, scheduler.get_last_lr()):
        group["lr"] = lr


def take_step(loss, optimizer, scheduler, params, record: dict[str, Any], started: float,
              bar=None, callback: Callable[[dict], None] | None = None) -> None:
    """One update: backward, gradients clipped to norm 1, optimizer and schedule stepped; then
    the step is booked in ``record`` (step, loss, seconds), the progress bar and the
    callback."""
    import time

    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    scheduler.step()
    record["step"] += 1
    record["loss"].append(round(float(loss.detach()), 5))
    record["seconds"] = time.perf_counter() - started
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{record['loss'][-1]:.3f}")
    if callback is not None:
        callback({"step": record["step"], "loss": record["loss"][-1],
                  "lr": scheduler.get_last_lr()[0], "seconds": record["seconds"]})


def write_resume_state(path, state: dict[str, Any]) -> None:
    """Write the JSON state of a checkpoint as its last file, with the sha256 of every other
    file of its folder (weights, optimizer moments): :func:`read_resume_state` refuses a
    checkpoint whose files changed, e.g. one killed half-way through being rewritten."""
    import json
    from pathlib import Path

    from .artifacts import FILES_KEY, record_files
    from .fileio import atomic_write_text

    path = Path(path)
    files = record_files(path.parent, exclude=(path.name,))
    atomic_write_text(path, json.dumps({**state, FILES_KEY: files}))


def read_resume_state(path, config, error: str) -> dict[str, Any]:
    """The JSON state of an interrupted run at ``path``; ``error`` (an Errors template with
    ``path`` and ``changed``) is raised when the run was started with another config, E239
    when a file that :func:`write_resume_state` recorded is missing or changed."""
    import dataclasses
    import json

    from .artifacts import FILES_KEY, check_files
    from .errors import Errors, InputError

    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(Errors.E239.format(path=path.parent, file=path.name,
                                            problem=f"cannot be read ({exc})")) from None
    check_files(path.parent, state.get(FILES_KEY) or {},
                lambda file, problem: InputError(Errors.E239.format(
                    path=path.parent, file=file, problem=problem)), listed_in=path.name)
    current = dataclasses.asdict(config)
    if state["config"] != current:
        changed = sorted(k for k, v in current.items() if state["config"].get(k) != v)
        raise InputError(error.format(path=path.parent, changed=", ".join(changed)))
    return state


def distinct_batches(n: int, batch_size: int, rng) -> Iterator[list[int]]:
    """Endless batches of ``batch_size`` distinct indexes out of ``n``, each pass a fresh
    permutation (an index never twice in one batch: it would be its own in-batch negative)."""
    pool: list[int] = []
    while True:
        if len(pool) < batch_size:
            fresh = list(range(n))
            rng.shuffle(fresh)
            taken = set(pool)
            pool += [i for i in fresh if i not in taken]
        chosen, pool = pool[:batch_size], pool[batch_size:]
        yield chosen


def remove_tree(path) -> None:
    """Delete a checkpoint folder, if any (a finished or restarted run's ``.partial``)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
