"""Placeholder until the controller lands: wakes are accepted and ignored."""

from __future__ import annotations

from modeldeck.context import Platform


class ControllerLoop:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def wake(self, deployment_id: str) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
