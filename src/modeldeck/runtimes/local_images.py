"""Which images the local runtime can run, and the command line each one becomes."""

from __future__ import annotations

import os
import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

# Prepackaged image name -> model server flavor; any tag or digest runs the same local entry point.
PREPACKAGED = {
    "modeldeck/sklearn-server": "sklearn",
    "modeldeck/xgboost-server": "xgboost",
    "modeldeck/lightgbm-server": "lightgbm",
    "modeldeck/onnx-server": "onnx",
    "modeldeck/mlflow-server": "mlflow",
    "modeldeck/python-server": "python",
}
PLACEHOLDERS = frozenset({"port", "host", "model_uri", "model_dir", "name", "replica"})


def image_name(image: str) -> str:
    """``registry:5000/a/b:tag@sha256:...`` -> ``registry:5000/a/b`` (the tag's colon follows the last slash)."""
    ref = image.strip().split("@", 1)[0]
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    return ref[:colon] if colon > slash else ref


@dataclass(frozen=True)
class CommandContext:
    port: int
    host: str
    model_uri: str | None
    name: str  # the deployment id: the model's name in /v2/models/{name}
    replica: str
    workdir: Path


class ImageCommands:
    """Prepackaged images map to ``python -m modeldeck.serving``; ``image_commands`` adds admin mappings.

    A mapping key is an exact reference (``acme/scorer:2``) or a name without tag (``acme/scorer``); the
    exact reference wins. Values are argv templates using the placeholders in ``PLACEHOLDERS``.
    """

    def __init__(
        self,
        mappings: Mapping[str, Sequence[str]],
        *,
        model_roots: Sequence[Path] = (),
        cache_dir: Path | None = None,
    ) -> None:
        for image, argv in mappings.items():
            _check_template(image, argv)
        self._mappings = {k.strip(): tuple(v) for k, v in mappings.items()}
        self._model_roots = tuple(model_roots)
        self._cache_dir = cache_dir

    def _mapping(self, image: str) -> tuple[str, ...] | None:
        ref = image.strip()
        return self._mappings.get(ref) or self._mappings.get(image_name(ref))

    def validate(self, image: str) -> str | None:
        if image_name(image) in PREPACKAGED or self._mapping(image) is not None:
            return None
        message = (
            f"the local runtime cannot run image {image!r}; it runs the prepackaged model servers "
            f"{', '.join(PREPACKAGED)} (any tag)"
        )
        if self._mappings:
            message += f" and the images mapped to local commands: {', '.join(sorted(self._mappings))}"
        return message + (
            "; other images need the Kubernetes runtime, or an administrator can map them to a local "
            "command (setting image_commands)"
        )

    def needs_model_uri(self, image: str) -> bool:
        return self._mapping(image) is None and image_name(image) in PREPACKAGED

    def argv(self, image: str, ctx: CommandContext) -> list[str]:
        template = self._mapping(image)
        if template is not None:
            values = {
                "port": str(ctx.port),
                "host": ctx.host,
                "model_uri": ctx.model_uri or "",
                "model_dir": str(_model_dir(ctx.model_uri) or ctx.workdir),
                "name": ctx.name,
                "replica": ctx.replica,
            }
            return [part.format_map(values) for part in template]
        flavor = PREPACKAGED[image_name(image)]
        argv = [sys.executable, "-m", "modeldeck.serving", "--model-uri", ctx.model_uri or "",
                "--port", str(ctx.port), "--name", ctx.name, "--host", ctx.host, "--flavor", flavor]
        if self._model_roots:
            argv += ["--model-roots", os.pathsep.join(str(p) for p in self._model_roots)]
        if self._cache_dir is not None:
            argv += ["--cache-dir", str(self._cache_dir)]
        return argv


def _model_dir(model_uri: str | None) -> Path | None:
    if not model_uri:
        return None
    parsed = urlparse(model_uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(model_uri)
    return None


def _check_template(image: str, argv: Sequence[str]) -> None:
    if isinstance(argv, str) or not argv:
        raise ValueError(f"image_commands[{image!r}] must be a non-empty list of arguments")
    for part in argv:
        for _text, field, _spec, _conv in string.Formatter().parse(part):
            if field is not None and field not in PLACEHOLDERS:
                raise ValueError(
                    f"image_commands[{image!r}]: unknown placeholder {{{field}}}; "
                    f"use {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}"
                )
