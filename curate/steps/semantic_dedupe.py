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

import numpy as np
import polars as pl
from pydantic import model_validator

from curate.step import Step, StepConfig
from curate.views import View, view_text

REASON = "semantic_duplicate"
#: Rows of the similarity matrix computed at once (bounds memory: block × cluster size floats).
BLOCK_ROWS = 2048


#: Default `threshold` per model: each model's cosines have their own scale (the static model puts unrelated rows
#: of one domain closer together), so each is set where it drops exactly the planted paraphrases of sample_data.
THRESHOLDS = {"default": 0.95, "static": 0.97}


class SemanticDedupeConfig(StepConfig):
    model: str = "default"
    """`default` (bundled all-MiniLM-L6-v2, the best separation of paraphrases from other rows), `static`
    (model2vec static embeddings distilled once from that MiniLM and cached: encoding ~100× faster on CPU, at a
    narrower margin — planted paraphrases at cosine ≥ 0.973 against ≤ 0.968 for other pairs, where MiniLM has
    0.966 against 0.924; bench/README.md), or a local sentence-transformers or model2vec folder."""
    threshold: float | None = None
    """Cosine similarity at or above which two examples are duplicates; unset = the model's default (`THRESHOLDS`:
    0.95 for MiniLM and other folders, 0.97 for `static`)."""
    text: View = "prompt_response"
    """What to embed: user turns, assistant turns, both (default; system prompts are left out because a
    shared system prompt makes unrelated rows look alike), or every turn including system."""
    cluster_size: int = 1000
    """Average k-means cluster size; k = ceil(n / cluster_size). At or below it, one exact all-pairs pass."""
    boundary_margin: float = 0.05
    """A row whose second-nearest centroid is within this cosine of its nearest is compared in both
    clusters: duplicates straddling a boundary are found, for a few more comparisons (0 = plain SemDeDup)."""
    max_seq_length: int = 128
    batch_size: int = 64
    threads: int = 1
    """torch threads while encoding: 1 was ~3× faster than 2 on the 2-core machines with other work
    running (ENVIRONMENT.md); 0 leaves torch's default."""
    seed: int = 0

    @model_validator(mode="after")
    def _model_threshold(self) -> SemanticDedupeConfig:
        if self.threshold is None:
            self.threshold = THRESHOLDS.get(self.model, THRESHOLDS["default"])
        return self


def fit_centroids(train: np.ndarray, rng: np.random.Generator, k: int, iterations: int = 10) -> np.ndarray:
    """Spherical k-means on unit vectors: `k` centroids from `train`, drawing from `rng` (the Ray engine fits the
    same centroids by calling this with a generator in the same state)."""
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
    return centroids


def cluster_count(n: int, cluster_size: int) -> int:
    """k = ceil(n / cluster_size): the number of k-means centroids for `n` rows (≤ 1 means one cluster)."""
    return int(np.ceil(n / max(cluster_size, 1)))


def centroid_sample(n: int, k: int, seed: int, sample_per_centroid: int = 128
                    ) -> tuple[np.ndarray, np.random.Generator]:
    """The sorted row indices the centroids are fitted on (`sample_per_centroid` per centroid), and the
    generator in the state `fit_centroids` must continue from. Both engines draw the sample through here."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, k * sample_per_centroid), replace=False)), rng


def assign_clusters(emb: np.ndarray, centroids: np.ndarray, margin: float, offset: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(row index, cluster label) entries: every row of `emb` (numbered from `offset`) under its nearest
    centroid, and again under the second nearest when that one is within `margin` cosine of the nearest."""
    rows, labels = [], []
    for start in range(0, emb.shape[0], 65536):
        sims = emb[start:start + 65536] @ centroids.T
        top2 = np.argpartition(-sims, 1, axis=1)[:, :2]
        s2 = np.take_along_axis(sims, top2, axis=1)
        swap = s2[:, 1] > s2[:, 0]
        top2[swap] = top2[swap][:, ::-1]
        s2[swap] = s2[swap][:, ::-1]
        idx = np.arange(offset + start, offset + start + sims.shape[0])
        rows.append(idx)
        labels.append(top2[:, 0])
        second = s2[:, 1] >= s2[:, 0] - margin
        rows.append(idx[second])
        labels.append(top2[second, 1])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(labels)


