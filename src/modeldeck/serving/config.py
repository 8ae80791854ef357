"""The model server's settings, built once by the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ServeConfig:
    model_uri: str
    name: str
    port: int
    host: str = "127.0.0.1"
    flavor: str = "auto"
    workers: int = 1
    model_roots: tuple[Path, ...] = ()
    cache_dir: Path = field(default_factory=lambda: Path(".modeldeck/model-cache"))
    method: str = "auto"
    max_batch_size: int = 2048
    max_batch_wait_ms: float = 2.0
    predict_in_thread: str = "auto"  # auto | yes | no
    fast_paths: bool = True
    max_body_bytes: int = 64 * 1024 * 1024
    graceful_timeout_s: float = 30.0
