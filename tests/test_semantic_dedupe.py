"""semantic_dedupe: paraphrases found by embedding cosine, threshold respected, deterministic representative,
embedding cache reused, k-means organisation finds what all-pairs finds. Uses the real bundled MiniLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.pipeline import run_steps
from curate.steps.semantic_dedupe import SemanticDedupe, find_duplicates
from curate.views import view_text
from studio.schema import examples_frame, make_example


@pytest.fixture(autouse=True)
def _one_thread_and_private_cache(tmp_path, monkeypatch):
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv("STUDIO_CACHE", str(tmp_path / "cache"))


def chat(prompt: str, response: str, **meta) -> dict:
    return make_example([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}],
                        source="test", meta=meta)


def cosine(a: str, b: str) -> float:
    from curate.embeddings import load_sentence_model
    from studio.models import minilm_path

    model = load_sentence_model(str(minilm_path()), 128)
    va, vb = model.encode([a, b], normalize_embeddings=True)
    return float(va @ vb)


RETURN = chat("How many days do I have to return a tent?", "You can return a tent within 60 days of delivery.")
RETURN_PARA = chat("How many days do I have to send back a tent?", "You can return a tent within 60 days of delivery.")
SHIPPING = chat("How much is express shipping?", "Express shipping costs $19.95 and arrives in 1-2 business days.")
SHIPPING_PARA = chat("What does express delivery cost?", "Express shipping is $19.95 and takes 1-2 business days.")
UNRELATED = chat("Is the down jacket machine washable?", "Yes, on a gentle cycle with down detergent, then tumble dry low.")


def text_of(row: dict) -> str:
    return examples_frame([row]).select(view_text("prompt_response")).item()


def test_threshold_decides_which_hand_built_pairs_are_duplicates():
    close, looser = cosine(text_of(RETURN), text_of(RETURN_PARA)), cosine(text_of(SHIPPING), text_of(SHIPPING_PARA))
    assert looser < close, (looser, close)
    threshold = (close + looser) / 2
    df = examples_frame([RETURN, SHIPPING, UNRELATED, RETURN_PARA, SHIPPING_PARA])

    kept, dropped = run_steps(df, [SemanticDedupe(threshold=threshold)])
    gone = pl.concat(dropped)
    assert gone["id"].to_list() == [RETURN_PARA["id"]]
    assert gone["dup_of"].to_list() == [RETURN["id"]]
    assert gone["drop_reason"].to_list() == ["semantic_duplicate"]
    assert gone["similarity"][0] == pytest.approx(close, abs=1e-4)

    kept, dropped = run_steps(df, [SemanticDedupe(threshold=looser - 1e-3)])
    gone = pl.concat(dropped).sort("id")
    assert set(gone["id"]) == {RETURN_PARA["id"], SHIPPING_PARA["id"]}
    assert (gone["similarity"] >= looser - 1e-3).all()
    assert UNRELATED["id"] in kept["id"].to_list()
    # Every member of a group, the kept representative too, carries the group's id.
    assert kept.filter(pl.col("id") == SHIPPING["id"])["semantic_cluster"].item() == SHIPPING["id"]
    assert kept.filter(pl.col("id") == UNRELATED["id"])["semantic_cluster"].item() is None


def test_representative_is_highest_quality_else_first_seen():
    rows = [RETURN, RETURN_PARA]
    first_seen = run_steps(examples_frame(rows), [SemanticDedupe(threshold=0.8)])[0]
    assert first_seen["id"].to_list() == [RETURN["id"]]
    reversed_order = run_steps(examples_frame(rows[::-1]), [SemanticDedupe(threshold=0.8)])[0]
    assert reversed_order["id"].to_list() == [RETURN_PARA["id"]]

    scored = examples_frame(rows).with_columns(pl.Series("quality", [0.4, 0.9]))
    for frame in (scored, scored.reverse()):
        kept, dropped = run_steps(frame, [SemanticDedupe(threshold=0.8)])
        assert kept["id"].to_list() == [RETURN_PARA["id"]]
        assert pl.concat(dropped)["dup_of"].to_list() == [RETURN_PARA["id"]]


def test_second_run_reads_embeddings_from_cache_without_encoding():
    df = examples_frame([RETURN, SHIPPING, UNRELATED, RETURN_PARA, SHIPPING_PARA])
    first = SemanticDedupe(threshold=0.9)
    kept1, _ = run_steps(df, [first])
    assert first.stats["encoded"] == 5 and first.stats["cache_hits"] == 0

    second = SemanticDedupe(threshold=0.9)
    kept2, _ = run_steps(df, [second])
    assert second.stats["encoded"] == 0 and second.stats["cache_hits"] == 5
    assert kept1["id"].to_list() == kept2["id"].to_list()

    # A new row is the only one encoded; another text view is another cache.
    extra = chat("Do you ship to Canada?", "Yes, for $14.95, in 7-12 business days.")
    third = SemanticDedupe(threshold=0.9)
    run_steps(examples_frame([RETURN, SHIPPING, UNRELATED, RETURN_PARA, SHIPPING_PARA, extra]), [third])
    assert (third.stats["encoded"], third.stats["cache_hits"]) == (1, 5)
    by_prompt = SemanticDedupe(threshold=0.9, text="prompt")
    run_steps(df, [by_prompt])
    assert by_prompt.stats["encoded"] == 5


def test_greedy_rule_drops_only_rows_close_to_a_kept_row():
    # a~b and b~c are above threshold, a~c is not: b goes (its best kept partner is a), c stays,
    # because the only row it is close to was dropped.
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(0.25), np.sin(0.25)])
    c = np.array([np.cos(0.5), np.sin(0.5)])
    emb = np.stack([a, b, c]).astype(np.float32)
    threshold = float(np.cos(0.3))
    dup_of, sim = find_duplicates(emb, rank=np.arange(3), clusters=[np.arange(3)], threshold=threshold)
    assert dup_of.tolist() == [-1, 0, -1]
    assert sim[1] == pytest.approx(np.cos(0.25), abs=1e-6)


def test_kmeans_clusters_find_the_same_duplicates_as_all_pairs(shared_data):
    from studio.readers import read_inputs

    frame = read_inputs([shared_data / "t0" / "ag_news_classify.jsonl", shared_data / "t0" / "ag_news_recommend.jsonl"]).frame()
    frame = frame.head(120)
    exact, _ = run_steps(frame, [SemanticDedupe(threshold=0.95, text="prompt", cluster_size=10_000)])
    clustered_step = SemanticDedupe(threshold=0.95, text="prompt", cluster_size=20)
    clustered, dropped = run_steps(frame, [clustered_step])
    assert clustered_step.stats["kmeans_clusters"] > 1
    assert clustered_step.stats["encoded"] == 0  # the all-pairs run filled the cache
    assert dropped, "ag_news prompts under two templates share their article: there are duplicates"
    assert set(clustered["id"]) == set(exact["id"])


def planted_base(sample_data: Path, planted: dict) -> tuple[pl.DataFrame, list[tuple[int, int]]]:
    """The sample rows after normalize, exact and near dedupe, and the row numbers of the 15 planted pairs."""
    from curate.registry import build_step
    from studio.readers import read_inputs
    from studio_app.demo import sample_inputs

    files = [p for p in sample_inputs(sample_data) if "malformed" not in p.parts]
    base, _ = run_steps(read_inputs(files).frame(),
                        [build_step("normalize"), build_step("exact_dedupe"), build_step("near_dedupe")])
    by_place = {f"{Path(s.rsplit(':', 1)[0]).name}:{s.rsplit(':', 1)[1]}": i for i, s in enumerate(base["source"])}
    pairs = [(by_place[f"{p['a']['file']}:{p['a']['line']}"], by_place[f"{p['b']['file']}:{p['b']['line']}"])
             for p in planted["paraphrases"]]
    assert len(pairs) == 15
    return base, pairs


def assert_only_planted_pairs_dropped(base: pl.DataFrame, pairs: list[tuple[int, int]], dropped: list[pl.DataFrame],
                                      threshold: float) -> None:
    gone = pl.concat(dropped)
    assert (gone["drop_reason"] == "semantic_duplicate").all()
    assert (gone["similarity"] >= threshold).all()
    ids = base["id"].to_list()
    dup_of = dict(zip(gone["id"], gone["dup_of"], strict=True))
    for a, b in pairs:
        # exactly one row of the pair goes, as a duplicate of the other
        assert (ids[a] in dup_of) != (ids[b] in dup_of), (base["source"][a], base["source"][b])
        lost, partner = (ids[a], ids[b]) if ids[a] in dup_of else (ids[b], ids[a])
        assert dup_of[lost] == partner
    assert len(gone) == len(pairs), "no row outside the planted pairs is a semantic duplicate"


def test_every_planted_paraphrase_is_dropped_by_semantic_dedupe_at_the_default_threshold(sample_data, planted):
    """After exact and near dedupe, semantic_dedupe at its default 0.95 drops one row of each of the 15 planted
    paraphrase pairs, as a duplicate of its partner, and nothing else.

    The generator words each paraphrase as a twin of its source (same question, facts, numbers and details,
    word-3-gram Jaccard < 0.3) and lets no two other rows ask the same question about the same product, so
    MiniLM cosines (prompt_response) of planted pairs are 0.96-0.99 and of every other pair below 0.93.
    """
    from curate.embeddings import EmbeddingCache

    base, pairs = planted_base(sample_data, planted)
    texts = base.select(view_text("prompt_response")).to_series().to_list()
    EmbeddingCache(view="prompt_response").embed(base["id"].to_list(), texts)  # the step reuses these

    step = SemanticDedupe()
    assert step.config.threshold == 0.95
    kept, dropped = run_steps(base, [step])
    assert step.stats["encoded"] == 0
    assert_only_planted_pairs_dropped(base, pairs, dropped, 0.95)


@pytest.mark.slow
def test_static_embeddings_drop_every_planted_paraphrase_and_nothing_else_at_their_own_threshold(
        sample_data, planted, static_models, tmp_path):
    """The fast path: static embeddings distilled from MiniLM, at their default threshold 0.97 (planted pairs at
    cosine ≥ 0.973, every other pair ≤ 0.968), drop exactly the planted paraphrases too. Their vectors are cached
    apart from MiniLM's: the same ids cached by MiniLM are encoded again."""
    from curate.embeddings import EmbeddingCache

    (tmp_path / "cache").mkdir(exist_ok=True)
    (tmp_path / "cache" / "models").symlink_to(static_models)
    base, pairs = planted_base(sample_data, planted)
    few = base.head(3)
    EmbeddingCache().embed(few["id"].to_list(), few.select(view_text("prompt_response")).to_series().to_list())

    step = SemanticDedupe(model="static")
    assert step.config.threshold == 0.97
    kept, dropped = run_steps(base, [step])
    assert (step.stats["encoded"], step.stats["cache_hits"]) == (base.height, 0)
    assert_only_planted_pairs_dropped(base, pairs, dropped, 0.97)
    again = SemanticDedupe(model="static")
    assert run_steps(base, [again])[0]["id"].to_list() == kept["id"].to_list()
    assert (again.stats["encoded"], again.stats["cache_hits"]) == (0, base.height)


