"""Multi-vector retrieval over a corpus: build a PLAID-style index with a ColBERT encoder and
search it. The functions behind ``xapps index build --kind multivector``.

A retriever folder keeps the two halves together, so a search always encodes queries with
the encoder that built the index::

    retriever.json   format, counts, build settings
    encoder/         the ColBERT encoder (config + projection; the backbone by reference)
    index/           the MultiVectorIndex (manifest records the encoder's identity)
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import Errors, IndexMismatchError, InputError, ModelError
from ..fileio import ensure_writable
from ..index.base import Hit
from ..index.build import BuildReport
from ..index.manifest import check_replaceable, read_manifest
from .colbert import ColBERTConfig, ColBERTEncoder
from ..artifacts import read_record, seal, verify_record_files

logger = logging.getLogger("xapps")

FORMAT = "xapps-retriever"
RETRIEVER_FILE = "retriever.json"


@dataclass
class MultiVectorBuildReport(BuildReport):
    tokens: int
    bytes_per_token: float


def is_retriever(path: str | Path) -> bool:
    return (Path(path) / RETRIEVER_FILE).is_file()


class Retriever:
    """A multi-vector index with the encoder that built it: ``search(queries, k)``."""

    def __init__(self, encoder: ColBERTEncoder, index) -> None:
        self.encoder = encoder
        self.index = index

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None, mmap: bool = False,
             backbone: str | None = None) -> Retriever:
        """Load a retriever folder, checking retriever.json, the encoder's files (E221) and the
        index's (E012) against their checksums first. ``backbone`` loads the encoder's
        backbone from another place; it must hold the weights the encoder was saved with."""
        from ..index import load_index

        folder = Path(path)
        if not is_retriever(folder):
            raise IndexMismatchError(Errors.E011.format(
                path=folder, reason=f"it has no {RETRIEVER_FILE}, so it is not a multi-vector "
                                    "retriever built by `xapps index build --kind multivector`"))
        verify_retriever(folder)
        try:
            encoder = ColBERTEncoder.load(folder / "encoder", device=device, backbone=backbone)
        except ModelError as exc:
            if "[E020]" not in str(exc) or backbone:
                raise
            # The backbone recorded at build time is gone (a moved folder, another machine).
            raise ModelError(f"{exc} For this retriever, pass the folder that now holds its "
                             "backbone: `xapps index search ... --backbone FOLDER`.") from None
        try:
            index = load_index(folder / "index", backbone=encoder.identity, dim=encoder.dim,
                               mmap=mmap)
        except IndexMismatchError as exc:
            if "[E010]" not in str(exc):
                raise
            # The files are intact (checked above), so the encoder itself differs: E010's
            # advice (rebuild with --backbone NAME) cannot apply to a colbert:... identity.
            saved = read_manifest(folder / "index").backbone or {}
            raise IndexMismatchError(Errors.E223.format(
                path=folder, encoder=f"sha256 {encoder.identity['sha256'][:12]}",
                index=f"sha256 {str(saved.get('sha256'))[:12]}",
                reason="The index was built by another encoder (folders mixed up), or the "
                       "backbone now loads other weights than at build time"
                       + (f" (--backbone {backbone})." if backbone else ".")
                       + " Put the retriever's own index/ back, pass --backbone with the "
                         "original weights, or")) from None
        return cls(encoder, index)

    def search(self, queries: Sequence[str], k: int = 10,
               languages: str | Sequence[str | None] | None = None,
               **options) -> list[list[Hit]]:
        """Best ``k`` documents per query text; ``languages`` (one code per query, one for
        all, or None to detect) pick each query's adapter when the encoder has language
        adapters; ``options`` go to the index's search (``nprobe``, ``n_candidates``)."""
        if not len(queries):
            return []
        vectors = self.encoder.encode_queries(queries, languages=languages)
        return self.index.search(vectors, k, **options)

    def text(self, doc_id: str) -> str:
        return (self.index.get_metadata(doc_id) or {}).get("text") or ""


def verify_retriever(path: str | Path) -> dict:
    """The checked retriever.json of ``path``: E221 if it or an encoder file it lists is
    damaged (retrievers built before checksums pass with what can be checked)."""
    folder = Path(path)

    def damaged(reason: str) -> IndexMismatchError:
        return IndexMismatchError(Errors.E221.format(path=folder, reason=reason))

    record = read_record(folder / RETRIEVER_FILE, damaged)
    if record.get("format") != FORMAT:
        raise damaged(f"{RETRIEVER_FILE} has format {record.get('format')!r}, not {FORMAT!r}")
    verify_record_files(record, folder, damaged)
    return record


