"""`python -m modeldeck.serving` / `modeldeck model-server`: serve one model over HTTP."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .config import ServeConfig
from .fetch import default_cache_dir, parse_roots
from .flavors import FLAVORS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modeldeck model-server",
        description="Serve one model: Seldon v1 (/api/v1.0/predictions) and Open Inference Protocol v2 (/v2/...).",
    )
    p.add_argument("--model-uri", required=True, help="file://, a path, http(s)://, s3://, gs://, models:/name/version")
    p.add_argument("--name", required=True, help="the model's name in /v2/models/{name} (the deployment id)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--flavor", default="auto", choices=("auto", *FLAVORS))
    p.add_argument("--workers", type=int, default=1, help="processes sharing the port (default 1)")
    p.add_argument(
        "--model-roots",
        default=None,
        help=f"{os.pathsep}-separated folders file:// URIs may read from (default: $MODELDECK_MODEL_ROOTS; unset: any)",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="where downloaded models are kept")
    p.add_argument(
        "--method",
        default=None,
        choices=("auto", "predict", "predict_proba", "decision_function"),
        help="scikit-learn method (default auto: predict_proba where the model has it; env MODELDECK_PREDICT_METHOD)",
    )
    p.add_argument("--max-batch-size", type=int, default=2048, help="rows per model call (1 turns batching off)")
    p.add_argument("--max-batch-wait-ms", type=float, default=2.0, help="longest wait for requests already arriving")
    p.add_argument("--predict-in-thread", default="auto", choices=("auto", "yes", "no"))
    p.add_argument(
        "--no-fast-paths",
        action="store_true",
        help="always call scikit-learn's own predict_proba (fast paths are verified identical at load)",
    )
    p.add_argument("--max-body-mb", type=float, default=64.0)
    p.add_argument("--graceful-timeout", type=float, default=30.0, help="seconds to finish requests on SIGTERM")
    return p


def _seldon_method() -> str | None:
    """PrimeHub/Seldon images took `method` from PREDICTIVE_UNIT_PARAMETERS; honour it."""
    raw = os.environ.get("PREDICTIVE_UNIT_PARAMETERS")
    if not raw:
        return None
    try:
        params = json.loads(raw)
    except ValueError:
        return None
    for item in params if isinstance(params, list) else []:
        if isinstance(item, dict) and item.get("name") == "method" and isinstance(item.get("value"), str):
            return str(item["value"])
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    roots = args.model_roots if args.model_roots is not None else os.environ.get("MODELDECK_MODEL_ROOTS")
    method = args.method or os.environ.get("MODELDECK_PREDICT_METHOD") or _seldon_method() or "auto"
    if args.workers < 1 or args.max_batch_size < 1 or not 0 < args.port < 65536:
        print("--workers and --max-batch-size must be >= 1, --port in 1..65535", file=sys.stderr)
        return 1
    cfg = ServeConfig(
        model_uri=args.model_uri,
        name=args.name,
        port=args.port,
        host=args.host,
        flavor=args.flavor,
        workers=args.workers,
        model_roots=tuple(parse_roots(roots)),
        cache_dir=args.cache_dir or default_cache_dir(),
        method=method,
        max_batch_size=args.max_batch_size,
        max_batch_wait_ms=max(0.0, args.max_batch_wait_ms),
        predict_in_thread=args.predict_in_thread,
        fast_paths=not args.no_fast_paths,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        graceful_timeout_s=args.graceful_timeout,
    )
    logging.getLogger("modeldeck.serving").info(
        "starting model server %s: uri=%s flavor=%s", cfg.name, cfg.model_uri, cfg.flavor
    )
    from .server import serve  # uvicorn and friends only once the arguments are good

    return serve(cfg)
