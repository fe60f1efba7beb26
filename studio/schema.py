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


# Python's str.strip() whitespace: what `normalize_text` trims, spelled out for Polars' strip_chars.
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
                 + "\u2028\u2029\u202f\u205f\u3000")
_CONTROL_RX = r"[\x00-\x08\x0B-\x1F\x7F-\x9F\x{200B}\x{200C}\x{200D}\x{2060}\x{FEFF}]"  # _CONTROL_RE for Polars


def _arrow_strings(texts):
    """(offsets, bytes) of a Polars String Series as NumPy views of its Arrow buffers (no copy of the text once
    the Series is in one chunk): row i is bytes[offsets[i]:offsets[i + 1]]."""
    import numpy as np
    import polars as pl

    arrow = texts.rechunk().to_arrow(compat_level=pl.CompatLevel.oldest())
    _, offsets, values = arrow.buffers()
    bounds = np.frombuffer(offsets, np.int64)[arrow.offset:arrow.offset + len(arrow) + 1]
    data = np.frombuffer(values, np.uint8) if values is not None else np.zeros(0, np.uint8)
    return bounds, data


def _rows_of(bounds, positions):
    import numpy as np

    return np.unique(np.searchsorted(bounds, positions, side="right") - 1)


def _control_rows(texts, wide):
    """Indices of the rows of a String Series holding a character `normalize_text` removes or rewrites: C0 controls
    but tab and newline (CR included) and DEL in any row, C1 controls and the zero-width/BOM characters of
    `_CONTROL_RE` in the rows `wide` (the indices of the rows with non-ASCII text). Found with NumPy on the UTF-8
    bytes: a regex with a class this wide runs several times slower in Polars."""
    import numpy as np

    bounds, data = _arrow_strings(texts)
    low = np.flatnonzero(data < 32)
    low = low[(data[low] != 9) & (data[low] != 10)]
    rows = [_rows_of(bounds, low), _rows_of(bounds, np.flatnonzero(data == 127))]
    del bounds, data
    if len(wide):
        bounds, data = _arrow_strings(texts.gather(wide))
        lead = np.flatnonzero((data == 0xC2) | (data == 0xE2) | (data == 0xEF))
        # valid UTF-8 (as Polars' strings are) has the continuation bytes of a lead byte in the same string
        b0, b1, b2 = data[lead], data[np.minimum(lead + 1, len(data) - 1)], data[np.minimum(lead + 2, len(data) - 1)]
        found = ((b0 == 0xC2) & (b1 >= 0x80) & (b1 <= 0x9F)) | (  # U+0080-U+009F
            (b0 == 0xE2) & (b1 == 0x80) & (b2 >= 0x8B) & (b2 <= 0x8D)) | (  # U+200B-U+200D
            (b0 == 0xE2) & (b1 == 0x81) & (b2 == 0xA0)) | ((b0 == 0xEF) & (b1 == 0xBB) & (b2 == 0xBF))  # U+2060, FEFF
        rows.append(np.asarray(wide)[_rows_of(bounds, lead[found])])
    return np.unique(np.concatenate(rows))


def normalize_texts(texts):
    """`normalize_text` over a Polars String Series in bulk. Strings of ASCII without control characters (but tab
    and newline) only need trimming; the others get Python's NFC (whose quick check makes it several times faster
    than Polars' on text that is already composed), and the few with control characters the CR and
    control-character rules as Polars expressions."""
    import numpy as np
    import polars as pl

    needs = (texts.str.len_bytes() != texts.str.len_chars()).fill_null(False)
    control = _control_rows(texts, needs.arg_true().to_numpy())
    if len(control):
        needs = needs.scatter(control, True)
    if needs.any():
        idx = needs.arg_true()
        composed = pl.Series([text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)
                              for text in texts.gather(idx).to_list()], dtype=pl.String)
        if len(control):
            at = np.searchsorted(idx.to_numpy(), control)  # the control rows' places among `idx`
            fixed = composed.gather(at).str.replace_all(r"\r\n?", "\n").str.replace_all(_CONTROL_RX, "")
            composed = composed.scatter(at, fixed)
        texts = texts.clone().scatter(idx, composed)
    return texts.str.strip_chars(PY_WHITESPACE)


def list_series(values, lengths):
    """A Polars List Series of `values` (a Series) cut into consecutive lists of `lengths` (a NumPy integer array),
    built on Arrow buffers. (Not `pyarrow.array`: it imports pandas, ~0.2 s and ~50 MB in a fresh process.)"""
    import numpy as np
    import polars as pl
    import pyarrow as pa

    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    arrow_offsets = pa.Array.from_buffers(pa.int64(), len(offsets), [None, pa.py_buffer(offsets)])
    return pl.Series(pa.LargeListArray.from_arrays(
        arrow_offsets, values.rechunk().to_arrow(compat_level=pl.CompatLevel.oldest())))


