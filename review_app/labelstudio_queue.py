"""Which review items go to Label Studio: a data set's examples, or the store's open queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from review_app.models import Item


def _as_task_item(item) -> dict[str, Any]:
    return {"id": item.id, "messages": item.messages, "origin": item.origin, "source": item.source,
            "quality": item.quality, "scores": item.scores or {}}


def open_items(store) -> list[dict[str, Any]]:
    """Items still open in the review queue, in queue order."""
    table = Item.__table__
    with store.engine.connect() as conn:
        rows = conn.execute(select(table.c.id, table.c.messages, table.c.origin, table.c.source, table.c.quality,
                                   table.c.scores).where(table.c.status == "open").order_by(table.c.priority, table.c.id)).all()
    return [_as_task_item(r) for r in rows]


def items_from_dataset(store, dataset: str | Path) -> list[dict[str, Any]]:
    """The store's items for the examples of `dataset` (load it into the store first)."""
    from studio.readers import read_inputs
    from studio.schema import example_id

    ids = list(dict.fromkeys(row.get("id") or example_id(row["messages"]) for row in read_inputs([dataset]).rows))
    return [_as_task_item(store.get_item(i)) for i in ids]
