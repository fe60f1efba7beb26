"""Reviewer accounts: who may log in to the review app, with which role, and their bcrypt password hashes.

Login reviewers are `reviewer` or `lead`; `ensure_reviewer` adds named non-login reviewers (e.g.
`labelstudio:ann@x.org`, roles `rule`/`external`). Every change and every login attempt is audited.

Logins resist guessing: after `FREE_FAILURES` failed attempts on one name, further attempts on it are refused
unchecked (`LoginThrottled`) for a time that doubles with each failure (`BACKOFF_SECONDS` up to
`MAX_BACKOFF_SECONDS`), known and unknown names alike; an unknown name costs the same bcrypt check as a known
one, so timing does not tell which names exist; a failed attempt is audited without an fsync and a refused one
writes nothing, so a flood of logins never stalls reviewers' saves. `session_user` re-reads an account on every
page run, so a deactivated or demoted user loses access at their next click.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from review_app.models import ROLES, utcnow
from review_app.store.database import REVIEWERS, Database
from studio.errors import StudioError

LOGIN_ROLES = ("reviewer", "lead")
MIN_PASSWORD_CHARS = 8
#: failed logins on one name before attempts are throttled, and the throttle (doubling per further failure);
#: OWASP's authentication guidance: slow guessing down per account rather than lock it for good
FREE_FAILURES = 5
BACKOFF_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 900.0


class LoginThrottled(StudioError):
    """Too many failed logins on a name; `seconds` until the next attempt is checked."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"too many failed logins; try again in {max(1, round(seconds))} s.")
        self.seconds = seconds


def _hash_password(password: str, rounds: int) -> str:
    import bcrypt

    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def _check_password(password: str, hashed: str) -> bool:
    import bcrypt

    try:
        return bcrypt.checkpw(password.encode("utf-8"), hashed.encode("ascii"))
    except ValueError:
        return False


def check_password_rules(password: str) -> None:
    if len(password or "") < MIN_PASSWORD_CHARS or len(password.encode("utf-8")) > 72:
        raise StudioError(f"a password needs {MIN_PASSWORD_CHARS} to 72 bytes; choose another.")


