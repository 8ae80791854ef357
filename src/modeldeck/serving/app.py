"""The model server's ASGI app: a raw ASGI callable with a dict router (no framework on the hot path).

The port is bound before the model loads: liveness answers at once, readiness only once the model is
loaded (fetch + load + warm-up run in a background thread). A load failure prints
`ModelLoadFailed: <why>` on stderr and stops the server with exit code 2.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson

from .batching import Batcher
from .flavors import ModelLoadError, Predictor
from .metrics import Metrics
from .protocols import oip, seldon
from .protocols.common import BadRequest, reorder

log = logging.getLogger("modeldeck.serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
Loader = Callable[[], Predictor]

JSON = (b"content-type", b"application/json")
TEXT = (b"content-type", b"text/plain; version=0.0.4; charset=utf-8")
_RAW = (seldon.STR, seldon.JSON, seldon.BIN)


async def _reply(send: Send, status: int, body: bytes, ctype: tuple[bytes, bytes] = JSON) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [ctype, (b"content-length", b"%d" % len(body))]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


def _model_error(e: Exception) -> tuple[int, str]:
    """An exception from the model: ValueError/TypeError mean it rejected the input (400), as do exceptions
    that carry a 4xx `status_code` (Seldon's SeldonMicroserviceException); anything else is a 500."""
    status = getattr(e, "status_code", None)
    if isinstance(status, int) and 400 <= status < 600:
        return status, f"{type(e).__name__}: {e}"
    if isinstance(e, ValueError | TypeError):
        return 400, f"the model rejected the input: {type(e).__name__}: {e}"
    return 500, f"prediction failed: {type(e).__name__}: {e}"


class ServingApp:
    def __init__(
        self,
        name: str,
        load: Loader,
        metrics: Metrics,
        max_batch_size: int = 2048,
        max_batch_wait_ms: float = 2.0,
        max_body_bytes: int = 64 * 1024 * 1024,
        on_fatal: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._load = load
        self.metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_batch_wait_ms / 1000
        self.max_body = max_body_bytes
        self.on_fatal = on_fatal
        self.exit_code = 0
        self.ready = False
        self.predictor: Predictor | None = None
        self.batcher: Batcher | None = None
        self._v1: seldon.Encoder | None = None
        self._v2: oip.Encoder | None = None
        self._metadata = b""
        self._name_idx: dict[tuple[str, ...], Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        base = f"/v2/models/{name}"
        self._routes: dict[str, Handler] = {
            "/api/v1.0/predictions": self._predict_v1,
            "/predict": self._predict_v1,
            f"{base}/infer": self._infer_v2,
            "/v2/health/live": self._live,
            "/v2/health/ready": self._ready,
            f"{base}/ready": self._ready,
            base: self._model_metadata,
            "/v2": self._server_metadata,
            "/metrics": self._metrics,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            handler = self._routes.get(scope["path"]) or self._route_v2(scope["path"])
            await handler(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    # -- predictions (the hot path) --------------------------------------------------------------

    async def _predict_v1(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._predict(scope, receive, send, 0, seldon.error, self._decode_v1, self._answer_v1)

    async def _infer_v2(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._predict(scope, receive, send, 1, oip.error, self._decode_v2, self._answer_v2)

    async def _predict(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        protocol: int,
        error: Callable[[int, str], bytes],
        decode: Callable[[bytes], Any],
        answer: Callable[[Any], Awaitable[tuple[bytes, int]]],
    ) -> None:
        """One request cycle for both protocols: decode, one batched predict, encode, count."""
        t0 = time.perf_counter()
        rows = 0
        if scope["method"] != "POST":
            code, out = 405, error(405, "use POST")
        elif not self.ready:
            code, out = 503, error(503, "model not loaded yet")
        else:
            batcher = self.batcher
            assert batcher is not None
            batcher.coming += 1  # lets the batcher wait for this request while it is being decoded
            try:
                try:
                    req = decode(await self._body(receive))
                finally:
                    batcher.coming -= 1
                out, rows = await answer(req)
                code = 200
            except BadRequest as e:
                code, out = e.status, error(e.status, str(e))
            except Exception as e:
                code, message = _model_error(e)
                out = error(code, message)
        await _reply(send, code, out)
        self.metrics.request(protocol, code, time.perf_counter() - t0, rows)

    def _decode_v1(self, body: bytes) -> seldon.V1Request:
        p = self.predictor
        assert p is not None
        return seldon.decode(body, p.spec, p.accepts_raw)

    async def _answer_v1(self, req: seldon.V1Request) -> tuple[bytes, int]:
        p, b, enc = self.predictor, self.batcher, self._v1
        assert p is not None and b is not None and enc is not None
        if req.kind in _RAW:
            result = await b.call(lambda: p.predict_raw(req.X, req.names, req.meta))
            return enc.encode_raw(result), 1
        X = reorder(req.X, req.names, p.spec, self._name_idx)
        outs = await b.submit(X, None if p.spec.feature_names else req.names)
        return enc.encode(req.kind, outs[p.primary_output]), X.shape[0] if X.ndim else 1

    def _decode_v2(self, body: bytes) -> oip.V2Request:
        p = self.predictor
        assert p is not None
        return oip.decode(body, p.spec)

    async def _answer_v2(self, req: oip.V2Request) -> tuple[bytes, int]:
        p, b, enc = self.predictor, self.batcher, self._v2
        assert p is not None and b is not None and enc is not None
        which = enc.select(req.outputs)
        X = reorder(req.X, req.names, p.spec, self._name_idx)
        outs = await b.submit(X, None if p.spec.feature_names else req.names)
        return enc.encode(outs, req.id, which), X.shape[0] if X.ndim else 1

    async def _body(self, receive: Receive) -> bytes:
        msg = await receive()
        body: bytes = msg.get("body", b"")
        if not msg.get("more_body"):
            if len(body) > self.max_body:
                raise BadRequest(f"request body larger than {self.max_body} bytes", 413)
            return body
        parts, size = [body], len(body)
        while msg.get("more_body"):
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise BadRequest("client disconnected")
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BadRequest(f"request body larger than {self.max_body} bytes", 413)
            parts.append(chunk)
        return b"".join(parts)

    # -- health, metadata, metrics ---------------------------------------------------------------

    def _route_v2(self, path: str) -> Handler:
        parts = path.split("/")
        if len(parts) < 4 or parts[:3] != ["", "v2", "models"]:
            return self._not_found
        rest = parts[4:]
        if len(rest) >= 2 and rest[0] == "versions":
            rest = rest[2:]
        if parts[3] != self.name:
            return self._unknown_model
        if not rest:
            return self._model_metadata
        if rest == ["ready"]:
            return self._ready
        if rest == ["infer"]:
            return self._infer_v2
        return self._not_found

    async def _live(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _reply(send, 200, b'{"live":true}')

    async def _ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ready and self.metrics.all_ready():
            await _reply(send, 200, b'{"name":' + orjson.dumps(self.name) + b',"ready":true}')
        else:
            await _reply(send, 503, b'{"name":' + orjson.dumps(self.name) + b',"ready":false}')

    async def _model_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.ready:
            await _reply(send, 503, oip.error(503, "model not loaded yet"))
        else:
            await _reply(send, 200, self._metadata)

    async def _server_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        from .. import __version__

        await _reply(send, 200, orjson.dumps({"name": "modeldeck", "version": __version__, "extensions": []}))

    async def _metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _reply(send, 200, self.metrics.render(), TEXT)

    async def _not_found(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _reply(send, 404, oip.error(404, f"not found: {scope['method']} {scope['path']}"))

    async def _unknown_model(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = scope["path"].split("/")[3]
        await _reply(send, 404, oip.error(404, f"model {model!r} not found; this server serves {self.name!r}"))

    # -- lifecycle -------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                threading.Thread(target=self._load_in_background, name="model-load", daemon=True).start()
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.metrics.ready = self.ready = False
                if self.batcher is not None:
                    await self.batcher.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _load_in_background(self) -> None:
        t0 = time.perf_counter()
        assert self._loop is not None
        try:
            predictor = self._load()
            metadata = self._build_metadata(predictor)
        except ModelLoadError as e:
            self._loop.call_soon_threadsafe(self._failed, str(e))
            return
        except Exception as e:
            self._loop.call_soon_threadsafe(self._failed, f"{type(e).__name__}: {e}")
            return
        self._loop.call_soon_threadsafe(self._loaded, predictor, metadata, time.perf_counter() - t0)

    def _build_metadata(self, p: Predictor) -> bytes:
        spec = p.spec
        in_shape = [-1, spec.n_features] if spec.n_features is not None else [-1]
        outputs = []
        if spec.n_features is not None and spec.dtype is not None and spec.ndim == 2:
            sample = p.predict(np.zeros((1, spec.n_features), dtype=spec.dtype), None)
            for name, arr in zip(p.output_names, sample, strict=False):
                outputs.append(oip.tensor_meta(name, arr.dtype, [-1, *arr.shape[1:]]))
        meta = {
            "name": self.name,
            "versions": [],
            "platform": p.platform,
            "inputs": [oip.tensor_meta("input-0", spec.dtype, in_shape)],
            "outputs": outputs,
        }
        return orjson.dumps(meta)

    def _loaded(self, predictor: Predictor, metadata: bytes, seconds: float) -> None:
        if not predictor.slow:
            predictor.thread_init()  # predictions run on this (the event loop's) thread
        self.predictor = predictor
        self._v1 = seldon.Encoder(predictor.class_names)
        self._v2 = oip.Encoder(self.name, predictor.output_names)
        self._metadata = metadata
        self.batcher = Batcher(
            predictor.predict,
            max_rows=self.max_batch_size,
            max_wait_s=self.max_wait_s,
            batchable=predictor.batchable,
            in_thread=predictor.slow,
            thread_init=predictor.thread_init,
            on_batch=self.metrics.batch,
        )
        self.batcher.start()
        self.metrics.flavor = predictor.flavor
        self.metrics.load_seconds = seconds
        self.metrics.ready = self.ready = True
        where = "a worker thread" if predictor.slow else "the event loop"
        log.info("model ready: flavor=%s, loaded in %.2fs, predictions on %s", predictor.flavor, seconds, where)

    def _failed(self, message: str) -> None:
        print(f"ModelLoadFailed: {message}", file=sys.stderr, flush=True)
        self.exit_code = 2
        if self.on_fatal is not None:
            self.on_fatal()