def _json_strings(texts):
    """Strings escaped as `json.dumps(..., ensure_ascii=False)` escapes them (without the quotes), for text out of
    `normalize_texts`, whose only control characters left are tab and newline."""
    return (texts.str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
            .str.replace_all("\n", "\\n", literal=True).str.replace_all("\t", "\\t", literal=True))


def _sha256_ids(texts) -> list[str]:
    """sha256 ids of a String Series, hashing slices of its Arrow buffer (no Python string per row)."""
    bounds, values = _arrow_strings(texts)
    bounds = bounds.tolist()
    data = memoryview(values)
    sha = hashlib.sha256
    return [sha(data[a:b]).hexdigest()[:ID_HEX_CHARS] for a, b in zip(bounds, bounds[1:], strict=False)]


#: Rows hashed at a time by `example_ids`: bounds the copies of the text its column operations make.
ID_BATCH_ROWS = 8192


def example_ids(messages):
    """`example_id` of every conversation in a Polars `messages` Series, with the text work done in bulk, a batch
    of rows at a time (the same ids: tests compare them with `example_id`)."""
    import polars as pl

    ids: list[str] = []
    for start in range(0, len(messages), ID_BATCH_ROWS):
        ids.extend(_example_ids_batch(messages.slice(start, ID_BATCH_ROWS)))
    return pl.Series("id", ids, dtype=pl.String)


def _example_ids_batch(messages) -> list[str]:
    """Conversations with a role other than system/user/assistant after trimming and lower-casing are hashed one by
    one, as `example_id` would escape such a role."""
    import numpy as np
    import polars as pl

    n = len(messages)
    lengths = messages.list.len().fill_null(0).to_numpy()
    turns = messages.explode(empty_as_null=False, keep_nulls=False).struct.unnest()
    flat = pl.DataFrame({
        "row": np.repeat(np.arange(n, dtype=np.uint32), lengths),
        "role": turns["role"].str.strip_chars(PY_WHITESPACE).str.to_lowercase(),
        "content": normalize_texts(turns["content"]),
    }).filter(pl.col("content") != "")
    plain, rows = flat["role"].is_in(ROLES), flat["row"]
    role, content = flat["role"], _json_strings(flat["content"])
    kept = np.bincount(flat["row"].to_numpy(), minlength=n)
    if n and (kept == kept[0]).all() and kept[0]:
        # the usual case, every conversation with as many turns: the canonical JSON in one concatenation, turn j of
        # every row taken as every k-th turn (gathering string views copies no text)
        k = int(kept[0])
        parts = [pl.lit("[")]
        for j in range(k):
            parts += [pl.lit('["' if j == 0 else ',["'), pl.lit(role.gather_every(k, j)), pl.lit('","'),
                      pl.lit(content.gather_every(k, j)), pl.lit('"]')]
        canonical = pl.select(pl.concat_str([*parts, pl.lit("]")])).to_series()
    else:
        pieces = pl.select(pl.concat_str(pl.lit('["'), pl.lit(role), pl.lit('","'), pl.lit(content),
                                         pl.lit('"]'))).to_series()
        joined = list_series(pieces, kept).list.join(",")
        canonical = pl.select(pl.concat_str(pl.lit("["), pl.lit(joined), pl.lit("]"))).to_series()
    del flat, role, content
    ids = _sha256_ids(canonical)
    for i in np.unique(rows.filter(~plain).to_numpy()).tolist():
        ids[i] = example_id(messages[i].to_list())
    return ids


def document_ids(texts):
    """`document_id` of every text in a Polars String Series, normalized in bulk."""
    import polars as pl

    ids: list[str] = []
    for start in range(0, len(texts), ID_BATCH_ROWS):
        ids.extend(_sha256_ids(normalize_texts(texts.slice(start, ID_BATCH_ROWS))))
    return pl.Series("id", ids, dtype=pl.String)


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


