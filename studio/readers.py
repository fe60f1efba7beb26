"""Readers: every supported input shape → the one example schema, with bad records quarantined.

Formats: OpenAI chat JSONL (`messages`), Alpaca (`instruction`/`input`/`output`, JSON array or JSONL),
self-instruct / Stanford Alpaca seed tasks (`instruction`, `instances: [{input, output}]`, one example per
instance), ShareGPT (`conversations` with `from`/`value`), prompt/completion JSONL, CSV with a column mapping,
Parquet, and documents: `.txt`/`.md` files, PDF/DOCX/HTML files (studio.documents), or JSON records with a
`text` field.

A malformed line or record never crashes a read and never vanishes: it becomes a `QuarantineRecord`
(file, line, reason, a prefix of the raw text). Missing paths, folders with no inputs and empty files
are `InputError`s (one sentence, exit code 2).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from studio.documents import DOCUMENT_SUFFIXES, DocumentError, read_document
from studio.errors import InputError
from studio.schema import ROLES, document_id, make_example

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


@dataclass
class ReadResult:
    """What reading one or more inputs produced. `kind` is "examples" or "documents"."""

    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)  # file -> detected format

    @property
    def n_input(self) -> int:
        return len(self.rows) + len(self.quarantine)

    def frame(self):
        from studio.schema import documents_frame, examples_frame

        return examples_frame(self.rows) if self.kind == "examples" else documents_frame(self.rows)


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


# ------------------------------------------------------------------------------------------ raw records


def _preview(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return raw[:RAW_PREVIEW_CHARS]


def _iter_jsonl(path: Path, data: bytes) -> Iterator[tuple[int, Any, QuarantineRecord | None]]:
    """(line number, parsed object, None) or (line number, None, quarantine) per non-blank line."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield lineno, None, QuarantineRecord(
                str(path), lineno, f"bytes are not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})",
                _preview(raw),
            )
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            yield lineno, None, QuarantineRecord(str(path), lineno, f"invalid JSON: {err.msg} at column {err.colno}", _preview(text))
            continue
        yield lineno, obj, None


def _iter_json_array(path: Path, data: bytes) -> Iterator[tuple[int, Any, QuarantineRecord | None]]:
    """Elements of a top-level JSON array with the line each starts on; a syntax error quarantines the rest."""
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise InputError(
            f"{path}: byte 0x{data[err.start]:02x} on line {line} is not valid UTF-8; a JSON array file must be "
            "UTF-8 throughout (re-encode it, or convert it to JSONL so bad lines can be quarantined one by one)."
        ) from None
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    line = text.count("\n", 0, pos) + 1
    n = len(text)
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
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            yield line, None, QuarantineRecord(
                str(path), line,
                f"invalid JSON: {err.msg} (line {err.lineno} column {err.colno}); the rest of the array from this "
                "line on could not be read",
                _preview(text[pos:pos + RAW_PREVIEW_CHARS]),
            )
            return
        yield line, obj, None
        line += text.count("\n", pos, end)
        pos = end


def _sniff_json_kind(data: bytes) -> str:
    """'array' when the first non-space character is '[', else 'lines'."""
    head = data[len(_BOM):] if data.startswith(_BOM) else data
    stripped = head.lstrip()
    return "array" if stripped.startswith(b"[") else "lines"


# ---------------------------------------------------------------------------------------------- readers


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except PermissionError:
        raise InputError(f"{path} cannot be read (permission denied); check its permissions.") from None
    except OSError as err:
        raise InputError(f"{path} cannot be read ({err.strerror}).") from None
    if not data.strip(b" \t\r\n" + _BOM):
        raise InputError(f"{path} is empty; give a file with at least one record.")
    return data


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


