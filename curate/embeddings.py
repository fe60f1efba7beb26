"""Sentence embeddings for curation steps, with an on-disk cache keyed by (model, text view, text hash).

`semantic_dedupe` asks `EmbeddingCache.embed(ids, texts)` for unit-length vectors; texts already encoded
with the same model, text view and truncation are read back from Parquet shards under
`<studio cache>/embeddings/<key>/` and only the rest are encoded (batched, longest first, with a
progress bar). Models load from local folders only: the bundled all-MiniLM-L6-v2 by default, or `static`, model2vec
static embeddings distilled from that MiniLM once on this machine and cached (a token lookup and a mean instead of
a transformer: the fast CPU path; its speed and quality against MiniLM are in bench/README.md, `## semantic_dedupe`).
Both kinds, and any local sentence-transformers or model2vec folder, go through `EmbeddingCache._encode`, which
the Ray engine's embedding actors call too.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from studio.atomic import write_parquet_atomic
from studio.console import Reporter
from studio.errors import StudioError
from studio.models import cache_dir, minilm_path

#: Shards are merged into one file once a cache folder holds more than this many.
MAX_SHARDS = 8
_FINGERPRINT_FILES = ("config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")


#: The model name that picks static embeddings distilled from the bundled MiniLM.
STATIC = "static"
#: PCA dimensions of the distilled model (model2vec's default). PCA also centres the token vectors: distilled
#: without it, unrelated texts sat at cosine ≥ 0.99 and the planted paraphrases could not be told apart.
STATIC_PCA_DIMS = 256


def resolve_model(model: str) -> Path:
    """`default` → the bundled all-MiniLM-L6-v2; `static` → static embeddings distilled from it (made on first use);
    anything else must be a local sentence-transformers or model2vec folder."""
    if model in ("default", "all-MiniLM-L6-v2", "minilm"):
        return minilm_path()
    if model == STATIC:
        return static_model_path()
    path = Path(model)
    if not path.is_dir():
        raise StudioError(f"embedding model {model!r} is not a local folder; models are never fetched from a hub here. "
                          f"Pass a sentence-transformers or model2vec folder, `default` or `{STATIC}`.")
    return path


def is_static(path: Path) -> bool:
    """Whether a model folder holds model2vec static embeddings (its config.json says `model_type: model2vec`)."""
    config = path / "config.json"
    return config.is_file() and json.loads(config.read_text(encoding="utf-8")).get("model_type") == "model2vec"


def static_model_path() -> Path:
    """The folder of model2vec static embeddings distilled from the bundled MiniLM, distilling it on first use.

    Distillation (`model2vec.distill`) runs MiniLM once over each of its ~30k vocabulary tokens and keeps one
    PCA-reduced vector per token: no hub download, seconds to a minute or two on a laptop, then cached under the
    studio cache by the MiniLM's fingerprint. A file lock makes concurrent processes (the Ray engine's actors)
    distil it once; the folder appears by an atomic rename, so a reader never sees half a model.
    """
    source = minilm_path()
    target = cache_dir() / "models" / f"minilm-static-{model_fingerprint(source)}-pca{STATIC_PCA_DIMS}"
    if (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "model.safetensors").is_file():
            from model2vec.distill import distill

            tmp = target.parent / f".{target.name}-{uuid.uuid4().hex}"
            distill(model_name=str(source), pca_dims=STATIC_PCA_DIMS).save_pretrained(str(tmp))
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    return target


def model_fingerprint(path: Path) -> str:
    """A hash of a model folder's configuration files and weight sizes (a static model's weights by content: a
    re-distilled one may differ in the last bits at the same size): same model → same cache."""
    h = hashlib.sha256(path.name.encode())
    for name in _FINGERPRINT_FILES:
        f = path / name
        if f.exists():
            h.update(name.encode() + f.read_bytes())
    static = is_static(path)
    for f in sorted(path.rglob("*")):
        if f.suffix in (".safetensors", ".bin", ".onnx") and f.is_file():
            h.update(f.read_bytes() if static else f"{f.relative_to(path)}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=4)
def load_sentence_model(path: str, max_seq_length: int):
    """One SentenceTransformer per (folder, truncation) per process: loading costs more than a small batch."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    return model