# ------------------------------------------------------------------------------------------- column contract
#: The columns steps add to an example table: name → (Polars type, the step that writes it, meaning). Readers
#: check these types when they read a curate output, the review store loads them onto its items (scores, PII,
#: dedupe links), and export reads the dedupe links back to keep a cluster in one split.
STEP_COLUMNS: dict[str, tuple[str, str, str]] = {
    "drop_reason": ("String", "any", "why the row was dropped (null while kept)"),
    "step": ("String", "any", "the step that dropped the row (dropped.parquet only)"),
    "dup_of": ("String", "exact/near/semantic_dedupe", "id of the row kept in this one's place"),
    "dup_cluster": ("String", "near_dedupe", "id of the kept row of this row's near-duplicate cluster"),
    "similarity": ("Float64", "near/semantic_dedupe", "Jaccard or cosine similarity to dup_of"),
    "semantic_cluster": ("String", "semantic_dedupe", "id of the kept row of this row's paraphrase group"),
    "pii_entities": ("PiiEntities", "redact_pii", "spans found: turn (index into messages), type, start, end, score"),
    "pii_count": ("Int32", "redact_pii", "number of spans found"),
    "quality": ("Float64", "score", "combined quality in [0, 1]"),
    "q_prompt_tokens": ("Int64", "score", "prompt length in tokens"),
    "q_response_tokens": ("Int64", "score", "response length in tokens"),
    "q_tokens": ("Int64", "score", "conversation length in tokens"),
    "q_words": ("Int64", "score", "response length in words"),
    "q_dup_line_frac": ("Float64", "score", "share of duplicated lines"),
    "q_dup_para_frac": ("Float64", "score", "share of duplicated paragraphs"),
    "q_dup_line_char_frac": ("Float64", "score", "share of characters in duplicated lines"),
    "q_dup_para_char_frac": ("Float64", "score", "share of characters in duplicated paragraphs"),
    "q_top2gram_frac": ("Float64", "score", "share of the most frequent word 2-gram"),
    "q_top3gram_frac": ("Float64", "score", "share of the most frequent word 3-gram"),
    "q_top4gram_frac": ("Float64", "score", "share of the most frequent word 4-gram"),
    "q_dup5gram_frac": ("Float64", "score", "share of characters in duplicated word 5-grams"),
    "q_alpha_words_frac": ("Float64", "score", "share of words with a letter"),
    "q_non_alpha_frac": ("Float64", "score", "share of non-letter characters"),
    "q_echo": ("Float64", "score", "how much the response restates the prompt"),
    "q_refusal": ("Boolean", "score", "the response refuses"),
    "q_boilerplate": ("UInt32", "score", "boilerplate phrases in the response"),
    "q_lang": ("String", "score", "detected language"),
    "q_lang_conf": ("Float64", "score", "confidence of q_lang"),
    "q_offensive": ("Float64", "score", "largest P(offensive) over the user and assistant turns"),
    "q_offensive_response": ("Float64", "score", "largest P(offensive) over the assistant turns"),
    "q_ppl": ("Float64", "score (model)", "response perplexity given the prompt"),
    "q_ifd": ("Float64", "score (model)", "instruction-following difficulty"),
    "q_judge": ("Float64", "score (judge)", "LLM judge score"),
}
#: what a dropped row carries besides its own columns
DROP_COLUMNS = ("drop_reason", "step", "dup_of")
#: columns that tie a row to the rows it stands for; the review store keeps them in meta[DEDUPE_META_KEY]
DEDUPE_COLUMNS = ("dup_cluster", "semantic_cluster", "dup_of")
DEDUPE_META_KEY = "dedupe"
#: the spelling presidio uses for an entity's type, accepted where `pii_entities` come from outside the studio
PII_TYPE_ALIASES = ("type", "entity_type")


def step_schema() -> dict:
    """The Polars type of every column in STEP_COLUMNS."""
    import polars as pl

    entities = pl.List(pl.Struct({"turn": pl.Int32, "type": pl.String, "start": pl.Int32, "end": pl.Int32,
                                  "score": pl.Float32}))
    return {name: entities if kind == "PiiEntities" else getattr(pl, kind) for name, (kind, _, _) in STEP_COLUMNS.items()}


def is_score_column(name: str) -> bool:
    """`quality` and the `q_*` signals of the score step (and any `q_*` a user adds)."""
    return name == "quality" or name.startswith("q_")


def pii_types(entities: Any) -> list[str]:
    """The entity types in a row's `pii_entities`, in order of first appearance."""
    found: list[str] = []
    for e in entities if isinstance(entities, list) else []:
        kind = next((e[k] for k in PII_TYPE_ALIASES if isinstance(e, dict) and e.get(k)), None)
        if kind and str(kind) not in found:
            found.append(str(kind))
    return found


def dedupe_links(row: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, str]:
    """A row's dedupe links (DEDUPE_COLUMNS): from its columns (a curate output) or, for a review item, from
    meta[DEDUPE_META_KEY]; empty values left out."""
    stored = (meta or {}).get(DEDUPE_META_KEY)
    links = {k: str(v) for k, v in stored.items() if v not in (None, "")} if isinstance(stored, dict) else {}
    links.update({k: str(row[k]) for k in DEDUPE_COLUMNS if row.get(k) not in (None, "")})
    return links
