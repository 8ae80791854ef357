from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from modeldeck.db import Base, UTCDateTime, utcnow
from modeldeck.groups.tables import Group

# The spec fields a version snapshot holds and a rollback restores.
SPEC_FIELDS = (
    "instance_type",
    "replicas",
    "image",
    "model_uri",
    "image_pull_secret",
    "description",
    "metadata",
    "env",
    "endpoint_access",
)


class Deployment(Base):
    """One row per deployment: the API writes the spec columns, the controller the status columns."""

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="RESTRICT"), index=True)

    # spec (API-owned)
    instance_type: Mapped[str] = mapped_column(String(64))
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    image: Mapped[str] = mapped_column(String(512))
    model_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    image_pull_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    env: Mapped[dict[str, Any]] = mapped_column(default=dict)
    endpoint_access: Mapped[str] = mapped_column(String(16), default="public")  # public | private
    stopped: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)  # latest history version
    generation: Mapped[int] = mapped_column(Integer, default=1)  # bumped on every spec change
    created_by: Mapped[str] = mapped_column(String(64))
    updated_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)

    # status (controller-owned)
    status: Mapped[str] = mapped_column(String(16), default="Deploying", index=True)
    reason: Mapped[str] = mapped_column(String(64), default="Created")
    message: Mapped[str] = mapped_column(Text, default="")
    observed_generation: Mapped[int] = mapped_column(Integer, default=0)
    available_replicas: Mapped[int] = mapped_column(Integer, default=0)
    replicas_status: Mapped[list[Any]] = mapped_column(default=list)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    group: Mapped[Group] = relationship(Group, lazy="joined")
    clients: Mapped[list[DeploymentClient]] = relationship(
        back_populates="deployment", cascade="all, delete-orphan", passive_deletes=True, lazy="selectin"
    )

    def spec_snapshot(self) -> dict[str, Any]:
        snap = {f: getattr(self, "metadata_" if f == "metadata" else f) for f in SPEC_FIELDS}
        snap["stopped"] = self.stopped
        snap["clients"] = sorted(c.name for c in self.clients)
        return snap


class DeploymentVersion(Base):
    """History: one row per change, newest has the highest version. Never holds a secret."""

    __tablename__ = "deployment_versions"

    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(16))  # create|update|stop|start|rollback|client
    message: Mapped[str] = mapped_column(Text, default="")
    spec: Mapped[dict[str, Any]] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeploymentClient(Base):
    """A private-endpoint client; the token is shown once and only its SHA-256 is kept."""

    __tablename__ = "deployment_clients"

    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    deployment: Mapped[Deployment] = relationship(back_populates="clients")


Index("ix_deployments_group_updated", Deployment.group_id, Deployment.updated_at)
