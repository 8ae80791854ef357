from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Float, ForeignKey, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from modeldeck.db import Base, UTCDateTime, utcnow
from modeldeck.groups.tables import Group

instance_type_groups = Table(
    "instance_type_groups",
    Base.metadata,
    Column("instance_type_id", ForeignKey("instance_types.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class InstanceType(Base):
    __tablename__ = "instance_types"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    cpu: Mapped[float] = mapped_column(Float)  # cores
    memory: Mapped[int] = mapped_column(BigInteger)  # bytes
    gpu: Mapped[int] = mapped_column(Integer, default=0)
    node_selector: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tolerations: Mapped[list[Any]] = mapped_column(default=list)
    is_global: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    groups: Mapped[list[Group]] = relationship(Group, secondary=instance_type_groups, lazy="selectin")