def read_file(path: str | Path, fmt: str | None = None, csv_mapping: CsvMapping | None = None) -> ReadResult:
    """Read one input file. `fmt=None` auto-detects (and logs what it chose)."""
    path = Path(path)
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
        return _read_csv(path, csv_mapping or CsvMapping())
    if fmt in (None, "text") and suffix in DOCUMENT_SUFFIXES:
        return _read_rich_document(path)
    data = _read_bytes(path)
    if fmt == "text" and suffix in (".txt", ".md") or (fmt is None and suffix in (".txt", ".md")):
        return _read_text_document(path, data)
    records = _iter_json_array(path, data) if _sniff_json_kind(data) == "array" else _iter_jsonl(path, data)
    return _read_json_records(path, records, fmt)


def _read_json_records(path: Path, records: Iterator, fmt: str | None) -> ReadResult:
    buffered: list[tuple[int, Any, QuarantineRecord | None]] = []
    if fmt is None:
        # Look at the first 20 parseable objects, then replay them.
        for item in records:
            buffered.append(item)
            if sum(1 for _, obj, _q in buffered if obj is not None) >= 20:
                break
        objects = [obj for _, obj, _q in buffered if obj is not None]
        if not objects:
            result = ReadResult(kind="examples", formats={str(path): "unknown"})
            result.quarantine = [q for _, _o, q in buffered if q is not None]
            for _, _o, q in records:
                result.quarantine.append(q)
            log.warning("%s: no record could be parsed; all %d went to quarantine", path, len(result.quarantine))
            return result
        fmt = _detect_from_objects(path, objects)
        keys = {"openai": "messages", "sharegpt": "conversations", "alpaca": "instruction/output",
                "seed-tasks": "instruction/instances",
                "prompt-completion": "prompt/completion", "text": "text"}[fmt]
        log.info("%s: detected format %s (records have %s)", path, fmt, keys)

    def all_records():
        yield from buffered
        yield from records

    kind = "documents" if fmt == "text" else "examples"
    result = ReadResult(kind=kind, formats={str(path): fmt})
    for lineno, obj, quarantined in all_records():
        if quarantined is not None:
            result.quarantine.append(quarantined)
            continue
        source = f"{path}:{lineno}"
        if not isinstance(obj, dict):
            result.quarantine.append(
                QuarantineRecord(str(path), lineno, f"record is not a JSON object (got {type(obj).__name__})", _preview(json.dumps(obj)))
            )
            continue
        try:
            if kind == "documents":
                text = _require_str(obj, "text")
                if not text.strip():
                    raise RecordError("field 'text' is empty")
                result.rows.append({"id": document_id(text), "text": text, "source": source,
                                    "meta": json.dumps(_meta(obj, ["text"]), ensure_ascii=False, sort_keys=True)})
            else:
                origin = obj["origin"] if obj.get("origin") in ("real", "synthetic", "edited") else "real"
                pairs = examples_from_seed_task(obj) if fmt == "seed-tasks" else [RECORD_MAPPERS[fmt](obj)]
                result.rows.extend(make_example(messages, source=source, origin=origin,
                                                meta={k: v for k, v in meta.items() if k != "origin"})
                                   for messages, meta in pairs)
        except RecordError as err:
            result.quarantine.append(QuarantineRecord(str(path), lineno, str(err), _preview(json.dumps(obj, ensure_ascii=False))))
    return result


def _read_text_document(path: Path, data: bytes) -> ReadResult:
    if data.startswith(_BOM):
        data = data[len(_BOM):]
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
    result.rows.append({"id": document_id(text), "text": text, "source": f"{path}:1",
                        "meta": json.dumps({"title": path.stem}, ensure_ascii=False)})
    return result


def _read_rich_document(path: Path) -> ReadResult:
    _read_bytes(path)  # the same errors as any file for a missing, unreadable or empty one
    result = ReadResult(kind="documents", formats={str(path): path.suffix.lower().lstrip(".")})
    try:
        text, title = read_document(path)
    except DocumentError as err:
        result.quarantine.append(QuarantineRecord(str(path), 1, f"{err}; the document was not read"))
        return result
    result.rows.append({"id": document_id(text), "text": text, "source": f"{path}:1",
                        "meta": json.dumps({"title": title}, ensure_ascii=False)})
    return result


