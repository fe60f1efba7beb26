"""Writers: examples in the studio schema → the shapes trainers and other tools read.

Each `to_<format>` maps one example's messages to one output record (pure functions, used by export
and by round-trip tests); `write_examples` writes a whole table atomically. A conversation that a
format cannot hold (e.g. multi-turn into Alpaca) is a `StudioError` naming the example id.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from studio.atomic import atomic_open, atomic_path
from studio.errors import StudioError

WRITE_FORMATS = ("openai", "alpaca", "sharegpt", "prompt-completion", "csv", "parquet")
_SHAREGPT_FROM = {"system": "system", "user": "human", "assistant": "gpt"}


def _single_turn(example_id: str, messages: list[dict[str, str]], fmt: str) -> tuple[str, str, str]:
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if len(system) > 1 or len(rest) != 2 or rest[0]["role"] != "user" or rest[1]["role"] != "assistant":
        shape = "/".join(m["role"] for m in messages)
        raise StudioError(
            f"example {example_id} is a {shape} conversation; {fmt} holds one user turn and one assistant turn "
            "(optionally a system prompt); export it as openai or sharegpt instead."
        )
    return (system[0] if system else ""), rest[0]["content"], rest[1]["content"]


def to_openai(example_id: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    return {"messages": [{"role": m["role"], "content": m["content"]} for m in messages]}


def to_sharegpt(example_id: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    return {"conversations": [{"from": _SHAREGPT_FROM[m["role"]], "value": m["content"]} for m in messages]}


def to_alpaca(example_id: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    system, user, assistant = _single_turn(example_id, messages, "alpaca")
    record = {"instruction": user, "input": "", "output": assistant}
    if system:
        record["system"] = system
    return record


def to_prompt_completion(example_id: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    system, user, assistant = _single_turn(example_id, messages, "prompt-completion")
    if system:
        raise StudioError(
            f"example {example_id} has a system prompt, which prompt-completion cannot hold; export it as openai."
        )
    return {"prompt": user, "completion": assistant}


RECORD_WRITERS = {
    "openai": to_openai,
    "sharegpt": to_sharegpt,
    "alpaca": to_alpaca,
    "prompt-completion": to_prompt_completion,
}


def to_record(fmt: str, example: dict[str, Any], with_id: bool = False) -> dict[str, Any]:
    record = RECORD_WRITERS[fmt](example["id"], example["messages"])
    if with_id:
        record["id"] = example["id"]
    return record


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    n = 0
    with atomic_open(path) as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False))
            fh.write("\n")
            n += 1
    return n


#: Rows turned into Python records at a time when writing JSONL or CSV (bounds the copies of the text held).
WRITE_BATCH_ROWS = 10_000


def _rows(df):
    for chunk in df.select("id", "messages").iter_slices(WRITE_BATCH_ROWS):
        yield from chunk.iter_rows(named=True)


def write_examples(df, path: str | Path, fmt: str, with_id: bool = False) -> int:
    """Write a Polars table of examples in `fmt`; returns rows written. Rows become records a batch at a time; a
    row the format cannot hold stops the write before anything is published (the file is written atomically)."""
    if fmt not in WRITE_FORMATS:
        raise StudioError(f"unknown output format {fmt!r}; choose one of {', '.join(WRITE_FORMATS)}.")
    path = Path(path)
    if fmt == "parquet":
        with atomic_path(path) as tmp:
            df.write_parquet(tmp)
        return df.height
    if fmt == "csv":
        n = 0
        with atomic_open(path) as fh:
            writer = csv.DictWriter(fh, fieldnames=(["id"] if with_id else []) + ["prompt", "completion"])
            writer.writeheader()
            for r in _rows(df):
                writer.writerow(dict(to_record("prompt-completion", r), **({"id": r["id"]} if with_id else {})))
                n += 1
        return n
    return write_jsonl((to_record(fmt, r, with_id=with_id) for r in _rows(df)), path)
