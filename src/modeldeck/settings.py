"""Typed settings, built once (from flags, environment and an optional TOML file) and passed down."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "MODELDECK_"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path(".modeldeck")
    database_url: str | None = None  # None: SQLite in data_dir
    admin_password: str | None = None  # None: generated and printed once on first start
    secret_key: str | None = None  # encrypts pull-secret passwords; None: a key file in data_dir
    base_url: str | None = None  # public URL used in endpoints/curl examples; None: http://host:port
    runtime: str = "local"  # local | fake
    model_roots: tuple[Path, ...] = ()
    # image -> command template for the local runtime (admin-mapped images); see docs/runtime.md
    image_commands: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    controller_enabled: bool = True
    resync_interval_s: float = 5.0
    readiness_timeout_s: float = 900.0
    drain_grace_s: float = 30.0
    session_ttl_s: int = 12 * 3600
    gateway_max_body_bytes: int = 32 * 1024 * 1024
    gateway_upstream_timeout_s: float = 60.0
    metrics_token: str | None = None  # Bearer token Prometheus may scrape /metrics with (admins always may)
    log_max_bytes: int = 5 * 1024 * 1024
    cpu_overcommit: float = 4.0  # local runtime: CPU requests may sum to cores x this
    history_limit: int = 100

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'modeldeck.db').resolve()}"

    @property
    def public_base_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        config_file: Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Defaults < TOML file < MODELDECK_* environment < explicit overrides (flags)."""
        values: dict[str, Any] = {}
        if config_file is not None:
            values.update(tomllib.loads(config_file.read_text()))
        env = os.environ if env is None else env
        known = {f.name: f for f in fields(cls)}
        for name in known:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        return replace(cls(), **{k: _coerce(k, v) for k, v in values.items()})


def _coerce(name: str, value: Any) -> Any:
    default = getattr(Settings(), name)
    if name == "model_roots":
        if isinstance(value, str):
            value = [p for p in value.split(os.pathsep) if p]
        return tuple(Path(p).resolve() for p in value)
    if name == "image_commands":
        if isinstance(value, str):
            import json

            value = json.loads(value)
        return {str(k): tuple(v) for k, v in dict(value).items()}
    if name == "data_dir":
        return Path(value)
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
    if isinstance(default, int) and not isinstance(default, bool):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value
