"""What machine a run happened on, and the class its baselines are filed under.

Why a class and not the exact machine: baselines must be shared by every machine that
would give the same numbers (same ISA tier and core count), and kept apart from ones that
would not: int8 speedups differ wildly with and without VNNI/AMX.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re
from typing import Iterable

__all__ = ["machine_fingerprint", "machine_class", "host_id", "library_versions", "ISA_FLAGS"]

# The ISA flags that change ONNX Runtime's kernels; /proc/cpuinfo spells some two ways
# across kernel versions, so both spellings map to one canonical name.
ISA_FLAGS = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx512vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avxvnni": "avx_vnni",
    "amx_tile": "amx_tile",
    "amx_int8": "amx_int8",
}


def _cpuinfo() -> tuple[str | None, list[str]]:
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo", "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip().lower()
                if model is None and key in ("model name", "processor name", "cpu model"):
                    model = val.strip() or None
                elif key in ("flags", "features") and not flags:
                    flags = set(val.split())
    except OSError:
        pass
    if model is None:
        model = platform.processor() or None
    present = sorted({canon for raw, canon in ISA_FLAGS.items() if raw in flags})
    return model, present


def _gpu() -> dict | None:
    # NVML is optional: no driver, no library, no GPU all mean "no GPU", never an error.
    try:
        import pynvml
    except Exception:  # noqa: BLE001
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001
        return None
    try:
        count = pynvml.nvmlDeviceGetCount()
        if count < 1:
            return None
        h = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(h)
        driver = pynvml.nvmlSystemGetDriverVersion()
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        if isinstance(driver, bytes):
            driver = driver.decode("utf-8", "replace")
        try:
            mem_gib = round(pynvml.nvmlDeviceGetMemoryInfo(h).total / 2 ** 30, 1)
        except Exception:  # noqa: BLE001
            mem_gib = None
        return {"name": name, "driver": driver, "count": int(count), "memory_gib": mem_gib}
    except Exception:  # noqa: BLE001
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001
            pass


def _read(path: str) -> str:
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def host_id() -> str:
    """One boot of one machine, as a short hash: the VM's or board's id (DMI product UUID,
    else /etc/machine-id), the kernel's boot id and the CPU model.

    Absolute speed (RTF, latency) is gated only against runs of the same host. The boot id is
    in it because cloned VM images share a machine-id: a reboot or a new VM counts as another
    host, which only loosens the gate (never a false alarm from a different machine)."""
    import hashlib

    parts = [_read("/sys/class/dmi/id/product_uuid") or _read("/etc/machine-id"),
             _read("/proc/sys/kernel/random/boot_id"), _cpuinfo()[0] or platform.node()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def machine_fingerprint() -> dict:
    """CPU model, ISA flags, cores, memory and GPU of this machine. Never raises."""
    model, isa = _cpuinfo()
    physical = None
    mem_gib = None
    try:
        import psutil
        physical = psutil.cpu_count(logical=False)
        mem_gib = round(psutil.virtual_memory().total / 2 ** 30, 1)
    except Exception:  # noqa: BLE001
        pass
    fp = {
        "arch": platform.machine().lower() or "unknown",
        "cpu": model,
        "isa": isa,
        "cores": os.cpu_count(),
        "physical_cores": physical,
        "memory_gib": mem_gib,
        "gpu": _gpu(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "host": host_id(),
    }
    # Threads actually usable can be fewer than cores (cgroup / taskset).
    try:
        fp["usable_cores"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        fp["usable_cores"] = fp["cores"]
    return fp


def _isa_tier(isa: Iterable[str]) -> str:
    s = set(isa)
    if s & {"amx_tile", "amx_int8"}:
        return "amx"
    if "avx512_vnni" in s:
        return "avx512vnni"
    if "avx512f" in s:
        return "avx512"
    if "avx2" in s:
        return "avx2"
    return "base"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def machine_class(fp: dict, *, use_gpu: bool = True) -> str:
    """Baseline class, e.g. ``cpu-x86_64-avx512vnni-2c`` or ``gpu-nvidia-h100-80gb-hbm3``.

    With a GPU (and ``use_gpu``) the GPU names the class: it dominates the GPU cases.
    """
    gpu = fp.get("gpu")
    if use_gpu and gpu and gpu.get("name"):
        return f"gpu-{_slug(gpu['name'])}"
    arch = _slug(fp.get("arch") or "unknown").replace("-", "_")
    cores = fp.get("cores") or 0
    return f"cpu-{arch}-{_isa_tier(fp.get('isa') or [])}-{cores}c"


def library_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed distribution versions by name (None when not installed). Imports nothing."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out
