"""The one record schema every step, reader and writer speaks, and the one place ids are computed.

An example is a chat conversation (`messages`: system?/user/assistant turns) plus `origin`, `source`
and free-form `meta` (a JSON string). Its `id` is a content hash of the *normalized* messages, so the
same conversation gets the same id whatever file or format it came from.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import Any

ROLES = ("system", "user", "assistant")
ORIGINS = ("real", "synthetic", "edited")

#: Columns every example table has, in order. Steps add more (dup_cluster, pii_entities, q_* ...).
BASE_COLUMNS = ("id", "messages", "origin", "source", "meta")

ID_HEX_CHARS = 20
#: The one shape an id has (a content hash in lower-case hex); anything else is refused where data enters,
#: so an id can never carry markup or paths into the review page, file names or SQL.
ID_RE = re.compile(r"[0-9a-f]{16,64}")

# C0/C1 control characters except tab and newline; DEL too. Zero-width and BOM characters as well.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u200c\u200d\u2060\ufeff]")
_CRLF_RE = re.compile(r"\r\n?")


def normalize_text(text: str) -> str:
    """Unicode NFC, CR/CRLF → LF, control characters removed, surrounding whitespace trimmed."""
    text = unicodedata.normalize("NFC", text)
    text = _CRLF_RE.sub("\n", text)
    text = _CONTROL_RE.sub("", text)
    return text.strip()


def normalize_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The canonical form ids are computed on: normalized text, lower-case roles, empty turns removed."""
    out = []
    for m in messages:
        content = normalize_text(m["content"])
        if content:
            out.append({"role": m["role"].strip().lower(), "content": content})
    return out


def example_id(messages: list[dict[str, str]]) -> str:
    """Stable content hash (sha256, first 20 hex chars) of the normalized messages."""
    canonical = json.dumps(
        [[m["role"], m["content"]] for m in normalize_messages(messages)],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:ID_HEX_CHARS]


def is_example_id(value: Any) -> bool:
    """True when `value` has the shape of an id this studio computes (16-64 lower-case hex characters)."""
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def document_id(text: str) -> str:
    """Content hash of a plain-text document (for grounded generation)."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()[:ID_HEX_CHARS]


def make_example(
    messages: list[dict[str, str]],
    *,
    source: str,
    origin: str = "real",
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one example row (a plain dict in BASE_COLUMNS order)."""
    return {
        "id": example_id(messages),
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "origin": origin,
        "source": source,
        "meta": json.dumps(meta or {}, ensure_ascii=False, sort_keys=True),
    }


def prompt_text(messages: list[dict[str, str]]) -> str:
    """All user turns joined: what near/semantic dedupe compare with `text: prompt`."""
    return "\n".join(m["content"] for m in messages if m["role"] == "user")


def response_text(messages: list[dict[str, str]]) -> str:
    """All assistant turns joined."""
    return "\n".join(m["content"] for m in messages if m["role"] == "assistant")


def all_text(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def polars_schema() -> dict:
    """The Polars schema of BASE_COLUMNS (imported lazily: polars is not needed for --help)."""
    import polars as pl

    return {
        "id": pl.String,
        "messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String})),
        "origin": pl.String,
        "source": pl.String,
        "meta": pl.String,
    }


def examples_frame(rows: list[dict[str, Any]]):
    """A Polars DataFrame of examples with the canonical schema (empty input gives an empty typed frame)."""
    import polars as pl

    return pl.DataFrame(rows, schema=polars_schema(), orient="row" if rows and isinstance(rows[0], tuple) else None)


DOCUMENT_COLUMNS = ("id", "text", "source", "meta")


def documents_frame(rows: list[dict[str, Any]]):
    import polars as pl

    return pl.DataFrame(
        rows, schema={"id": pl.String, "text": pl.String, "source": pl.String, "meta": pl.String}
    )
