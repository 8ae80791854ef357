"""Group bodies: deployment switch, limits, resource quota and members."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, Field, StrictBool, StringConstraints

from modeldeck.auth.schemas import Body, GroupName, Label, NameList, PatchBody
from modeldeck.quantities import parse_memory

Cores = Annotated[float, Field(ge=0, le=1_000_000, strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=1_000_000, strict=True)]


def _check_memory(value: str) -> str:
    parse_memory(value)  # ValueError -> 422 naming the accepted forms
    return value


# A Kubernetes quantity such as "512Mi" or "8Gi".
Memory = Annotated[str, StringConstraints(strict=True, max_length=32), AfterValidator(_check_memory)]


class Quota(PatchBody):
    """Each limit is optional: null (or omitted on create) means unlimited."""

    nullable: ClassVar[frozenset[str]] = frozenset({"cpu", "memory", "gpu"})

    cpu: Cores | None = None
    memory: Memory | None = None
    gpu: Count | None = None


class GroupCreate(Body):
    name: GroupName
    display_name: Label = ""
    deployments_enabled: StrictBool = False
    max_deployments: Count | None = None
    quota: Quota = Field(default_factory=Quota)
    members: NameList = []


class GroupUpdate(PatchBody):
    """Partial; inside ``quota`` only the limits sent change."""

    nullable: ClassVar[frozenset[str]] = frozenset({"max_deployments"})

    display_name: Label | None = None
    deployments_enabled: StrictBool | None = None
    max_deployments: Count | None = None
    quota: Quota | None = None
    members: NameList | None = None


class QuotaOut(BaseModel):
    cpu: float | None
    memory: str | None
    gpu: int | None


class UsageOut(BaseModel):
    """What the group's deployments that are not stopped hold (replicas x instance type)."""

    deployments: int
    cpu: float
    memory: str
    gpu: int


class GroupOut(BaseModel):
    name: str
    display_name: str
    deployments_enabled: bool
    max_deployments: int | None
    quota: QuotaOut
    members: list[str]
    usage: UsageOut
    created_at: datetime
