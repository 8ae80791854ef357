"""Instance type bodies: resources per replica, scheduling hints, and which groups may use it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from modeldeck.auth.schemas import NO_NUL, Body, Label, LongText, NameList, PatchBody
from modeldeck.groups.schemas import Memory
from modeldeck.quantities import parse_memory

INSTANCE_TYPE_NAME_PATTERN = r"^[a-z0-9][a-z0-9.-]{0,62}$"

InstanceTypeName = Annotated[str, StringConstraints(strict=True, pattern=INSTANCE_TYPE_NAME_PATTERN)]
Cpu = Annotated[float, Field(gt=0, le=10_000, strict=True, allow_inf_nan=False)]
Gpu = Annotated[int, Field(ge=0, le=1024, strict=True)]
LabelKey = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=317, pattern=NO_NUL)]
LabelValue = Annotated[str, StringConstraints(strict=True, max_length=63, pattern=NO_NUL)]
NodeSelector = Annotated[dict[LabelKey, LabelValue], Field(max_length=64)]


def _positive(value: str) -> str:
    if parse_memory(value) <= 0:
        raise ValueError("memory must be greater than zero")
    return value


PositiveMemory = Annotated[Memory, AfterValidator(_positive)]


class Toleration(BaseModel):
    """A Kubernetes toleration, field names as Kubernetes spells them (passed through to pods)."""

    model_config = ConfigDict(extra="forbid")

    key: LabelKey | None = None
    operator: Literal["Equal", "Exists"] | None = None
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    tolerationSeconds: Annotated[int, Field(ge=0, le=10**9, strict=True)] | None = None

    @model_validator(mode="after")
    def _kubernetes_rules(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists must not have a value")
        if self.tolerationSeconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds only applies to effect NoExecute")
        return self


Tolerations = Annotated[list[Toleration], Field(max_length=64)]


class InstanceTypeCreate(Body):
    name: InstanceTypeName
    display_name: Label = ""
    description: LongText = ""
    cpu: Cpu
    memory: PositiveMemory
    gpu: Gpu = 0
    node_selector: NodeSelector = {}
    tolerations: Tolerations = []
    is_global: StrictBool = Field(False, alias="global")
    groups: NameList = []


class InstanceTypeUpdate(PatchBody):
    display_name: Label | None = None
    description: LongText | None = None
    cpu: Cpu | None = None
    memory: PositiveMemory | None = None
    gpu: Gpu | None = None
    node_selector: NodeSelector | None = None
    tolerations: Tolerations | None = None
    is_global: StrictBool | None = Field(None, alias="global")
    groups: NameList | None = None


class InstanceTypeOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    name: str
    display_name: str
    description: str
    cpu: float
    memory: str
    gpu: int
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    is_global: bool = Field(alias="global")
    groups: list[str]
    created_at: datetime
