"""Request and response bodies for login, personal API tokens and user administration."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
GROUP_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"

# Free text is any string without NUL, which PostgreSQL cannot store.
NO_NUL = r"^[^\x00]*$"
Label = Annotated[str, StringConstraints(strict=True, max_length=255, pattern=NO_NUL)]
LongText = Annotated[str, StringConstraints(strict=True, max_length=4096, pattern=NO_NUL)]

Username = Annotated[str, StringConstraints(strict=True, pattern=USERNAME_PATTERN)]
GroupName = Annotated[str, StringConstraints(strict=True, pattern=GROUP_NAME_PATTERN)]
Password = Annotated[str, StringConstraints(strict=True, min_length=8, max_length=1024)]
Role = Literal["admin", "user"]
# Names are checked against the database by the services, which name the unknown ones.
NameList = Annotated[
    list[Annotated[str, StringConstraints(strict=True, max_length=64, pattern=NO_NUL)]], Field(max_length=1000)
]


class Body(BaseModel):
    """Request bodies: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def is_name(pattern: str, value: str) -> bool:
    """For names taken from a path: one that cannot exist is simply not found (and never reaches SQL)."""
    return re.fullmatch(pattern, value) is not None


class PatchBody(Body):
    """Partial updates: an omitted field is unchanged; ``null`` is only accepted where it means something."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null_for_required(self) -> Any:
        for name in self.model_fields_set:
            if getattr(self, name) is None and name not in self.nullable:
                shown = type(self).model_fields[name].alias or name
                raise ValueError(f"{shown} must not be null (omit it to keep the current value)")
        return self


class LoginRequest(Body):
    # Not the creation rules: a login attempt with any string just fails with 401.
    username: Annotated[str, StringConstraints(strict=True, max_length=256)]
    password: Annotated[str, StringConstraints(strict=True, max_length=1024)]


class LoginResponse(BaseModel):
    token: str
    username: str
    role: Role
    expires_at: datetime


class Me(BaseModel):
    username: str
    role: Role
    groups: list[str]


class TokenCreate(Body):
    name: Annotated[
        str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=128, pattern=NO_NUL)
    ]


class TokenInfo(BaseModel):
    id: str
    name: str
    created_at: datetime
    expires_at: datetime | None


class TokenCreated(BaseModel):
    id: str
    name: str
    token: str = Field(description="The secret; shown only in this response")
    created_at: datetime


class UserCreate(Body):
    username: Username
    password: Password
    role: Role = "user"
    groups: NameList = []


class UserUpdate(PatchBody):
    password: Password | None = None
    role: Role | None = None
    groups: NameList | None = None


class UserOut(BaseModel):
    username: str
    role: Role
    groups: list[str]
    created_at: datetime
