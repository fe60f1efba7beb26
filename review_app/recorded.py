"""Store operations that leave a run folder: `studio review load` / `auto` and the demo's review stage
call these, so each load or rule application has a `manifest.json` with its counts
(input = kept + dropped), like every other command run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from review_app.store import ReviewStore
from studio.credentials import mask_url
from studio.runs import Run
from studio.workspace import Workspace


def _db(store: ReviewStore) -> str:
    """The database URL without its password, for manifests."""
    return mask_url(store.url)


def load_recorded(store: ReviewStore, dataset: str | Path, workspace: Workspace | None, overlap: int = 1,
                  order: str = "quality") -> tuple[Run, dict[str, int]]:
    """Queue a data set; kept = items added, dropped = already present / duplicated in the input."""
    with Run("review", workspace=workspace, config={"action": "load", "overlap": overlap, "order": order,
                                                    "db": _db(store)}) as run:
        run.add_input(dataset)
        from review_app.pairwise import is_pairwise_file, load_pairwise

        if isinstance(dataset, str | Path) and Path(dataset).is_file() and is_pairwise_file(Path(dataset)):
            counts = load_pairwise(store, Path(dataset), overlap=overlap, load_run=run.run_id)
            run.extra["kind"] = "pairwise"
        else:
            counts = store.load_dataset(dataset, overlap=overlap, order=order, load_run=run.run_id)
        run.counts.input = counts["input"]
        run.counts.kept = counts["added"]
        run.counts.drop("already_present", counts["already_present"])
        run.counts.drop("duplicate_in_input", counts["duplicate_in_input"])
        run.counts.quarantined = counts["quarantined"]
        run.extra["review"] = counts
    return run, counts


def auto_recorded(store: ReviewStore, rule: str, name: str, workspace: Workspace | None,
                  verdict: str = "accept") -> tuple[Run, dict[str, Any]]:
    """Apply a rule; kept = items it decided, dropped = open untouched items it does not match."""
    with Run("review", workspace=workspace, config={"action": "auto", "rule": rule, "name": name,
                                                    "verdict": verdict, "db": _db(store)}) as run:
        result = store.auto_decide(rule, name, verdict=verdict)
        run.counts.input = result["examined"]
        run.counts.kept = result["decided"]
        run.counts.drop("rule_does_not_match", result["examined"] - result["decided"])
        run.extra["review"] = result
    return run, result
