"""near_dedupe: thresholds on pairs of known Jaccard, deterministic representatives, conservation, real data."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import polars as pl
import pytest

from curate import minhash
from curate.pipeline import PipelineConfig, run_pipeline
from curate.steps.near_dedupe import NearDedupe
from studio.schema import examples_frame, make_example

WORDS = [f"w{i:03d}" for i in range(400)]


def _example(prompt: str, response: str = "ok", source: str = "test") -> dict:
    return make_example([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], source=source)


def _frame(rows: list[dict], **extra) -> pl.DataFrame:
    df = examples_frame(rows).with_columns(pl.lit(None, pl.String).alias("drop_reason"),
                                           pl.lit(None, pl.String).alias("dup_of"))
    return df.with_columns(**{k: pl.Series(v) for k, v in extra.items()})


def _pair(base: int, replaced: int, n: int = 102) -> tuple[str, str]:
    """Two texts of n distinct words; the second has its last `replaced` words swapped for new ones."""
    a = WORDS[base: base + n]
    b = a[: n - replaced] + [f"x{base}_{i}" for i in range(replaced)]
    return " ".join(a), " ".join(b)


def _jaccard(a: str, b: str) -> float:
    sa, sb = minhash.python_shingles(a), minhash.python_shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_pairs_at_or_above_threshold_merge_and_pairs_below_do_not():
    pairs = {r: _pair(0, r) for r in (4, 8, 12, 25)}
    sims = {r: _jaccard(*p) for r, p in pairs.items()}
    assert sims[4] > 0.9 and 0.8 < sims[8] < 0.9 and 0.75 < sims[12] < 0.8 and sims[25] < 0.65
    rows = []
    for r, (a, b) in pairs.items():  # disjoint vocabularies per pair: no cross-pair similarity
        rows += [_example(a.replace("w", f"p{r}w")), _example(b.replace("w", f"p{r}w"))]
    out = NearDedupe({"text": "prompt"}).process(_frame(rows))
    dropped = out.get_column("drop_reason").to_list()
    assert dropped == [None, "near_duplicate", None, "near_duplicate", None, None, None, None]
    assert out.get_column("dup_of").to_list()[1] == rows[0]["id"]
    assert out.get_column("similarity")[1] == pytest.approx(sims[4])
    assert out.get_column("similarity")[3] == pytest.approx(sims[8])
    assert out.get_column("dup_cluster").to_list()[:4] == [rows[0]["id"]] * 2 + [rows[2]["id"]] * 2
    assert out.get_column("dup_cluster").to_list()[4:] == [None] * 4


def test_lower_threshold_merges_the_pair_just_below_the_default():
    a, b = _pair(0, 12)
    out = NearDedupe({"text": "prompt", "threshold": 0.7}).process(_frame([_example(a), _example(b)]))
    assert out.get_column("drop_reason").to_list() == [None, "near_duplicate"]


def _cluster_rows() -> list[dict]:
    base = WORDS[100:200]
    rows = []
    for k in range(5):  # five copies, each with one different word near the end: all pairs J > 0.9
        words = list(base)
        words[-3] = f"v{k}"
        rows.append(_example(" ".join(words)))
    rows.append(_example(" ".join(WORDS[250:350])))  # unrelated
    return rows


def test_representative_is_first_seen_without_quality_in_any_order():
    rows = _cluster_rows()
    rng = np.random.default_rng(0)
    for _ in range(4):
        order = rng.permutation(len(rows))
        shuffled = [rows[i] for i in order]
        out = NearDedupe({"text": "prompt"}).process(_frame(shuffled))
        first_member = next(r["id"] for r in shuffled if r["id"] != rows[5]["id"])
        kept = out.filter(pl.col("drop_reason").is_null()).get_column("id").to_list()
        assert sorted(kept) == sorted([first_member, rows[5]["id"]])
        assert set(out.get_column("dup_of").drop_nulls()) == {first_member}


def test_representative_is_highest_quality_whatever_the_order():
    rows = _cluster_rows()
    quality = [0.2, 0.9, 0.5, None, 0.1, 0.3]
    rng = np.random.default_rng(1)
    results = set()
    for _ in range(4):
        order = rng.permutation(len(rows))
        out = NearDedupe({"text": "prompt"}).process(
            _frame([rows[i] for i in order], quality=[quality[i] for i in order]))
        results.add(tuple(sorted(out.filter(pl.col("drop_reason").is_null()).get_column("id").to_list())))
        assert set(out.get_column("dup_cluster").drop_nulls()) == {rows[1]["id"]}
    assert results == {tuple(sorted([rows[1]["id"], rows[5]["id"]]))}


def test_counts_conserve_through_run_pipeline(tmp_path):
    rows = _cluster_rows() + [_example(" ".join(WORDS[0:60]), "same answer")] * 2
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"messages": r["messages"]}) + "\n" for r in rows) + "{broken\n")
    cfg = PipelineConfig(inputs=[str(path)], steps=["normalize", "exact_dedupe", "near_dedupe"], report=False)
    run = run_pipeline(cfg, out_dir=tmp_path / "run")
    counts = json.loads((run.dir / "manifest.json").read_text())["counts"]
    assert counts["input"] == 9 and counts["quarantined"] == 1
    assert counts["dropped"] == {"exact_duplicate": 1, "near_duplicate": 4}
    assert counts["kept"] == 3  # the unrelated row, the cluster representative, the exact original
    kept = pl.read_parquet(run.dir / "kept.parquet")
    dropped = pl.read_parquet(run.dir / "dropped.parquet")
    assert kept.height + dropped.height + counts["quarantined"] == counts["input"]
    near = dropped.filter(pl.col("drop_reason") == "near_duplicate")
    assert set(near.get_column("dup_of")) <= set(kept.get_column("id"))


def test_empty_texts_are_never_near_duplicates():
    rows = [_example("", "answer one two three"), _example("", "another reply here now")]
    out = NearDedupe({"text": "prompt"}).process(_frame(rows))
    assert out.get_column("drop_reason").to_list() == [None, None]


def test_fast_shingles_match_the_python_definition_on_mixed_text():
    texts = ["Hello, World! héllo wörld — naïve café", "日本語のテキスト and ascii", "a b", "", "CAPS caps Caps"]
    for unit in ("word", "char"):
        sh = minhash.shingle_hashes(pl.Series(texts), unit)
        for i, t in enumerate(texts):
            fast = np.unique(sh.hashes[sh.offsets[i]: sh.offsets[i + 1]])
            assert len(fast) == len(minhash.python_shingles(t, unit)), (unit, t)


def test_shingles_ignore_case_in_ascii_and_non_ascii_text():
    """ASCII texts are lower-cased inside the compiled pass, others by Unicode rules first: both ignore case."""
    texts = ["Return The BOOTS within 60 days", "ÉCOLE NAÏVE Straße ÜBER alles", "return the boots WITHIN 60 DAYS",
             "école naïve straße über ALLES", "Mixed ascii THEN Ünïcödé LATER on"]
    sh = minhash.shingle_hashes(pl.Series(texts), "word")

    def doc(i: int) -> list[int]:
        return sh.hashes[sh.offsets[i]: sh.offsets[i + 1]].tolist()

    assert doc(0) == doc(2) and doc(1) == doc(3)
    assert doc(0) != doc(1)
    lowered = minhash.shingle_hashes(pl.Series([t.lower() for t in texts]), "word")
    assert np.array_equal(sh.hashes, lowered.hashes)
    pairs = np.array([[0, 2], [1, 3], [0, 4], [1, 4]])
    sets = [minhash.python_shingles(t) for t in texts]
    expected = [len(sets[a] & sets[b]) / len(sets[a] | sets[b]) for a, b in pairs.tolist()]
    assert np.allclose(minhash.exact_jaccard(sh, pairs), expected)


def test_optimal_param_matches_datasketch():
    from datasketch.lsh import _optimal_param

    for threshold, num_perm in ((0.8, 128), (0.7, 128), (0.9, 64)):
        assert minhash.optimal_param(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)


def test_planted_near_duplicates_found_and_paraphrases_not(sample_data, planted):
    from studio_app.demo import sample_inputs

    cfg = PipelineConfig(inputs=[str(p) for p in sample_inputs(sample_data)],
                         steps=["normalize", "exact_dedupe", "near_dedupe"], report=False)
    kept, dropped = _run_frames(cfg)
    rows = pl.concat([kept.select("id", "source", "dup_cluster"),
                      dropped.filter(pl.col("drop_reason") == "near_duplicate").select("id", "source", "dup_cluster")])
    cluster_at = {(src.split("sample_data/", 1)[-1].rsplit(":", 1)[0], int(src.rsplit(":", 1)[1])): c
                  for src, c in zip(rows["source"], rows["dup_cluster"], strict=True)}

    def cluster(place: dict) -> str | None:
        return cluster_at.get((place["file"], place["line"]))

    assert len(planted["near_duplicates"]) >= 20
    for pair in planted["near_duplicates"]:
        assert cluster(pair["a"]) is not None and cluster(pair["a"]) == cluster(pair["b"]), pair
    for pair in planted["paraphrases"]:  # different words, same meaning: semantic_dedupe's job, not this step's
        a, b = cluster(pair["a"]), cluster(pair["b"])
        assert a is None or a != b, pair


def _run_frames(cfg: PipelineConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run = run_pipeline(cfg, out_dir=os.path.join(tmp, "run"))
        return pl.read_parquet(run.dir / "kept.parquet"), pl.read_parquet(run.dir / "dropped.parquet")


def test_fast_and_datasketch_agree_on_real_t0_slice(shared_data):
    files = [f for f in sorted(glob.glob(str(shared_data / "t0" / "*.jsonl"))) if os.path.getsize(f)][:12]
    from studio.readers import read_inputs

    df = _frame(read_inputs(files).rows)
    fast = NearDedupe({"impl": "fast"}).process(df)
    ref = NearDedupe({"impl": "datasketch"}).process(df)
    a = fast.get_column("drop_reason").is_not_null().to_numpy()
    b = ref.get_column("drop_reason").is_not_null().to_numpy()
    assert b.sum() > 50  # the slice really holds near duplicates
    # fast weighs recall higher in its LSH bands (every candidate is checked), so it finds what the
    # reference finds and a few more; the extra drops are still checked pairs, never estimates alone
    assert (b & ~a).sum() <= 0.03 * b.sum()
    assert a.sum() <= 1.15 * b.sum()


def test_word_shingles_do_not_run_across_documents_or_empty_texts():
    texts = ["alpha beta", "", "gamma delta epsilon", "", "", "zeta", "eta theta iota kappa"]
    sh = minhash.shingle_hashes(pl.Series(texts), "word")
    assert sh.counts.tolist() == [1, 0, 1, 0, 0, 1, 2]
    for i, t in enumerate(texts):
        assert len(np.unique(sh.hashes[sh.offsets[i]: sh.offsets[i + 1]])) == len(minhash.python_shingles(t))


def test_label_components_matches_the_compiled_union_find():
    # the Ray driver unites spanning forests with the NumPy form; it must label exactly as union-find does
    rng = np.random.default_rng(3)
    for n, m in ((1, 0), (10, 0), (50, 30), (500, 400), (2000, 3000)):
        pairs = rng.integers(0, n, (m, 2))
        expected = minhash.connected_components(n, pairs)
        assert np.array_equal(minhash.label_components(n, pairs), expected)
    chain = np.stack([np.arange(1, 300), np.arange(0, 299)], axis=1)[::-1]  # a long path, given backwards
    assert np.array_equal(minhash.label_components(300, chain), np.zeros(300, dtype=np.int64))