@functools.lru_cache(maxsize=4)
def load_static_model(path: str):
    """One model2vec StaticModel per folder per process. It reads up to its config's 512 tokens, not MiniLM's
    128: cut at 128, planted paraphrases no longer separated from other rows (bench/README.md)."""
    from model2vec import StaticModel

    return StaticModel.from_pretrained(path, force_download=False)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with `n` torch threads (0 = leave torch's setting), restoring the previous count after."""
    import torch

    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class EmbeddingCache:
    """Embeds texts with one model, reusing vectors cached on disk for ids seen before."""

    def __init__(self, model: str = "default", view: str = "", max_seq_length: int = 128, batch_size: int = 64,
                 threads: int = 1, root: Path | None = None, compact: bool = True) -> None:
        self.model_path = resolve_model(model)
        self.static = is_static(self.model_path)
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.threads = threads
        key_src = json.dumps([model_fingerprint(self.model_path), view, max_seq_length])
        self.key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
        self.dir = (root or cache_dir() / "embeddings") / self.key
        self.compact_shards = compact
        """Merge shards past MAX_SHARDS after a store. semantic_dedupe's embedding workers (Ray actors) share one
        folder and pass False: writers only add uniquely named shards (atomic renames), so concurrent readers and
        writers are safe; merging deletes shards another process may be reading, so it runs once, after them
        (`compact`)."""
        self.encoded = 0
        self.cache_hits = 0
        self.encode_seconds = 0.0
        self.load_seconds = 0.0

    def _read(self, ids: pl.Series) -> pl.DataFrame:
        parts = sorted(self.dir.glob("part-*.parquet"))
        if not parts:
            return pl.DataFrame(schema={"id": pl.String, "emb": pl.Array(pl.Float32, 1)})
        wanted = pl.DataFrame({"id": ids.unique()})
        return pl.scan_parquet(parts).join(wanted.lazy(), on="id", how="semi").unique("id", keep="first").collect()

    def store(self, ids: list[str], emb: np.ndarray) -> None:
        """Add vectors to the cache (one new Parquet shard; shards are merged past MAX_SHARDS)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        frame = pl.DataFrame({"id": ids, "emb": emb.astype(np.float32)},
                             schema={"id": pl.String, "emb": pl.Array(pl.Float32, emb.shape[1])})
        write_parquet_atomic(frame, self.dir / f"part-{uuid.uuid4().hex}.parquet")
        if self.compact_shards:
            self.compact()

    def compact(self) -> None:
        """Merge the shards into one when there are more than MAX_SHARDS (not safe while others read them)."""
        parts = sorted(self.dir.glob("part-*.parquet"))
        if len(parts) > MAX_SHARDS:
            merged = pl.scan_parquet(parts).unique("id", keep="first").collect()
            write_parquet_atomic(merged, self.dir / f"part-{uuid.uuid4().hex}.parquet")
            for p in parts:
                p.unlink(missing_ok=True)

    @staticmethod
    def keys(texts: list[str]) -> list[str]:
        """The cache key of each text (its vectors are stored under it)."""
        return [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest() for t in texts]

    def embed(self, ids: list[str], texts: list[str], reporter: Reporter | None = None) -> np.ndarray:
        """Unit-length float32 vectors, one row per id (in the order given).

        The cache is keyed by a hash of the text itself, not by `ids`: one id can carry different text (an item
        edited in review keeps its id, the export's leak check embeds the edit), and a stale vector would
        silently pair the wrong rows."""
        reporter = reporter or Reporter(quiet=True)
        n = len(ids)
        ids = self.keys(texts)
        self.encoded = 0
        index = pl.DataFrame({"id": ids, "_pos": np.arange(n)})
        cached = self._read(index["id"])
        hit = index.join(cached, on="id", how="inner")
        out: np.ndarray | None = None
        if hit.height:
            vecs = hit["emb"].to_numpy()
            out = np.zeros((n, vecs.shape[1]), dtype=np.float32)
            out[hit["_pos"].to_numpy()] = vecs
        self.cache_hits = hit.height
        missing_pos = np.setdiff1d(np.arange(n), hit["_pos"].to_numpy(), assume_unique=True)
        # Equal keys have equal text: encode each missing text once.
        miss = index[missing_pos].unique("id", keep="first", maintain_order=True)
        if miss.height:
            miss_texts = [texts[i] for i in miss["_pos"].to_list()]
            vecs = self._encode(miss_texts, reporter)
            self.store(miss["id"].to_list(), vecs)
            if out is None:
                out = np.zeros((n, vecs.shape[1]), dtype=np.float32)
            by_id = pl.DataFrame({"id": miss["id"], "_row": np.arange(miss.height)})
            fill = index[missing_pos].join(by_id, on="id", how="left")
            out[fill["_pos"].to_numpy()] = vecs[fill["_row"].to_numpy()]
        return out if out is not None else np.zeros((0, 1), dtype=np.float32)

    def _encode(self, texts: list[str], reporter: Reporter) -> np.ndarray:
        t_load = time.perf_counter()
        if self.static:
            static = load_static_model(str(self.model_path))
            # One process: model2vec's own multiprocessing would fight the step's threads (and Ray's actors).
            encode = functools.partial(static.encode, use_multiprocessing=False)
            chunk = 8192
        else:
            model = load_sentence_model(str(self.model_path), self.max_seq_length)
            encode = functools.partial(model.encode, batch_size=self.batch_size, normalize_embeddings=True,
                                       convert_to_numpy=True, show_progress_bar=False)
            chunk = max(self.batch_size * 8, 256)
        self.load_seconds = time.perf_counter() - t_load
        # Longest first in chunks of similar length: little padding, and the ETA is pessimistic, not optimistic.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        result: np.ndarray | None = None
        t0 = time.perf_counter()
        threads = contextlib.nullcontext() if self.static else torch_threads(self.threads)
        with threads, reporter.progress("embedding", total=len(texts)) as advance:
            for start in range(0, len(texts), chunk):
                rows = order[start:start + chunk]
                batch = [texts[i] for i in rows]
                vecs = np.asarray(encode(batch), dtype=np.float32)
                if result is None:
                    result = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
                result[rows] = vecs
                advance(len(batch))
        self.encode_seconds = time.perf_counter() - t0
        self.encoded = len(texts)
        assert result is not None
        # Unit length for every model (a static model's vectors are normalised by its config, not by contract).
        result /= np.maximum(np.linalg.norm(result, axis=1, keepdims=True), 1e-12)
        return result
