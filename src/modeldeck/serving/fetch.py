"""Model URI → local file or folder.

`file://` and plain paths are used in place (checked against the model roots when roots are set);
`http(s)://` is downloaded with the standard library; `models:/` goes through MLflow; any other scheme
(`s3://`, `gs://`, ...) through fsspec. Downloads land in `<cache>/<sha256(uri)[:16]>/` under a file
lock (several workers may start at once), archives (.tar, .tar.gz, .tgz, .zip) are unpacked, and a
completed download is reused by the next start.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Sequence
from pathlib import Path

from .flavors.base import ModelLoadError

HTTP_TIMEOUT_S = 60
_DONE = ".modeldeck-complete"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modeldeck" / "models"


def parse_roots(value: str | None) -> list[Path]:
    return [Path(p) for p in (value or "").split(os.pathsep) if p.strip()]


def fetch(uri: str, cache_dir: Path, model_roots: Sequence[Path] = ()) -> Path:
    """Return a local path for `uri`, downloading when needed. Raises ModelLoadError with a clear message."""
    uri = uri.strip()
    if not uri:
        raise ModelLoadError("empty model URI")
    parsed = urllib.parse.urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("", "file"):
        host = "" if parsed.netloc == "localhost" else parsed.netloc
        raw = urllib.parse.unquote(host + parsed.path) if scheme == "file" else uri
        return local_path(Path(raw), model_roots)
    if scheme not in ("http", "https", "models") and len(scheme) == 1:  # a Windows drive letter
        return local_path(Path(uri), model_roots)
    target = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelLoadError(f"cannot create the model cache {cache_dir}: {e}") from e
    with (cache_dir / f"{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / _DONE).exists():
            return _result(target)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        try:
            if scheme in ("http", "https"):
                _download_http(uri, target)
            elif scheme == "models":
                _download_mlflow(uri, target)
            else:
                _download_fsspec(uri, scheme, target)
            _unpack_archives(target)
        except ModelLoadError:
            shutil.rmtree(target, ignore_errors=True)
            raise
        except Exception as e:
            shutil.rmtree(target, ignore_errors=True)
            raise ModelLoadError(f"cannot download {uri}: {type(e).__name__}: {e}") from e
        (target / _DONE).touch()
    return _result(target)


def local_path(path: Path, model_roots: Sequence[Path]) -> Path:
    real = Path(os.path.realpath(path))
    if model_roots:
        roots = [Path(os.path.realpath(r)) for r in model_roots]
        if not any(real == r or real.is_relative_to(r) for r in roots):
            allowed = os.pathsep.join(str(r) for r in roots)
            raise ModelLoadError(f"model path {path} is outside the allowed model roots ({allowed})")
    if not real.exists():
        raise ModelLoadError(f"model path {path} does not exist")
    if not os.access(real, os.R_OK | (os.X_OK if real.is_dir() else 0)):
        raise ModelLoadError(f"model path {path} is not readable")
    return real


def _result(target: Path) -> Path:
    entries = [p for p in target.iterdir() if p.name != _DONE]
    return entries[0] if len(entries) == 1 and entries[0].is_file() else target


def _download_http(uri: str, target: Path) -> None:
    name = Path(urllib.parse.urlparse(uri).path).name or "model"
    tmp = target / f".{name}.part"
    try:
        with urllib.request.urlopen(uri, timeout=HTTP_TIMEOUT_S) as resp, tmp.open("wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except urllib.error.HTTPError as e:
        raise ModelLoadError(f"cannot download {uri}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise ModelLoadError(f"cannot download {uri}: {getattr(e, 'reason', e)}") from e
    tmp.rename(target / name)


def _download_mlflow(uri: str, target: Path) -> None:
    try:
        import mlflow.artifacts
    except ImportError as e:
        raise ModelLoadError(f"models:/ URIs need the optional extra modeldeck[mlflow] ({e})") from e
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target))
    except Exception as e:
        raise ModelLoadError(f"MLflow cannot download {uri}: {type(e).__name__}: {e}") from e


def _download_fsspec(uri: str, scheme: str, target: Path) -> None:
    try:
        import fsspec
    except ImportError as e:
        raise ModelLoadError(f"{scheme}:// URIs need the optional extra modeldeck[remote] (fsspec)") from e
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as e:
        raise ModelLoadError(f"{scheme}:// URIs need an fsspec backend (s3fs, gcsfs, ...): {e}") from e
    if not fs.exists(path):
        raise ModelLoadError(f"{uri} does not exist")
    if fs.isdir(path):
        fs.get(path.rstrip("/") + "/", str(target) + "/", recursive=True)
    else:
        fs.get(path, str(target / Path(path).name))


def _unpack_archives(target: Path) -> None:
    files = [p for p in target.iterdir() if p.is_file()]
    if len(files) != 1:
        return
    f = files[0]
    name = f.name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        with tarfile.open(f) as tar:
            tar.extractall(target, filter="data")
    elif name.endswith(".zip"):
        with zipfile.ZipFile(f) as z:
            for member in z.namelist():
                dest = (target / member).resolve()
                if not dest.is_relative_to(target.resolve()):
                    raise ModelLoadError(f"{f.name} holds a path outside the archive: {member}")
            z.extractall(target)
    else:
        return
    f.unlink()
