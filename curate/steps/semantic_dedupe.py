"""semantic_dedupe: drop examples that say the same thing in other words (reason `semantic_duplicate`).

Runs after exact/near dedupe: those catch copies and light edits by shared text; this step catches
paraphrases by the cosine similarity of sentence embeddings (the bundled all-MiniLM-L6-v2, or any local
sentence-transformers folder via `model`). Embeddings are cached on disk keyed by (model, text view, id),
so a re-run encodes only new rows.

Method (SemDeDup: Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale through semantic
deduplication", arXiv:2303.09540): k-means over the unit-length embeddings into clusters of about
`cluster_size` rows, then exact pairwise cosine similarity only *within* each cluster, so cost grows as
n · cluster_size, not n². Near-identical meanings (cosine ≥ 0.95) sit a hair apart and land in the same
cluster; a pair split across a cluster boundary can be missed, the trade SemDeDup makes at web scale. Inside a
cluster the comparison is one streaming pass in rank order against the rows that may still be kept
(`cluster_pairs`), so memory stays linear in rows even where thousands of near-copies share a cluster.
Within a cluster rows are visited best-first (highest `quality` when the column exists, else input
order); a row is dropped when its cosine to an already *kept* row is ≥ `threshold`, so each dropped row's
`dup_of` is a kept row with `similarity` ≥ threshold, and no two kept rows of one cluster are that close.

Thresholds:
- `threshold` 0.95: SemDeDup's strictest setting keeps 1 - ε with ε ≈ 0.05 for near-paraphrases; lower
  values (0.90, 0.85) also remove rows that share only a topic (SemDeDup §4 tables; the GPTeacher
  cleaning in ../shared/data/dedup shows how fast row counts fall from 0.9 to 0.6).
- `max_seq_length` 128 word pieces: all-MiniLM-L6-v2 was trained on ≤ 128 (its card), and encoding cost
  grows faster than linearly with length (bench/README.md, `## semantic_dedupe`).

Columns added: `semantic_cluster` (id of the kept representative, on every member of a duplicate group,
null for rows with no duplicate), `similarity` (cosine to `dup_of`, on dropped rows), `dup_of`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import model_validator

from curate.step import KEY, ROW, Context, Out, Stage, StagedStep, StepConfig, distinct_rows
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
    clusters: duplicates straddling a boundary are found, for a few more comparisons (0 = plain SemDeDup). Set 0
    for millions of rows with many near-copies: a boundary row stays a candidate in both clusters, so a group of
    near-copies on a boundary pairs quadratically, while at 0 the pairs stay linear in rows (bench/README.md)."""
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
    """Spherical k-means on unit vectors: `k` centroids from `train`, drawing from `rng` (in the state
    `centroid_sample` left it). Centroids are fitted on a seeded sample of ≤ 128 rows per centroid (faiss trains on
    at most 256 per centroid the same way); scikit-learn is not used (its import alone took seconds here)."""
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
    generator in the state `fit_centroids` must continue from."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=min(n, k * sample_per_centroid), replace=False)), rng


