"""Real HTTP servers for gateway tests: an echo upstream and the gateway itself, each on uvicorn in a thread."""

from __future__ import annotations

import asyncio
import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from modeldeck.gateway.proxy import Gateway
from modeldeck.gateway.routes import RouteTable
from modeldeck.gateway.server import SERVER_OPTIONS
from modeldeck.metrics.store import MetricsStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def closed_address() -> str:
    """An address where nothing listens: connecting is refused."""
    return f"127.0.0.1:{free_port()}"


class Echo:
    """Upstream that answers what it saw. ``/sleep?s=`` waits, ``/status/<code>`` answers that code,
    ``/bytes?n=`` streams n bytes in chunks, ``/metrics`` exposes a prediction counter."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits: list[str] = []
        self.predictions = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path: str = scope["path"]
        query = parse_qs(scope["query_string"].decode())
        self.hits.append(path)
        status = 200
        if path == "/metrics":
            text = (
                "# TYPE modeldeck_model_predictions_total counter\n"
                f'modeldeck_model_predictions_total{{protocol="v1"}} {self.predictions}\n'
            )
            await _send(send, 200, text.encode(), b"text/plain")
            return
        if path == "/sleep":
            await asyncio.sleep(float(query["s"][0]))
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        if path == "/bytes":
            n = int(query["n"][0])
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x-upstream", self.name.encode())]})
            chunk = b"x" * 65536
            while n > 0:
                part = chunk[: min(n, len(chunk))]
                n -= len(part)
                await send({"type": "http.response.body", "body": part, "more_body": n > 0})
            return
        seen = {
            "upstream": self.name,
            "method": scope["method"],
            "path": path,
            "raw_path": scope["raw_path"].decode(),
            "query": scope["query_string"].decode(),
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
            "header_list": [[k.decode(), v.decode()] for k, v in scope["headers"]],
            "client_port": scope["client"][1],
            "body_length": len(body),
            "body": body[:200].decode(errors="replace"),
        }
        await _send(send, status, json.dumps(seen).encode(), b"application/json")


async def _send(send: Any, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serve(app: Any, *, port: int | None = None, keep_alive_s: int = 5, http: Any = "auto") -> Iterator[str]:
    """Runs ``app`` on uvicorn in a thread; yields "127.0.0.1:port"."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port or free_port(), log_level="error", lifespan="off",
        timeout_keep_alive=keep_alive_s, access_log=False, http=http,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


class AnswersOncePerConnection(socketserver.StreamRequestHandler):
    """Answers the first request on a connection, then closes it when the next one arrives, unanswered:
    what a keep-alive connection that the upstream closes as the gateway reuses it looks like."""

    connections = 0

    def handle(self) -> None:
        type(self).connections += 1
        length = 0
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        self.rfile.read(length)
        body = b'{"ok":true}'
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
        self.wfile.flush()
        self.after_answer()
        self.rfile.readline()  # the next request: dropped with the connection

    def after_answer(self) -> None:
        pass


class SendsStrayBytesWhenIdle(AnswersOncePerConnection):
    """Answers the first request, then, idle, sends an unsolicited 408 and keeps the connection open."""

    def after_answer(self) -> None:
        time.sleep(0.2)
        self.wfile.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
        self.wfile.flush()


@contextmanager
def answers_once(handler: type[AnswersOncePerConnection] = AnswersOncePerConnection) -> Iterator[str]:
    handler.connections = 0
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class GatewayServer:
    """The gateway on real HTTP, its route table driven by the test."""

    def __init__(self, *, max_body_bytes: int = 1 << 20, upstream_timeout_s: float = 5.0) -> None:
        self.routes = RouteTable()
        self.metrics = MetricsStore()
        self.gateway = Gateway(
            self.routes, self.metrics, max_body_bytes=max_body_bytes, upstream_timeout_s=upstream_timeout_s
        )
        self.url = ""

    @contextmanager
    def running(self) -> Iterator[GatewayServer]:
        with serve(self.gateway, http=SERVER_OPTIONS["http"]) as address:
            self.url = f"http://{address}"
            yield self