def test_threshold_defaults_to_the_models_own_and_an_explicit_one_wins():
    assert SemanticDedupe().config.threshold == 0.95
    assert SemanticDedupe(model="static").config.threshold == 0.97
    assert SemanticDedupe(model="static", threshold=0.9).config.threshold == 0.9
    assert SemanticDedupe(model="/some/folder").config.threshold == 0.95


def test_embedding_cache_without_compaction_only_adds_shards_and_compact_merges_them(tmp_path):
    # The Ray engine's embedding actors share one cache folder with compact=False: a writer must never delete a
    # shard (another actor may be reading it), and the one compaction after them must keep every vector.
    from curate.embeddings import MAX_SHARDS, EmbeddingCache

    cache = EmbeddingCache(root=tmp_path, compact=False)
    rng = np.random.default_rng(0)
    stored = {}
    for shard in range(MAX_SHARDS + 3):
        texts = [f"text-{shard}-{i}" for i in range(4)]
        vecs = rng.standard_normal((4, 8)).astype(np.float32)
        cache.store(cache.keys(texts), vecs)
        stored.update(zip(texts, vecs, strict=True))
        assert len(list(cache.dir.glob("part-*.parquet"))) == shard + 1
    cache.compact()
    assert len(list(cache.dir.glob("part-*.parquet"))) == 1
    texts = sorted(stored)
    back = cache.embed([f"row-{i}" for i in range(len(texts))], texts)  # all cache hits: no model is loaded
    assert cache.cache_hits == len(texts) and cache.encoded == 0
    np.testing.assert_array_equal(back, np.stack([stored[t] for t in texts]))


