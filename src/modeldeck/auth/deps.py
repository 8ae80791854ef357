"""Who is calling: every API route, console page and websocket depends on ``current_user``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy import select
from starlette.requests import HTTPConnection

from modeldeck.auth.security import hash_token
from modeldeck.auth.tables import ApiToken, User
from modeldeck.context import Platform, get_platform
from modeldeck.db import utcnow
from modeldeck.errors import Forbidden, Unauthenticated

SESSION_COOKIE = "modeldeck_session"


@dataclass(frozen=True)
class Caller:
    id: int
    username: str
    role: str
    group_ids: frozenset[int]
    token_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can_access_group(self, group_id: int) -> bool:
        return self.is_admin or group_id in self.group_ids


def credentials_from(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return conn.cookies.get(SESSION_COOKIE) or None


def authenticate(platform: Platform, token: str | None) -> Caller | None:
    if not token:
        return None
    with platform.db.read() as session:
        row = session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == hash_token(token))
        ).first()
        if row is None:
            return None
        api_token, user = row
        if api_token.expires_at is not None and api_token.expires_at <= utcnow():
            return None
        return Caller(
            id=user.id,
            username=user.username,
            role=user.role,
            group_ids=frozenset(g.id for g in user.groups),
            token_id=api_token.id,
        )


def current_user(conn: HTTPConnection, platform: Platform = Depends(get_platform)) -> Caller:
    caller = authenticate(platform, credentials_from(conn))
    if caller is None:
        raise Unauthenticated("authentication required: send 'Authorization: Bearer <token>' or log in")
    return caller


def require_admin(caller: Caller = Depends(current_user)) -> Caller:
    if not caller.is_admin:
        raise Forbidden("administrator role required")
    return caller


CurrentUser = Annotated[Caller, Depends(current_user)]
AdminUser = Annotated[Caller, Depends(require_admin)]
PlatformDep = Annotated[Platform, Depends(get_platform)]
