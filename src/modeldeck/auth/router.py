"""/auth (login, logout, me), /tokens (personal API tokens) and /users (administration)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from starlette.requests import Request

from modeldeck.auth import service
from modeldeck.auth.deps import SESSION_COOKIE, AdminUser, CurrentUser, PlatformDep, authenticate, credentials_from
from modeldeck.auth.schemas import (
    LoginRequest,
    LoginResponse,
    Me,
    TokenCreate,
    TokenCreated,
    TokenInfo,
    UserCreate,
    UserOut,
    UserUpdate,
)

router = APIRouter()

UsernamePath = Annotated[str, Path(max_length=256)]


@router.post("/auth/login", tags=["auth"])
def login(body: LoginRequest, request: Request, response: Response, platform: PlatformDep) -> LoginResponse:
    # The argon2 check runs outside the write transaction so logins do not hold the SQLite writer lock.
    with platform.db.read() as session:
        user_id = service.check_credentials(session, body=body)
    ttl = platform.settings.session_ttl_s
    with platform.db.write() as session:
        result = service.start_session(session, user_id=user_id, ttl_s=ttl)
    response.set_cookie(
        SESSION_COOKIE,
        result.token,
        max_age=ttl,
        httponly=True,
        samesite="lax",
        secure=_https(request, platform.settings.public_base_url),
        path="/",
    )
    return result


@router.post("/auth/logout", tags=["auth"], status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def logout(request: Request, platform: PlatformDep) -> Response:
    """Revokes the session used for the call (if any) and clears the cookie; never fails."""
    caller = authenticate(platform, credentials_from(request))
    if caller is not None:
        with platform.db.write() as session:
            service.end_session(session, caller=caller)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/auth/me", tags=["auth"])
def me(caller: CurrentUser, platform: PlatformDep) -> Me:
    with platform.db.read() as session:
        return service.me(session, caller=caller)


@router.get("/tokens", tags=["tokens"])
def list_tokens(caller: CurrentUser, platform: PlatformDep) -> list[TokenInfo]:
    with platform.db.read() as session:
        return service.list_tokens(session, caller=caller)


@router.post("/tokens", tags=["tokens"], status_code=status.HTTP_201_CREATED)
def create_token(body: TokenCreate, caller: CurrentUser, platform: PlatformDep) -> TokenCreated:
    with platform.db.write() as session:
        return service.create_token(session, caller=caller, body=body)


@router.delete("/tokens/{token_id}", tags=["tokens"], status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_token(token_id: Annotated[str, Path(max_length=64)], caller: CurrentUser, platform: PlatformDep) -> None:
    with platform.db.write() as session:
        service.delete_token(session, caller=caller, token_id=token_id)


@router.get("/users", tags=["users"])
def list_users(_caller: AdminUser, platform: PlatformDep) -> list[UserOut]:
    with platform.db.read() as session:
        return service.list_users(session)


@router.post("/users", tags=["users"], status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, _caller: AdminUser, platform: PlatformDep) -> UserOut:
    with platform.db.write() as session:
        return service.create_user(session, body=body)


@router.get("/users/{username}", tags=["users"])
def get_user(username: UsernamePath, _caller: AdminUser, platform: PlatformDep) -> UserOut:
    with platform.db.read() as session:
        return service.get_user(session, username=username)


@router.patch("/users/{username}", tags=["users"])
def update_user(username: UsernamePath, body: UserUpdate, caller: AdminUser, platform: PlatformDep) -> UserOut:
    with platform.db.write() as session:
        return service.update_user(session, caller=caller, username=username, body=body)


@router.delete("/users/{username}", tags=["users"], status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_user(username: UsernamePath, caller: AdminUser, platform: PlatformDep) -> None:
    with platform.db.write() as session:
        service.delete_user(session, caller=caller, username=username)


def _https(request: Request, base_url: str) -> bool:
    return request.url.scheme == "https" or base_url.startswith("https://")
