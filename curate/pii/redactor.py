"""`PiiRedactor`: detect and replace PII in a list of texts — the API the `redact_pii` step and other packages
(e.g. synth, before text goes to a remote LLM) use.

    from curate.pii import PiiRedactor
    PiiRedactor().redact_texts(["Call Maria Lopez on 415-555-0100"])   # ['Call <PERSON> on <PHONE_NUMBER>']
    PiiRedactor({"mode": "pseudonym"}).redact_texts([...])                 # consistent fake values

The analyzer is built once per process and shared by every redactor with the same detection settings.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.pii.config import PiiConfig

log = logging.getLogger("curate.pii")

MAPPING_WARNING = ("the PII mapping file {path} holds the original personal data next to its replacements; "
                   "keep it out of training data, reviews and shared storage, and delete it when no longer needed.")


@dataclass
class Redaction:
    """Result for a list of texts: redacted texts (unchanged when `audit_only`), entities per text (offsets into
    the ORIGINAL text), and counts by entity type."""

    texts: list[str]
    entities: list[list[Any]]
    counts: Counter = field(default_factory=Counter)


class PiiRedactor:
    def __init__(self, config: PiiConfig | dict[str, Any] | None = None, record_mapping: bool | None = None) -> None:
        from curate.pii.anonymize import Replacer

        self.config = config if isinstance(config, PiiConfig) else PiiConfig(**(config or {}))
        record = bool(self.config.mapping_file) if record_mapping is None else record_mapping
        self.replacer = Replacer(self.config, record_mapping=record)

    def analyze_texts(self, texts: list[str]) -> list[list[Any]]:
        """Entities (`PiiEntity(type, start, end, score)`) per text; offsets index the text given."""
        from curate.pii.engine import analyze_texts

        return analyze_texts(list(texts), self.config)

    def redact(self, texts: list[str]) -> Redaction:
        entities = self.analyze_texts(texts)
        counts = Counter(e.type for ents in entities for e in ents)
        if self.config.audit_only:
            return Redaction(list(texts), entities, counts)
        out = [self.replacer.apply(t, ents) if ents else t for t, ents in zip(texts, entities, strict=True)]
        return Redaction(out, entities, counts)

    def redact_texts(self, texts: list[str]) -> list[str]:
        """The texts with PII replaced per the configured mode (default `tag`: `<PERSON>`)."""
        return self.redact(texts).texts

    @property
    def mapping(self) -> dict[tuple[str, str], str]:
        """(type, original) -> replacement for every value replaced so far (only when mapping is recorded)."""
        return dict(self.replacer.mapping or {})

    def write_mapping(self, path: str | Path | None = None) -> Path | None:
        """Write the original ↔ replacement pairs as JSONL (raw PII!) to `path` / `config.mapping_file`, warning."""
        from studio.atomic import atomic_open

        target = path or self.config.mapping_file
        if not target or self.replacer.mapping is None:
            return None
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(target) as fh:
            for (kind, original), replacement in sorted(self.replacer.mapping.items()):
                fh.write(json.dumps({"type": kind, "original": original, "replacement": replacement},
                                    ensure_ascii=False) + "\n")
        message = MAPPING_WARNING.format(path=target)
        log.warning(message)
        warnings.warn(message, UserWarning, stacklevel=2)
        return target
