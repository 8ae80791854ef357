"""Request bodies, response shapes (for OpenAPI) and the plain-dict view the API returns."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from modeldeck.deployments.ids import ID_PATTERN, NAME_PATTERN, id_problem
from modeldeck.deployments.tables import Deployment

ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
CLIENT_NAME_PATTERN = r"^[a-z_][a-z0-9_-]*$"
MODEL_URI_SCHEMES = ("file", "http", "https", "s3", "gs", "models")
Status = Literal["Deploying", "Deployed", "Failed", "Stopping", "Stopped"]
STATUSES = get_args(Status)
MAX_REPLICAS = 64
_ENV_NAME = re.compile(ENV_NAME_PATTERN)
_NAME = re.compile(NAME_PATTERN)


def clean_text(value: str) -> str:
    # NUL and lone surrogates cannot be stored (PostgreSQL rejects them): refuse them up front.
    if "\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("must not contain NUL characters or unpaired surrogates")
    return value


def _trimmed(value: str) -> str:
    return clean_text(value).strip()


SecretName = Annotated[str, Field(max_length=64), AfterValidator(clean_text)]
ShortName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(clean_text)]
Image = Annotated[str, Field(max_length=512), AfterValidator(_trimmed)]
ModelUri = Annotated[str, Field(max_length=2048), AfterValidator(_trimmed)]
Replicas = Annotated[int, Field(strict=True, ge=1, le=MAX_REPLICAS)]
Description = Annotated[str, Field(max_length=10_000), AfterValidator(clean_text)]
UpdateMessage = Annotated[str, Field(max_length=1_000), AfterValidator(clean_text)]
Metadata = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=253)], Annotated[str, Field(max_length=4096)]],
    Field(max_length=100),
]
Env = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=255, json_schema_extra={"pattern": ENV_NAME_PATTERN})],
        Annotated[str, Field(max_length=32_768)],
    ],
    Field(max_length=200, description=f"variable names match {ENV_NAME_PATTERN}; values are strings"),
]
Access = Literal["public", "private"]


def _check_image(value: str) -> str:
    if not value:
        raise ValueError("image must not be empty")
    if any(ch.isspace() for ch in value):
        raise ValueError("image must not contain whitespace")
    return value


def _check_model_uri(value: str | None) -> str | None:
    if not value:
        return None
    scheme = urlsplit(value).scheme.lower() if ":" in value else ""
    if scheme not in MODEL_URI_SCHEMES:
        raise ValueError(f"model_uri scheme must be one of {', '.join(s + ':' for s in MODEL_URI_SCHEMES)}")
    return value


def _check_env(env: dict[str, str] | None) -> dict[str, str] | None:
    for key, value in (env or {}).items():
        clean_text(value)
        if not _ENV_NAME.fullmatch(key):
            raise ValueError(f"invalid environment variable name {key!r}: must match {ENV_NAME_PATTERN}")
    return env


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str] | None:
    for key, value in (metadata or {}).items():
        clean_text(key)
        clean_text(value)
    return metadata


class DeploymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=255, json_schema_extra={"pattern": NAME_PATTERN})]
    id: Annotated[str, Field(max_length=63, json_schema_extra={"pattern": ID_PATTERN})] | None = None
    group: ShortName
    instance_type: ShortName
    replicas: Replicas = 1
    image: Image
    model_uri: ModelUri | None = None
    image_pull_secret: SecretName | None = None
    description: Description | None = ""
    metadata: Metadata = Field(default_factory=dict)
    env: Env = Field(default_factory=dict)
    endpoint_access: Access = "public"
    update_message: UpdateMessage | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                "a name has letters, digits, spaces, '_' and '-', and starts and ends with a letter or digit"
            )
        return value

    @field_validator("id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is not None and (problem := id_problem(value)):
            raise ValueError(problem)
        return value

    _image = field_validator("image")(_check_image)
    _model_uri = field_validator("model_uri")(_check_model_uri)
    _env = field_validator("env")(_check_env)
    _metadata = field_validator("metadata")(_check_metadata)


IMMUTABLE_FIELDS = ("id", "name", "group")
_OMITTED: Any = None  # the default of a PATCH field that may be left out but not sent as null


class DeploymentUpdate(BaseModel):
    """Partial update: only the fields sent change. ``metadata`` and ``env`` are replaced wholesale.

    Fields without ``| None`` may be omitted but not sent as null (defaults are not validated).
    """

    model_config = ConfigDict(extra="forbid")

    instance_type: ShortName = _OMITTED
    replicas: Replicas = _OMITTED
    image: Image = _OMITTED
    model_uri: ModelUri | None = Field(default=None, description="null or \"\" clears it")
    image_pull_secret: SecretName | None = Field(
        default=None, description="null or \"\" clears it"
    )
    description: Description | None = None
    metadata: Metadata = _OMITTED
    env: Env = _OMITTED
    endpoint_access: Access = _OMITTED
    update_message: UpdateMessage | None = None
    # Accepted only to answer IMMUTABLE_FIELD rather than a generic "extra field" error.
    id: SkipJsonSchema[Any] = None
    name: SkipJsonSchema[Any] = None
    group: SkipJsonSchema[Any] = None

    _image = field_validator("image")(_check_image)
    _model_uri = field_validator("model_uri")(_check_model_uri)
    _env = field_validator("env")(_check_env)
    _metadata = field_validator("metadata")(_check_metadata)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Annotated[int, Field(strict=True, ge=1, le=2**31 - 1)]


class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=63, pattern=CLIENT_NAME_PATTERN)]


# -- responses (documentation; handlers return the plain dicts built below) ----------------------


class ReplicaStatusOut(BaseModel):
    name: str
    state: str
    ready: bool
    restarts: int
    started_at: datetime | None = None


class DeploymentOut(BaseModel):
    id: str
    name: str
    group: str
    instance_type: str
    replicas: int
    image: str
    model_uri: str | None
    image_pull_secret: str | None
    description: str
    metadata: dict[str, str]
    env: dict[str, str]
    endpoint_access: Access
    stopped: bool
    status: str
    reason: str
    message: str
    endpoint: str
    endpoint_v2: str
    example_curl: str
    version: int
    generation: int
    observed_generation: int
    available_replicas: int
    replicas_status: list[ReplicaStatusOut]
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    clients: list[str]


class DeploymentList(BaseModel):
    items: list[DeploymentOut]
    total: int


class HistoryEntry(BaseModel):
    version: int
    action: str
    message: str
    created_by: str
    created_at: datetime
    spec: dict[str, Any]


class ClientOut(BaseModel):
    name: str
    created_by: str
    created_at: datetime


class ClientCreated(BaseModel):
    name: str
    token: str = Field(description="shown once; only its SHA-256 is stored")


class IdAvailability(BaseModel):
    id: str
    available: bool
    reason: str | None


# -- the view ----------------------------------------------------------------------------------

_EXAMPLE_DATA = '{"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}}'
_PENDING_STOP = ("Stopping", "StopRequested", "Deployment is stopping")
_PENDING_START = ("Deploying", "StartRequested", "Deployment is starting")


def endpoints(base_url: str, deployment_id: str) -> tuple[str, str]:
    root = f"{base_url}/deployment/{deployment_id}"
    return f"{root}/api/v1.0/predictions", f"{root}/v2/models/{deployment_id}/infer"


def example_curl(endpoint: str, access: str) -> str:
    auth = " -u <client-name>:<client-token>" if access == "private" else ""
    return f"curl -X POST{auth} -H \"Content-Type: application/json\" -d '{_EXAMPLE_DATA}' {endpoint}"


def shown_status(dep: Deployment) -> tuple[str, str, str]:
    """The controller's status, except that a stop or start it has not seen yet shows at once
    (PrimeHub's fallback phase), so a client never reads "Deployed" right after asking to stop."""
    if dep.observed_generation < dep.generation:
        if dep.stopped and dep.status not in ("Stopping", "Stopped"):
            return _PENDING_STOP
        if not dep.stopped and dep.status in ("Stopping", "Stopped"):
            return _PENDING_START
    return dep.status, dep.reason, dep.message


def deployment_view(dep: Deployment, base_url: str) -> dict[str, Any]:
    endpoint, endpoint_v2 = endpoints(base_url, dep.id)
    status, reason, message = shown_status(dep)
    return {
        "id": dep.id,
        "name": dep.name,
        "group": dep.group.name,
        "instance_type": dep.instance_type,
        "replicas": dep.replicas,
        "image": dep.image,
        "model_uri": dep.model_uri,
        "image_pull_secret": dep.image_pull_secret,
        "description": dep.description,
        "metadata": dep.metadata_,
        "env": dep.env,
        "endpoint_access": dep.endpoint_access,
        "stopped": dep.stopped,
        "status": status,
        "reason": reason,
        "message": message,
        "endpoint": endpoint,
        "endpoint_v2": endpoint_v2,
        "example_curl": example_curl(endpoint, dep.endpoint_access),
        "version": dep.version,
        "generation": dep.generation,
        "observed_generation": dep.observed_generation,
        "available_replicas": dep.available_replicas,
        "replicas_status": dep.replicas_status,
        "created_at": dep.created_at,
        "updated_at": dep.updated_at,
        "created_by": dep.created_by,
        "updated_by": dep.updated_by,
        "clients": sorted(c.name for c in dep.clients),
    }
