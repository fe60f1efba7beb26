"""Readers: every supported input shape → the one example schema, with bad records quarantined.

Formats: OpenAI chat JSONL (`messages`), Alpaca (`instruction`/`input`/`output`, JSON array or JSONL),
self-instruct / Stanford Alpaca seed tasks (`instruction`, `instances: [{input, output}]`, one example per
instance), ShareGPT (`conversations` with `from`/`value`), prompt/completion JSONL, CSV with a column mapping,
Parquet, and documents: `.txt`/`.md` files, PDF/DOCX/HTML files (studio.documents), or JSON records with a
`text` field.

JSONL is parsed in bulk by Polars, a whole file (or a range of lines) at a time; only the lines Polars cannot
parse, or whose values it would read differently from Python's `json` (a number where text belongs, a
repeated key), go through `json.loads` one by one, so what is kept and what is quarantined is the same as a
line-by-line read. Consecutive JSONL files of one format in a folder are parsed as one buffer (`_Files` maps its
lines back to each file's own lines), so a folder of many small files reads like one file. Mapping records onto the schema and hashing ids are column operations whatever the format.

A malformed line or record never crashes a read and never vanishes: it becomes a `QuarantineRecord`
(file, line, reason, a prefix of the raw text). Missing paths, folders with no inputs and empty files named
on the command line are `InputError`s (one sentence, exit code 2); inside a folder, empty files and files of
no supported type are skipped with a warning each and listed in `ReadResult.skipped`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.documents import DOCUMENT_SUFFIXES, DocumentError, read_document
from studio.errors import InputError
from studio.schema import ID_RE, PY_WHITESPACE, ROLES, document_ids, example_ids

log = logging.getLogger("studio.readers")

EXAMPLE_FORMATS = ("openai", "alpaca", "seed-tasks", "sharegpt", "prompt-completion", "csv", "parquet")
FORMATS = (*EXAMPLE_FORMATS, "text")
INPUT_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".txt", ".md", *DOCUMENT_SUFFIXES)

SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant", "bing": "assistant",
    "bard": "assistant", "model": "assistant", "assistant": "assistant", "system": "system",
}
RAW_PREVIEW_CHARS = 2000
_BOM = b"\xef\xbb\xbf"
#: Records looked at to detect a file's format.
DETECT_RECORDS = 20
#: A range of JSONL lines that Polars cannot parse is halved until it is this small, then read line by line.
LINE_BY_LINE_BELOW = 64


@dataclass
class QuarantineRecord:
    file: str
    line: int
    reason: str
    raw: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RecordError(ValueError):
    """A record that cannot become an example; its message is the quarantine reason."""


class EmptyFileError(InputError):
    """An input file with nothing but whitespace in it."""


@dataclass(frozen=True)
class SkippedFile:
    """A file inside a named folder that was not read, and why ("empty", or "unsupported type '.xyz'")."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class ReadResult:
    """What reading one or more inputs produced. `kind` is "examples" or "documents"; `table` is a Polars
    DataFrame in the studio schema of that kind."""

    kind: str
    table: Any = None
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # file -> detected format
    skipped: list[SkippedFile] = field(default_factory=list)

    def frame(self):
        if self.table is None:
            from studio.schema import documents_frame, examples_frame

            self.table = examples_frame([]) if self.kind == "examples" else documents_frame([])
        return self.table

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The records as dicts (for small inputs; use `frame()` for anything large)."""
        return self.frame().to_dicts()

    @property
    def n_rows(self) -> int:
        return self.frame().height

    @property
    def n_input(self) -> int:
        return self.n_rows + len(self.quarantine)


@dataclass(frozen=True)
class CsvMapping:
    """Which CSV columns hold the user prompt, the assistant response and (optionally) a system prompt.

    Any other column is carried into `meta`.
    """

    prompt: str | None = None
    response: str | None = None
    system: str | None = None

    @classmethod
    def parse(cls, spec: str | None) -> CsvMapping:
        """Parse `prompt=question,response=answer[,system=sys]`."""
        if not spec:
            return cls()
        values: dict[str, str] = {}
        for part in spec.split(","):
            key, sep, col = part.partition("=")
            key = key.strip()
            if not sep or key not in ("prompt", "response", "system") or not col.strip():
                raise InputError(
                    f"--csv-map entry {part!r} is not KEY=COLUMN with KEY one of prompt, response, system "
                    "(example: --csv-map prompt=question,response=answer)."
                )
            values[key] = col.strip()
        return cls(**values)


_CSV_DEFAULTS = (("prompt", "completion"), ("instruction", "output"), ("question", "answer"),
                 ("input", "output"), ("customer_message", "agent_reply"), ("user", "assistant"))


# ---------------------------------------------------------------------------------------------- records


def _require_str(obj: dict, key: str, *, optional: bool = False) -> str:
    if key not in obj or obj[key] is None:
        if optional:
            return ""
        raise RecordError(f"missing field '{key}'")
    value = obj[key]
    if not isinstance(value, str):
        raise RecordError(f"field '{key}' must be a string, got {type(value).__name__}")
    return value


def _meta(obj: dict, used: Iterable[str]) -> dict[str, Any]:
    skip = set(used)
    return {k: v for k, v in obj.items() if k not in skip}


def _check_conversation(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    if not messages:
        raise RecordError("empty conversation: no turns")
    return messages


def messages_from_openai(obj: dict) -> tuple[list[dict[str, str]], dict]:
    turns = obj.get("messages")
    if turns is None:
        raise RecordError("missing field 'messages'")
    if not isinstance(turns, list):
        raise RecordError(f"field 'messages' must be a list, got {type(turns).__name__}")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError(f"messages[{i}] must be an object, got {type(turn).__name__}")
        role = turn.get("role")
        if not isinstance(role, str):
            raise RecordError(f"messages[{i}].role must be a string, got {type(role).__name__}")
        if role not in ROLES:
            raise RecordError(f"messages[{i}].role {role!r} is not one of {', '.join(ROLES)}")
        content = turn.get("content")
        if not isinstance(content, str):
            raise RecordError(f"messages[{i}].content must be a string, got {type(content).__name__}")
        messages.append({"role": role, "content": content})
    return _check_conversation(messages), _meta(obj, ["messages"])


def messages_from_alpaca(obj: dict) -> tuple[list[dict[str, str]], dict]:
    instruction = _require_str(obj, "instruction")
    extra = _require_str(obj, "input", optional=True)
    output = _require_str(obj, "output")
    system = _require_str(obj, "system", optional=True)
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = ([{"role": "system", "content": system}] if system.strip() else []) + [
        {"role": "user", "content": user},
        {"role": "assistant", "content": output},
    ]
    return messages, _meta(obj, ["instruction", "input", "output", "system"])


def messages_from_sharegpt(obj: dict) -> tuple[list[dict[str, str]], dict]:
    turns = obj.get("conversations")
    if turns is None:
        raise RecordError("missing field 'conversations'")
    if not isinstance(turns, list):
        raise RecordError(f"field 'conversations' must be a list, got {type(turns).__name__}")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise RecordError(f"conversations[{i}] must be an object, got {type(turn).__name__}")
        who = turn.get("from")
        if not isinstance(who, str):
            raise RecordError(f"conversations[{i}].from must be a string, got {type(who).__name__}")
        role = SHAREGPT_ROLES.get(who.lower())
        if role is None:
            raise RecordError(
                f"conversations[{i}].from {who!r} is not a known speaker ({', '.join(sorted(SHAREGPT_ROLES))})"
            )
        value = turn.get("value")
        if not isinstance(value, str):
            raise RecordError(f"conversations[{i}].value must be a string, got {type(value).__name__}")
        messages.append({"role": role, "content": value})
    return _check_conversation(messages), _meta(obj, ["conversations"])


def messages_from_prompt_completion(obj: dict) -> tuple[list[dict[str, str]], dict]:
    prompt = _require_str(obj, "prompt")
    completion = _require_str(obj, "completion")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}], _meta(
        obj, ["prompt", "completion"]
    )


def examples_from_seed_task(obj: dict) -> list[tuple[list[dict[str, str]], dict]]:
    """A self-instruct / Alpaca seed task: one Alpaca-shaped example per instance, each keeping the task's
    `name` (as `task`), `id` (as `task_id`), `is_classification` and its instance number in meta."""
    instruction = _require_str(obj, "instruction")
    instances = obj.get("instances")
    if not isinstance(instances, list) or not instances:
        raise RecordError("field 'instances' must be a non-empty list of {input, output} objects")
    task = {"task": obj.get("name"), "task_id": obj.get("id"), "is_classification": obj.get("is_classification")}
    task.update(_meta(obj, ["instruction", "instances", "name", "id", "is_classification"]))
    examples = []
    for k, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise RecordError(f"instances[{k}] must be an object, got {type(inst).__name__}")
        try:
            messages, extra = messages_from_alpaca({**inst, "instruction": instruction})
        except RecordError as err:
            raise RecordError(f"instances[{k}]: {err}") from None
        examples.append((messages, {**task, "instance": k, **extra}))
    return examples


RECORD_MAPPERS = {
    "openai": messages_from_openai,
    "alpaca": messages_from_alpaca,
    "sharegpt": messages_from_sharegpt,
    "prompt-completion": messages_from_prompt_completion,
}


def detect_record_format(obj: Any) -> str | None:
    """The format a single JSON object looks like, or None."""
    if not isinstance(obj, dict):
        return None
    keys = obj.keys()
    if "messages" in keys:
        return "openai"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys and "instances" in keys:
        return "seed-tasks"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "prompt" in keys and "completion" in keys:
        return "prompt-completion"
    if "text" in keys:
        return "text"
    return None


# ---------------------------------------------------------------------------------------- record mapping


def _preview(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return raw[:RAW_PREVIEW_CHARS]


def _dumps_preview(obj: Any) -> str:
    try:
        return _preview(json.dumps(obj, ensure_ascii=False))
    except (RecursionError, ValueError):
        return ""


@dataclass
class _Files:
    """Files read as one buffer (JSONL files of one format in a folder): their paths and the line of the buffer
    each starts on, to give every row and quarantine record its own file and line."""

    paths: list[Path]
    offsets: Any  # NumPy int64: where each file starts in the buffer
    first_lines: Any = None  # NumPy int64: the buffer's line number of each file's line 1 (set by `_line_bounds`)

    def index(self, lines):
        """The file of each of the buffer's `lines` (a NumPy array), as an index into `paths`."""
        import numpy as np

        return np.searchsorted(self.first_lines, lines, side="right") - 1

    def locate(self, line: int) -> tuple[Path, int]:
        i = int(self.index(line))
        return self.paths[i], line - int(self.first_lines[i]) + 1

    def sources(self, lines):
        """`file:line` of each of the buffer's lines (a Polars Int64 Series), as a String Series."""
        import polars as pl

        numbers = lines.to_numpy()
        index = self.index(numbers)
        local = pl.Series(numbers - self.first_lines[index] + 1)
        names = pl.Series([f"{path}:" for path in self.paths], dtype=pl.String).gather(index)
        return pl.select(pl.concat_str(pl.lit(names), pl.lit(local.cast(pl.String)))).to_series()