class Accounts:
    """Adding reviewers, setting passwords, checking logins."""

    def __init__(self, db: Database, bcrypt_rounds: int = 12) -> None:
        self.db = db
        self.bcrypt_rounds = bcrypt_rounds
        self._dummy_hash: str | None = None  # checked for unknown names, so they cost what a known name costs
        self._failures: dict[str, tuple[int, float]] = {}  # name -> (failures, monotonic time of the last one)
        self._lock = threading.Lock()

    def add_reviewer(self, name: str, password: str, role: str = "reviewer") -> None:
        name = (name or "").strip()
        if not name or ":" in name:
            raise StudioError(f"reviewer name {name!r} is not allowed; use a non-empty name without ':'.")
        if role not in LOGIN_ROLES:
            raise StudioError(f"role {role!r} is unknown; use one of {', '.join(LOGIN_ROLES)}.")
        check_password_rules(password)
        hashed = _hash_password(password, self.bcrypt_rounds)
        try:
            with self.db.tx(write=True) as conn:
                conn.execute(REVIEWERS.insert().values(name=name, password_hash=hashed, role=role, active=True,
                                                       created_at=utcnow()))
                self.db.audit(conn, name, "add_reviewer", role=role)
        except IntegrityError:
            raise StudioError(f"reviewer {name!r} already exists; pick another name or use --reset-password.") from None

    def set_password(self, name: str, password: str) -> None:
        check_password_rules(password)
        hashed = _hash_password(password, self.bcrypt_rounds)
        with self.db.tx(write=True) as conn:
            n = conn.execute(update(REVIEWERS).where(REVIEWERS.c.name == name, REVIEWERS.c.role.in_(LOGIN_ROLES))
                             .values(password_hash=hashed)).rowcount
            if n != 1:
                raise StudioError(f"no login reviewer named {name!r}; add one with `studio review add-user {name}`.")
            self.db.audit(conn, name, "set_password")

    def ensure_reviewer(self, name: str, role: str = "external") -> None:
        if role not in ROLES:
            raise StudioError(f"role {role!r} is unknown; use one of {', '.join(ROLES)}.")
        with self.db.tx(write=True) as conn:
            self.db.rid(conn, name, create_role=role)

    def authenticate(self, name: str, password: str) -> dict[str, str] | None:
        """{"name", "role"} when the password is right for an active login reviewer, else None; raises
        LoginThrottled while the name is throttled (see the module docstring)."""
        name = (name or "").strip()
        key = name.casefold()[:120]
        wait = self._throttled_for(key)
        if wait > 0:
            raise LoginThrottled(wait)
        with self.db.tx() as conn:
            row = conn.execute(select(REVIEWERS.c.name, REVIEWERS.c.role, REVIEWERS.c.password_hash, REVIEWERS.c.active)
                               .where(REVIEWERS.c.name == name)).first()
        usable = bool(row and row.password_hash and row.active and row.role in LOGIN_ROLES)
        checked = _check_password(password or "", row.password_hash if usable else self._dummy())
        ok = usable and checked
        with self._lock:
            if ok:
                self._failures.pop(key, None)
            else:
                n, _ = self._failures.get(key, (0, 0.0))
                self._failures[key] = (n + 1, time.monotonic())
        # a failed attempt is audited without an fsync: a login flood must not queue behind reviewers' saves
        with self.db.tx(write=True, durable=ok) as conn:
            self.db.audit(conn, name[:120], "login" if ok else "login_failed")
        return {"name": row.name, "role": row.role} if ok else None

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = _hash_password("not a password of anyone", self.bcrypt_rounds)
        return self._dummy_hash

    def _throttled_for(self, key: str) -> float:
        with self._lock:
            n, last = self._failures.get(key, (0, 0.0))
        if n < FREE_FAILURES:
            return 0.0
        backoff = min(BACKOFF_SECONDS * 2 ** (n - FREE_FAILURES), MAX_BACKOFF_SECONDS)
        return last + backoff - time.monotonic()

    def session_user(self, name: str) -> dict[str, str] | None:
        """The account behind a logged-in session as it is now: {"name", "role"} while it is an active login
        reviewer, else None (deactivated, or no longer a login role). The app calls it on every page run."""
        with self.db.tx() as conn:
            row = conn.execute(select(REVIEWERS.c.name, REVIEWERS.c.role, REVIEWERS.c.active)
                               .where(REVIEWERS.c.name == name)).first()
        if row is None or not row.active or row.role not in LOGIN_ROLES:
            return None
        return {"name": row.name, "role": row.role}

    def set_active(self, name: str, active: bool) -> None:
        """Deactivate (or reactivate) a login reviewer: a deactivated one cannot log in, and an open session
        ends at its next page run. Their decisions stay."""
        self._change(name, "activate" if active else "deactivate", active=active)

    def set_role(self, name: str, role: str) -> None:
        """Make a login reviewer a `reviewer` or a `lead`; an open session sees the new role at its next run."""
        if role not in LOGIN_ROLES:
            raise StudioError(f"role {role!r} is unknown; use one of {', '.join(LOGIN_ROLES)}.")
        self._change(name, "set_role", role=role)

    def _change(self, name: str, action: str, **values: Any) -> None:
        with self.db.tx(write=True) as conn:
            n = conn.execute(update(REVIEWERS).where(REVIEWERS.c.name == name, REVIEWERS.c.role.in_(LOGIN_ROLES))
                             .values(**values)).rowcount
            if n != 1:
                raise StudioError(f"no login reviewer named {name!r}; `studio review status` lists them.")
            self.db.audit(conn, name, action, **values)
        self.db.forget(name)

    def reviewers(self) -> list[dict[str, Any]]:
        with self.db.tx() as conn:
            rows = conn.execute(select(REVIEWERS.c.name, REVIEWERS.c.role, REVIEWERS.c.active, REVIEWERS.c.created_at)
                                .order_by(REVIEWERS.c.name)).all()
        return [r._asdict() for r in rows]
