"""CoalescingHttpProtocol serves the whole platform: streaming and WebSockets must behave as before."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import websockets
from fastapi import FastAPI, WebSocket
from gw_support import serve

from modeldeck.gateway.server import SERVER_OPTIONS


async def streaming(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
    await asyncio.sleep(0.6)
    await send({"type": "http.response.body", "body": b"second\n"})


def test_streamed_chunks_leave_without_waiting_for_the_end() -> None:
    with serve(streaming, http=SERVER_OPTIONS["http"]) as address, httpx.Client(trust_env=False) as client:
        started = time.monotonic()
        with client.stream("GET", f"http://{address}/") as resp:
            chunks = resp.iter_raw()
            first = next(chunks)
            first_at = time.monotonic() - started
            rest = b"".join(chunks)
        assert first == b"first\n" and rest == b"second\n"
        assert first_at < 0.4, first_at  # the first chunk did not wait for the second


def test_websockets_work_over_the_coalescing_protocol() -> None:
    app = FastAPI()

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            await ws.send_text(text.upper())

    async def talk(address: str) -> list[str]:
        async with websockets.connect(f"ws://{address}/echo") as ws:
            answers = []
            for word in ("one", "two"):
                await ws.send(word)
                answers.append(str(await ws.recv()))
            return answers

    with serve(app, http=SERVER_OPTIONS["http"]) as address:
        assert asyncio.run(talk(address)) == ["ONE", "TWO"]


def test_many_small_responses_on_one_connection() -> None:
    app = FastAPI()

    @app.get("/n/{i}")
    def n(i: int) -> dict[str, int]:
        return {"i": i}

    with serve(app, http=SERVER_OPTIONS["http"]) as address, \
            httpx.Client(base_url=f"http://{address}", trust_env=False) as client:
        assert [client.get(f"/n/{i}").json()["i"] for i in range(50)] == list(range(50))
