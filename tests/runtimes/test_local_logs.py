"""LogStore on real files: tail from the end, rotation, following across a copy-truncate, pruning."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from modeldeck.runtimes.local_logs import LogStore, belongs_to


def write(store: LogStore, replica: str, lines: list[str], deployment: str = "dep") -> None:
    fd = store.open_for_replica(deployment, replica)
    try:
        os.write(fd, "".join(line + "\n" for line in lines).encode())
    finally:
        os.close(fd)


def test_tail_reads_the_end_and_continues_into_the_rotated_file(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=1 << 20)
    write(store, "dep-g1-r0", [f"old {i}" for i in range(5)])
    path = store.path("dep", "dep-g1-r0")
    os.replace(path, path.with_name(path.name + ".1"))
    write(store, "dep-g1-r0", [f"line {i} " + "y" * 200 for i in range(5000)])  # ~1 MB, many blocks
    assert store.tail("dep", "dep-g1-r0", 3) == [f"line {i} " + "y" * 200 for i in (4997, 4998, 4999)]
    both = store.tail("dep", "dep-g1-r0", 5002)
    assert len(both) == 5002 and both[:3] == ["old 3", "old 4", "line 0 " + "y" * 200]
    assert store.tail("dep", "dep-g1-r0", 0) == []
    assert store.tail("dep", "dep-g9-r9", 10) == []


def test_partial_last_line_and_invalid_utf8(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=1 << 20)
    fd = store.open_for_replica("dep", "dep-g1-r0")
    os.write(fd, b"one\ntwo \xff\nthree without newline")
    os.close(fd)
    assert store.read("dep", replica="dep-g1-r0", tail=2) == "two \ufffd\nthree without newline\n"


def test_merged_view_orders_replicas_by_version_and_index(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=1 << 20)
    for name in ("dep-g10-r0", "dep-g9-r1", "dep-g9-r0"):
        write(store, name, [f"{name} a", f"{name} b"])
    assert store.replicas("dep") == ["dep-g9-r0", "dep-g9-r1", "dep-g10-r0"]
    merged = store.read("dep", replica=None, tail=1).splitlines()
    assert merged == ["[dep-g9-r0] dep-g9-r0 b", "[dep-g9-r1] dep-g9-r1 b", "[dep-g10-r0] dep-g10-r0 b"]


def test_replica_names_cannot_leave_their_deployment(tmp_path: Path) -> None:
    assert belongs_to("dep", "dep-g1-r0")
    assert not belongs_to("dep", "dep-x-g1-r0")
    assert not belongs_to("dep", "../other/other-g1-r0")
    assert not belongs_to("dep", "dep-g1-r0/../../x")
    store = LogStore(tmp_path, max_bytes=1 << 20)
    write(store, "other-g1-r0", ["secret"], deployment="other")
    assert store.read("dep", replica="../other/other-g1-r0", tail=10) == ""


def test_rotation_keeps_the_cap(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=200_000)
    write(store, "dep-g1-r0", ["x" * 99] * 900)  # 90 KB: under half the cap
    assert not store.rotate_if_needed("dep", "dep-g1-r0")
    write(store, "dep-g1-r0", ["z" * 99] * 3000)  # a burst far over the cap
    assert store.rotate_if_needed("dep", "dep-g1-r0")
    path = store.path("dep", "dep-g1-r0")
    assert path.stat().st_size == 0 and path.with_name(path.name + ".1").stat().st_size <= 100_000
    assert store.tail("dep", "dep-g1-r0", 1) == ["z" * 99]


def test_follow_yields_new_lines_across_a_rotation(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=200_000)
    write(store, "dep-g1-r0", ["before"])

    async def scenario() -> list[str]:
        stream = store.follow("dep", replica="dep-g1-r0", poll_s=0.02)
        write(store, "dep-g1-r0", ["after 1"])
        got = [await anext(stream)]
        write(store, "dep-g1-r0", ["p" * 120] * 900)  # past half the cap...
        write(store, "dep-g1-r0", ["just before rotation"])
        assert store.rotate_if_needed("dep", "dep-g1-r0")  # ...rotated before the follower read it
        write(store, "dep-g1-r0", ["after rotation"])
        async for line in stream:
            got.append(line)
            if line.startswith("after rotation"):
                break
        await stream.aclose()  # type: ignore[attr-defined]
        return got

    got = asyncio.run(asyncio.wait_for(scenario(), timeout=10))
    assert got[0] == "after 1\n" and got[-2:] == ["just before rotation\n", "after rotation\n"]
    assert len(got) == 903


def test_follow_merged_picks_up_new_replicas_and_ends_when_removed(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=1 << 20)

    async def scenario() -> list[str]:
        stream = store.follow("dep", replica=None, poll_s=0.02)  # before any replica exists
        got: list[str] = []

        async def produce() -> None:
            await asyncio.sleep(0.1)
            write(store, "dep-g1-r0", ["first"])
            await asyncio.sleep(0.1)
            write(store, "dep-g2-r0", ["second"])
            await asyncio.sleep(0.1)
            store.remove("dep")

        task = asyncio.create_task(produce())
        async for line in stream:
            got.append(line)
        await task
        return got

    assert asyncio.run(asyncio.wait_for(scenario(), timeout=10)) == ["[dep-g1-r0] first\n", "[dep-g2-r0] second\n"]


def test_prune_keeps_live_replicas_and_the_newest_versions(tmp_path: Path) -> None:
    store = LogStore(tmp_path, max_bytes=1 << 20)
    for version in range(1, 6):
        write(store, f"dep-g{version}-r0", ["x"])
    store.prune("dep", live={"dep-g1-r0"})
    assert store.replicas("dep") == ["dep-g1-r0", "dep-g3-r0", "dep-g4-r0", "dep-g5-r0"]


def test_deployment_ids_cannot_leave_the_logs_folder(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "logs", max_bytes=1 << 20)
    (tmp_path / "keep.txt").write_text("precious")
    for bad in ("..", ".", "a/b", "../logs", ""):
        store.remove(bad)
        assert store.read(bad, replica=None, tail=10) == ""
        assert store.replicas(bad) == []
    assert (tmp_path / "keep.txt").read_text() == "precious"

    async def drain() -> list[str]:
        return [line async for line in store.follow("..", replica="..-g1-r0", poll_s=0.01)]

    assert asyncio.run(asyncio.wait_for(drain(), timeout=5)) == []