class _Collector:
    """Records of one file on their way to the schema: the ones mapped in Python (`rows`, as column lists),
    the ones mapped as columns (`frames`), and the quarantined ones. `table()` merges them in line order and
    adds ids and sources."""

    def __init__(self, path: Path, fmt: str, files: _Files | None = None) -> None:
        self.path, self.fmt = path, fmt
        self.files = files  # several files read as one buffer: `line` numbers its lines, all files together
        self.kind = "documents" if fmt == "text" else "examples"
        self.lines: list[int] = []
        self.texts: list[str] = []  # documents: one per record; examples: the turns' contents, in order
        self.roles: list[str] = []
        self.turns: list[int] = []  # examples: turns per record
        self.origins: list[str] = []
        self.metas: list[str] = []
        self.frames: list = []
        self.quarantine: list[QuarantineRecord] = []

    def bad(self, line: int, reason: str, raw: str) -> None:
        path, line = self.files.locate(line) if self.files else (self.path, line)
        self.quarantine.append(QuarantineRecord(str(path), line, reason, raw))

    def add(self, line: int, obj: Any) -> None:
        """Map one parsed record (the line-by-line path), or quarantine it with the reason."""
        if not isinstance(obj, dict):
            self.bad(line, f"record is not a JSON object (got {type(obj).__name__})", _dumps_preview(obj))
            return
        try:
            if self.kind == "documents":
                text = _require_str(obj, "text")
                if not text.strip():
                    raise RecordError("field 'text' is empty")
                pairs, origin = [(text, _meta(obj, ["text"]))], ""
            else:
                # one record is one example, except a seed task: one example per instance
                pairs = examples_from_seed_task(obj) if self.fmt == "seed-tasks" else [RECORD_MAPPERS[self.fmt](obj)]
                origin = obj.get("origin")
                origin = str(origin) if origin in ("real", "synthetic", "edited") else "real"
                for _value, meta in pairs:
                    meta.pop("origin", None)
        except RecordError as err:
            self.bad(line, str(err), _dumps_preview(obj))
            return
        for value, meta in pairs:
            self.keep(line, value, origin, meta)

    def keep(self, line: int, value: str | list[dict[str, str]], origin: str, meta: dict[str, Any]) -> None:
        self.lines.append(line)
        if isinstance(value, str):
            self.texts.append(value)
        else:
            self.turns.append(len(value))
            self.roles.extend(m["role"] for m in value)
            self.texts.extend(m["content"] for m in value)
        self.origins.append(origin)
        self.metas.append(json.dumps(meta, ensure_ascii=False, sort_keys=True) if meta else "{}")

    def _python_part(self):
        """The records mapped in Python as one frame (messages assembled from flat turn columns)."""
        import numpy as np
        import polars as pl

        from studio.schema import list_series

        if self.kind == "documents":
            return pl.DataFrame({"line": self.lines, "text": self.texts, "meta": self.metas},
                                schema={"line": pl.Int64, "text": pl.String, "meta": pl.String})
        turns = pl.DataFrame({"role": pl.Series(self.roles, dtype=pl.String),
                              "content": pl.Series(self.texts, dtype=pl.String)}).to_struct("turn")
        return pl.DataFrame({"line": pl.Series(self.lines, dtype=pl.Int64),
                             "messages": list_series(turns, np.asarray(self.turns, dtype=np.int64)),
                             "origin": pl.Series(self.origins, dtype=pl.String),
                             "meta": pl.Series(self.metas, dtype=pl.String)})

    def table(self):
        import polars as pl

        parts = [*self.frames, self._python_part()] if self.lines else [*self.frames]
        self.frames = []
        if self.files:
            order = {str(path): i for i, path in enumerate(self.files.paths)}
            self.quarantine.sort(key=lambda q: (order.get(q.file, -1), q.line))
        else:
            self.quarantine.sort(key=lambda q: q.line)
        if not parts:
            return None
        df = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
        del parts
        if df.height > 1 and not df["line"].is_sorted():
            df = df.sort("line")
        if self.files:
            source = self.files.sources(df["line"]).alias("source")
        else:
            source = pl.concat_str(pl.lit(f"{self.path}:"), pl.col("line").cast(pl.String)).alias("source")
        if self.kind == "documents":
            return df.select(pl.lit(None, pl.String).alias("id"), "text", source, "meta")
        return df.select(pl.lit(None, pl.String).alias("id"), "messages", "origin", source, "meta")


