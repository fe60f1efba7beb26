"""Settings of PII detection and redaction: one pydantic model shared by the `redact_pii` step, `PiiRedactor`
and `studio pii-eval`.

Defaults and their sources:
- `score_threshold` 0.4: presidio-research's evaluation of presidio's default engine used 0.4; presidio's own
  context enhancer lifts a pattern match with a context word to at least 0.4, so 0.4 means "a weak pattern
  needs a context word".
- spaCy NER results score 0.85 (presidio's default for spaCy entities); our keyed recognizers (a value right
  after a keyword such as "claim number") score 0.85 too, bare shapes lower (see `recognizers.py`).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from curate.step import StepConfig
from studio.models import SPACY_MODEL


class PiiEntity(NamedTuple):
    """One detected span: `start`/`end` are character offsets into the analysed text."""

    type: str
    start: int
    end: int
    score: float

#: Entity types detected unless `entities` says otherwise (ORGANIZATION is opt-in: company names are rarely
#: personal data and spaCy's small model tags many ordinary capitalised words as ORG).
DEFAULT_ENTITIES: list[str] = [
    "PERSON", "LOCATION", "ADDRESS", "NRP", "DATE_TIME", "DATE_OF_BIRTH", "EMAIL_ADDRESS", "PHONE_NUMBER",
    "CREDIT_CARD", "IBAN_CODE", "US_SSN", "US_DRIVER_LICENSE", "IP_ADDRESS", "URL", "MEDICAL_RECORD_NUMBER",
    "ORDER_NUMBER", "CLAIM_NUMBER", "POLICY_NUMBER", "ACCOUNT_NUMBER",
]

#: Every entity type this package can detect (DEFAULT_ENTITIES plus opt-in ones).
ALL_ENTITIES: list[str] = [*DEFAULT_ENTITIES, "ORGANIZATION"]


class IdPattern(BaseModel):
    """A reference number found after a keyword, e.g. `claim number: CLM-2024-00917`.

    `keywords` are matched case-insensitively as whole words; between keyword and value may stand
    `number`, `no.`, `#`, `id`, `is`, `:` and the like. `value` is a regex (Python `regex` syntax) for the
    number itself; it must contain at least one digit to count.
    """

    model_config = ConfigDict(extra="forbid")
    entity: str
    keywords: list[str]
    value: str = r"[A-Za-z0-9][A-Za-z0-9\-/.]{2,28}[A-Za-z0-9]"
    score: float = 0.85


DEFAULT_ID_PATTERNS: list[IdPattern] = [
    IdPattern(entity="ORDER_NUMBER", keywords=["order", "purchase order", "po", "invoice", "tracking", "shipment"]),
    IdPattern(entity="CLAIM_NUMBER", keywords=["claim"]),
    IdPattern(entity="POLICY_NUMBER", keywords=["policy", "insurance", "certificate"]),
    IdPattern(entity="ACCOUNT_NUMBER", keywords=["account", "acct", "a/c", "member", "membership", "customer",
                                                 "subscriber", "loyalty", "routing", "bank account"]),
    IdPattern(entity="MEDICAL_RECORD_NUMBER", keywords=["mrn", "medical record", "patient", "chart", "health record",
                                                        "hospital number", "nhs"]),
    IdPattern(entity="US_DRIVER_LICENSE", keywords=["driver's license", "drivers license", "driver license",
                                                    "driver's licence", "drivers licence", "driving licence",
                                                    "driving license", "dl", "license number", "licence number"]),
]


class PiiConfig(StepConfig):
    """How PII is found and what replaces it.

        mode: tag                        # tag <PERSON> | mask ***** | hash <PERSON_1f3a…> | pseudonym (fake values)
        entities: [PERSON, EMAIL_ADDRESS, ...]
        score_threshold: 0.4
        thresholds: {DATE_TIME: 0.6}     # per-entity overrides
        allow_list: [support@acme.com]   # never redacted
        deny_list: {PERSON: [Dr. Quinn]} # always redacted, as that type
        audit_only: false                # count and locate PII, change nothing
        mapping_file: null               # path: write original ↔ replacement pairs (raw PII!) there
    """

    mode: Literal["tag", "mask", "hash", "pseudonym"] = "tag"
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    score_threshold: float = 0.4
    thresholds: dict[str, float] = Field(default_factory=dict)
    allow_list: list[str] = Field(default_factory=list)
    deny_list: dict[str, list[str]] = Field(default_factory=dict)
    id_patterns: list[IdPattern] = Field(default_factory=lambda: [p.model_copy() for p in DEFAULT_ID_PATTERNS])
    audit_only: bool = False
    mapping_file: str | None = None
    salt_env: str = "STUDIO_PII_SALT"
    """Name of the environment variable holding the secret salt of `hash` and `pseudonym` (never in a config)."""
    mask_char: str = "*"
    spacy_model: str = SPACY_MODEL
    ner_weights: str = "studio"
    """Weights of the spaCy model's `ner` component: `studio` = the ones fine-tuned for support, claims and
    clinical messages that ship in `curate/pii/ner_model` (scripts/train_person_ner.py; bench/README.md `## pii`),
    `model` = the spaCy model's own, or the path of a folder written by `Language.get_pipe("ner").to_disk`."""
    batch_size: int = 64
    workers: int = 0
    """Processes analysing turns; 0 = one per CPU core left idle by other processes (engine.usable_workers). A pool
    is used only for large inputs (`parallel_min_turns`)."""
    parallel_min_turns: int = 256
    """Distinct turns below which one process analyses them all (a fork pool costs ~0.1 s to start and feed;
    one process analyses ~250-500 turns/s on this project's 2-core machine, bench/pii.py)."""

    def threshold_for(self, entity: str) -> float:
        return self.thresholds.get(entity, self.score_threshold)

    def engine_key(self) -> str:
        """What the analyzer depends on (not the mode): engines are cached per process under this key."""
        return self.model_dump_json(include={"entities", "deny_list", "id_patterns", "spacy_model", "ner_weights",
                                              "allow_list"})
