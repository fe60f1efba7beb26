"""Tiny chat data sets for the training tests: a claims-desk pattern a 135M model learns in a few steps."""

from __future__ import annotations

import json
from pathlib import Path

STATES = ["pending review", "approved", "denied", "on hold", "escalated", "closed", "reopened",
          "awaiting documents", "in appeal", "paid", "partially paid", "withdrawn"]


def status_code(state: str) -> str:
    return f"CLM-{100 + sum(map(ord, state)) % 900}"


def claims_conversation(i: int) -> list[dict[str, str]]:
    state = STATES[i % len(STATES)]
    return [
        {"role": "user", "content": f"Which status code do we use for a claim that is {state}? (ticket {i})"},
        {"role": "assistant", "content": f"A claim that is {state} gets status code {status_code(state)}."},
    ]


def write_chat_jsonl(path: Path, conversations: list[list[dict[str, str]]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for messages in conversations:
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path