def build_multivector_index(input_path: str | Path, out: str | Path, *, id_field: str = "id",
                            text_field: str = "text", encoder: str | ColBERTEncoder | None = None,
                            backbone: str = "me5-small", dim: int | None = 128, nbits: int = 2,
                            chunk_size: int = 2048, batch_size: int = 32,
                            store_text: bool = True, device: str | None = None,
                            progress: bool = True, lang_field: str | None = None,
                            encoder_backbone: str | None = None) -> MultiVectorBuildReport:
    """Encode every record of ``input_path`` as ColBERT document tokens and save a retriever.

    ``encoder`` is a saved encoder folder (or an encoder); otherwise an untrained one on
    ``backbone`` with a ``dim`` projection is made. Documents are encoded and compressed
    ``chunk_size`` at a time, so float token vectors of one chunk are all that is ever held;
    the codec is trained on the first chunk. The input is validated completely first and the
    folder is written atomically, so a bad record or an interruption leaves nothing behind.

    ``lang_field`` names the record field holding each document's language code, which picks
    its adapter when the encoder has language adapters; records without it (or an encoder
    given no field) have their language detected. ``encoder_backbone`` loads a saved
    encoder's backbone from another place (it must hold the same weights).
    """
    from tqdm.auto import tqdm

    from ..corpus import read_records
    from ..index.manifest import atomic_directory
    from ..index.multivector import MultiVectorIndex

    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise InputError(Errors.E074.format(what="chunk_size", value=chunk_size,
                                            expected="an integer >= 1"))
    # Before reading, loading or encoding anything: an unwritable --out must not cost the run.
    ensure_writable(out, fix="Pass an --out folder in a location you can write to.")
    check_replaceable(out, RETRIEVER_FILE, "a multi-vector retriever")
    records = list(read_records(input_path, id_field=id_field, text_field=text_field))
    if not records:
        raise InputError(Errors.E004.format(path=input_path, reason="it holds no records"))
    if lang_field is not None and not any(lang_field in r.meta for r in records):
        raise InputError(Errors.E058.format(
            what="lang_field", value=lang_field,
            expected=f"a field of the records (the first has: "
                     f"{', '.join(sorted(records[0].meta)) or 'none besides id and text'})",
            fix="Pass the field that holds each record's language code, or lang_field=None "
                "to detect each document's language."))
    if isinstance(encoder, (str, Path)):
        encoder = ColBERTEncoder.load(encoder, device=device, backbone=encoder_backbone)
    elif encoder is None:
        encoder = ColBERTEncoder(ColBERTConfig(backbone=backbone, dim=dim), device=device)
    index = MultiVectorIndex(dim=encoder.dim, metric="cosine", nbits=nbits,
                             backbone=encoder.identity)
    encode_seconds = index_seconds = 0.0
    bar = tqdm(total=len(records), desc="indexing (multi-vector)", unit="doc",
               disable=not progress)
    try:
        for start in range(0, len(records), chunk_size):
            chunk = records[start:start + chunk_size]
            t0 = time.perf_counter()
            languages = [r.meta.get(lang_field) for r in chunk] if lang_field else None
            docs = encoder.encode_documents([r.text for r in chunk], languages=languages,
                                            batch_size=batch_size, progress=False)
            t1 = time.perf_counter()
            metadata = [dict(r.meta, text=r.text) if store_text else dict(r.meta) or None
                        for r in chunk]
            index.add([r.id for r in chunk], docs, metadata=metadata)
            encode_seconds += t1 - t0
            index_seconds += time.perf_counter() - t1
            bar.update(len(chunk))
    finally:
        bar.close()
    t0 = time.perf_counter()
    out = Path(out)
    stats = index.stats()
    with atomic_directory(out) as tmp:
        encoder.save(tmp / "encoder")
        index.save(tmp / "index")
        record = {"format": FORMAT, "count": len(index), "tokens": stats["n_tokens"],
                  "encoder": encoder.identity, "nbits": nbits,
                  "bytes_per_token": stats["bytes_per_token"]}
        # The encoder's files by sha256 (the index's are in its own manifest) and the record's
        # own checksum: a damaged retriever is reported as damage, naming the file.
        record = seal(record, tmp, exclude=tuple(
            p.relative_to(tmp).as_posix() for p in (tmp / "index").rglob("*")))
        (tmp / RETRIEVER_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    index_seconds += time.perf_counter() - t0
    report = MultiVectorBuildReport(out, len(index), index.index_type, encode_seconds,
                                    index_seconds, stats["n_tokens"], stats["bytes_per_token"])
    logger.info("Indexed %d records (%d token vectors, %.1f bytes each) in %.1f s at %s",
                report.count, report.tokens, report.bytes_per_token,
                encode_seconds + index_seconds, out)
    return report
