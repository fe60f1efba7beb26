"""Tolerant reading of model output: JSON objects out of chatty, fenced or slightly broken text.

Used on every structured reply. Servers with json_schema support return clean JSON; others wrap it in
```json fences, add a sentence before it, leave trailing commas or stop mid-object. Whatever cannot be
read raises `ParseError`, and the caller quarantines the candidate with the raw text.
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


class ParseError(ValueError):
    """Model output that holds no usable JSON object; the message is the quarantine reason."""


def _balanced_objects(text: str) -> list[str]:
    """Top-level {...} spans, tracking strings so braces inside them do not count."""
    spans, depth, start, in_str, escape = [], 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start:i + 1])
    if depth and start >= 0:  # stopped mid-object (max_tokens): try closing it
        tail = text[start:]
        spans.append(tail + ('"' if in_str else "") + "}" * depth)
    return spans


def parse_json_object(text: str | None, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The first JSON object in `text` that has all `required` keys with non-empty values."""
    if text is None or not text.strip():
        raise ParseError("empty output")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        for span in [chunk.strip(), *_balanced_objects(chunk)]:
            for attempt in (span, _TRAILING_COMMA.sub(r"\1", span)):
                try:
                    obj = json.loads(attempt)
                except (json.JSONDecodeError, ValueError):
                    continue
                if isinstance(obj, dict) and all(_filled(obj.get(k)) for k in required):
                    return obj
    if required:
        raise ParseError(f"no JSON object with {', '.join(required)} in the output")
    raise ParseError("no JSON object in the output")


def _filled(value: Any) -> bool:
    return value is not None and (not isinstance(value, str) or bool(value.strip()))


_LABEL = re.compile(r"^\s*(#+\s*)?(\*\*)?(rewritten prompt|new prompt|paraphrase|question|instruction|prompt)"
                    r"(\*\*)?\s*[#:]*\s*", re.I)


def clean_text(text: str | None) -> str:
    """Free-text output without a leading label ("Rewritten prompt:"), fences or wrapping quotes."""
    if not text:
        return ""
    text = _FENCE.sub(lambda m: m.group(1), text).strip()
    text = _LABEL.sub("", text, count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text
