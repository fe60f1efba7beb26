"""Writers: writer → reader round trips give back the same messages and ids for every format."""

from __future__ import annotations

import polars as pl
import pytest

from studio.errors import StudioError
from studio.readers import read_file
from studio.schema import examples_frame, make_example
from studio.writers import write_examples

SINGLE_TURN = [
    make_example([{"role": "user", "content": "Can I return boots after 30 days?"},
                  {"role": "assistant", "content": "Yes, within 60 days with the receipt."}], source="t:1"),
    make_example([{"role": "system", "content": "You are a support agent."},
                  {"role": "user", "content": "Stove leaks gas."},
                  {"role": "assistant", "content": "Stop using it and file a warranty claim."}], source="t:2"),
]
MULTI_TURN = make_example([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                           {"role": "user", "content": "Order status?"}, {"role": "assistant", "content": "Shipped."}],
                          source="t:3")


@pytest.mark.parametrize("fmt,suffix,rows", [
    ("openai", ".jsonl", [*SINGLE_TURN, MULTI_TURN]),
    ("sharegpt", ".jsonl", [*SINGLE_TURN, MULTI_TURN]),
    ("alpaca", ".jsonl", SINGLE_TURN),
    ("prompt-completion", ".jsonl", SINGLE_TURN[:1]),
    ("csv", ".csv", SINGLE_TURN[:1]),
    ("parquet", ".parquet", [*SINGLE_TURN, MULTI_TURN]),
])
def test_write_then_read_gives_the_same_messages_and_ids(tmp_path, fmt, suffix, rows):
    path = tmp_path / f"out{suffix}"
    n = write_examples(examples_frame(rows), path, fmt)
    back = read_file(path)
    assert n == len(rows) == len(back.rows)
    assert [r["messages"] for r in back.rows] == [r["messages"] for r in rows]
    assert [r["id"] for r in back.rows] == [r["id"] for r in rows]


def test_multi_turn_conversation_into_alpaca_is_an_error_naming_the_example(tmp_path):
    single = examples_frame([{**MULTI_TURN, "id": "0" * 20, "messages": MULTI_TURN["messages"][-2:]}])
    target = tmp_path / "never-written.jsonl"
    with pytest.raises(StudioError, match=f"example {MULTI_TURN['id']} .*export it as openai or sharegpt"):
        write_examples(pl.concat([single, examples_frame([MULTI_TURN])]), target, "alpaca")
    assert not target.exists() and not list(tmp_path.iterdir())  # the row before it was never published
