from __future__ import annotations

from modeldeck.runtimes.base import Runtime
from modeldeck.settings import Settings


def build_runtime(settings: Settings) -> Runtime:
    if settings.runtime == "fake":
        from modeldeck.runtimes.fake import FakeRuntime

        return FakeRuntime()
    if settings.runtime == "local":
        from modeldeck.runtimes.local import LocalRuntime

        return LocalRuntime(settings)
    raise ValueError(f"unknown runtime {settings.runtime!r}: expected 'local' or 'fake'")