def assign_clusters(emb: np.ndarray, centroids: np.ndarray, margin: float, offset: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(row index, cluster label) entries: every row of `emb` (numbered from `offset`) under its nearest
    centroid, and again under the second nearest when that one is within `margin` cosine of the nearest."""
    rows, labels = [], []
    for start in range(0, emb.shape[0], 65536):
        sims = emb[start:start + 65536] @ centroids.T
        # a copy: a view would keep the whole (rows × k) index array alive in `labels` (8 GB at 1M rows, k 1000)
        top2 = np.argpartition(-sims, 1, axis=1)[:, :2].copy()
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


def cluster_pairs(members: np.ndarray, vecs: np.ndarray, threshold: float, shared: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of one cluster the greedy resolution needs: (later row j, earlier row i, cosine ≥ threshold).

    `members` are the cluster's row indices in rank order (best first), `vecs` their unit vectors in that order,
    `shared` which of them sit in another cluster too (boundary rows; None = none). One streaming pass in rank
    order against the rows that may still be kept (`BLOCK_ROWS` rows at a time), not all pairs: in a dense cluster
    of near-copies all pairs are quadratically many (bench/README.md, `## semantic_dedupe`: the pairs of a 1M-row
    run did not fit in memory), while a row here is compared with, and paired to, only the rows that may be kept.

    A row is *surely dropped* — left out of the candidates later rows are compared with — when one of its partners
    among the candidates is a row `i` not in another cluster whose own candidate partners are all partners of this
    row too: `i` is either kept, or dropped by one of those (its partners all lie in this cluster), so this row has
    a kept partner either way. Every other row stays a candidate. A row kept by the greedy rule is never surely
    dropped, so every pair (row, kept better row) is emitted, and `resolve_pairs` over these pairs gives the same
    drops and `dup_of` as over all pairs. Without boundary rows this is the plain streaming greedy pass (candidates
    = rows kept so far); a boundary row stays a candidate until its other cluster is known.
    """
    m = members.size
    if shared is None:
        shared = np.zeros(m, dtype=bool)
    cand = np.empty((m, vecs.shape[1]), dtype=vecs.dtype)  # candidates' vectors, in rank order
    cand_at = np.empty(m, dtype=np.int64)  # their positions in `members`
    # per candidate: sure = kept whatever the other clusters do (not shared, no candidate partner); else its
    # candidate partners (indices into `cand`), for the subset test
    sure = np.zeros(m, dtype=bool)
    partners: dict[int, np.ndarray] = {}
    n_cand = 0
    found_j, found_i, found_s = [], [], []
    for start in range(0, m, BLOCK_ROWS):
        block = vecs[start:start + BLOCK_ROWS]
        to_cand = block @ cand[:n_cand].T  # this block against the candidates before it
        within = block @ block.T  # and against its own earlier rows
        hit_cand = to_cand >= threshold
        hit_within = np.tril(within >= threshold, k=-1)
        block_cand = np.full(block.shape[0], -1, dtype=np.int64)  # each block row's index in `cand`, if one
        for r in range(block.shape[0]):
            p = np.flatnonzero(hit_cand[r])
            sims = to_cand[r, p]
            earlier = np.flatnonzero(hit_within[r, :r])
            if earlier.size:
                earlier = earlier[block_cand[earlier] >= 0]
                if earlier.size:
                    p = np.concatenate([p, block_cand[earlier]])
                    sims = np.concatenate([sims, within[r, earlier]])
            if p.size:
                found_j.append(np.full(p.size, members[start + r]))
                found_i.append(members[cand_at[p]])
                found_s.append(sims)
                if sure[p].any() or _surely_dropped(p, partners, shared, cand_at):
                    continue
            cand[n_cand] = block[r]
            cand_at[n_cand] = start + r
            block_cand[r] = n_cand
            if p.size or shared[start + r]:
                partners[n_cand] = p
            else:
                sure[n_cand] = True
            n_cand += 1
    if not found_j:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return (np.concatenate(found_j).astype(np.int64), np.concatenate(found_i).astype(np.int64),
            np.concatenate(found_s).astype(np.float32))


def _surely_dropped(p: np.ndarray, partners: dict[int, np.ndarray], shared: np.ndarray, cand_at: np.ndarray) -> bool:
    """Whether candidates `p` include one not in another cluster whose candidate partners are all in `p`."""
    for i in p.tolist():
        if not shared[cand_at[i]] and np.isin(partners[i], p, assume_unique=True).all():
            return True
    return False


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
    entries = np.bincount(np.concatenate(clusters), minlength=n) if clusters else np.zeros(n, np.int64)
    for members in clusters:
        if members.size < 2:
            continue
        members = members[np.argsort(rank[members], kind="stable")]
        found.append(cluster_pairs(members, emb[members], threshold, entries[members] > 1))
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


class SemanticDedupe(StagedStep):
    """SemDeDup as stages that either engine runs (`curate.step.StagedStep`): per block, embeddings (a model
    stage: on Ray, a pool of actors each loading the model once) → on the driver, centroids fitted on a seeded
    sample of the vectors (≤ 128 per centroid, fetched by row) → per block, each row's nearest centroid and the
    second nearest within the boundary margin, the (label, row, quality) entries → per cluster, its vectors read
    by row, its rows in rank order (highest quality, then input order) and its pairs with cosine ≥ threshold → on
    the driver, the pairs resolved greedily best-first → the marks. The driver holds the centroid sample and the
    pairs the streaming pass emits (`cluster_pairs`: each row paired only with the rows that may be kept, so a dense
    cluster of near-copies gives linearly many pairs, not quadratically many), never all vectors."""

    name = "semantic_dedupe"
    Config = SemanticDedupeConfig

    def stages(self) -> list[Stage]:
        from curate.embeddings import resolve_model
        from studio.models import cache_dir

        # Resolved here, on the driver, and carried to the workers with the step: `static` is distilled once, and
        # a $STUDIO_CACHE set for the driver is the cache of every worker (else each node uses its default).
        self._model_dir = str(resolve_model(self.config.model))
        self._root = str(cache_dir() / "embeddings") if os.environ.get("STUDIO_CACHE") else None
        return [Stage("block", self.embed, needs_model=True, rows_per_worker=EMBED_ROWS_PER_WORKER),
                Stage("driver", self.centroids), Stage("block", self.assign), Stage("key", self.pairs),
                Stage("driver", self.resolve)]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_cache"}  # a loaded model does not travel

    def _embedding_cache(self, compact: bool = False):
        from curate.embeddings import EmbeddingCache

        cfg = self.config
        return EmbeddingCache(self._model_dir, view=cfg.text, max_seq_length=cfg.max_seq_length,
                              batch_size=cfg.batch_size, threads=cfg.threads,
                              root=Path(self._root) if self._root else None, compact=compact)

    def embed(self, ctx: Context, df: pl.DataFrame) -> Out:
        """Per block: unit vectors of its rows (kept), from the cache or the model (loaded once per process).
        Workers only add cache shards, never merge them: merging deletes shards another worker may be reading."""
        if getattr(self, "_cache", None) is None:
            self._cache = self._embedding_cache()
        cache = self._cache
        cache.encoded, cache.encode_seconds, cache.load_seconds = 0, 0.0, 0.0
        texts = df.select(view_text(self.config.text)).to_series().to_list()
        emb = cache.embed(df.get_column("id").to_list(), texts, reporter=self.reporter)
        return Out(keep={"vec": emb, "id": df.get_column("id")},
                   stats={"encoded": cache.encoded, "cache_hits": cache.cache_hits,
                          "encode_seconds": round(cache.encode_seconds, 3),
                          "model_load_seconds": round(cache.load_seconds, 3)})

    def centroids(self, ctx: Context, _: list) -> Out:
        """On the driver: the cache's shards merged, then k = ceil(rows / cluster_size) centroids fitted on the
        seeded sample (`centroid_sample`, `fit_centroids`); None (one cluster) for k ≤ 1."""
        self._t_embedded = time.perf_counter()
        self._cache = None  # every block is embedded: the model is let go
        self._embedding_cache().compact()
        k = cluster_count(ctx.total, self.config.cluster_size)
        if k <= 1:
            return Out()
        sample, rng = centroid_sample(ctx.total, k, self.config.seed)
        return Out(result=fit_centroids(ctx.lookup(sample, ("vec",))["vec"], rng, k))

    def assign(self, ctx: Context, df: pl.DataFrame) -> Out:
        """Per block: (label, row) entries — nearest centroid, and the second nearest within `boundary_margin`
        (`assign_clusters`) — with the row's quality, keyed by label (the vectors stay where the embed stage kept
        them)."""
        rows = df.get_column(ROW).to_numpy()
        emb = ctx.lookup(rows, ("vec",))["vec"]
        offset = int(rows[0]) if rows.size else 0  # a block's rows are consecutive
        if ctx.value is None:  # k ≤ 1: one cluster of every row
            at, labels = rows, np.zeros(rows.size, np.int64)
        else:
            at, labels = assign_clusters(emb, ctx.value, self.config.boundary_margin, offset)
        local = at - offset
        shared = np.bincount(local, minlength=rows.size)[local] > 1  # the row sits in two clusters
        entries = pl.DataFrame({KEY: labels, ROW: at, "shared": shared})  # vectors are looked up by row, not copied
        q = quality_of(df)
        if q is not None:
            entries = entries.with_columns(pl.Series("q", q[local]))
        return Out(entries=entries, stats={"boundary_entries": int(at.size - rows.size)})

    def pairs(self, ctx: Context, entries: pl.DataFrame) -> Out:
        """Per label partition: each cluster's members in rank order (highest quality, then input order) and its
        pairs (worse row, better row, cosine) with cosine ≥ threshold (`cluster_pairs`), with the worse row's
        quality and the cluster's label (result)."""
        rows = entries.get_column(ROW).to_numpy()
        labels = entries.get_column(KEY).to_numpy()
        q = entries.get_column("q").to_numpy() if "q" in entries.columns else np.zeros(rows.size)
        shared = entries.get_column("shared").to_numpy() if rows.size else np.zeros(0, dtype=bool)
        found = []
        names, groups = group_clusters(np.arange(rows.size), labels) if rows.size else (np.zeros(0, np.int64), [])
        if rows.size:  # the partition's vectors, read once by row (locally, every row in order: no copy)
            distinct, (at,) = distinct_rows(ctx.total, rows)
            vecs = ctx.lookup(distinct, ("vec",))["vec"]
        for label, ent in zip(names.tolist(), groups, strict=True):
            if ent.size < 2:
                continue
            ent = ent[np.lexsort((rows[ent], -q[ent]))]
            pj, pi, ps = cluster_pairs(rows[ent], vecs[at[ent]], self.config.threshold, shared[ent])
            found.append((pj, pi, ps, np.full(pj.size, label, np.int64)))
        if found:
            pj, pi, ps, lab = (np.concatenate(x) for x in zip(*found, strict=True))
        else:
            pj, pi, ps, lab = (np.zeros(0, np.int64),) * 2 + (np.zeros(0, np.float32), np.zeros(0, np.int64))
        by_row = np.unique(rows, return_index=True)
        qj = q[by_row[1][np.searchsorted(by_row[0], pj)]] if pj.size else np.zeros(0)
        return Out(result={"j": pj, "i": pi, "s": ps, "label": lab, "qj": qj},
                   stats={"kmeans_clusters": len(names)})

    def resolve(self, ctx: Context, found: list[dict[str, np.ndarray]]) -> Out:
        """On the driver: the pairs cluster by cluster (in label order) resolved greedily best-first
        (`resolve_pairs`); the marks: dropped rows get the reason, `dup_of` and `similarity`, every member of a
        group `semantic_cluster` = its kept representative's id."""
        pj, pi, ps, lab, qj = (np.concatenate([f[key] for f in found]) for key in ("j", "i", "s", "label", "qj"))
        order = np.argsort(lab, kind="stable")
        pj, pi, ps, qj = pj[order], pi[order], ps[order], qj[order]
        driver_bytes = int(pj.nbytes + pi.nbytes + ps.nbytes + lab.nbytes + qj.nbytes)
        worse, inv = np.unique(pj, return_inverse=True)
        q_worse = np.zeros(worse.size)
        q_worse[inv] = qj
        dense = np.empty(worse.size, np.int64)
        dense[np.lexsort((worse, -q_worse))] = np.arange(worse.size)
        rows, partners, sims = resolve_pairs(pj, pi, ps, dense[inv.ravel()])
        reps = np.unique(partners)
        rep_ids = ctx.lookup(reps, ("id",))["id"].cast(pl.String) if reps.size else pl.Series([], dtype=pl.String)
        dup_of = rep_ids.gather(np.searchsorted(reps, partners))
        marks = pl.concat([
            pl.DataFrame({ROW: rows, "drop_reason": pl.Series([REASON] * rows.size, dtype=pl.String), "dup_of": dup_of,
                          "semantic_cluster": dup_of, "similarity": sims.astype(np.float64)}),
            pl.DataFrame({ROW: reps, "semantic_cluster": rep_ids}),
        ], how="diagonal").cast(MARK_SCHEMA).select(list(MARK_SCHEMA))
        t_embedded = getattr(self, "_t_embedded", None)
        stats = {"duplicate_groups": int(reps.size), "pairs": int(pj.size), "driver_bytes": driver_bytes,
                 "other_seconds": round(time.perf_counter() - t_embedded, 3) if t_embedded else 0.0}
        if pj.size > PAIRS_PER_ROW_WARNING * ctx.total and self.config.boundary_margin > 0:
            stats["warnings"] = [
                f"{pj.size:,} duplicate pairs for {ctx.total:,} rows: groups of near-copies on cluster boundaries pair "
                f"quadratically at boundary_margin {self.config.boundary_margin}; set boundary_margin: 0 to keep the "
                "pairs, and memory, linear in rows (a boundary duplicate may then be missed)"]
        return Out(rows=marks, stats=stats)


MARK_SCHEMA = {ROW: pl.Int64, "drop_reason": pl.String, "dup_of": pl.String, "semantic_cluster": pl.String,
               "similarity": pl.Float64}
#: More pairs than this per input row reach the driver only when boundary groups of near-copies pair quadratically
#: (a row is paired only with rows that may be kept: ~1 a row at boundary_margin 0); the step then says so.
PAIRS_PER_ROW_WARNING = 16
#: The Ray engine starts one embedding actor per this many rows (at most one per CPU and per block): each actor
#: loads the model (a fresh worker imports torch and sentence-transformers: seconds of CPU), so a small input
#: gets one actor, not one per CPU.
EMBED_ROWS_PER_WORKER = 2048

STEP = SemanticDedupe
