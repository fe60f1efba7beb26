"""semantic_dedupe: drop examples that say the same thing in other words (reason `semantic_duplicate`).

Runs after exact/near dedupe: those catch copies and light edits by shared text; this step catches
paraphrases by the cosine similarity of sentence embeddings (the bundled all-MiniLM-L6-v2, or any local
sentence-transformers folder via `model`). Embeddings are cached on disk keyed by (model, text view, id),
so a re-run encodes only new rows.

Method (SemDeDup: Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale through semantic
deduplication", arXiv:2303.09540): k-means over the unit-length embeddings into clusters of about
`cluster_size` rows, then exact pairwise cosine similarity only *within* each cluster, so cost grows as
n · cluster_size, not n². Near-identical meanings (cosine ≥ 0.95) sit a hair apart and land in the same
cluster; a pair split across a cluster boundary can be missed, the trade SemDeDup makes at web scale.
Within a cluster rows are visited best-first (highest `quality` when the column exists, else input
order); a row is dropped when its cosine to an already *kept* row is ≥ `threshold`, so each dropped row's
`dup_of` is a kept row with `similarity` ≥ threshold, and no two kept rows of one cluster are that close.

Thresholds:
- `threshold` 0.95: SemDeDup's strictest setting keeps 1 - ε with ε ≈ 0.05 for near-paraphrases; lower
  values (0.90, 0.85) also remove rows that share only a topic (SemDeDup §4 tables; the GPTeacher
  cleaning in ../shared/data/dedup shows how fast row counts fall from 0.9 to 0.6).
- `max_seq_length` 128 word pieces: all-MiniLM-L6-v2 was trained on ≤ 128 (its card), and encoding cost
  grows faster than linearly with length (measured here: 28 rows/s at 128 vs 10 rows/s at 256 on t0 rows).

Columns added: `semantic_cluster` (id of the kept representative, on every member of a duplicate group,
null for rows with no duplicate), `similarity` (cosine to `dup_of`, on dropped rows), `dup_of`.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import polars as pl

from curate.step import Step, StepConfig

REASON = "semantic_duplicate"
#: Rows of the similarity matrix computed at once (bounds memory: block × cluster size floats).
BLOCK_ROWS = 2048


class SemanticDedupeConfig(StepConfig):
    model: str = "default"
    """`default` (bundled all-MiniLM-L6-v2) or a local sentence-transformers folder."""
    threshold: float = 0.95
    """Cosine similarity at or above which two examples are duplicates."""
    text: Literal["prompt", "response", "prompt_response", "all"] = "prompt_response"
    """What to embed: user turns, assistant turns, both (default; system prompts are left out because a
    shared system prompt makes unrelated rows look alike), or every turn including system."""
    cluster_size: int = 1000
    """Average k-means cluster size; k = ceil(n / cluster_size). At or below it, one exact all-pairs pass."""
    max_seq_length: int = 128
    batch_size: int = 64
    threads: int = 1
    """torch threads while encoding: 1 was ~3× faster than 2 on the 2-core machines with other work
    running (ENVIRONMENT.md); 0 leaves torch's default."""
    seed: int = 0


def view_text(view: str) -> pl.Expr:
    """The text of each example that is embedded, as a Polars expression over `messages`."""
    roles = {"prompt": ["user"], "response": ["assistant"], "prompt_response": ["user", "assistant"],
             "all": ["system", "user", "assistant"]}[view]
    turn = pl.element()
    return pl.col("messages").list.eval(
        turn.filter(turn.struct.field("role").is_in(roles)).struct.field("content")
    ).list.join("\n")


def kmeans_labels(emb: np.ndarray, cluster_size: int, seed: int, iterations: int = 10,
                  sample_per_centroid: int = 128) -> np.ndarray:
    """Spherical k-means (cosine, as SemDeDup clusters) in NumPy, k = ceil(n / cluster_size).

    Centroids are fitted on a seeded sample of `sample_per_centroid` rows per centroid (faiss trains
    on at most 256 per centroid the same way), then every row is assigned to its nearest centroid.
    Deterministic for a seed; scikit-learn's import alone took 3 s here, so it is not used.
    """
    n = emb.shape[0]
    k = int(np.ceil(n / max(cluster_size, 1)))
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train = emb[np.sort(rng.choice(n, size=min(n, k * sample_per_centroid), replace=False))]
    centroids = train[rng.choice(train.shape[0], size=k, replace=False)].copy()
    for _ in range(iterations):
        labels = np.argmax(train @ centroids.T, axis=1)
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centroids)
        filled = counts > 0
        sums[filled] = np.add.reduceat(train[np.argsort(labels, kind="stable")], (np.cumsum(counts) - counts)[filled])
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        # An empty cluster is re-seeded from a random training row.
        centroids = np.where(filled[:, None], sums / np.maximum(norms, 1e-12), train[rng.choice(train.shape[0], size=k)])
    labels = np.empty(n, dtype=np.int64)
    for start in range(0, n, 65536):
        labels[start:start + 65536] = np.argmax(emb[start:start + 65536] @ centroids.T, axis=1)
    return labels


