"""Reading a JSONL file of objects for a command that needs one particular row shape (preference pairs, pairwise
review items): every non-blank line must be a JSON object, and the first that is not stops the command with one
sentence naming the file and the line. Data files that may hold bad rows go through `studio.readers` instead,
which quarantines them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from studio.errors import StudioError


def json_objects(path: Path, hint: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of `path`; `hint` ends each error (what to write instead)."""
    with path.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise StudioError(f"{path} line {line_no}: not valid JSON ({exc.msg}); {hint}.") from None
            if not isinstance(record, dict):
                raise StudioError(f"{path} line {line_no}: not a JSON object; {hint}.")
            yield line_no, record
