"""Fixtures for the model server tests (helpers in serving_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from serving_helpers import BUILDERS, Built, ServerProcess, iris_data


@pytest.fixture(scope="session")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return iris_data()


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def built(model_root: Path) -> dict[str, Built]:
    return {flavor: build(model_root) for flavor, build in BUILDERS.items()}


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def make(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(list(args), tmp_path / f"server{len(started)}", env or {})
        started.append(server.start())
        return server

    yield make
    for server in started:
        server.stop()