# ------------------------------------------------------------------------------------ bulk JSONL mapping

# A String value that Polars may have made out of a number, a boolean, an array or an object (it turns
# `"prompt": 5` into "5" where json.loads keeps the int), or out of a lone surrogate escape (into NUL): such
# rows are read again line by line.
_COERCED_RX = r"^(?:-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$|-?inf$|NaN$|true$|false$|[\[{])"
_FIELDS = {
    "prompt-completion": ("prompt", "completion"),
    "alpaca": ("instruction", "input", "output", "system"),
    "text": ("text",),
}
_TURN_FIELDS = {"openai": ("messages", "role", "content"), "sharegpt": ("conversations", "from", "value")}


def _plain(expr):
    """True where a String value is surely what json.loads would give: present and not possibly coerced."""
    return (expr.is_not_null() & ~expr.str.contains(_COERCED_RX) & ~expr.str.contains("\x00", literal=True)
            ).fill_null(False)


def _two_turns(user, assistant):
    """A one-column frame of user/assistant conversations from two String Series (interleaved, then reshaped:
    several times faster than building lists of structs)."""
    import numpy as np
    import polars as pl

    n = len(user)
    order = np.empty(2 * n, np.int64)
    order[0::2], order[1::2] = np.arange(n), np.arange(n, 2 * n)
    turns = pl.DataFrame({"role": pl.Series(["user", "assistant"]).gather(np.tile([0, 1], n)),
                          "content": pl.concat([user, assistant], rechunk=False).gather(order)}).to_struct("turn")
    messages = turns.reshape((n, 2)) if n else turns
    return pl.DataFrame({"messages": messages.cast(pl.List(turns.dtype)) if n else pl.Series(
        "messages", [], dtype=pl.List(turns.dtype))})


