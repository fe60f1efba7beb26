"""Reviewer accounts: who may log in to the review app, with which role, and their bcrypt password hashes.

Login reviewers are `reviewer` or `lead`; `ensure_reviewer` adds named non-login reviewers (e.g.
`labelstudio:ann@x.org`, roles `rule`/`external`). Every change and every login attempt is audited.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from review_app.models import ROLES, utcnow
from review_app.store.database import REVIEWERS, Database
from studio.errors import StudioError

LOGIN_ROLES = ("reviewer", "lead")
MIN_PASSWORD_CHARS = 8


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
        """{"name", "role"} when the password is right for an active login reviewer, else None."""
        with self.db.tx() as conn:
            row = conn.execute(select(REVIEWERS.c.name, REVIEWERS.c.role, REVIEWERS.c.password_hash, REVIEWERS.c.active)
                               .where(REVIEWERS.c.name == (name or "").strip())).first()
        ok = bool(row and row.password_hash and row.active and row.role in LOGIN_ROLES
                  and _check_password(password or "", row.password_hash))
        with self.db.tx(write=True) as conn:
            self.db.audit(conn, (name or "").strip()[:120], "login" if ok else "login_failed")
        return {"name": row.name, "role": row.role} if ok else None

    def reviewers(self) -> list[dict[str, Any]]:
        with self.db.tx() as conn:
            rows = conn.execute(select(REVIEWERS.c.name, REVIEWERS.c.role, REVIEWERS.c.active, REVIEWERS.c.created_at)
                                .order_by(REVIEWERS.c.name)).all()
        return [r._asdict() for r in rows]
