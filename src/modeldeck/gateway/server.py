"""uvicorn's HTTP protocol with one change: writes made in the same event-loop turn leave in one syscall.

uvicorn writes a response's head and body separately; over TCP every write is a send() the peer is
woken for. Coalescing them saves a system call and a wakeup per response (measured in
benchmarks/README.md, section Gateway). ``modeldeck server`` runs uvicorn with ``SERVER_OPTIONS``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_FLUSH_AT = 64 * 1024  # bytes buffered before writing at once (keeps flow control meaningful)


class CoalescingTransport:
    """Holds writes until the end of the current loop turn, then hands them to the real transport."""

    __slots__ = ("_buffer", "_loop", "_scheduled", "_size", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._buffer.append(data)
        self._size += len(data)
        if self._size >= _FLUSH_AT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        buffer = self._buffer
        if not buffer:
            return
        self._buffer = []
        self._size = 0
        if not self.transport.is_closing():
            self.transport.write(buffer[0] if len(buffer) == 1 else b"".join(buffer))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._buffer = []
        self._size = 0
        self.transport.abort()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + self._size

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class CoalescingHttpProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]


# uvicorn.run() keyword arguments of the platform server (the benchmark serves with the same ones).
SERVER_OPTIONS: dict[str, Any] = {"http": CoalescingHttpProtocol, "log_level": "warning", "access_log": False}