def _map_frame(fmt: str, df, chunk: bytes, keys_counted: bool = False):
    """Map a chunk Polars parsed onto (line-less) schema columns: (mapped frame or None, rows to redo).
    `keys_counted`: `_every_key_inferred` proved the chunk has one key per non-null value of `df` (no key written
    twice, no null), which spares counting the fields' names in the bytes.

    Returns None when the chunk's columns are not exactly the format's (meta fields, another shape, a key
    written twice in a record): then every line of the chunk is read one by one. Otherwise `redo` marks the
    rows that need json.loads and the Python mapper (a missing or non-text field, an unknown role...), which
    give them their exact quarantine reason."""
    import polars as pl

    if fmt in _TURN_FIELDS:
        outer, who, what = _TURN_FIELDS[fmt]
        dtype = df.schema.get(outer)
        if set(df.columns) != {outer} or not isinstance(dtype, pl.List) or not isinstance(dtype.inner, pl.Struct):
            return None
        inner = {f.name: f.dtype for f in dtype.inner.fields}
        if inner.get(who) != pl.String or inner.get(what) != pl.String:
            return None
        turns = df[outer].explode(empty_as_null=False, keep_nulls=False)
        if chunk.count(b'"%s"' % outer.encode()) != df[outer].is_not_null().sum() or \
                chunk.count(b'"%s"' % who.encode()) != len(turns) or chunk.count(b'"%s"' % what.encode()) != len(turns):
            return None
        el = pl.element()
        if fmt == "openai":
            role = el.struct.field(who)
            good_role = role.is_in(ROLES)
        else:
            role = el.struct.field(who).str.to_lowercase().replace_strict(SHAREGPT_ROLES, default=None)
            good_role = role.is_not_null()
        turn_ok = el.is_not_null() & good_role.fill_null(False) & _plain(el.struct.field(what))
        ok = (pl.col(outer).list.len() > 0) & pl.col(outer).list.eval(turn_ok).list.all()
        mapped = df.select(
            pl.col(outer).list.eval(pl.struct(role.alias("role"), el.struct.field(what).alias("content")))
            .alias("messages"), ok.fill_null(False).alias("_ok"))
        return mapped.drop("_ok"), ~mapped["_ok"]
    fields = _FIELDS.get(fmt)
    if fields is None:  # seed tasks: one record is several examples, mapped line by line
        return None
    if not set(df.columns) <= set(fields) or any(df.schema[c] not in (pl.String, pl.Null) for c in df.columns):
        return None
    cols = {c: (df[c] if c in df.columns else pl.Series(c, [None] * df.height, dtype=pl.String)).cast(pl.String)
            for c in fields}
    if not keys_counted and any(chunk.count(b'"%s"' % c.encode()) != cols[c].is_not_null().sum() for c in fields):
        return None
    frame = pl.DataFrame(cols)
    if fmt == "prompt-completion":
        ok = frame.select(_plain(pl.col("prompt")) & _plain(pl.col("completion"))).to_series()
        return _two_turns(frame["prompt"], frame["completion"]), ~ok
    if fmt == "text":
        ok = _plain(pl.col("text")) & (pl.col("text").str.strip_chars(PY_WHITESPACE) != "")
        out = frame.select(pl.col("text"), ok.alias("_ok"))
        return out.select("text"), ~out["_ok"]
    else:  # alpaca
        ok = (_plain(pl.col("instruction")) & _plain(pl.col("output"))
              & (pl.col("input").is_null() | _plain(pl.col("input")))
              & (pl.col("system").is_null() | _plain(pl.col("system"))))
        extra = pl.col("input").fill_null("")
        user = pl.when(extra.str.strip_chars(PY_WHITESPACE) != "").then(
            pl.concat_str("instruction", pl.lit("\n\n"), extra)).otherwise(pl.col("instruction"))
        system = pl.col("system").fill_null("")
        messages = pl.concat_list(
            pl.when(system.str.strip_chars(PY_WHITESPACE) != "").then(pl.struct(role=pl.lit("system"), content=system)),
            pl.struct(role=pl.lit("user"), content=user), pl.struct(role=pl.lit("assistant"), content="output"),
        ).list.drop_nulls()
    out = frame.select(messages.alias("messages"), ok.alias("_ok"))
    return out.select("messages"), ~out["_ok"]


# ------------------------------------------------------------------------------------------------ JSONL


def _line_bounds(data: bytes, files: _Files | None = None):
    """(start, end, line number) of every non-blank line, as NumPy arrays. With `files`, also sets the line each
    of them starts on from their byte offsets."""
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    step = 1 << 24  # in windows: a byte mask of the whole file would be as large as the file
    newlines = np.concatenate([np.flatnonzero(arr[at:at + step] == 10) + at for at in range(0, len(arr), step)]
                              or [np.zeros(0, np.int64)])
    if files is not None:
        files.first_lines = np.searchsorted(newlines, files.offsets) + 1
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(data)]])
    numbers = np.arange(1, len(starts) + 1)
    # A line is blank only if it is empty or starts with whitespace: check just those in Python.
    first = arr[np.minimum(starts, max(len(data) - 1, 0))] if len(data) else np.zeros(len(starts), np.uint8)
    maybe = np.flatnonzero((starts >= ends) | np.isin(first, (9, 11, 12, 13, 32)))
    keep = np.ones(len(starts), bool)
    keep[[i for i in maybe.tolist() if not data[starts[i]:ends[i]].strip()]] = False
    return starts[keep], ends[keep], numbers[keep]


def _read_line(out: _Collector, lineno: int, raw: bytes) -> None:
    """One JSONL line, exactly as a line-by-line reader sees it."""
    raw = raw.rstrip(b"\r")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        out.bad(lineno, f"bytes are not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})", _preview(raw))
        return
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        out.bad(lineno, f"invalid JSON: {err.msg} at column {err.colno}", _preview(text))
        return
    except RecursionError:
        out.bad(lineno, "invalid JSON: nested too deeply to read (more levels of arrays and objects than Python allows)",
                _preview(text))
        return
    out.add(lineno, obj)


_JSON_SPACE = (32, 9, 13)  # what may stand between a key's closing quote and its colon on one line


def _every_key_inferred(df, chunk: bytes, line_ends) -> bool:
    """True when `df`, parsed from `chunk` with Polars' default schema inference (the first 100 lines), surely has a
    column for every key of every record: its columns are all String and the chunk holds exactly as many keys as
    they have non-null values (`line_ends`: where each of the chunk's lines ends, a NumPy array). In JSON a quote
    inside a string is escaped (an odd run of backslashes before it), so the other quotes open and close strings in
    turn on each line, and a key is a string whose closing quote is followed by a colon (JSON whitespace between).
    False (a null value, a nested record, a key Polars did not see, a line with an odd number of quotes) sends the
    chunk to full inference: never a wrong read, only a slower one."""
    import numpy as np
    import polars as pl

    if not df.width or any(dtype != pl.String for dtype in df.schema.values()):
        return False
    arr = np.frombuffer(chunk, np.uint8)
    end = len(arr)

    def step_over(pos, byte_values, step):
        """`pos` moved by `step` (in place) while on a byte in `byte_values`; how many bytes each moved over."""
        run = np.zeros(len(pos), np.int64)
        active = np.arange(len(pos))
        while len(active):  # one step for all positions still on such a byte: runs are short and rare
            at = pos[active]
            inside = (at >= 0) & (at < end)
            on = arr[np.clip(at, 0, max(end - 1, 0))]
            active = active[inside & np.logical_or.reduce([on == b for b in byte_values])]
            pos[active] += step
            run[active] += 1
        return run

    quotes = np.flatnonzero(arr == 34)
    quotes = quotes[step_over(quotes - 1, (92,), -1) % 2 == 0]  # the unescaped ones
    if (np.bincount(np.searchsorted(line_ends, quotes)) % 2).any():
        return False
    after = quotes[1::2] + 1  # each closing quote's next byte, then past any whitespace
    step_over(after, _JSON_SPACE, 1)
    after = after[after < end]
    return int((arr[after] == 58).sum()) == sum(df[c].is_not_null().sum() for c in df.columns)


