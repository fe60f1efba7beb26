"""near_dedupe: drop near-duplicate examples found by MinHash + LSH (reason `near_duplicate`).

Runs after exact_dedupe. Each example's text (`prompt`, `response` or `all` turns) is cut into shingles
and sketched; LSH buckets give candidate pairs; a pair is a duplicate when its Jaccard similarity reaches
`threshold`; duplicates are joined into clusters by union-find and each cluster keeps one representative
(highest `quality` when that column exists, else the first row in input order). The others get
`drop_reason="near_duplicate"`, `dup_of` = the representative's id, `similarity` = Jaccard to the
representative; all members, the representative too, get `dup_cluster` = the representative's id.

Thresholds and where they come from:
- threshold 0.8 Jaccard on word 3-gram shingles: the setting of the MinHash dedupe used for large LM corpora
  (Lee et al. 2022, "Deduplicating Training Data Makes Language Models Better": 5-gram MinHash at 0.8;
  datasketch's MinHashLSH default threshold is 0.9; text-dedup's MinHash default 0.7). Shorter shingles
  (3 words) suit instruction data, where a prompt is often a single sentence.
- num_perm 128 (datasketch's default); LSH bands × rows from datasketch's `_optimal_param` for the
  threshold (see `curate.minhash.optimal_param`), with false negatives weighted 0.65 against false
  positives 0.35 (datasketch weighs them 0.5/0.5): at 0.8 and 128 permutations that is 11 bands × 11 rows,
  which makes a pair at J = 0.8 a candidate with probability 0.63 instead of 0.40 (datasketch's 9 × 13).
  Candidates link each bucket member to the bucket's first document (a star), and clusters are closed
  transitively, so more candidates raise the recall of duplicate pairs and lower their precision (chains):
  on t0 (bench/README.md) weights 0.5 / 0.6 / 0.65 / 0.9 gave precision 0.942 / 0.938 / 0.935 / 0.930 and
  recall 0.989 / 0.990 / 0.995 / 0.998 against datasketch's 0.936 / 0.993 (seed 1); 0.65 is the setting
  closest to datasketch on both, chosen on that measurement. Over seeds 1-6, both methods seeded alike, the
  means are precision 0.9351 vs datasketch's 0.9344 and recall 0.9961 vs 0.9922 (the seed moves precision by
  up to 0.003, more than the gap).
- Verification: a candidate pair whose MinHash estimate lies within `exact_band` of the threshold is
  checked with the exact Jaccard of its shingle sets (0.15 ≈ 4 standard deviations of the estimate at
  J = 0.8 with 128 permutations); pairs clearly above or below are decided by the estimate. The unsure
  pairs are checked in rounds from the highest estimate down, skipping a pair whose two rows are already in
  one cluster (its result cannot change the clusters), which on t0 halves the exact checks. The
  `similarity` reported for a dropped row is always the exact Jaccard to its representative.

`impl: fast` (default) is written as stages that either engine runs (`curate.step.StagedStep`), after
DataTrove's MinHash stages, on whole batches with compiled loops (numba), NumPy and Polars (`curate.minhash`,
`curate._kernels`): per block, signatures and band keys → per band key, each bucket's star candidate pairs →
per pair owner, the pairs verified and their clusters reduced to a spanning forest (each node → the smallest row
of its component: at most V - 1 edges for V rows with a partner) → on the driver, the forests united and each
cluster's representative chosen → per block, the marks. The driver holds the forests only (O(rows), never
O(candidate pairs)). The unsure pairs of each pair partition are checked in its own rounds, so on several
partitions a few more pairs may be checked; the clusters and every output column are the same.
`impl: datasketch` runs the reference implementation (datasketch MinHash + MinHashLSH on Python shingle
sets, every candidate checked exactly) on the local engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from curate import minhash
from curate.step import KEY, ROW, Context, Out, Stage, StagedStep, StepConfig, distinct_rows
from studio.errors import StudioError

#: Rows per batch when shingling and sketching (bounds the transient memory of text and word hashes; what is
#: kept per row is its signature, 4 bytes x num_perm, and its shingle hashes, 8 bytes per shingle, for the
#: exact checks).
BATCH_ROWS = 65536


class NearDedupeConfig(StepConfig):
    threshold: float = Field(0.8, gt=0.0, le=1.0)
    """Jaccard similarity of shingle sets at or above which two examples are near duplicates."""
    num_perm: int = Field(128, ge=8, le=1024)
    """MinHash signature length (permutations / bins)."""
    unit: Literal["word", "char"] = "word"
    """Shingle unit: words (runs of letters/digits) or characters (whitespace collapsed)."""
    size: int | None = Field(None, ge=1, le=64)
    """Shingle size in units; default 3 for words, 5 for characters."""
    seed: int = 1
    text: Literal["prompt", "response", "all"] = "all"
    """Which text to compare: user turns, assistant turns, or every turn."""
    impl: Literal["fast", "datasketch"] = "fast"
    recall_weight: float = Field(0.65, gt=0.0, lt=1.0)
    """Weight of false negatives against false positives when choosing LSH bands × rows (datasketch: 0.5).
    Every candidate is checked, so extra candidates cost time, not precision."""
    exact_band: float = Field(0.15, ge=0.0, le=1.0)
    """Pairs whose MinHash estimate is within this distance of `threshold` are checked exactly (1.0: all)."""

    @model_validator(mode="after")
    def _size_default(self) -> NearDedupeConfig:
        if self.size is None:
            self.size = minhash.DEFAULT_SIZE[self.unit]
        return self


def text_expr(which: str) -> pl.Expr:
    """The text near_dedupe compares, joined across turns with newlines (empty when there is none)."""
    turn = pl.element()
    if which == "all":
        contents = pl.col("messages").list.eval(turn.struct.field("content"))
    else:
        role = "user" if which == "prompt" else "assistant"
        contents = pl.col("messages").list.eval(turn.filter(turn.struct.field("role") == role).struct.field("content"))
    return contents.list.join("\n").fill_null("")


def _check_unsure(n: int, pairs: np.ndarray, sims: np.ndarray, threshold: float, exact_band: float,
                  exact: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Replace the estimate by the exact Jaccard (`exact(pairs)`) for the pairs whose estimate is within
    `exact_band` of the threshold, skipping those that cannot change the clusters; returns which pairs were
    checked. `pairs` index `n` documents; `sims` is updated in place.

    Pairs clearly above the threshold are edges; the unsure ones are taken in rounds from the highest
    estimate down, and a pair whose two documents are already in one cluster (joined by edges decided or
    verified in earlier rounds) is skipped: whatever its exact value, the clusters stay the same. The
    clusters are therefore exactly those of checking every unsure pair, whichever subset of the pairs is seen."""
    checked = np.zeros(len(pairs), dtype=bool)
    unsure = np.abs(sims - threshold) <= exact_band
    if not unsure.any():
        return checked
    edges = [pairs[sims > threshold + exact_band]]

    def labels() -> np.ndarray:
        return minhash.connected_components(n, np.concatenate(edges))

    cuts = threshold + exact_band * np.array([1.0, 2 / 3, 1 / 3, 0.0, -1 / 3, -1.0])
    for hi, lo in zip(cuts[:-1], cuts[1:], strict=True):
        sel = np.flatnonzero(unsure & (sims <= hi) & (sims >= lo) & ~checked)
        if not len(sel):
            continue
        lab = labels()
        sel = sel[lab[pairs[sel, 0]] != lab[pairs[sel, 1]]]
        if not len(sel):
            continue
        sims[sel] = exact(pairs[sel])
        checked[sel] = True
        edges.append(pairs[sel[sims[sel] >= threshold]])
    # A skipped pair keeps its estimate: it joins two documents already in one cluster, so whether it
    # counts as an edge changes nothing; the `similarity` reported is computed exactly in the marks.
    return checked


