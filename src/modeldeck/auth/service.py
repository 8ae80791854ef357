"""Login sessions, personal API tokens and user administration."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modeldeck.auth.deps import Caller
from modeldeck.auth.schemas import (
    USERNAME_PATTERN,
    LoginRequest,
    LoginResponse,
    Me,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    UserCreate,
    UserOut,
    UserUpdate,
    is_name,
)
from modeldeck.auth.security import hash_password, hash_token, new_token, verify_password
from modeldeck.auth.tables import ApiToken, User
from modeldeck.db import utcnow
from modeldeck.errors import Conflict, NotFound, Unauthenticated
from modeldeck.groups.service import named as groups_named

SESSION = "session"
API = "api"


def invalid_credentials() -> Unauthenticated:
    return Unauthenticated("invalid username or password", code="INVALID_CREDENTIALS")


# -- sessions ---------------------------------------------------------------------------------------


def check_credentials(session: Session, *, body: LoginRequest) -> int:
    """The user's id, or INVALID_CREDENTIALS; unknown users cost one argon2 verify like known ones."""
    name = body.username
    user = session.scalar(select(User).where(User.username == name)) if is_name(USERNAME_PATTERN, name) else None
    if not verify_password(user.password_hash if user else None, body.password) or user is None:
        raise invalid_credentials()
    return user.id


def start_session(session: Session, *, user_id: int, ttl_s: int) -> LoginResponse:
    user = session.get(User, user_id)
    if user is None:  # deleted between the password check and now
        raise invalid_credentials()
    now = utcnow()
    session.execute(
        delete(ApiToken).where(ApiToken.user_id == user_id, ApiToken.kind == SESSION, ApiToken.expires_at <= now)
    )
    token = new_token("mds")
    expires_at = now + timedelta(seconds=ttl_s)
    session.add(
        ApiToken(
            id=uuid.uuid4().hex,
            user_id=user_id,
            name="console session",
            kind=SESSION,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=expires_at,
        )
    )
    return LoginResponse(token=token, username=user.username, role=user.role, expires_at=expires_at)  # type: ignore[arg-type]


def end_session(session: Session, *, caller: Caller) -> None:
    """Revoke the caller's session; a personal API token used for the call is left alone."""
    session.execute(delete(ApiToken).where(ApiToken.id == caller.token_id, ApiToken.kind == SESSION))


def me(session: Session, *, caller: Caller) -> Me:
    user = session.get(User, caller.id)
    if user is None:
        raise Unauthenticated("the account no longer exists")
    return Me(username=user.username, role=user.role, groups=sorted(g.name for g in user.groups))  # type: ignore[arg-type]


# -- personal API tokens ----------------------------------------------------------------------------


def list_tokens(session: Session, *, caller: Caller) -> list[TokenInfo]:
    rows = session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == caller.id, ApiToken.kind == API)
        .order_by(ApiToken.created_at, ApiToken.id)
    )
    return [TokenInfo(id=t.id, name=t.name, created_at=t.created_at, expires_at=t.expires_at) for t in rows]


def create_token(session: Session, *, caller: Caller, body: TokenCreate) -> TokenCreated:
    token = new_token("mdk")
    row = ApiToken(
        id=uuid.uuid4().hex,
        user_id=caller.id,
        name=body.name,
        kind=API,
        token_hash=hash_token(token),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return TokenCreated(id=row.id, name=row.name, token=token, created_at=row.created_at)


def delete_token(session: Session, *, caller: Caller, token_id: str) -> None:
    row = session.get(ApiToken, token_id) if re.fullmatch(r"[0-9a-f]{32}", token_id) else None
    # Someone else's token answers exactly like a missing one.
    if row is None or row.user_id != caller.id or row.kind != API:
        raise NotFound(f"token {token_id!r} not found")
    session.delete(row)


# -- users (admin) ----------------------------------------------------------------------------------


def _out(user: User) -> UserOut:
    return UserOut(
        username=user.username,
        role=user.role,  # type: ignore[arg-type]
        groups=sorted(g.name for g in user.groups),
        created_at=user.created_at,
    )


def _get(session: Session, username: str) -> User:
    if not is_name(USERNAME_PATTERN, username):
        raise NotFound(f"user {username[:64]!r} not found")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} not found")
    return user


def _admin_ids(session: Session) -> list[int]:
    # Row locks on PostgreSQL so two admins demoting each other cannot both succeed.
    return list(session.scalars(select(User.id).where(User.role == "admin").with_for_update()))


def list_users(session: Session) -> list[UserOut]:
    return [_out(u) for u in session.scalars(select(User).order_by(User.username))]


def get_user(session: Session, *, username: str) -> UserOut:
    return _out(_get(session, username))


def create_user(session: Session, *, body: UserCreate) -> UserOut:
    if session.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise Conflict(f"user {body.username!r} already exists")
    user = User(
        username=body.username,
        password_hash=hash_password(body.password),
        role=body.role,
        created_at=utcnow(),
    )
    user.groups = groups_named(session, body.groups)
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"user {body.username!r} already exists") from exc
    return _out(user)


def update_user(session: Session, *, caller: Caller, username: str, body: UserUpdate) -> UserOut:
    user = _get(session, username)
    if body.role is not None and body.role != user.role:
        if user.role == "admin" and len(_admin_ids(session)) <= 1:
            raise Conflict("cannot demote the last administrator")
        user.role = body.role
    if body.groups is not None:
        user.groups = groups_named(session, body.groups)
    if body.password is not None:
        user.password_hash = hash_password(body.password)
        # Other consoles logged in as this user must log in again; the caller's own session survives.
        session.execute(
            delete(ApiToken).where(
                ApiToken.user_id == user.id, ApiToken.kind == SESSION, ApiToken.id != caller.token_id
            )
        )
    session.flush()
    return _out(user)


def delete_user(session: Session, *, caller: Caller, username: str) -> None:
    user = _get(session, username)
    if user.id == caller.id:
        raise Conflict("you cannot delete your own account")
    if user.role == "admin" and len(_admin_ids(session)) <= 1:
        raise Conflict("cannot delete the last administrator")
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    session.delete(user)
