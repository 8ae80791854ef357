"""Processes: bind the port, run uvicorn (httptools + uvloop when installed) on the app, and with
`--workers N` fork N workers that share the listening socket, supervised by the first process.

SIGTERM: stop accepting, finish in-flight requests (up to the graceful timeout), exit 0.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import threading
from collections.abc import Generator
from typing import Any

import uvicorn

from .app import ServingApp
from .config import ServeConfig
from .fetch import fetch
from .flavors import LoadOptions, Predictor, cpu_threads, load
from .metrics import Metrics, shared_block

log = logging.getLogger("modeldeck.serving")


class _Server(uvicorn.Server):
    """uvicorn's server, except that after a graceful shutdown on SIGTERM the process exits 0 (uvicorn
    re-raises the signal, which would end the process with -15)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def _loader(cfg: ServeConfig) -> Predictor:
    log.info("fetching model %s", cfg.model_uri)
    path = fetch(cfg.model_uri, cfg.cache_dir, cfg.model_roots)
    log.info("loading model from %s (flavor %s)", path, cfg.flavor)
    options = LoadOptions(method=cfg.method, threads=cpu_threads(cfg.workers), fast_paths=cfg.fast_paths)
    return load(path, cfg.flavor, options, cfg.predict_in_thread)


def run_worker(cfg: ServeConfig, sock: socket.socket, metrics: Metrics) -> int:
    server: _Server | None = None

    def stop() -> None:
        if server is not None:
            server.should_exit = True

    app = ServingApp(
        cfg.name,
        lambda: _loader(cfg),
        metrics,
        max_batch_size=cfg.max_batch_size,
        max_batch_wait_ms=cfg.max_batch_wait_ms,
        max_body_bytes=cfg.max_body_bytes,
        on_fatal=stop,
    )
    config = uvicorn.Config(
        app,
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        backlog=2048,
        timeout_graceful_shutdown=max(1, round(cfg.graceful_timeout_s)),
    )
    server = _Server(config)
    server.run(sockets=[sock])
    return app.exit_code


def _child(cfg: ServeConfig, sock: socket.socket, block: Any, index: int) -> None:
    metrics = Metrics(cfg.name, block=block, workers=cfg.workers, index=index)
    sys.exit(run_worker(cfg, sock, metrics))


def serve(cfg: ServeConfig) -> int:
    try:
        sock = bind(cfg.host, cfg.port)
    except OSError as e:
        print(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}", file=sys.stderr, flush=True)
        return 1
    log.info("listening on http://%s:%d (model %s, %d worker(s))", cfg.host, cfg.port, cfg.name, cfg.workers)
    if cfg.workers <= 1:
        return run_worker(cfg, sock, Metrics(cfg.name))
    return _supervise(cfg, sock)


def _supervise(cfg: ServeConfig, sock: socket.socket) -> int:
    block = shared_block(cfg.workers)
    ctx = multiprocessing.get_context("fork")
    procs = [
        ctx.Process(target=_child, args=(cfg, sock, block, i), name=f"model-worker-{i}") for i in range(cfg.workers)
    ]
    stopping = False

    def stop_all(sig: int = signal.SIGTERM, frame: Any = None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)

    for p in procs:
        p.start()
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    code = 0
    alive = list(procs)
    while alive:
        done = multiprocessing.connection.wait([p.sentinel for p in alive])
        for p in [p for p in alive if p.sentinel in done]:
            p.join()
            alive.remove(p)
            rc = p.exitcode or 0
            if not stopping and rc != 0:  # a worker failed on its own: the replica is unhealthy
                log.error("worker %s exited with %s; stopping the others", p.name, rc)
                code = 2 if rc == 2 else 1
                stop_all()
            elif rc not in (0, -signal.SIGTERM) and code == 0:
                code = 2 if rc == 2 else 1
    sock.close()
    return code
