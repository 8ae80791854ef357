"""Image pull secret bodies; the password is write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, StringConstraints

from modeldeck.auth.schemas import NO_NUL, Body, PatchBody

SECRET_NAME_PATTERN = r"^[a-z0-9][a-z0-9.-]{0,62}$"

SecretName = Annotated[str, StringConstraints(strict=True, pattern=SECRET_NAME_PATTERN)]
# "ghcr.io", "registry.example.com:5000", "https://index.docker.io/v1/": no spaces.
Registry = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255, pattern=r"^[^\s\x00]+$")]
RegistryUser = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255, pattern=NO_NUL)]
RegistryPassword = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=4096, pattern=NO_NUL)]


class SecretCreate(Body):
    name: SecretName
    registry: Registry
    username: RegistryUser
    password: RegistryPassword


class SecretUpdate(PatchBody):
    """Rotate credentials in place; deployments pick them up when their pods are next created."""

    registry: Registry | None = None
    username: RegistryUser | None = None
    password: RegistryPassword | None = None


class SecretOut(BaseModel):
    """Everyone sees names (the create form offers them); registry and username only admins."""

    name: str
    registry: str | None = None
    username: str | None = None
    created_at: datetime | None = None
