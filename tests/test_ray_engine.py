"""The Ray engine on a real local Ray cluster gives the local engine's output, row for row.

One cluster for the whole session (`ray.init(num_cpus=2)` takes ~12 s here); one Ray run over the sample data
plus a slice of ../shared/data/t0 covers normalize, exact_dedupe, near_dedupe and filter (the model-heavy steps,
redact_pii and score, are left out of the tests to stay inside the CI budget: their Ray path calls the same step
code per batch, in actor pools). semantic_dedupe runs on the sample data with one k-means cluster and with
several (rows on cluster boundaries compared on both sides), its embeddings computed by Ray actors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from curate.pipeline import PipelineConfig, run_pipeline
from studio.errors import StudioError
from studio.readers import read_inputs

STEPS = ["normalize", "exact_dedupe", {"near_dedupe": {"threshold": 0.7}}]


def _inputs(sample_data: Path, shared_data: Path) -> list[str]:
    t0 = sorted(f for f in (shared_data / "t0").glob("*.jsonl") if f.stat().st_size > 0)
    sample = [p for p in sorted(sample_data.iterdir()) if p.suffix in (".jsonl", ".json", ".csv") and p.name != "planted.json"]
    return [str(p) for p in [*sample, *t0[:4]]]


@pytest.fixture(scope="session")
def both_runs(tmp_path_factory, ray_cluster, sample_data, shared_data):
    out = tmp_path_factory.mktemp("runs")
    inputs = _inputs(sample_data, shared_data)
    # a second model-free row-wise step after the global ones: drops the first five rows of one input file
    claims = read_inputs([next(p for p in inputs if p.endswith("claims.csv"))]).frame()["id"].head(5)
    rule = {"filter": {"rules": [{"name": "not_claims", "rule": " and ".join(f'id != "{i}"' for i in claims)}]}}
    cfg = PipelineConfig(inputs=inputs, steps=[*STEPS, rule], report=False)
    local = run_pipeline(cfg, out_dir=out / "local")
    ray_run = run_pipeline(cfg, out_dir=out / "ray", engine="ray")
    return local, ray_run


def test_ray_engine_keeps_and_drops_the_same_rows_as_the_local_engine(both_runs):
    local, ray_run = both_runs
    for name in ("kept", "dropped"):
        a = pl.read_parquet(local.dir / f"{name}.parquet")
        b = pl.read_parquet(ray_run.dir / f"{name}.parquet")
        assert a.height > 0 or name == "dropped"
        assert_frame_equal(a, b, check_dtypes=False)  # same ids, order, drop reasons, dup_of, similarity
    dropped = pl.read_parquet(ray_run.dir / "dropped.parquet")
    assert {"exact_duplicate", "near_duplicate", "filter:not_claims"} <= set(dropped["drop_reason"].to_list())


def test_ray_engine_manifest_counts_match_the_local_engine(both_runs):
    local, ray_run = both_runs
    assert ray_run.counts.to_dict() == local.counts.to_dict()
    c = ray_run.counts.to_dict()
    assert c["input"] == c["kept"] + sum(c["dropped"].values()) + c["quarantined"]
    assert [s["step"] for s in ray_run.steps] == ["normalize", "exact_dedupe", "near_dedupe", "filter"]
    # the row-wise steps ran as Ray Data map_batches
    assert [s.get("ray_data") for s in ray_run.steps] == ["map_batches, tasks", None, None, "map_batches, tasks"]
    # the driver received spanning forests only: at most rows - 1 edges per partition, whatever the pair count
    near = ray_run.steps[2]
    local_near = local.steps[2]
    assert near["candidate_pairs"] == local_near["candidate_pairs"]
    assert 0 < near["forest_edges"] <= ray_run.extra["engine"]["partitions"] * (near["rows_in"] - 1)
    assert near["forest_edges"] < near["verified_pairs"]


def test_ray_engine_writes_sharded_parquet_directories_in_input_order(both_runs):
    _, ray_run = both_runs
    kept_dir = pl.read_parquet(ray_run.dir / "kept" / "*.parquet")
    kept_file = pl.read_parquet(ray_run.dir / "kept.parquet")
    assert sorted(kept_dir["id"].to_list()) == sorted(kept_file["id"].to_list())
    assert len(list((ray_run.dir / "dropped").glob("*.parquet"))) >= 1


def test_ray_engine_keeps_the_highest_quality_row_of_each_cluster_as_the_local_engine(
        tmp_path_factory, ray_cluster, sample_data):
    # score (heuristics only: no language model) runs in a Ray actor pool and adds `quality`; near_dedupe must
    # then keep each cluster's highest-quality row (ties: first in input order) exactly as the local step does.
    out = tmp_path_factory.mktemp("quality")
    inputs = [str(p) for p in sorted(sample_data.iterdir()) if p.suffix in (".jsonl", ".json", ".csv") and p.name != "planted.json"]
    steps = ["normalize", {"score": {"model": False}}, "exact_dedupe", {"near_dedupe": {"threshold": 0.5}}]
    cfg = PipelineConfig(inputs=inputs, steps=steps, report=False)
    local = run_pipeline(cfg, out_dir=out / "local")
    ray_run = run_pipeline(cfg, out_dir=out / "ray", engine="ray")
    for name in ("kept", "dropped"):
        assert_frame_equal(pl.read_parquet(local.dir / f"{name}.parquet"),
                           pl.read_parquet(ray_run.dir / f"{name}.parquet"), check_dtypes=False)
    dropped = pl.read_parquet(ray_run.dir / "dropped.parquet").filter(pl.col("drop_reason") == "near_duplicate")
    kept = pl.read_parquet(ray_run.dir / "kept.parquet")
    reps = kept.filter(pl.col("dup_cluster").is_not_null())
    assert dropped.height > 0 and reps.height > 0
    # each dropped row's representative is kept and scores at least as high
    best = reps.select("id", pl.col("quality").alias("rep_quality"))
    joined = dropped.join(best, left_on="dup_of", right_on="id", how="left")
    assert joined["rep_quality"].null_count() == 0
    assert (joined["rep_quality"].fill_nan(-1.0) >= joined["quality"].fill_nan(-1.0)).all()
    assert ray_run.counts.to_dict() == local.counts.to_dict()


def test_ray_engine_refuses_mixed_inputs_with_the_local_engines_sentence(tmp_path, ray_cluster, sample_data):
    # the Ray engine reads files in parallel tasks; a documents folder after an examples file must still
    # fail with the readers' one sentence naming the file, as in the local engine
    cfg = PipelineConfig(inputs=[str(sample_data / "support_chat.jsonl"), str(sample_data / "docs")],
                         steps=["normalize"], report=False)
    messages = []
    for engine in ("local", "ray"):
        with pytest.raises(StudioError) as err:
            run_pipeline(cfg, out_dir=tmp_path / engine, engine=engine)
        messages.append(str(err.value))
    assert messages[0] == messages[1]
    assert "holds documents but the other inputs hold examples" in messages[1]


def test_ray_output_uri_gets_the_same_parquet_parts_as_the_run_folder(tmp_path, ray_cluster, sample_data):
    # --ray-output takes any pyarrow filesystem URI; file:// is the one a test machine has
    cfg = PipelineConfig(inputs=[str(sample_data / "support_chat.jsonl"), str(sample_data / "product_qa.jsonl")],
                         steps=["normalize", "exact_dedupe"], report=False)
    run = run_pipeline(cfg, out_dir=tmp_path / "run", engine="ray", ray_output=f"file://{tmp_path}/remote/")
    for name in ("kept", "dropped"):
        here = pl.read_parquet(run.dir / name / "*.parquet")
        there = pl.read_parquet(tmp_path / "remote" / name / "*.parquet")
        assert here.height > 0
        assert_frame_equal(here, there)
    assert run.extra["ray_output_uri"] == f"file://{tmp_path}/remote/"


MULTI_NODE = """
import os, sys
os.environ["RAY_AUTH_MODE"] = "disabled"
import ray
from ray.cluster_utils import Cluster
from curate.pipeline import PipelineConfig, run_pipeline
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # a head that runs no work ...
cluster.add_node(num_cpus=2)  # ... and one worker node (a second raylet on this machine)
try:
    cfg = PipelineConfig(inputs=sys.argv[2:], steps=["normalize", "exact_dedupe", "near_dedupe"], report=False)
    run = run_pipeline(cfg, out_dir=sys.argv[1], engine="ray", ray_address=cluster.address)
    print("nodes", len(cluster.list_all_nodes()), "cpus", run.extra["engine"]["cpus"])
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def test_ray_engine_runs_on_a_two_node_cluster_whose_head_has_no_cpus(tmp_path, sample_data):
    # Reading and writing run on the driver's node (local paths); with `ray start --head --num-cpus 0` they must
    # still get scheduled there, and the steps on the worker node. Own process: the session cluster is up.
    inputs = [str(sample_data / "support_chat.jsonl"), str(sample_data / "product_qa.jsonl")]
    proc = subprocess.run([sys.executable, "-c", MULTI_NODE, str(tmp_path / "ray"), *inputs], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nodes 2 cpus 2" in proc.stdout
    local = run_pipeline(PipelineConfig(inputs=inputs, steps=["normalize", "exact_dedupe", "near_dedupe"],
                                        report=False), out_dir=tmp_path / "local")
    for name in ("kept", "dropped"):
        assert_frame_equal(pl.read_parquet(local.dir / f"{name}.parquet"),
                           pl.read_parquet(tmp_path / "ray" / f"{name}.parquet"), check_dtypes=False)


def test_unreachable_ray_address_is_one_clear_error(tmp_path, sample_data):
    cfg = PipelineConfig(inputs=[str(sample_data / "support_chat.jsonl")], steps=["normalize"], report=False)
    with pytest.raises(StudioError, match=r"cannot reach the Ray cluster at 127\.0\.0\.1:9"):
        run_pipeline(cfg, out_dir=tmp_path / "out", engine="ray", ray_address="127.0.0.1:9")
    assert not (tmp_path / "out").exists()


SEMANTIC_BEFORE = ["normalize", "exact_dedupe", "near_dedupe"]


@pytest.fixture(scope="session")
def semantic_runs(tmp_path_factory, ray_cluster, sample_data):
    """The sample pipeline ending in semantic_dedupe, on Ray then locally, at the default cluster size (one
    k-means cluster) and at cluster_size 50 (several clusters, rows on their boundaries). The first Ray run starts
    with an empty embedding cache, so its actors encode every row; the local runs then read the vectors the
    actors cached, so both engines cluster the same vectors (two cold caches also gave identical outputs when
    this was written, for 15 s more of encoding)."""
    from studio_app.demo import sample_inputs

    out = tmp_path_factory.mktemp("semantic")
    files = [str(p) for p in sample_inputs(sample_data) if "malformed" not in p.parts]
    runs = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_CACHE", str(out / "cache"))
        for size in (1000, 50):
            steps = [*SEMANTIC_BEFORE, {"semantic_dedupe": {"cluster_size": size}}]
            cfg = PipelineConfig(inputs=files, steps=steps, report=False)
            ray_run = run_pipeline(cfg, out_dir=out / f"ray{size}", engine="ray")
            local = run_pipeline(cfg, out_dir=out / f"local{size}")
            runs[size] = (local, ray_run)
    runs["cache"] = out / "cache"
    return runs


def _same_outputs(local, ray_run) -> pl.DataFrame:
    for name in ("kept", "dropped"):
        assert_frame_equal(pl.read_parquet(local.dir / f"{name}.parquet"),
                           pl.read_parquet(ray_run.dir / f"{name}.parquet"), check_dtypes=False)
    assert ray_run.counts.to_dict() == local.counts.to_dict()
    ray_step, local_step = ray_run.steps[-1], local.steps[-1]
    assert ray_step["step"] == local_step["step"] == "semantic_dedupe"
    for key in ("kmeans_clusters", "duplicate_groups", "rows_in", "kept", "dropped"):
        assert ray_step[key] == local_step[key], key
    return pl.read_parquet(ray_run.dir / "dropped.parquet").filter(pl.col("drop_reason") == "semantic_duplicate")


def test_semantic_dedupe_on_ray_drops_the_planted_paraphrases_exactly_as_the_local_engine(semantic_runs, planted):
    local, ray_run = semantic_runs[1000]
    gone = _same_outputs(local, ray_run)
    ray_step, local_step = ray_run.steps[-1], local.steps[-1]
    assert ray_step["encoded"] == ray_step["rows_in"] > 0  # the Ray actors embedded every row ...
    assert local_step["cache_hits"] == local_step["rows_in"]  # ... and cached them where the local step looks
    assert ray_step["kmeans_clusters"] == 1
    # one row of each of the 15 planted paraphrase pairs is dropped, as a duplicate of its partner
    kept = pl.read_parquet(ray_run.dir / "kept.parquet")
    place = {f"{Path(src.rsplit(':', 1)[0]).name}:{src.rsplit(':', 1)[1]}": rid
             for src, rid in zip([*kept["source"], *gone["source"]], [*kept["id"], *gone["id"]], strict=True)}
    dup_of = dict(zip(gone["id"], gone["dup_of"], strict=True))
    for pair in planted["paraphrases"]:
        a, b = (place[f"{pair[x]['file']}:{pair[x]['line']}"] for x in ("a", "b"))
        assert dup_of.get(a) == b or dup_of.get(b) == a, pair
    assert gone.height == len(planted["paraphrases"]) == 15
    assert (gone["similarity"] >= 0.95).all()
    assert set(gone["semantic_cluster"]) == set(gone["dup_of"])


def test_semantic_dedupe_on_ray_with_several_clusters_and_boundary_rows_matches_the_local_engine(semantic_runs):
    local, ray_run = semantic_runs[50]
    gone = _same_outputs(local, ray_run)
    step = ray_run.steps[-1]
    assert step["kmeans_clusters"] > 1  # k = ceil(rows / 50)
    assert step["boundary_entries"] > 0  # rows compared in their second-nearest cluster too
    assert gone.height == 15
    # the driver received the pairs above the threshold, not the vectors (384 float32 per row)
    assert step["pairs"] >= gone.height
    assert 0 < step["driver_bytes"] < step["rows_in"] * 384 * 4 / 10


@pytest.mark.slow
def test_semantic_dedupe_on_ray_with_static_embeddings_matches_the_local_engine(tmp_path, monkeypatch, ray_cluster,
                                                                               sample_data, static_models):
    # The fast path on Ray: the driver resolves `static` to the distilled folder and the actors encode with it
    # through the same EmbeddingCache; several k-means clusters, outputs equal to the local engine's.
    from studio_app.demo import sample_inputs

    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "models").symlink_to(static_models)
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))
    files = [str(p) for p in sample_inputs(sample_data) if "malformed" not in p.parts]
    steps = [*SEMANTIC_BEFORE, {"semantic_dedupe": {"model": "static", "cluster_size": 50}}]
    cfg = PipelineConfig(inputs=files, steps=steps, report=False)
    ray_run = run_pipeline(cfg, out_dir=tmp_path / "ray", engine="ray")
    local = run_pipeline(cfg, out_dir=tmp_path / "local")
    gone = _same_outputs(local, ray_run)
    step = ray_run.steps[-1]
    assert step["encoded"] == step["rows_in"] > 0 and step["kmeans_clusters"] > 1
    assert local.steps[-1]["cache_hits"] == step["rows_in"]
    assert gone.height == 15  # the planted paraphrases (which ones: tests/test_semantic_dedupe.py)
    assert (gone["similarity"] >= 0.97).all()


