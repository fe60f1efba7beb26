"""The export's leak check: curate's own dedupe steps run over every example an export holds plus the frozen
val/test examples of earlier versions, and each cluster they mark becomes a link the split planner honours.

Composed here, in the app layer, because it joins two packages: `review_app.export` asks for a
`review_app.versions.LinkFinder`, and `curate.steps.near_dedupe` / `curate.steps.semantic_dedupe` do the
finding with their defaults (word 3-gram MinHash at Jaccard 0.8; MiniLM cosine 0.95), exactly as in a
curate run. Each step sees all rows (nothing is dropped here); only the cluster columns are read.
"""

from __future__ import annotations

from typing import Any

from studio.errors import StudioError

#: the cluster column each usable step writes, and the kind of link it stands for
CLUSTER_COLUMNS = {"near_dedupe": ("dup_cluster", "near_duplicate"),
                   "semantic_dedupe": ("semantic_cluster", "paraphrase")}
DEFAULT_STEPS = "near_dedupe,semantic_dedupe"


class LeakCheck:
    """Callable `LinkFinder`: (id a, id b, kind) for every pair of examples a dedupe step puts in one cluster."""

    def __init__(self, steps: list[str]) -> None:
        unknown = [s for s in steps if s not in CLUSTER_COLUMNS]
        if unknown:
            raise StudioError(f"--leak-check {unknown[0]!r} is not a dedupe step; use any of "
                              f"{', '.join(CLUSTER_COLUMNS)}, or none.")
        self.names = list(steps)

    @classmethod
    def parse(cls, spec: str) -> LeakCheck | None:
        """`near_dedupe,semantic_dedupe` -> a LeakCheck; `none` or empty -> None."""
        names = [s.strip() for s in (spec or "").split(",") if s.strip()]
        return None if names in ([], ["none"]) else cls(names)

    def __call__(self, examples: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        from curate.bookkeeping import with_drop_columns
        from curate.registry import build_step
        from studio.schema import examples_frame

        if len(examples) < 2:
            return []
        frame = with_drop_columns(examples_frame([{"id": e["id"], "messages": e["messages"], "origin": "real",
                                                   "source": "export", "meta": "{}"} for e in examples]))
        links: set[tuple[str, str, str]] = set()
        for name in self.names:
            column, kind = CLUSTER_COLUMNS[name]
            marked = build_step(name).process(frame).select("id", column).drop_nulls()
            links |= {(a, b, kind) for a, b in marked.iter_rows() if a != b}
        return sorted(links)
