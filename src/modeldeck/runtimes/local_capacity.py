"""What this machine can hold: CPU, memory and GPUs (from NVML when present), and who holds what."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

import psutil

from modeldeck.quantities import format_memory
from modeldeck.runtimes.base import Capacity, PermanentError


def detect_capacity(nvml: Nvml) -> Capacity:
    return Capacity(cpu=float(os.cpu_count() or 1), memory=int(psutil.virtual_memory().total), gpus=nvml.indices())


def human_bytes(value: int) -> str:
    exact = format_memory(value)
    if not exact.isdigit():
        return exact
    for suffix, unit in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= unit:
            return f"{value / unit:.1f}{suffix}"
    return f"{value}B"


class Nvml:
    """NVML through ``pynvml`` (nvidia-ml-py) when it imports and a driver answers; otherwise no GPUs."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self._nvml: Any = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception:  # no package, no driver, no device: a machine without GPUs
            self._nvml = None

    def indices(self) -> list[int]:
        if self._nvml is None:
            return []
        try:
            return list(range(self._nvml.nvmlDeviceGetCount()))
        except Exception:
            return []

    def usage(self, indices: Iterable[int], pids: set[int]) -> tuple[float | None, int | None]:
        """Mean utilisation (0..1) of the given GPUs and the memory ``pids`` hold on them."""
        if self._nvml is None:
            return None, None
        utils: list[float] = []
        memory = 0
        try:
            with self._lock:
                for index in indices:
                    handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
                    utils.append(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0)
                    for proc in self._nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                        if proc.pid in pids and proc.usedGpuMemory:
                            memory += int(proc.usedGpuMemory)
        except Exception:
            return None, None
        if not utils:
            return None, None
        return sum(utils) / len(utils), memory


class Ledger:
    """Requests of the replicas that exist must fit the machine; GPUs are handed out exclusively."""

    def __init__(self, capacity: Capacity, *, cpu_overcommit: float) -> None:
        self.capacity = capacity
        self.cpu_limit = capacity.cpu * max(cpu_overcommit, 1.0)

    def fit(
        self, *, cpu: float, memory: int, gpu: int, used_cpu: float, used_memory: int, used_gpus: set[int]
    ) -> tuple[int, ...]:
        """The GPU indices for a new replica; raises PermanentError(Unschedulable) when it cannot fit."""
        cap = self.capacity
        want = f"cpu {cpu:g}, memory {human_bytes(memory)}, gpu {gpu}"
        if cpu > self.cpu_limit or memory > cap.memory or gpu > len(cap.gpus):
            raise PermanentError(
                "Unschedulable",
                f"the instance type asks for {want}, more than this machine has: {cap.cpu:g} cores "
                f"({self.cpu_limit:g} schedulable with cpu_overcommit), memory {human_bytes(cap.memory)}, "
                f"{len(cap.gpus)} GPU(s)",
            )
        free_gpus = [g for g in cap.gpus if g not in used_gpus]
        if used_cpu + cpu > self.cpu_limit + 1e-9 or used_memory + memory > cap.memory or gpu > len(free_gpus):
            raise PermanentError(
                "Unschedulable",
                f"the instance type asks for {want}; free on this machine now: "
                f"cpu {max(self.cpu_limit - used_cpu, 0):g}, "
                f"memory {human_bytes(max(cap.memory - used_memory, 0))}, {len(free_gpus)} GPU(s)",
            )
        return tuple(free_gpus[:gpu])
