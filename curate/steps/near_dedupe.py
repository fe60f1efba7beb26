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

`impl: datasketch` runs the reference implementation (datasketch MinHash + MinHashLSH on Python shingle
sets, every candidate checked exactly); `impl: fast` (default) does the same on whole batches with compiled
loops (numba), NumPy and Polars (`curate.minhash`, `curate._kernels`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import polars as pl
from pydantic import Field, model_validator

from curate import minhash
from curate.step import Step, StepConfig

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


def check_unsure(n: int, pairs: np.ndarray, sims: np.ndarray, threshold: float, exact_band: float,
                 exact: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Replace the estimate by the exact Jaccard (`exact(pairs)`) for the pairs whose estimate is within
    `exact_band` of the threshold, skipping those that cannot change the clusters; returns which pairs were
    checked. `pairs` index `n` documents; `sims` is updated in place.

    Pairs clearly above the threshold are edges; the unsure ones are taken in rounds from the highest
    estimate down, and a pair whose two documents are already in one cluster (joined by edges decided or
    verified in earlier rounds) is skipped: whatever its exact value, the clusters stay the same. The
    clusters are therefore exactly those of checking every unsure pair. (The Ray engine calls this on each
    partition of the candidate pairs: a pair skipped there joins documents already joined by real edges.)"""
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
    # counts as an edge changes nothing; its `similarity`, if reported, is computed exactly later.
    return checked


class NearDedupe(Step):
    name = "near_dedupe"
    Config = NearDedupeConfig
    is_global = True

    def apply(self, df: pl.DataFrame) -> pl.DataFrame:
        cfg = self.config
        active = df.select(pl.col("drop_reason").is_null()).to_series().to_numpy()
        active_rows = np.flatnonzero(active)
        n_active = len(active_rows)
        if cfg.impl == "fast":  # texts are extracted batch by batch there, never all at once
            texts = None
            pairs, sims = self._fast_pairs(df, active_rows)
        else:
            texts = df.select(text_expr(cfg.text)).to_series().gather(active_rows)
            pairs, sims = self._datasketch_pairs(texts)
        duplicate = sims >= cfg.threshold
        edges = pairs[duplicate]
        labels = minhash.connected_components(n_active, edges)
        quality = None
        if "quality" in df.columns:
            quality = df.get_column("quality").cast(pl.Float64).gather(active_rows).to_numpy()
        rep = minhash.representatives(labels, quality)
        sizes = np.bincount(labels, minlength=n_active)
        in_cluster = sizes[labels] > 1
        dropped = in_cluster & (rep != np.arange(n_active))
        member_pairs = np.stack([rep[dropped], np.flatnonzero(dropped)], axis=1)
        member_sims = self._similarity(texts, member_pairs, pairs, sims)

        n = df.height
        cluster_row = np.full(n, -1, dtype=np.int64)  # row index of the representative, -1: none
        cluster_row[active_rows[in_cluster]] = active_rows[rep[in_cluster]]
        dropped_rows = active_rows[dropped]
        similarity = np.full(n, np.nan)
        similarity[dropped_rows] = member_sims
        is_dropped = np.zeros(n, dtype=bool)
        is_dropped[dropped_rows] = True

        self.stats.update(
            candidate_pairs=int(len(pairs)), verified_pairs=int(duplicate.sum()),
            clusters=int((sizes > 1).sum()), largest_cluster=int(sizes.max()) if len(sizes) else 0,
            near_duplicates=int(dropped.sum()),
        )
        rep_row = pl.Series("_rep", cluster_row)
        rep_id = pl.col("id").gather(pl.col("_rep").clip(0))
        dropped_now = pl.Series("_drop", is_dropped)
        return (
            df.with_columns(rep_row, dropped_now)
            .with_columns(
                pl.when(pl.col("_drop")).then(pl.lit("near_duplicate")).otherwise(pl.col("drop_reason"))
                .alias("drop_reason"),
                pl.when(pl.col("_drop")).then(rep_id).otherwise(pl.col("dup_of")).alias("dup_of"),
                pl.when(pl.col("_rep") >= 0).then(rep_id).alias("dup_cluster"),
                pl.Series("similarity", similarity, dtype=pl.Float64).fill_nan(None),
            )
            .drop("_rep", "_drop")
        )

    # -- fast path ------------------------------------------------------------------------------------
    def _shingles(self, texts: pl.Series) -> minhash.Shingles:
        return minhash.shingle_hashes(texts, self.config.unit, self.config.size, self.config.seed)

    def _fast_pairs(self, df: pl.DataFrame, active_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        n = len(active_rows)
        if n == 0:
            self._checked = np.zeros(0, dtype=bool)
            return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
        sig = np.empty((n, cfg.num_perm), dtype=np.uint32)
        raw = []  # per batch: shingle hashes, kept for the exact checks (no re-shingling)
        for start in range(0, n, BATCH_ROWS):
            rows = pl.Series(active_rows[start: start + BATCH_ROWS])
            batch = df.select(pl.col("messages").gather(rows))  # gather first: the text of this batch only
            shingles = self._shingles(batch.select(text_expr(cfg.text)).to_series())
            minhash.signatures(shingles, cfg.num_perm, cfg.seed, out=sig[start: start + shingles.n])
            raw.append(shingles)
        self._raw = minhash.Shingles.concat(raw)
        del raw
        active = minhash.has_shingles(self._raw)
        bands, rows = minhash.optimal_param(cfg.threshold, cfg.num_perm, 1 - cfg.recall_weight, cfg.recall_weight)
        self.stats.update(lsh_bands=bands, lsh_rows=rows)
        pairs = minhash.candidate_pairs(minhash.band_keys(sig, bands, rows), active)
        self._sig = sig
        sims = minhash.estimated_jaccard(sig, pairs)
        self._checked = self._check_unsure(n, pairs, sims)
        self.stats["exact_checks"] = int(self._checked.sum())
        return pairs, sims

    def _check_unsure(self, n: int, pairs: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """`check_unsure` with the exact Jaccard from the shingle hashes kept by the first pass."""
        cfg = self.config
        return check_unsure(n, pairs, sims, cfg.threshold, cfg.exact_band, lambda p: self._exact(None, p))

    def _exact(self, texts: pl.Series | None, pairs: np.ndarray) -> np.ndarray:
        """Exact Jaccard of the pairs, from the shingle hashes kept by the first pass."""
        return minhash.exact_jaccard(self._raw, pairs)

    # -- reference path -------------------------------------------------------------------------------
    def _datasketch_pairs(self, texts: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        self._sets = [minhash.python_shingles(t, cfg.unit, cfg.size) for t in texts.to_list()]
        pairs = minhash.datasketch_pairs(self._sets, cfg.threshold, cfg.num_perm, cfg.seed)
        return pairs, minhash.set_jaccard(self._sets, pairs)

    def _similarity(self, texts: pl.Series | None, member_pairs: np.ndarray, pairs: np.ndarray, sims: np.ndarray
                    ) -> np.ndarray:
        """Exact Jaccard of each dropped row to its representative: the checked value when that pair was
        checked exactly already, else computed now (from the Python sets for datasketch, from the kept
        shingle hashes in fast)."""
        if len(member_pairs) == 0:
            return np.zeros(0)
        lo, hi = member_pairs.min(axis=1), member_pairs.max(axis=1)
        exact = sims if self.config.impl == "datasketch" else np.where(self._checked, sims, np.nan)
        known = pl.DataFrame({"a": pairs[:, 0], "b": pairs[:, 1], "s": exact})
        wanted = pl.DataFrame({"a": lo, "b": hi})
        out = wanted.join(known, on=["a", "b"], how="left", maintain_order="left").get_column("s").to_numpy().copy()
        missing = np.isnan(out)
        if missing.any():
            mp = np.stack([lo[missing], hi[missing]], axis=1)
            if self.config.impl == "datasketch":
                out[missing] = minhash.set_jaccard(self._sets, mp)
            else:
                out[missing] = self._exact(texts, mp)
        return out


STEP = NearDedupe