def _read_csv(path: Path, mapping: CsvMapping) -> ReadResult:
    data = _read_bytes(path)
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Decode line by line so only the bad lines are quarantined.
        text = None
    result = ReadResult(kind="examples", formats={str(path): "csv"})
    if text is None:
        good_lines = []
        for lineno, raw in enumerate(data.split(b"\n"), start=1):
            try:
                good_lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                result.quarantine.append(QuarantineRecord(
                    str(path), lineno, f"bytes are not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})", _preview(raw)))
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
            result.quarantine.append(QuarantineRecord(str(path), lineno, f"row has {len(header) + len(row[None])} fields, the header has {len(header)}", _preview(json.dumps(row, ensure_ascii=False))))
            continue
        if any(row.get(c) is None for c in (prompt_col, response_col)):
            result.quarantine.append(QuarantineRecord(str(path), lineno, f"row has fewer fields than the header ({len(header)})", _preview(json.dumps(row, ensure_ascii=False))))
            continue
        messages = ([{"role": "system", "content": row[mapping.system]}] if mapping.system and row.get(mapping.system) else []) + [
            {"role": "user", "content": row[prompt_col]}, {"role": "assistant", "content": row[response_col]}]
        result.rows.append(make_example(messages, source=f"{path}:{lineno}", meta={k: v for k, v in row.items() if k not in used}))
    return result


def _read_parquet(path: Path) -> ReadResult:
    import polars as pl

    try:
        df = pl.read_parquet(path)
    except Exception as err:  # polars raises several error types for corrupt files
        raise InputError(f"{path} is not a readable Parquet file ({type(err).__name__}: {str(err).splitlines()[0]}).") from None
    if df.height == 0:
        raise InputError(f"{path} is empty; give a file with at least one record.")
    if {"id", "messages", "origin", "source", "meta"} <= set(df.columns):
        # Already in the studio schema (e.g. a curate output): keep every column as is.
        return ReadResult(kind="examples", rows=df.to_dicts(), formats={str(path): "parquet"})
    rows = df.to_dicts()
    fmt = _detect_from_objects(path, rows[:20])
    log.info("%s: Parquet with %s-shaped columns", path, fmt)
    return _read_json_records(path, ((i + 1, r, None) for i, r in enumerate(rows)), fmt)


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files named directly, plus the supported files inside named folders (sorted, recursive)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(f"{p} does not exist; check the path.")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in INPUT_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                raise InputError(f"{p} holds no input files ({', '.join(INPUT_SUFFIXES)}); point at a file or a folder with data.")
            files.extend(found)
        else:
            if p.stat().st_size == 0:
                raise InputError(f"{p} is empty; give a file with at least one record.")
            files.append(p)
    if not files:
        raise InputError("no input given; name at least one file or folder.")
    return files


def read_inputs(paths: Iterable[str | Path], fmt: str | None = None, csv_mapping: CsvMapping | None = None,
                kind: str | None = None) -> ReadResult:
    """Read files and folders into one result. All inputs must be of one kind (examples or documents),
    unless `kind` is given, in which case inputs of the other kind are an error naming the file."""
    merged: ReadResult | None = None
    for path in expand_inputs(paths):
        res = read_file(path, fmt=fmt, csv_mapping=csv_mapping)
        if merged is None:
            merged = ReadResult(kind=kind or res.kind)
        if res.kind != merged.kind and res.rows:
            raise InputError(
                f"{path} holds {res.kind} but the other inputs hold {merged.kind}; read documents and examples separately."
            )
        merged.rows.extend(res.rows)
        merged.quarantine.extend(res.quarantine)
        merged.formats.update(res.formats)
    assert merged is not None
    return merged