def _parse_ndjson(chunk: bytes, line_ends) -> tuple[Any, bool]:
    """Polars' parse of a JSONL chunk with every key of every line as a column (a key first seen after line 100 must
    not vanish from meta): the default inference from the first 100 lines when `_every_key_inferred` proves it saw
    every key, as on most files of flat text records (it parses once where full inference parses twice), else
    inference from every line. Returns (frame, whether the keys were counted)."""
    import polars as pl

    try:
        df = pl.read_ndjson(chunk)
        if _every_key_inferred(df, chunk, line_ends):
            return df, True
    except Exception:  # noqa: BLE001, S110 - the full-inference parse below raises what it raises
        pass
    return pl.read_ndjson(chunk, infer_schema_length=None), False


def _read_jsonl(path: Path, data: bytes, fmt: str, files: _Files | None = None) -> _Collector:
    """JSONL in bulk (see the module docstring). With `files`, `data` is those files one after another, parsed
    together; a range of lines that cannot be mapped in bulk is then retried file by file before line by line."""
    import numpy as np
    import polars as pl

    out = _Collector(path, fmt, files)
    starts, ends, numbers = _line_bounds(data, files)
    file_of = files.index(numbers) if files else None

    def by_line(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            _read_line(out, int(numbers[i]), data[starts[i]:ends[i]])

    pending = [(0, len(starts))]
    while pending:
        lo, hi = pending.pop()
        if lo >= hi:
            continue
        chunk = data if (lo, hi) == (0, len(starts)) else data[starts[lo]:ends[hi - 1]]
        try:
            df, keys_counted = _parse_ndjson(chunk, ends[lo:hi] - starts[lo])
            parsed = df.height == hi - lo
        except Exception:  # noqa: BLE001 - Polars raises several error types for bad JSON; the lines say which
            parsed = False
        if not parsed:
            if hi - lo <= LINE_BY_LINE_BELOW:
                by_line(lo, hi)
            else:
                mid = (lo + hi) // 2
                pending += [(mid, hi), (lo, mid)]
            continue
        mapped = _map_frame(fmt, df, chunk, keys_counted)
        del df
        if mapped is None:
            if file_of is not None and file_of[lo] != file_of[hi - 1]:  # one file with other keys: try each file
                cuts = (np.flatnonzero(np.diff(file_of[lo:hi])) + lo + 1).tolist()
                pending += list(zip([lo, *cuts], [*cuts, hi], strict=True))[::-1]
            else:
                by_line(lo, hi)
            continue
        frame, redo = mapped
        lines = pl.Series("line", numbers[lo:hi])
        value_col = "text" if fmt == "text" else "messages"
        if redo.any():  # filtering copies the text: only when some rows are left to the line-by-line path
            frame, lines = frame.filter(~redo), lines.filter(~redo)
        frame = frame.select(pl.lit(lines).alias("line"), value_col)
        if fmt != "text":
            frame = frame.with_columns(pl.lit("real").alias("origin"))
        out.frames.append(frame.with_columns(pl.lit("{}").alias("meta")).select(
            "line", value_col, *(["origin"] if fmt != "text" else []), "meta"))
        for i in (redo.arg_true() + lo).to_list():
            _read_line(out, int(numbers[i]), data[starts[i]:ends[i]])
    return out


# ------------------------------------------------------------------------------------------- JSON arrays


def _json_array_elements(path: Path, text: str) -> Iterator[tuple[int, Any, QuarantineRecord | None]]:
    """Elements of a top-level JSON array with the line each starts on.

    After a syntax error the reader looks for the next element that starts a line at the indentation of the
    array's elements and parses from there; the lines in between become one quarantine record that names
    them, so what was lost is exact. With no such element left, the rest of the array is reported lost."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line = text.count("\n", 0, pos) + 1
    n = len(text)
    indent: str | None = None
    while True:
        while pos < n and text[pos] in " \t\r\n,":
            if text[pos] == "\n":
                line += 1
            pos += 1
        if pos >= n:
            yield line, None, QuarantineRecord(str(path), line, "invalid JSON: the array is not closed with ']'", "")
            return
        if text[pos] == "]":
            return
        if indent is None:
            indent = text[text.rfind("\n", 0, pos) + 1:pos]
        try:
            obj, end = decoder.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as err:
            why = (f"{err.msg} (line {err.lineno} column {err.colno})" if isinstance(err, json.JSONDecodeError)
                   else "nested too deeply to read (more levels of arrays and objects than Python allows)")
            resume = _next_element(decoder, text, pos, indent)
            if resume is None:
                last = text.count("\n", 0, n) + 1
                yield line, None, QuarantineRecord(
                    str(path), line, f"invalid JSON: {why}; {_span(line, last)}, the rest of the array, could not "
                    "be read", _preview(text[pos:pos + RAW_PREVIEW_CHARS]))
                return
            next_line = line + text.count("\n", pos, resume)
            yield line, None, QuarantineRecord(
                str(path), line, f"invalid JSON: {why}; {_span(line, next_line - 1)} could not be read, reading "
                f"resumed at the record on line {next_line}", _preview(text[pos:min(resume, pos + RAW_PREVIEW_CHARS)]))
            pos, line = resume, next_line
            continue
        yield line, obj, None
        line += text.count("\n", pos, end)
        pos = end


def _span(first: int, last: int) -> str:
    return f"line {first}" if first >= last else f"lines {first}-{last}"


def _next_element(decoder: json.JSONDecoder, text: str, pos: int, indent: str) -> int | None:
    """Where the next whole element after a broken one starts: a line holding `indent` then `{` or `[` whose
    value parses and is followed by `,` or `]`."""
    marker = "\n" + indent
    at = text.find(marker, pos)
    while at != -1:
        start = at + len(marker)
        if start < len(text) and text[start] in "{[":
            try:
                _, end = decoder.raw_decode(text, start)
            except (json.JSONDecodeError, RecursionError):
                pass
            else:
                rest = text[end:end + 64].lstrip()
                if rest[:1] in (",", "]"):
                    return start
        at = text.find(marker, at + 1)
    return None


def _decode_whole(path: Path, data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(
            f"{path}: byte 0x{data[err.start]:02x} on line {line} is not valid UTF-8; {what} must be "
            "UTF-8 throughout (re-encode it, or convert it to JSONL so bad lines can be quarantined one by one)."
        ) from None


# ------------------------------------------------------------------------------------------ detection


def _head_records(path: Path, data: bytes, text: str | None) -> list[Any]:
    """Up to DETECT_RECORDS parsed records from the start of a file (JSONL bytes, or a JSON array's text),
    parsing no further than they reach. Parsing stops early once more than half of DETECT_RECORDS records in a row
    have one format: the rest could not outvote it, so `_detect_from_objects` decides the same (and a folder of
    many files of long records parses about half as much JSON just to detect formats)."""
    found: list[Any] = []
    majority = DETECT_RECORDS // 2 + 1
    agreed: list[str | None] = []  # the format all records so far share, while they share one

    def settled(obj: Any) -> bool:
        found.append(obj)
        fmt = detect_record_format(obj)
        if len(found) == 1:
            agreed.append(fmt)
        elif agreed and agreed[0] != fmt:
            agreed.clear()
        return len(found) == DETECT_RECORDS or (bool(agreed) and agreed[0] is not None and len(found) >= majority)

    if text is not None:
        for _line, obj, _q in _json_array_elements(path, text):
            if _q is None and settled(obj):
                break
        return found
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end == -1 else end
        raw = data[start:end].strip()
        start = end + 1
        if not raw:
            continue
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if settled(obj):
            break
    return found


def _detect_from_objects(path: Path, objects: list[Any]) -> str:
    votes: dict[str, int] = {}
    for obj in objects:
        fmt = detect_record_format(obj)
        if fmt:
            votes[fmt] = votes.get(fmt, 0) + 1
    if not votes:
        keys = sorted(objects[0].keys()) if objects and isinstance(objects[0], dict) else []
        raise InputError(
            f"cannot tell the format of {path}: its first records have keys {keys or 'none'}, which match none of "
            "openai (messages), sharegpt (conversations), alpaca (instruction/output), seed-tasks "
            "(instruction/instances), prompt-completion (prompt/completion) or text; pass --format to say which it is."
        )
    return max(votes.items(), key=lambda kv: kv[1])[0]


_FORMAT_KEYS = {"openai": "messages", "sharegpt": "conversations", "alpaca": "instruction/output",
                "seed-tasks": "instruction/instances",
                "prompt-completion": "prompt/completion", "text": "text"}


# ---------------------------------------------------------------------------------------------- readers


_SOMETHING = re.compile(rb"[^ \t\r\n]")


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except PermissionError:
        raise InputError(f"{path} cannot be read (permission denied); check its permissions.") from None
    except OSError as err:
        raise InputError(f"{path} cannot be read ({err.strerror}).") from None
    if not _SOMETHING.search(data, len(_BOM) if data.startswith(_BOM) else 0):
        raise EmptyFileError(f"{path} is empty; give a file with at least one record.")
    return data


def read_file(path: str | Path, fmt: str | None = None, csv_mapping: CsvMapping | None = None) -> ReadResult:
    """Read one input file. `fmt=None` auto-detects (and logs what it chose)."""
    return _with_ids(_read_one(Path(path), fmt, csv_mapping))


def _with_ids(result: ReadResult) -> ReadResult:
    """Fill the `id` column of the rows the readers left without one (all but studio-schema Parquet), hashing
    the whole table at once: reading a folder hashes once, not once per file."""

    table = result.table
    if table is None or table.height == 0:
        return result
    missing = table["id"].is_null()
    if not missing.any():
        return result
    texts = table.filter(missing)
    ids = document_ids(texts["text"]) if result.kind == "documents" else example_ids(texts["messages"])
    if missing.all():
        result.table = table.with_columns(ids)
    else:
        result.table = table.with_columns(table["id"].scatter(missing.arg_true(), ids))
    return result


def _read_one(path: Path, fmt: str | None, csv_mapping: CsvMapping | None) -> ReadResult:
    """One file read into the schema, with ids still to compute (see `_with_ids`)."""
    if not path.exists():
        raise InputError(f"{path} does not exist; check the path.")
    if path.is_dir():
        raise InputError(f"{path} is a directory; use read_inputs() for folders.")
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    suffix = path.suffix.lower()
    if fmt == "parquet" or (fmt is None and suffix == ".parquet"):
        return _read_parquet(path)
    if fmt == "csv" or (fmt is None and suffix == ".csv"):
        return _result(_read_csv(path, csv_mapping or CsvMapping()))
    if (fmt is None or fmt == "text") and suffix in DOCUMENT_SUFFIXES:
        return _read_rich_document(path)
    data = _read_bytes(path)
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    if (fmt is None or fmt == "text") and suffix in (".txt", ".md"):
        return _read_text_document(path, data)
    text = _decode_whole(path, data, "a JSON array file") if data.lstrip().startswith(b"[") else None
    if fmt is None:
        objects = _head_records(path, data, text)
        if not objects:
            fmt = "unknown"
        else:
            fmt = _detect_from_objects(path, objects)
            log.info("%s: detected format %s (records have %s)", path, fmt, _FORMAT_KEYS[fmt])
    if fmt == "unknown":
        out = _Collector(path, "prompt-completion")
        if text is not None:
            for lineno, _obj, quarantined in _json_array_elements(path, text):
                out.quarantine.append(quarantined or QuarantineRecord(
                    str(path), lineno, "no record of this file could be parsed, so its format is unknown", ""))
        else:
            starts, ends, numbers = _line_bounds(data)
            for a, b, lineno in zip(starts.tolist(), ends.tolist(), numbers.tolist(), strict=True):
                _read_line(out, lineno, data[a:b])
        log.warning("%s: no record could be parsed; all %d went to quarantine", path, len(out.quarantine))
        return ReadResult(kind="examples", quarantine=out.quarantine, formats={str(path): "unknown"})
    if text is not None:
        out = _Collector(path, fmt)
        for lineno, obj, quarantined in _json_array_elements(path, text):
            if quarantined is not None:
                out.quarantine.append(quarantined)
            else:
                out.add(lineno, obj)
    else:
        out = _read_jsonl(path, data, fmt)
    return _result(out)


def _result(out: _Collector) -> ReadResult:
    return ReadResult(kind=out.kind, table=out.table(), quarantine=out.quarantine, formats={str(out.path): out.fmt})


def _read_text_document(path: Path, data: bytes) -> ReadResult:
    result = ReadResult(kind="documents", formats={str(path): "text"})
    try:
        text = data.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        result.quarantine.append(QuarantineRecord(
            str(path), line, f"bytes are not valid UTF-8 (byte 0x{data[err.start]:02x}); the document was not read",
            _preview(data[:RAW_PREVIEW_CHARS]),
        ))
        return result
    out = _Collector(path, "text")
    out.keep(1, text, "", {"title": path.stem})
    result.table = out.table()
    return result


def _read_rich_document(path: Path) -> ReadResult:
    """A PDF, DOCX or HTML file as one document (studio.documents); an unreadable one is quarantined."""
    _read_bytes(path)  # the same errors as any file for a missing, unreadable or empty one
    result = ReadResult(kind="documents", formats={str(path): path.suffix.lower().lstrip(".")})
    try:
        text, title = read_document(path)
    except DocumentError as err:
        result.quarantine.append(QuarantineRecord(str(path), 1, f"{err}; the document was not read"))
        return result
    out = _Collector(path, "text")
    out.keep(1, text, "", {"title": title})
    result.table = out.table()
    return result


def _read_csv(path: Path, mapping: CsvMapping) -> _Collector:
    data = _read_bytes(path)
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    out = _Collector(path, "csv")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Decode line by line so only the bad lines are quarantined.
        good_lines = []
        for lineno, raw in enumerate(data.split(b"\n"), start=1):
            try:
                good_lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                out.bad(lineno, f"bytes are not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})",
                        _preview(raw))
                good_lines.append("")  # keep physical line numbers
        text = "\n".join(good_lines)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    prompt_col, response_col = mapping.prompt, mapping.response
    if prompt_col is None or response_col is None:
        for p, r in _CSV_DEFAULTS:
            if p in header and r in header:
                prompt_col, response_col = prompt_col or p, response_col or r
                break
    missing = [c for c in (prompt_col, response_col, mapping.system) if c is not None and c not in header]
    if prompt_col is None or response_col is None or missing:
        raise InputError(
            f"{path}: cannot tell which CSV columns hold the prompt and the response (header: {', '.join(header)}); "
            "pass --csv-map prompt=COLUMN,response=COLUMN."
        )
    log.info("%s: CSV columns %s → user, %s → assistant", path, prompt_col, response_col)
    used = {prompt_col, response_col, mapping.system}
    start_line = 2
    for row in reader:
        lineno = start_line
        start_line = reader.line_num + 1
        if row is None or all(not (v or "").strip() for k, v in row.items() if k is not None):
            continue
        if None in row:
            out.bad(lineno, f"row has {len(header) + len(row[None])} fields, the header has {len(header)}",
                    _dumps_preview(row))
            continue
        if any(row.get(c) is None for c in (prompt_col, response_col)):
            out.bad(lineno, f"row has fewer fields than the header ({len(header)})", _dumps_preview(row))
            continue
        system = row[mapping.system] if mapping.system and row.get(mapping.system) else None
        out.keep(lineno, ([{"role": "system", "content": system}] if system else [])
                 + [{"role": "user", "content": row[prompt_col]}, {"role": "assistant", "content": row[response_col]}],
                 "real", {k: v for k, v in row.items() if k not in used})
    return out


def _read_parquet(path: Path) -> ReadResult:
    import polars as pl

    try:
        df = pl.read_parquet(path)
    except Exception as err:  # polars raises several error types for corrupt files
        raise InputError(f"{path} is not a readable Parquet file ({type(err).__name__}: {str(err).splitlines()[0]}).") from None
    if df.height == 0:
        raise EmptyFileError(f"{path} is empty; give a file with at least one record.")
    if {"id", "messages", "origin", "source", "meta"} <= set(df.columns):
        # Already in the studio schema (e.g. a curate output): keep every column, the step columns in the types of
        # the column contract, but an id that is not a content hash (it could carry markup into the review page)
        # quarantines its row.
        df = _contract_types(df, path)
        good = df["id"].str.contains(f"^(?:{ID_RE.pattern})$").fill_null(False)
        result = ReadResult(kind="examples", table=df.filter(good), formats={str(path): "parquet"})
        for i in (good.not_().arg_true() + 1).to_list():
            result.quarantine.append(QuarantineRecord(str(path), i, "id is not a content hash (16-64 lower-case "
                                                      "hex characters)", _preview(str(df["id"][i - 1]))))
        return result
    rows = df.to_dicts()
    fmt = _detect_from_objects(path, rows[:DETECT_RECORDS])
    log.info("%s: Parquet with %s-shaped columns", path, fmt)
    out = _Collector(path, fmt)
    for i, row in enumerate(rows, start=1):
        out.add(i, row)
    return _result(out)


def _contract_types(df, path: Path):
    """`df` with the flat step columns of `studio.schema.STEP_COLUMNS` in their declared types (numbers of another
    width are cast); a declared column of another kind is an error naming it. Nested columns are left as read."""
    import polars as pl

    from studio.schema import STEP_COLUMNS, step_schema

    declared = step_schema()
    casts = []
    for name, dtype in df.schema.items():
        want = declared.get(name)
        if want is None or dtype == want or dtype == pl.Null or want.is_nested():
            continue
        if not (dtype.is_numeric() and want.is_numeric()):
            raise InputError(f"{path}: column {name!r} is {dtype}, but {name} is {want} in the studio "
                             f"({STEP_COLUMNS[name][2]}); rename or drop that column.")
        casts.append(pl.col(name).cast(want))
    try:
        return df.with_columns(casts) if casts else df
    except pl.exceptions.PolarsError as err:
        raise InputError(f"{path}: a step column does not fit its type in the studio ({str(err).splitlines()[0]}).") from None


# ----------------------------------------------------------------------------------------------- inputs


def _is_blank(path: Path) -> bool:
    """True for a file holding only whitespace (read in small pieces: a file with data stops at once)."""
    with path.open("rb") as fh:
        while piece := fh.read(1 << 16):
            if piece.strip(b" \t\r\n" + _BOM):
                return False
    return True


def scan_inputs(paths: Iterable[str | Path]) -> tuple[list[Path], list[SkippedFile]]:
    """The files to read and the files skipped: files named directly, plus the files inside named folders
    (sorted, recursive; hidden ones ignored). In a folder an empty file or one of no supported type is skipped
    with a warning; a file named directly must exist and hold data."""
    files: list[Path] = []
    skipped: list[SkippedFile] = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{p} does not exist; check the path.")
        if p.is_dir():
            found: list[Path] = []
            for f in sorted(p.rglob("*")):
                if not f.is_file() or any(part.startswith(".") for part in f.relative_to(p).parts):
                    continue
                if f.suffix.lower() not in INPUT_SUFFIXES:
                    skipped.append(SkippedFile(str(f), f"unsupported type '{f.suffix or f.name}'"))
                elif f.suffix.lower() != ".parquet" and _is_blank(f):
                    skipped.append(SkippedFile(str(f), "empty"))
                else:
                    found.append(f)
            if not found:
                raise InputError(f"{p} holds no input files ({', '.join(INPUT_SUFFIXES)})"
                                 + (f"; {len(skipped)} empty or unsupported files were skipped" if skipped else "")
                                 + "; point at a file or a folder with data.")
            files.extend(found)
        else:
            if p.stat().st_size == 0:
                raise EmptyFileError(f"{p} is empty; give a file with at least one record.")
            files.append(p)
    if not files:
        raise InputError("no input given; name at least one file or folder.")
    return files, skipped


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """The files `read_inputs` would read (see `scan_inputs`)."""
    return scan_inputs(paths)[0]


def read_inputs(paths: Iterable[str | Path], fmt: str | None = None, csv_mapping: CsvMapping | None = None,
                kind: str | None = None) -> ReadResult:
    """Read files and folders into one result. All inputs must be of one kind (examples or documents),
    unless `kind` is given, in which case inputs of the other kind are an error naming the file."""
    import polars as pl

    files, skipped = scan_inputs(paths)
    for s in skipped:
        log.warning("skipped %s: %s", s.path, "empty file" if s.reason == "empty" else s.reason)
    merged = ReadResult(kind=kind or "", skipped=skipped)
    tables = []
    for res in _read_files(files, fmt, csv_mapping):
        if not merged.kind:
            merged.kind = res.kind
        if res.kind != merged.kind and res.n_rows:
            raise InputError(
                f"{next(iter(res.formats))} holds {res.kind} but the other inputs hold {merged.kind}; read documents "
                "and examples separately."
            )
        if res.n_rows:
            tables.append(res.frame())
            res.table = None
        merged.quarantine.extend(res.quarantine)
        merged.formats.update(res.formats)
    if tables:
        merged.table = pl.concat(tables, how="diagonal_relaxed") if len(tables) > 1 else tables[0]
    del tables
    return _with_ids(merged)


_JSONL_FORMATS = ("openai", "alpaca", "seed-tasks", "sharegpt", "prompt-completion", "text")


def _read_files(files: list[Path], fmt: str | None, csv_mapping: CsvMapping | None) -> Iterator[ReadResult]:
    """Each file's result in order, except that consecutive JSONL files of one format come as one result, read as
    one buffer: one bulk parse instead of one per file, so a folder of many small files reads like one file."""
    from studio.runs import check_run_output

    group: list[tuple[Path, bytes]] = []
    group_fmt = ""
    plain_folders: set[Path] = set()
    for path in files:
        check_run_output(path, plain_folders)  # a run's output is read only when that run finished
        prepared = _jsonl_prepared(path, fmt)
        if prepared is None or prepared[1] != group_fmt:
            if group:
                yield _read_group(group, group_fmt)
                group = []
            if prepared is None:
                yield _read_one(path, fmt, csv_mapping)
                continue
        group.append((path, prepared[0]))
        group_fmt = prepared[1]
    if group:
        yield _read_group(group, group_fmt)


def _jsonl_prepared(path: Path, fmt: str | None) -> tuple[bytes, str] | None:
    """(bytes without BOM, format) of a JSONL file `_read_one` would read in bulk; None for any other file (a JSON
    array, another type, no parseable record), which `_read_one` reads on its own."""
    if path.suffix.lower() not in (".jsonl", ".json") or (fmt is not None and fmt not in _JSONL_FORMATS):
        return None
    data = _read_bytes(path)
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    if data.lstrip().startswith(b"["):
        return None
    if fmt is None:
        objects = _head_records(path, data, None)
        if not objects:
            return None
        fmt = _detect_from_objects(path, objects)
        log.info("%s: detected format %s (records have %s)", path, fmt, _FORMAT_KEYS[fmt])
    return data, fmt


def _read_group(group: list[tuple[Path, bytes]], fmt: str) -> ReadResult:
    """JSONL files of one format read as one buffer (`_read_jsonl` with `_Files`)."""
    import numpy as np

    if len(group) == 1:
        return _result(_read_jsonl(group[0][0], group[0][1], fmt))
    pieces: list[bytes] = []
    offsets = [0]
    for _path, data in group:
        pieces.append(data if data.endswith(b"\n") else data + b"\n")
        offsets.append(offsets[-1] + len(pieces[-1]))
    paths = [path for path, _ in group]
    group.clear()  # the joined buffer replaces the files' bytes
    data = b"".join(pieces)
    del pieces
    files = _Files(paths, np.asarray(offsets[:-1], dtype=np.int64))
    out = _read_jsonl(paths[0], data, fmt, files)
    del data  # the bytes are not needed once every line is mapped or quarantined
    return ReadResult(kind=out.kind, table=out.table(), quarantine=out.quarantine,
                      formats={str(path): fmt for path in paths})
