"""Peak GPU memory of one process, from NVML (the `pynvml` module of nvidia-ml-py).

Device-wide figures (nvmlDeviceGetMemoryInfo) count every process on the GPU and the
driver's own reservations, so they are not a variant's figure. NVML also lists the compute
processes of each device with the memory each one holds (its CUDA context included): that
is what is sampled here, for the measured child's pid, on every device, summed.

Without NVML (no driver, no GPU, no library) the sampler says why and reports None; it
never fails a measurement.
"""
from __future__ import annotations

MB = float(2 ** 20)


class GpuMemorySampler:
    def __init__(self, nvml=None):
        self.peak_bytes: int | None = None
        self.reason: str | None = None
        self._handles = []
        try:
            if nvml is None:
                import pynvml as nvml
            nvml.nvmlInit()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            self._nvml = nvml
            if not self._handles:
                self.reason = "NVML sees no GPU"
        except Exception as e:  # noqa: BLE001 - no NVML is a reason, not an error
            self.reason = f"NVML unavailable ({type(e).__name__}: {e})"
            self._nvml = None

    @property
    def available(self) -> bool:
        return bool(self._handles)

    def used_bytes(self, pid: int) -> int | None:
        """What ``pid`` holds now, summed over devices; None if NVML cannot tell."""
        if not self.available:
            return None
        total, seen = 0, False
        for h in self._handles:
            try:
                procs = self._nvml.nvmlDeviceGetComputeRunningProcesses(h)
            except Exception:  # noqa: BLE001 - a device that cannot list processes
                continue
            for p in procs:
                if p.pid == pid:
                    seen = True
                    # None when the driver hides it (some MIG / container setups)
                    total += p.usedGpuMemory or 0
        return total if seen else 0

    def sample(self, pid: int) -> None:
        used = self.used_bytes(pid)
        if used is not None:
            self.peak_bytes = used if self.peak_bytes is None else max(self.peak_bytes, used)

    @property
    def peak_mb(self) -> float | None:
        return None if self.peak_bytes is None else self.peak_bytes / MB

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass
            self._nvml = None
            self._handles = []