def _pair_code(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A pair of rows as one uint64 (32 bits each), so pairs are de-duplicated by one `np.unique`."""
    return (a.astype(np.uint64) << np.uint64(32)) | b.astype(np.uint64)


def _split_code(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (codes >> np.uint64(32)).astype(np.int64), (codes & np.uint64(0xFFFFFFFF)).astype(np.int64)


MARK_SCHEMA = {ROW: pl.Int64, "drop_reason": pl.String, "dup_of": pl.String, "dup_cluster": pl.String,
               "similarity": pl.Float64}


def cluster_marks(members: np.ndarray, reps: np.ndarray, cluster: pl.Series, similarity: np.ndarray) -> pl.DataFrame:
    """Marks of cluster members (rows, their representatives' rows and ids, exact Jaccard to them): each member
    gets `dup_cluster`; the members other than the representative are dropped with `dup_of` and `similarity`."""
    drop = pl.Series(reps != members)
    return pl.DataFrame({ROW: members, "_drop": drop, "_cluster": cluster.cast(pl.String),
                         "_sim": pl.Series(similarity, dtype=pl.Float64).fill_nan(None)}).select(
        ROW,
        pl.when("_drop").then(pl.lit("near_duplicate")).alias("drop_reason"),
        pl.when("_drop").then("_cluster").alias("dup_of"),
        pl.col("_cluster").alias("dup_cluster"),
        pl.when("_drop").then("_sim").alias("similarity"),
    ).cast(MARK_SCHEMA)


class NearDedupe(StagedStep):
    name = "near_dedupe"
    Config = NearDedupeConfig

    def stages(self) -> list[Stage]:
        return [Stage("block", self.sketch), Stage("key", self.buckets), Stage("key", self.verify),
                Stage("driver", self.clusters), Stage("block", self.marks)]

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        return self._reference(df) if self.config.impl == "datasketch" else super().apply(df)

    def _bands(self) -> tuple[int, int]:
        cfg = self.config
        return minhash.optimal_param(cfg.threshold, cfg.num_perm, 1 - cfg.recall_weight, cfg.recall_weight)

    def sketch(self, ctx: Context, df: pl.DataFrame) -> Out:
        """Per block: each row's signature and shingle hashes (kept for the checks), and (band key, row) entries."""
        cfg = self.config
        if ctx.total >= 1 << 32:  # pairs travel as one uint64: 32 bits per row
            raise StudioError("near_dedupe takes at most 4,294,967,295 input rows; split the input into runs.")
        sig = np.empty((df.height, cfg.num_perm), dtype=np.uint32)
        parts = []  # batch by batch: bounds the transient text and word hashes
        for start in range(0, df.height, BATCH_ROWS):
            texts = df.slice(start, BATCH_ROWS).select(text_expr(cfg.text)).to_series()
            shingles = minhash.shingle_hashes(texts, cfg.unit, cfg.size, cfg.seed)
            minhash.signatures(shingles, cfg.num_perm, cfg.seed, out=sig[start: start + shingles.n])
            parts.append(shingles)
        shingles = minhash.Shingles.concat(parts)
        has = minhash.has_shingles(shingles)
        rows = df.get_column(ROW).to_numpy()
        bands, band_rows = self._bands()
        keys = minhash.band_keys(sig, bands, band_rows)  # then filtered: a copy of the keys, not of the signatures
        if not has.all():
            keys, rows = keys[has], rows[has]
        entries = pl.DataFrame({KEY: keys.ravel(), ROW: np.repeat(rows, bands)})
        quality = df.get_column("quality").cast(pl.Float64).to_numpy() if "quality" in df.columns else None
        return Out(entries=entries, keep={"sig": sig, "shingles": shingles, "id": df.get_column("id"),
                                          "quality": quality})

    def buckets(self, ctx: Context, entries: pl.DataFrame) -> Out:
        """Per band-key partition: the star candidate pairs (bucket's first row, each later member) of every
        bucket of two or more rows, keyed by their first row."""
        shared = entries.filter(pl.col(KEY).is_duplicated())  # a key seen once gives no pair
        pairs = shared.select(pl.col(ROW).min().over(KEY).alias(KEY), pl.col(ROW).alias("b")).filter(
            pl.col(KEY) < pl.col("b")).unique()
        return Out(entries=pairs)

    def verify(self, ctx: Context, entries: pl.DataFrame) -> Out:
        """Per pair partition: the unique candidates → verified edges (MinHash estimate; exact Jaccard for the
        unsure ones, `_check_unsure`) → a spanning forest of their clusters (result)."""
        cfg = self.config
        a, b = _split_code(np.unique(_pair_code(entries.get_column(KEY).to_numpy(), entries.get_column("b").to_numpy())))
        stats = {"candidate_pairs": len(a), "verified_pairs": 0, "exact_checks": 0}
        if not len(a):
            empty = np.zeros(0, np.int64)
            return Out(result={"child": empty, "root": empty, "node": empty, "q": None}, stats=stats)
        ends, (pa, pb) = distinct_rows(ctx.total, a, b)
        got = ctx.lookup(ends, ("sig", "quality"))
        pairs = np.stack([pa, pb], axis=1)
        sims = minhash.estimated_jaccard(got["sig"], pairs)
        unsure = np.abs(sims - cfg.threshold) <= cfg.exact_band
        checked = np.zeros(len(pairs), dtype=bool)
        if unsure.any():  # the shingle hashes of every document an exact check may need, fetched once
            docs, _ = distinct_rows(len(ends), pairs[unsure].ravel())
            doc_at = np.full(len(ends), -1, dtype=np.int64)
            doc_at[docs] = np.arange(len(docs))
            shingles = ctx.lookup(ends[docs], ("shingles",))["shingles"]
            checked = _check_unsure(len(ends), pairs, sims, cfg.threshold, cfg.exact_band,
                                    lambda p: minhash.exact_jaccard(shingles, doc_at[p]))
        edge = sims >= cfg.threshold
        stats.update(verified_pairs=int(edge.sum()), exact_checks=int(checked.sum()))
        ea, eb = pairs[edge, 0], pairs[edge, 1]
        nodes, (na, nb) = distinct_rows(len(ends), ea, eb)
        labels = minhash.connected_components(len(nodes), np.stack([na, nb], axis=1))
        child = labels != np.arange(len(nodes))
        q = got["quality"]
        forest = {"child": ends[nodes[child]], "root": ends[nodes[labels[child]]], "node": ends[nodes],
                  "q": q[nodes] if q is not None else None}
        return Out(result=forest, stats=stats)

    def clusters(self, ctx: Context, forests: list[dict[str, Any]]) -> Out:
        """On the driver: the components of the union of the forests (`label_components`: NumPy, so the driver
        never starts numba) and each member's representative (highest quality, then first in input order)."""
        child, root, node_rows = (np.concatenate([f[k] for f in forests]) for k in ("child", "root", "node"))
        has_quality = any(f["q"] is not None for f in forests)
        nodes, first = np.unique(node_rows, return_index=True)
        labels = minhash.label_components(len(nodes), np.stack([np.searchsorted(nodes, child),
                                                                np.searchsorted(nodes, root)], axis=1))
        quality = np.concatenate([f["q"] for f in forests if f["q"] is not None])[first] if has_quality else None
        rep = minhash.representatives(labels, quality)
        sizes = np.bincount(labels, minlength=len(nodes))
        bands, band_rows = self._bands()
        stats = {"lsh_bands": bands, "lsh_rows": band_rows, "clusters": int((sizes > 1).sum()),
                 "largest_cluster": int(sizes.max()) if len(nodes) else 0,
                 "near_duplicates": int((rep != np.arange(len(nodes))).sum()), "forest_edges": int(len(child)),
                 "driver_bytes": int(child.nbytes + root.nbytes + node_rows.nbytes
                                     + (len(node_rows) * 8 if has_quality else 0))}
        return Out(rows=pl.DataFrame({ROW: nodes, "_rep": nodes[rep]}), stats=stats)

    def marks(self, ctx: Context, df: pl.DataFrame) -> Out:
        """Per block: its cluster members' marks, with the exact Jaccard of each dropped row to its representative."""
        routed = ctx.rows if ctx.rows is not None else pl.DataFrame(schema={ROW: pl.Int64, "_rep": pl.Int64})
        members, reps = routed.get_column(ROW).to_numpy(), routed.get_column("_rep").to_numpy()
        rep_rows, (rep_at,) = distinct_rows(ctx.total, reps)
        rep_ids = ctx.lookup(rep_rows, ("id",))["id"] if len(rep_rows) else pl.Series([], dtype=pl.String)
        cluster = rep_ids.gather(rep_at)
        drop = np.flatnonzero(reps != members)
        similarity = np.full(len(members), np.nan)
        if len(drop):
            pair_rows, (rep_local, member_local) = distinct_rows(ctx.total, reps[drop], members[drop])
            shingles = ctx.lookup(pair_rows, ("shingles",))["shingles"]
            local = np.stack([rep_local, member_local], axis=1)
            similarity[drop] = minhash.exact_jaccard(shingles, local)
        return Out(rows=cluster_marks(members, reps, cluster, similarity))

    def _reference(self, df: pl.DataFrame) -> pl.DataFrame:
        """datasketch MinHash + MinHashLSH on Python shingle sets, every candidate checked exactly (local only)."""
        cfg = self.config
        numbered = df.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
        active = np.flatnonzero(df.select(pl.col("drop_reason").is_null()).to_series().to_numpy())
        texts = df.select(text_expr(cfg.text)).to_series().gather(active)
        sets = [minhash.python_shingles(t, cfg.unit, cfg.size) for t in texts.to_list()]
        pairs = minhash.datasketch_pairs(sets, cfg.threshold, cfg.num_perm, cfg.seed)
        sims = minhash.set_jaccard(sets, pairs)
        duplicate = sims >= cfg.threshold
        labels = minhash.connected_components(len(active), pairs[duplicate])
        quality = df.get_column("quality").cast(pl.Float64).gather(active).to_numpy() if "quality" in df.columns else None
        rep = minhash.representatives(labels, quality)
        sizes = np.bincount(labels, minlength=len(active))
        members = np.flatnonzero(sizes[labels] > 1)
        reps = rep[members]
        similarity = np.full(len(members), np.nan)
        drop = reps != members
        if drop.any():
            similarity[drop] = minhash.set_jaccard(sets, np.stack([reps[drop], members[drop]], axis=1))
        self.stats.update(candidate_pairs=int(len(pairs)), verified_pairs=int(duplicate.sum()),
                          clusters=int((sizes > 1).sum()), largest_cluster=int(sizes.max()) if len(sizes) else 0,
                          near_duplicates=int(drop.sum()))
        cluster = df.get_column("id").gather(active[reps])
        marks = cluster_marks(active[members], active[reps], cluster, similarity)
        return self.mark(numbered, marks).drop(ROW)


STEP = NearDedupe
