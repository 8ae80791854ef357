"""Model URIs to local paths: local files and model roots, HTTP downloads, archives, fsspec."""

from __future__ import annotations

import functools
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeck.serving.fetch import fetch, parse_roots
from modeldeck.serving.flavors import ModelLoadError


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_local_paths_and_file_uris(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.joblib").write_bytes(b"x")
    cache = tmp_path / "cache"
    assert fetch(str(tmp_path / "m"), cache) == tmp_path / "m"
    assert fetch(f"file://{tmp_path}/m", cache) == tmp_path / "m"
    assert fetch(f"file://{tmp_path}/m/model.joblib", cache) == tmp_path / "m" / "model.joblib"
    assert not cache.exists()  # used in place, nothing copied


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        fetch(f"file://{tmp_path}/nope", tmp_path)
    with pytest.raises(ModelLoadError, match="empty model URI"):
        fetch("  ", tmp_path)


def test_model_roots_restrict_file_uris(tmp_path: Path) -> None:
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    (allowed / "m").mkdir(parents=True)
    (other / "m").mkdir(parents=True)
    (allowed / "escape").symlink_to(other / "m")
    roots = parse_roots(f"{allowed}:{tmp_path / 'unused'}")
    assert fetch(f"file://{allowed}/m", tmp_path, roots) == allowed / "m"
    with pytest.raises(ModelLoadError, match="outside the allowed model roots"):
        fetch(f"file://{other}/m", tmp_path, roots)
    with pytest.raises(ModelLoadError, match="outside the allowed model roots"):
        fetch(f"file://{allowed}/escape", tmp_path, roots)  # a symlink out of the root
    with pytest.raises(ModelLoadError, match="outside"):
        fetch(f"file://{allowed}/../other/m", tmp_path, roots)


def test_parse_roots() -> None:
    assert parse_roots(None) == []
    assert parse_roots("/a::/b") == [Path("/a"), Path("/b")]


def test_http_download_is_cached(tmp_path: Path, http_dir: tuple[str, Path]) -> None:
    base, root = http_dir
    (root / "model.joblib").write_bytes(b"model-bytes")
    cache = tmp_path / "cache"
    got = fetch(f"{base}/model.joblib", cache)
    assert got.name == "model.joblib" and got.read_bytes() == b"model-bytes"
    (root / "model.joblib").unlink()
    assert fetch(f"{base}/model.joblib", cache) == got  # from the cache, no second download


def test_http_errors_are_clear(tmp_path: Path, http_dir: tuple[str, Path]) -> None:
    base, _ = http_dir
    with pytest.raises(ModelLoadError, match="HTTP 404"):
        fetch(f"{base}/missing.joblib", tmp_path / "cache")
    with pytest.raises(ModelLoadError, match="cannot download"):
        fetch("http://127.0.0.1:1/model.joblib", tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*/*"))  # nothing half-written left behind


def test_archives_are_unpacked(tmp_path: Path, http_dir: tuple[str, Path]) -> None:
    base, root = http_dir
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"weights"
        info = tarfile.TarInfo("model/model.joblib")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (root / "model.tar.gz").write_bytes(buf.getvalue())
    got = fetch(f"{base}/model.tar.gz", tmp_path / "cache")
    assert (got / "model" / "model.joblib").read_bytes() == b"weights"
    assert not (got / "model.tar.gz").exists()


def test_other_schemes_go_through_fsspec(tmp_path: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/model/model.onnx", b"onnx")
    fs.pipe("/bucket/model/extra.txt", b"x")
    got = fetch("memory://bucket/model", tmp_path / "cache")
    assert (got / "model.onnx").read_bytes() == b"onnx"
    with pytest.raises(ModelLoadError, match="does not exist"):
        fetch("memory://bucket/nothing", tmp_path / "cache")
    with pytest.raises(ModelLoadError, match="fsspec"):
        fetch("nosuchscheme://bucket/model", tmp_path / "cache")
