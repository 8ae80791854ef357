"""Replica log files: ``<data_dir>/logs/<deployment>/<replica>.log`` plus one rotated ``.log.1``.

The replica writes straight into its file (opened O_APPEND), so its output survives a control-plane
crash and an adopted replica keeps logging without us. Rotation is copy-truncate, done by the
supervisor: once the live file passes half of ``max_bytes`` it is copied to ``.log.1`` (only its newest
half after a burst) and truncated, so one replica keeps at most about ``max_bytes`` on disk. Lines
written between the copy and the truncate can be lost: the price of not sitting in the output path.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path

_BLOCK = 64 * 1024
_FOLLOW_CHUNK = 1024 * 1024
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # no separators, never "." or ".."
_NAME = re.compile(r"^(?P<deployment>.+)-g(?P<version>\d+)-r(?P<index>\d+)$")
VERSIONS_KEPT = 3  # logs of replicas that are gone are kept for the newest versions only


def _order(name: str) -> tuple[int, int, str]:
    m = _NAME.match(name)
    return (int(m["version"]), int(m["index"]), name) if m else (0, 0, name)


def belongs_to(deployment_id: str, replica: str) -> bool:
    m = _NAME.match(replica)
    return m is not None and m["deployment"] == deployment_id


class LogStore:
    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max(int(max_bytes), 2 * _BLOCK)
        # Rotations done by this process (the only writer of rotations for this data dir):
        # path -> (how many, offset in the old file where the copy in .1 starts).
        self._rotations: dict[Path, tuple[int, int]] = {}
        self._rotation_lock = threading.Lock()

    def folder(self, deployment_id: str) -> Path:
        """Raises ValueError for an ID that could leave the logs folder (``..``, ``a/b``)."""
        if not _DEPLOYMENT.match(deployment_id):
            raise ValueError(f"invalid deployment id {deployment_id!r}")
        return self.root / deployment_id

    def path(self, deployment_id: str, replica: str) -> Path:
        return self.folder(deployment_id) / f"{replica}.log"

    def open_for_replica(self, deployment_id: str, replica: str) -> int:
        """An O_APPEND descriptor for the child's stdout and stderr (the caller closes it)."""
        path = self.path(deployment_id, replica)
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def mark(self, deployment_id: str, replica: str, text: str) -> None:
        fd = self.open_for_replica(deployment_id, replica)
        try:
            os.write(fd, f"--- modeldeck: {text} ---\n".encode())
        finally:
            os.close(fd)

    def rotate_if_needed(self, deployment_id: str, replica: str) -> bool:
        path = self.path(deployment_id, replica)
        half = self.max_bytes // 2
        with self._rotation_lock:
            try:
                size = path.stat().st_size
                if size <= half:
                    return False
                # After a burst between two checks only the newest half is kept, so the cap holds.
                start = 0 if size - half <= _BLOCK else size - half
                rotated = path.with_name(path.name + ".1")
                with path.open("rb") as src, rotated.with_name(rotated.name + ".tmp").open("wb") as dst:
                    src.seek(start)
                    shutil.copyfileobj(src, dst)
                os.replace(dst.name, rotated)
                os.truncate(path, 0)
            except FileNotFoundError:
                return False
            count, _ = self._rotations.get(path, (0, 0))
            self._rotations[path] = (count + 1, start)
        return True

    def replicas(self, deployment_id: str) -> list[str]:
        if not _DEPLOYMENT.match(deployment_id):
            return []
        folder = self.root / deployment_id
        try:
            names = {p.name.removesuffix(".log.1").removesuffix(".log") for p in folder.iterdir()}
        except FileNotFoundError:
            return []
        return sorted((n for n in names if belongs_to(deployment_id, n)), key=_order)

    def tail(self, deployment_id: str, replica: str, lines: int) -> list[str]:
        if lines <= 0:
            return []
        path = self.path(deployment_id, replica)
        found = _tail(path, lines)
        if len(found) < lines:
            found = _tail(path.with_name(path.name + ".1"), lines - len(found)) + found
        return [raw.decode("utf-8", "replace") for raw in found]

    def read(self, deployment_id: str, *, replica: str | None, tail: int) -> str:
        """One replica's last ``tail`` lines; merged: each replica's last ``tail`` lines, ``[name] ``-prefixed,
        replicas in (version, index) order (as ``kubectl logs --prefix --tail`` does for a selector)."""
        if not _DEPLOYMENT.match(deployment_id):
            return ""
        if replica is not None:
            if not belongs_to(deployment_id, replica):
                return ""
            return "".join(line + "\n" for line in self.tail(deployment_id, replica, tail))
        return "".join(
            f"[{name}] {line}\n"
            for name in self.replicas(deployment_id)
            for line in self.tail(deployment_id, name, tail)
        )

    def follow(self, deployment_id: str, *, replica: str | None, poll_s: float = 0.25) -> AsyncIterator[str]:
        """New lines from now on (positions are taken at the call, not at the first iteration)."""
        names = self.replicas(deployment_id) if replica is None else [replica]
        if not _DEPLOYMENT.match(deployment_id) or not all(belongs_to(deployment_id, n) for n in names):
            names = []  # _follow ends at once
        with self._rotation_lock:
            start = {name: self._position(self.path(deployment_id, name)) for name in names}
        return self._follow(deployment_id, replica, start, poll_s)

    def _position(self, path: Path) -> tuple[int, int]:
        return _size(path), self._rotations.get(path, (0, 0))[0]

    async def _follow(
        self, deployment_id: str, replica: str | None, positions: dict[str, tuple[int, int]], poll_s: float
    ) -> AsyncIterator[str]:
        if not _DEPLOYMENT.match(deployment_id) or (replica is not None and not belongs_to(deployment_id, replica)):
            return
        folder = self.root / deployment_id
        seen_folder = folder.exists()
        partial: dict[str, bytes] = {}
        while True:
            if folder.exists():
                seen_folder = True
            elif seen_folder:
                return  # the deployment's logs were removed: it was deleted
            for name in [replica] if replica is not None else self.replicas(deployment_id):
                path = self.path(deployment_id, name)
                with self._rotation_lock:  # short reads; a rotation cannot run in between
                    if name not in positions:
                        positions[name] = (0, self._rotations.get(path, (0, 0))[0])
                    data, positions[name] = self._read_new(path, *positions[name])
                if not data:
                    continue
                *complete, rest = (partial.pop(name, b"") + data).split(b"\n")
                if rest:
                    partial[name] = rest
                prefix = "" if replica is not None else f"[{name}] "
                for raw in complete:
                    yield f"{prefix}{raw.decode('utf-8', 'replace')}\n"
            await asyncio.sleep(poll_s)

    def _read_new(self, path: Path, offset: int, seen: int) -> tuple[bytes, tuple[int, int]]:
        count, start = self._rotations.get(path, (0, 0))
        data = b""
        if count == seen + 1:  # rotated since the last read: finish the rotated copy first
            data = _read_range(path.with_name(path.name + ".1"), max(0, offset - start), _FOLLOW_CHUNK)
            offset = 0
        elif count != seen:
            data = b"--- modeldeck: the log rotated more than once between two reads; lines skipped ---\n"
            offset = 0
        size = _size(path)
        if size < offset:  # truncated by someone else
            offset = 0
        if size > offset:
            if size - offset > _FOLLOW_CHUNK:
                data += f"--- modeldeck: {size - offset - _FOLLOW_CHUNK} bytes skipped ---\n".encode()
                offset = size - _FOLLOW_CHUNK
            chunk = _read_range(path, offset, size - offset)
            data += chunk
            offset += len(chunk)
        return data, (offset, count)

    def prune(self, deployment_id: str, live: set[str]) -> None:
        """Drop logs of replicas that are gone, except those of the newest VERSIONS_KEPT versions."""
        names = self.replicas(deployment_id)
        versions = sorted({_order(n)[0] for n in names}, reverse=True)[:VERSIONS_KEPT]
        for name in names:
            if name not in live and _order(name)[0] not in versions:
                path = self.path(deployment_id, name)
                for p in (path, path.with_name(path.name + ".1")):
                    p.unlink(missing_ok=True)

    def remove(self, deployment_id: str) -> None:
        if _DEPLOYMENT.match(deployment_id):
            shutil.rmtree(self.root / deployment_id, ignore_errors=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_range(path: Path, offset: int, length: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(length)
    except FileNotFoundError:
        return b""


def _tail(path: Path, lines: int) -> list[bytes]:
    """The last ``lines`` lines, reading backwards block by block (a 5 MB file is not read for 100 lines)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return []
    with f:
        end = f.seek(0, os.SEEK_END)
        pos, buf = end, b""
        while pos > 0 and buf.count(b"\n") <= lines:
            step = min(_BLOCK, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
    found = buf.split(b"\n")
    if found and found[-1] == b"":
        found.pop()
    if pos > 0 and found:
        found = found[1:]  # the first piece may be the end of a longer line
    return found[-lines:]