def test_an_id_whose_text_changed_is_encoded_again_not_served_a_stale_vector(tmp_path):
    # An item edited in review keeps its id; the export's leak check embeds the edit. A cache keyed by id served
    # the unedited text's vector and put a paraphrase of a held-out example into train.
    from curate.embeddings import EmbeddingCache

    cache = EmbeddingCache(root=tmp_path)
    before = cache.embed(["item-1"], ["How do I return a tent that leaks at the seams?"])
    after = cache.embed(["item-1"], ["What will the weather be in Lisbon tomorrow?"])
    assert cache.cache_hits == 0 and cache.encoded == 1
    assert float(before[0] @ after[0]) < 0.8
    again = cache.embed(["another-id"], ["How do I return a tent that leaks at the seams?"])
    assert cache.cache_hits == 1 and cache.encoded == 0
    np.testing.assert_array_equal(again, before)


def greedy_reference(emb: np.ndarray, rank: np.ndarray, clusters: list[np.ndarray], threshold: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The rule stated plainly, row by row over all pairs: in rank order, a row is dropped when a kept better row
    sharing a cluster with it has cosine ≥ threshold; `dup_of` is the most similar such row."""
    n = emb.shape[0]
    together = np.zeros((n, n), dtype=bool)
    for members in clusters:
        together[np.ix_(members, members)] = True
    sims = emb @ emb.T
    dup_of = np.full(n, -1)
    kept: list[int] = []
    for j in np.argsort(rank, kind="stable"):
        near = [i for i in kept if together[j, i] and sims[j, i] >= threshold]
        if near:
            dup_of[j] = max(near, key=lambda i: sims[j, i])
        else:
            kept.append(j)
    return dup_of, sims


@pytest.mark.parametrize("seed", range(4))
def test_streaming_pairs_give_the_all_pairs_greedy_result_with_boundary_rows(seed):
    # Dense groups of near-copies (every pair of a group above the threshold: all pairs are quadratic there) and
    # loose neighbours, in overlapping clusters (boundary rows sit in two): the streaming pass must drop exactly
    # the rows the all-pairs rule drops, with the same dup_of, while emitting far fewer pairs than exist.

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, 16))
    emb = np.repeat(centres, 25, axis=0) + rng.normal(scale=rng.uniform(0.02, 0.3, size=(300, 1)), size=(300, 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    order = rng.permutation(300)
    clusters = [np.sort(order[a:a + 80]) for a in range(0, 300, 60)]  # 20 rows shared by neighbouring clusters
    rank = rng.permutation(300)
    threshold = 0.97
    dup_of, sim = find_duplicates(emb, rank, clusters, threshold)
    expected, sims = greedy_reference(emb, rank, clusters, threshold)
    assert 50 < (expected >= 0).sum() < 290
    np.testing.assert_array_equal(dup_of, expected)
    dropped = dup_of >= 0
    np.testing.assert_allclose(sim[dropped], sims[dropped, dup_of[dropped]], atol=1e-5)


def test_streaming_pairs_of_a_dense_cluster_grow_linearly_not_quadratically():
    # 200 near-copies of one text, no boundary rows: all 19,900 pairs are above the threshold, but the streaming
    # pass compares each row with the one kept row only, so it emits 199 pairs and drops every copy but the first.
    from curate.steps.semantic_dedupe import cluster_pairs

    rng = np.random.default_rng(0)
    emb = rng.normal(size=16) + rng.normal(scale=0.01, size=(200, 16))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    assert (emb @ emb.T).min() >= 0.99
    pj, pi, _ = cluster_pairs(np.arange(200), emb, 0.99)
    assert pj.tolist() == list(range(1, 200)) and set(pi.tolist()) == {0}


@pytest.mark.slow
def test_quadratic_boundary_pairs_are_reported_with_the_setting_that_keeps_them_linear(static_models, tmp_path):
    """80 near-copies, every one a boundary row (margin 1: each row sits in its two nearest of 4 clusters), all
    duplicates of each other at threshold 0.5: no copy is surely dropped where it is a candidate in another cluster, so
    a cluster's pairs grow with the square of its copies and the run says to set boundary_margin 0 (in its stats, so
    in the manifest, and as a warning line). At margin 0 the same rows give ~1 pair a row and no warning."""
    from rich.console import Console

    from studio.console import Reporter

    (tmp_path / "cache").mkdir(exist_ok=True)
    (tmp_path / "cache" / "models").symlink_to(static_models)
    rows = [chat(f"How do I return a tent I bought last month? Order {i}",
                 f"Returns are free within 60 days of delivery; print the label from your order page. Ref {i}.")
            for i in range(80)]
    frame = examples_frame(rows)
    console = Console(record=True, width=300)
    quadratic = SemanticDedupe(model="static", threshold=0.5, cluster_size=20, boundary_margin=1.0)
    run_steps(frame, [quadratic], reporter=Reporter(console=console))
    assert quadratic.stats["pairs"] > 16 * frame.height
    assert len(quadratic.stats["warnings"]) == 1 and "set boundary_margin: 0" in quadratic.stats["warnings"][0]
    printed = console.export_text()
    assert "warning: semantic_dedupe:" in printed and "set boundary_margin: 0" in printed

    linear = SemanticDedupe(model="static", threshold=0.5, cluster_size=20, boundary_margin=0)
    run_steps(frame, [linear])
    assert linear.stats["pairs"] <= frame.height and "warnings" not in linear.stats
