"""The review store: the one place review data is read and written (SQLite by default, PostgreSQL by URL).

The Streamlit app, `studio review ...` commands, the Label Studio bridge and export all go through
`ReviewStore`; nothing here imports Streamlit. Opening a store upgrades its database to the newest
alembic migration (`review_app/migrations/`). The store is four parts over one `Database` (engine,
transactions, audit trail), each in its own module:

- `auth.Accounts` — `add_reviewer(name, password, role="reviewer"|"lead")`, `set_password`,
  `authenticate(name, password) -> {"name", "role"} | None` (bcrypt; throttled after repeated failures),
  `session_user(name)` (re-checked on every page run), `set_active(name, active)`, `set_role(name, role)`,
  `reviewers()`,
  `ensure_reviewer(name, role="external")` (a named non-login reviewer, e.g. `labelstudio:ann@x.org`).
- `queue.Queue` — `load_dataset(path_or_df, overlap=1, order="quality"|"uncertainty"|"random",
  dataset=None, run_id=None) -> {input, added, already_present, duplicate_in_input, quarantined}`
  (idempotent: an id already in the store is left as it is); `next_item(reviewer, filters=None)`: the item
  this reviewer holds, else the next undecided one, leased for `lease_seconds`; `get_item`, `filter_options`.
- `decisions.Decisions` — `record_decision(item_id, reviewer, verdict, edited_messages=None, rating=None,
  reasons=(), comment=None, seconds=None, source="app", idempotency_key=None)` ("created": False when the
  key was already stored; verdicts accept, reject, skip), `undo_last(reviewer)`, `resolve(item_id, lead,
  verdict)` (a lead's final word), `auto_decide(rule_expr, name, verdict="accept")` (as reviewer
  `rule:<name>`, in the rule language of `studio.rules`), `decisions(...)`, `item_decisions`, `audit_log(...)`,
  `record_split_move(item_id, by, to, reason)` (a person moves an item's split in later dataset versions).
- `analytics.Analytics` — `approved_items(policy="unanimous"|"majority"|"any")` (edits applied, a lead
  resolution beating everything, people beating rules), `approved_frame`, `disagreements()`,
  `agreement()` (Cohen's / Fleiss' kappa, Krippendorff's alpha), `progress(reviewer=None)`, `dashboard()` (the
  lead dashboard, aggregated in SQL: `reviewer_stats`, `source_stats`, `decisions_by_day`, `queue_breakdown`,
  `awaiting_second`); `votes_frame()` (people's current verdicts from one compact SQL projection, kept per
  decisions version) feeds `reviewer_stats`, `agreement` and `disagreements`.

`ReviewStore(url)` (a URL, a plain file path or a postgresql:// URL) builds the four on one `Database` and
offers each part's public methods as its own, so `store.next_item(...)` and `store.queue.next_item(...)`
are the same call.
"""

from __future__ import annotations

from pathlib import Path

from review_app.store.analytics import POLICIES, Analytics
from review_app.store.auth import LOGIN_ROLES, MIN_PASSWORD_CHARS, Accounts
from review_app.store.database import MIGRATIONS_DIR, OFF_QUEUE_SOURCES, Database, normalize_url
from review_app.store.decisions import Decisions
from review_app.store.queue import ORDERS, ItemFilter, Queue, ReviewItem, item_fields, queue_priority

__all__ = ["LOGIN_ROLES", "MIGRATIONS_DIR", "MIN_PASSWORD_CHARS", "OFF_QUEUE_SOURCES", "ORDERS", "POLICIES",
           "Accounts", "Analytics", "Database", "Decisions", "ItemFilter", "Queue", "ReviewItem", "ReviewStore",
           "item_fields", "normalize_url", "queue_priority"]


class _Part:
    """A store method that is a method of one of its parts (`store.next_item is store.queue.next_item`)."""

    def __init__(self, part: str) -> None:
        self.part = part

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, store, owner=None):
        if store is None:
            return self
        return getattr(getattr(store, self.part), self.name)


class ReviewStore:
    """Review items, reviewers, assignments, decisions and the audit log in one database."""

    def __init__(self, url: str | Path, *, lease_seconds: int = 1800, bcrypt_rounds: int = 12,
                 migrate: bool = True, durable: bool = True) -> None:
        """`durable=False` (SQLite only) skips the fsync of each decision: still safe when the app crashes,
        but the last decisions can be lost if the machine loses power."""
        self.db = Database(url, lease_seconds=lease_seconds, durable=durable)
        self.url, self.engine, self.dialect = self.db.url, self.db.engine, self.db.dialect
        self.accounts = Accounts(self.db, bcrypt_rounds=bcrypt_rounds)
        self.queue = Queue(self.db)
        self.ledger = Decisions(self.db)
        self.analytics = Analytics(self.db)
        if migrate:
            self.upgrade()

    def __repr__(self) -> str:
        return f"ReviewStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    close = _Part("db")
    upgrade = _Part("db")
    schema_revision = _Part("db")
    add_reviewer = _Part("accounts")
    set_password = _Part("accounts")
    ensure_reviewer = _Part("accounts")
    authenticate = _Part("accounts")
    reviewers = _Part("accounts")
    session_user = _Part("accounts")
    set_active = _Part("accounts")
    set_role = _Part("accounts")
    load_dataset = _Part("queue")
    next_item = _Part("queue")
    get_item = _Part("queue")
    filter_options = _Part("queue")
    record_decision = _Part("ledger")
    record_split_move = _Part("ledger")
    undo_last = _Part("ledger")
    resolve = _Part("ledger")
    auto_decide = _Part("ledger")
    decisions = _Part("ledger")
    item_decisions = _Part("ledger")
    audit_log = _Part("ledger")
    approved_items = _Part("analytics")
    approved_frame = _Part("analytics")
    disagreements = _Part("analytics")
    agreement = _Part("analytics")
    progress = _Part("analytics")
    dashboard = _Part("analytics")
    decisions_version = _Part("analytics")
    dashboard_version = _Part("analytics")
    reviewer_stats = _Part("analytics")
    source_stats = _Part("analytics")
    decisions_by_day = _Part("analytics")
    queue_breakdown = _Part("analytics")
    awaiting_second = _Part("analytics")