def group_clusters(rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(sorted distinct labels, row indices of each) from (row, label) entries; rows keep their entry order."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return np.unique(labels), [rows[part] for part in np.split(order, bounds)]


def kmeans_clusters(emb: np.ndarray, cluster_size: int, seed: int, margin: float = 0.0, iterations: int = 10,
                    sample_per_centroid: int = 128) -> list[np.ndarray]:
    """Spherical k-means (cosine, as SemDeDup clusters) in NumPy, k = ceil(n / cluster_size).

    Centroids are fitted on a seeded sample of `sample_per_centroid` rows per centroid (faiss trains on at
    most 256 per centroid the same way), then every row joins its nearest centroid's cluster, and also the
    second nearest when that one is within `margin` cosine (a row on a boundary is compared on both sides).
    Returns the row indices of each non-empty cluster. Deterministic for a seed; scikit-learn is not used
    (its import alone took 3 s here). The Ray engine runs the same functions (`cluster_count`,
    `centroid_sample`, `fit_centroids`, `assign_clusters`) with the rows spread over blocks.
    """
    n = emb.shape[0]
    k = cluster_count(n, cluster_size)
    if k <= 1:
        return [np.arange(n)]
    sample, rng = centroid_sample(n, k, seed, sample_per_centroid)
    centroids = fit_centroids(emb[sample], rng, k, iterations)
    return group_clusters(*assign_clusters(emb, centroids, margin))[1]


def cluster_pairs(members: np.ndarray, vecs: np.ndarray, threshold: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of one cluster with cosine ≥ threshold: (later row j, earlier row i, cosine), as row indices.

    `members` are the cluster's row indices in rank order (best first) and `vecs` their unit vectors in that
    order; the similarity matrix is computed `BLOCK_ROWS` rows at a time. Only an earlier (better-ranked) row
    can be the kept partner of a later one, so each pair appears once, as (worse, better).
    """
    found_j, found_i, found_s = [], [], []
    for start in range(0, members.size, BLOCK_ROWS):
        block = vecs[start:start + BLOCK_ROWS] @ vecs[: start + BLOCK_ROWS].T
        jj, ii = np.nonzero(np.tril(block >= threshold, k=start - 1))
        found_j.append(members[jj + start])
        found_i.append(members[ii])
        found_s.append(block[jj, ii])
    if not found_j:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(found_j), np.concatenate(found_i), np.concatenate(found_s)


def resolve_pairs(pj: np.ndarray, pi: np.ndarray, ps: np.ndarray, rank_j: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy best-first resolution of duplicate pairs: (dropped rows, their `dup_of` rows, similarity).

    `pj`/`pi`/`ps` are (worse row, better row, cosine) pairs from `cluster_pairs`, concatenated cluster by
    cluster; a pair found in two clusters (a boundary row) is kept at its first occurrence. `rank_j` orders
    the worse rows (lower = preferred; equal for equal rows). Rows are visited in rank order and a row is
    dropped when one of its better-ranked partners is still kept; its most similar such partner becomes
    `dup_of`. Works on the pairs alone: memory O(pairs), never O(rows) or vectors.
    """
    empty = np.zeros(0, np.int64)
    if pj.size == 0:
        return empty, empty, np.zeros(0, np.float32)
    width = int(max(pj.max(), pi.max())) + 1
    _, first = np.unique(pj.astype(np.int64) * width + pi, return_index=True)
    pj, pi, ps, rank_j = pj[first], pi[first], ps[first], rank_j[first]
    order = np.lexsort((-ps, rank_j))
    pj, pi, ps = pj[order], pi[order], ps[order]
    nodes = np.unique(np.concatenate([pj, pi]))
    at_i = np.searchsorted(nodes, pi)
    dropped = np.zeros(nodes.size, dtype=bool)
    starts = np.flatnonzero(np.r_[True, pj[1:] != pj[:-1]])
    ends = np.r_[starts[1:], pj.size]
    rows, partners, sims = [], [], []
    for s, e in zip(starts, ends, strict=True):
        alive = np.flatnonzero(~dropped[at_i[s:e]])
        if alive.size:
            j = pj[s]
            dropped[np.searchsorted(nodes, j)] = True
            rows.append(j)
            partners.append(pi[s + alive[0]])
            sims.append(ps[s + alive[0]])
    return (np.asarray(rows, dtype=np.int64), np.asarray(partners, dtype=np.int64),
            np.asarray(sims, dtype=np.float32))


def quality_rank(q: np.ndarray | None, n: int) -> np.ndarray:
    """Rank of each row (0 = preferred representative): highest quality first (null last), then input order."""
    if q is None:
        return np.arange(n)
    return np.lexsort((np.arange(n), -q)).argsort()


def find_duplicates(emb: np.ndarray, rank: np.ndarray, clusters: list[np.ndarray], threshold: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Greedy best-first dedupe over pairs found within clusters (`cluster_pairs`, then `resolve_pairs`).

    `emb` unit rows, `rank` (lower = preferred representative), `clusters` row indices (a row may sit in
    two). Returns (`dup_of` row index or -1, `similarity` to it or NaN) per row.
    """
    n = emb.shape[0]
    dup_of = np.full(n, -1, dtype=np.int64)
    sim_out = np.full(n, np.nan, dtype=np.float32)
    found = []
    for members in clusters:
        if members.size < 2:
            continue
        members = members[np.argsort(rank[members], kind="stable")]
        found.append(cluster_pairs(members, emb[members], threshold))
    if not found:
        return dup_of, sim_out
    pj, pi, ps = (np.concatenate(x) for x in zip(*found, strict=True))
    rows, partners, sims = resolve_pairs(pj, pi, ps, rank[pj])
    dup_of[rows] = partners
    sim_out[rows] = sims
    return dup_of, sim_out


def quality_of(df: pl.DataFrame) -> np.ndarray | None:
    """The `quality` column as float64 with nulls as -inf (ranked last), or None without the column."""
    if "quality" not in df.columns:
        return None
    return df["quality"].cast(pl.Float64).fill_null(-np.inf).to_numpy()


class SemanticDedupe(Step):
    name = "semantic_dedupe"
    Config = SemanticDedupeConfig
    is_global = True

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        from curate.embeddings import EmbeddingCache

        cfg = self.config
        t_start = time.perf_counter()
        live = df.with_row_index("_pos").filter(pl.col("drop_reason").is_null())
        texts = live.select(view_text(cfg.text)).to_series().to_list()
        cache = EmbeddingCache(cfg.model, view=cfg.text, max_seq_length=cfg.max_seq_length,
                               batch_size=cfg.batch_size, threads=cfg.threads)
        emb = cache.embed(live["id"].to_list(), texts, reporter=self.reporter)
        # Highest quality first; rows without a score after scored ones; input order breaks ties.
        rank = quality_rank(quality_of(live), live.height)
        clusters = kmeans_clusters(emb, cfg.cluster_size, cfg.seed, cfg.boundary_margin) if live.height else []
        dup_idx, sims = find_duplicates(emb, rank, clusters, cfg.threshold)

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
            "encoded": cache.encoded, "cache_hits": cache.cache_hits, "kmeans_clusters": len(clusters),
            "duplicate_groups": int(in_group.sum() - is_dup.sum()), "encode_seconds": round(cache.encode_seconds, 3),
            "model_load_seconds": round(cache.load_seconds, 3),
            "other_seconds": round(total - cache.encode_seconds - cache.load_seconds, 3),
        })
        return out


STEP = SemanticDedupe
