"""redact_pii: find personal data in every message turn and replace it (tag, mask, hash or pseudonym).

Runs right after `normalize`, before anything reaches a model, a reviewer or an export. Detection is presidio with
spaCy's small English NER plus the recognizers of `curate/pii/recognizers.py` (settings: `curate.pii.PiiConfig`,
thresholds documented there). Adds two columns:
- `pii_entities`: list of {turn, type, start, end, score}; `turn` indexes `messages`, and `start`/`end` are
  character offsets into that turn's ORIGINAL text (the content this step received, i.e. after normalize),
  not into the redacted text;
- `pii_count`: number of entities in the row (the review app auto-accepts only `pii_count == 0`).
Counts by entity type go to the run manifest (`pii_counts` in this step's entry); raw values never do. With
`audit_only: true` the messages are left unchanged. With `mapping_file: PATH` the original ↔ replacement pairs
are written there (raw PII, with a warning), nowhere else. No row is dropped.
"""

from __future__ import annotations

import polars as pl

from curate.pii.config import PiiConfig
from curate.step import Step
from studio.schema import step_schema

ENTITY_DTYPE = step_schema()["pii_entities"]


class RedactPii(Step):
    name = "redact_pii"
    Config = PiiConfig
    needs_model = True

    def __init__(self, *args, **kwargs) -> None:
        from curate.pii.anonymize import resolve_salt

        super().__init__(*args, **kwargs)
        # Before any data is read and any worker starts: a missing salt is one sentence now, and a workspace's
        # salt goes into the environment the workers of a local Ray cluster inherit.
        resolve_salt(self.config)

    def process(self, df: pl.DataFrame) -> pl.DataFrame:
        from curate.pii import PiiRedactor

        redactor = PiiRedactor(self.config)
        flat = (df.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"), "messages")
                .explode("messages")
                .filter(pl.col("messages").is_not_null())
                .with_columns(pl.int_range(pl.len(), dtype=pl.Int32).over("_row").alias("_turn"))
                .unnest("messages"))
        contents = flat["content"].fill_null("").to_list()
        result = self._redact_with_progress(redactor, contents)
        rows = flat["_row"].to_list()
        turns = flat["_turn"].to_list()
        per_row: list[list[dict]] = [[] for _ in range(df.height)]
        for row, turn, ents in zip(rows, turns, result.entities, strict=True):
            per_row[row].extend({"turn": turn, "type": e.type, "start": e.start, "end": e.end, "score": e.score}
                                for e in ents)
        out = df.with_columns(pl.Series("pii_entities", per_row, dtype=ENTITY_DTYPE),
                              pl.Series("pii_count", [len(x) for x in per_row], dtype=pl.Int32))
        if not self.config.audit_only and df.height:
            redacted = (flat.with_columns(pl.Series("content", result.texts, dtype=pl.String))
                        .group_by("_row", maintain_order=True)
                        .agg(pl.struct("role", "content").alias("messages")))
            messages = (pl.DataFrame({"_row": pl.int_range(df.height, dtype=pl.Int64, eager=True)})
                        .join(redacted, on="_row", how="left")["messages"])
            out = out.with_columns(messages.cast(df.schema["messages"]).fill_null([]).alias("messages"))
        mapping_path = redactor.write_mapping() if not self.config.audit_only else None
        self.stats.update({
            "pii_counts": dict(sorted(result.counts.items())),
            "pii_entities_total": int(sum(result.counts.values())),
            "rows_with_pii": int(sum(1 for x in per_row if x)),
            "turns": len(contents),
            "turns_skipped_no_text": int(sum(1 for t in contents if not any(c.isalnum() for c in t))),
            "mode": "audit-only" if self.config.audit_only else self.config.mode,
        })
        if mapping_path:
            self.stats["mapping_file"] = str(mapping_path)
        return out


    def _redact_with_progress(self, redactor, contents: list[str], chunk: int = 2000):
        """Redact in chunks with a progress bar (turns, turns/s); one redactor, so pseudonyms stay consistent."""
        from collections import Counter

        from studio.console import Reporter

        if len(contents) <= chunk:
            return redactor.redact(contents)
        reporter = getattr(self, "reporter", None) or Reporter(quiet=True)
        parts = []
        with reporter.progress("redacting PII", total=len(contents), unit="turns") as advance:
            for start in range(0, len(contents), chunk):
                parts.append(redactor.redact(contents[start:start + chunk]))
                advance(len(parts[-1].texts))
        counts: Counter = Counter()
        for part in parts:
            counts.update(part.counts)
        return type(parts[0])([t for p in parts for t in p.texts], [e for p in parts for e in p.entities], counts)

STEP = RedactPii