def find_duplicates(emb: np.ndarray, rank: np.ndarray, labels: np.ndarray, threshold: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy best-first dedupe within each cluster.

    `emb` unit rows, `rank` (lower = preferred representative), `labels` cluster per row. Returns
    (`dup_of` row index or -1 for kept rows, `similarity` to it or NaN).
    """
    n = emb.shape[0]
    dup_of = np.full(n, -1, dtype=np.int64)
    sim_out = np.full(n, np.nan, dtype=np.float32)
    by_cluster = np.lexsort((rank, labels))
    bounds = np.flatnonzero(np.diff(labels[by_cluster])) + 1
    for members in np.split(by_cluster, bounds):
        if members.size < 2:
            continue
        vecs = emb[members]
        pairs_j, pairs_i, pairs_s = [], [], []
        for start in range(0, members.size, BLOCK_ROWS):
            block = vecs[start:start + BLOCK_ROWS] @ vecs[: start + BLOCK_ROWS].T
            # Only earlier (better-ranked) rows can be the kept partner of row j.
            jj, ii = np.nonzero(np.tril(block >= threshold, k=start - 1))
            pairs_j.append(jj + start)
            pairs_i.append(ii)
            pairs_s.append(block[jj, ii])
        pj, pi, ps = np.concatenate(pairs_j), np.concatenate(pairs_i), np.concatenate(pairs_s)
        if pj.size == 0:
            continue
        order = np.lexsort((-ps, pj))  # by row, most similar partner first
        pj, pi, ps = pj[order], pi[order], ps[order]
        dropped = np.zeros(members.size, dtype=bool)
        starts = np.flatnonzero(np.r_[True, pj[1:] != pj[:-1]])
        ends = np.r_[starts[1:], pj.size]
        for s, e in zip(starts, ends, strict=True):
            partners = pi[s:e]
            alive = np.flatnonzero(~dropped[partners])
            if alive.size:
                best = alive[0]
                dropped[pj[s]] = True
                dup_of[members[pj[s]]] = members[partners[best]]
                sim_out[members[pj[s]]] = ps[s + best]
    return dup_of, sim_out


class SemanticDedupe(Step):
    name = "semantic_dedupe"
    Config = SemanticDedupeConfig
    is_global = True

    def fit(self, df: pl.DataFrame) -> None:
        pass

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        from curate.embeddings import EmbeddingCache

        cfg = self.config
        t_start = time.perf_counter()
        live = df.with_row_index("_pos").filter(pl.col("drop_reason").is_null())
        texts = live.select(view_text(cfg.text)).to_series().to_list()
        cache = EmbeddingCache(cfg.model, view=cfg.text, max_seq_length=cfg.max_seq_length,
                               batch_size=cfg.batch_size, threads=cfg.threads)
        emb = cache.embed(live["id"].to_list(), texts, reporter=self.reporter)
        if "quality" in live.columns:
            # Highest quality first; rows without a score after scored ones; input order breaks ties.
            q = live["quality"].cast(pl.Float64).fill_null(-np.inf).to_numpy()
            rank = np.lexsort((np.arange(live.height), -q)).argsort()
        else:
            rank = np.arange(live.height)
        labels = kmeans_labels(emb, cfg.cluster_size, cfg.seed) if live.height else np.zeros(0, dtype=np.int64)
        dup_idx, sims = find_duplicates(emb, rank, labels, cfg.threshold) if live.height else (
            np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))

        ids = live["id"]
        is_dup = dup_idx >= 0
        in_group = is_dup.copy()
        in_group[dup_idx[is_dup]] = True
        rep_ids = ids.gather(np.where(is_dup, dup_idx, np.arange(live.height)))
        marks = pl.DataFrame({"_pos": live["_pos"], "_rep": rep_ids, "_is_dup": is_dup, "_in_group": in_group,
                              "_sim": sims.astype(np.float64)}).select(
            "_pos",
            pl.when("_is_dup").then("_rep").alias("_dup_of"),
            pl.when("_in_group").then("_rep").alias("semantic_cluster"),
            pl.when("_is_dup").then(pl.col("_sim").fill_nan(None)).alias("_sim"),
        )
        out = df.with_row_index("_pos").join(marks, on="_pos", how="left").sort("_pos")
        dup = pl.col("_dup_of").is_not_null()
        old_sim = pl.col("similarity") if "similarity" in df.columns else pl.lit(None, dtype=pl.Float64)
        out = out.with_columns(
            pl.when(dup).then(pl.lit(REASON)).otherwise(pl.col("drop_reason")).alias("drop_reason"),
            pl.when(dup).then(pl.col("_dup_of")).otherwise(pl.col("dup_of")).alias("dup_of"),
            pl.when(dup).then(pl.col("_sim")).otherwise(old_sim).alias("similarity"),
        ).drop("_pos", "_dup_of", "_sim")

        total = time.perf_counter() - t_start
        self.stats.update({
            "encoded": cache.encoded, "cache_hits": cache.cache_hits, "kmeans_clusters": int(labels.max() + 1) if labels.size else 0,
            "duplicate_groups": int(in_group.sum() - is_dup.sum()), "encode_seconds": round(cache.encode_seconds, 3),
            "model_load_seconds": round(cache.load_seconds, 3),
            "other_seconds": round(total - cache.encode_seconds - cache.load_seconds, 3),
        })
        return out


STEP = SemanticDedupe
