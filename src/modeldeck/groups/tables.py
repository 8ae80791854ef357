from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Column, Float, ForeignKey, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from modeldeck.db import Base, UTCDateTime, utcnow

if TYPE_CHECKING:
    from modeldeck.auth.tables import User

group_members = Table(
    "group_members",
    Base.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(255), default="")
    deployments_enabled: Mapped[bool] = mapped_column(default=False)
    max_deployments: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: unlimited
    quota_cpu: Mapped[float | None] = mapped_column(Float, nullable=True)  # cores
    quota_memory: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # bytes
    quota_gpu: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Bumped by every quota check: the row lock that serialises concurrent admissions.
    admission_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[User]] = relationship(
        "User", secondary=group_members, back_populates="groups", lazy="selectin"
    )
