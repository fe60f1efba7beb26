"""PII detection and redaction (presidio + spaCy + our recognizers), used by the `redact_pii` step.

Public API for other packages: `PiiRedactor(config=None).redact_texts(texts) -> texts` (default mode `tag`),
and `PiiConfig`. Importing this package is light: presidio and spaCy load on first use.
"""

from curate.pii.config import PiiConfig
from curate.pii.redactor import PiiRedactor

__all__ = ["PiiConfig", "PiiRedactor"]
