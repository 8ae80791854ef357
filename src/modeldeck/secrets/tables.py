from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from modeldeck.db import Base, UTCDateTime, utcnow


class ImagePullSecret(Base):
    __tablename__ = "image_pull_secrets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    registry_host: Mapped[str] = mapped_column("registry", String(255))
    username: Mapped[str] = mapped_column(String(255))
    password_encrypted: Mapped[str] = mapped_column(Text)  # Fernet token; never returned
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
