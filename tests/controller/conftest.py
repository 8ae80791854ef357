"""Controller fixtures: a real database (migrated) and the fake runtime behind a Platform."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modeldeck.context import Platform
from modeldeck.db import Database
from modeldeck.migrations.runner import upgrade
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings


@pytest.fixture
def platform(settings: Settings, fake_runtime: FakeRuntime) -> Iterator[Platform]:
    db = Database(settings.resolved_database_url)
    upgrade(db.write_engine)
    yield Platform(settings=settings, db=db, runtime=fake_runtime)
    db.dispose()