def test_semantic_dedupe_on_ray_keeps_the_highest_quality_row_as_the_local_step(semantic_runs, sample_data,
                                                                                monkeypatch):
    # The ranking with a `quality` column (highest first, nulls last, input order between equals), checked on the
    # Ray function itself: `score` would add the column but costs 20-40 s here, so the test sets coarse scores
    # (many ties, some nulls) on the rows that reach semantic_dedupe, cuts them into blocks in the object store
    # and compares with the local step's `apply`. The vectors come from the fixture's cache.
    import ray

    from curate import ray_engine
    from curate.bookkeeping import with_drop_columns
    from curate.pipeline import run_steps
    from curate.registry import build_step
    from studio.readers import read_inputs
    from studio_app.demo import sample_inputs

    monkeypatch.setenv("STUDIO_CACHE", str(semantic_runs["cache"]))
    files = [p for p in sample_inputs(sample_data) if "malformed" not in p.parts]
    base, _ = run_steps(read_inputs(files).frame(), [build_step(s) for s in SEMANTIC_BEFORE])
    base = base.with_columns(
        pl.when(pl.int_range(pl.len()) % 11 == 3).then(None)
        .otherwise((pl.col("id").hash(seed=1) % 5).cast(pl.Float64) / 4).alias("quality"))
    local = build_step("semantic_dedupe", {"cluster_size": 50}).apply(with_drop_columns(base))

    numbered = with_drop_columns(base.with_row_index(ray_engine.ROW).with_columns(pl.col(ray_engine.ROW).cast(pl.Int64)))
    cuts = [0, 100, 230, numbered.height]
    blocks = ray_engine.Blocks(
        refs=[ray.put(numbered[a:b].to_arrow()) for a, b in zip(cuts[:-1], cuts[1:], strict=True)],
        first=cuts[:-1], sizes=[b - a for a, b in zip(cuts[:-1], cuts[1:], strict=True)],
        schema=numbered.to_arrow().schema)
    step = build_step("semantic_dedupe", {"cluster_size": 50})
    result, stats = ray_engine.staged_step(blocks, step, numbered.columns)
    tables = ray.get([*result.kept.refs, *result.dropped.refs])
    out = pl.concat([pl.from_arrow(t).drop("step", strict=False) for t in tables], how="diagonal_relaxed")
    assert_frame_equal(out.sort(ray_engine.ROW).drop(ray_engine.ROW), local, check_dtypes=False)
    assert stats["encoded"] == 0 and stats["kmeans_clusters"] > 1
    gone = local.filter(pl.col("drop_reason") == "semantic_duplicate")
    joined = gone.join(local.select("id", pl.col("quality").alias("rep_q")), left_on="dup_of", right_on="id")
    assert gone.height == joined.height > 0
    assert (joined["rep_q"].fill_null(-1.0) >= joined["quality"].fill_null(-1.0)).all()
    # the scores changed some representatives: not every kept row is the earlier of its pair in input order
    ids = base["id"].to_list()
    assert any(ids.index(rep) > ids.index(dup) for dup, rep in zip(gone["id"], gone["dup_of"], strict=True))
