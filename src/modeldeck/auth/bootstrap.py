"""First start: create the administrator."""

from __future__ import annotations

import secrets
import sys

from sqlalchemy import func, select

from modeldeck.auth.security import hash_password
from modeldeck.auth.tables import User
from modeldeck.db import Database


def ensure_admin(db: Database, password: str | None) -> None:
    with db.write() as session:
        if session.scalar(select(func.count()).select_from(User).where(User.role == "admin")):
            return
        generated = password is None
        password = password or secrets.token_urlsafe(12)
        session.add(User(username="admin", password_hash=hash_password(password), role="admin"))
    if generated:
        # Printed once, on first start only; never logged anywhere else.
        print(f"modeldeck: created administrator 'admin' with password: {password}", file=sys.stderr, flush=True)
