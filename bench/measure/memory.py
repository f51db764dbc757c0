"""Peak RSS of a variant measured in a fresh child process, above the child's idle level.

Why a child process: allocators rarely give memory back, so a peak measured in the test
process would carry every earlier variant's high-water mark. A fresh process per variant
starts clean. Why "above idle": interpreter + imports cost the same for every variant and
would hide differences between them.

Protocol (child side, see :func:`report_idle` / :func:`report_payload`): the child prints
``BENCH_IDLE_RSS <bytes>`` once it has imported what it needs and before the measured work,
and ``BENCH_PAYLOAD <json>`` at the end (preceded by ``BENCH_HWM <bytes>``, its own kernel
high-water mark). Any other stdout is ignored.
"""
from __future__ import annotations

import json
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = [
    "MeasureError", "MemoryResult", "measure_peak_rss", "report_idle", "report_payload",
    "IDLE_TAG", "PAYLOAD_TAG", "HWM_TAG",
]

MB = float(2 ** 20)
IDLE_TAG = "BENCH_IDLE_RSS"
PAYLOAD_TAG = "BENCH_PAYLOAD"
HWM_TAG = "BENCH_HWM"
_STDERR_TAIL_LINES = 40


class MeasureError(RuntimeError):
    """The measured child failed or broke the protocol; the message carries its stderr tail."""


@dataclass
class MemoryResult:
    peak_rss_mb: float          # sampled peak RSS minus idle
    hwm_mb: float | None        # kernel high-water mark minus idle (None if unreadable)
    idle_mb: float
    process_peak_mb: float      # the whole process's peak from its start: what a memory limit sees
    payload: Any
    returncode: int
    stderr_tail: str
    n_samples: int = 0
    wall_s: float = 0.0
    peak_gpu_mb: float | None = None  # the child's own GPU memory from NVML (gpu=True)
    gpu_note: str | None = None       # why there is no GPU figure


# ---------------------------------------------------------------- child side

def _read_status_kb(pid: int | str, key: str) -> int | None:
    """A ``kB`` field of /proc/<pid>/status, in bytes; None when absent (non-Linux, zombie)."""
    try:
        with open(f"/proc/{pid}/status", "r", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _self_hwm_bytes() -> int | None:
    # VmHWM belongs to the current address space only. ru_maxrss is the fallback: on Linux it
    # can include the parent's RSS at fork time (the pre-exec address space counts), so it
    # may overstate a small child started by a big parent.
    hwm = _read_status_kb("self", "VmHWM")
    if hwm is not None:
        return hwm
    try:
        import resource
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024
    except Exception:  # noqa: BLE001 - a missing figure must not fail the child
        return None


def report_idle() -> int:
    """Child side: print the current RSS as the idle level. Call after imports, before work.
    Read from /proc, not psutil: the child holds what a deployment holds, not the harness's
    measuring side (psutil is 2 MB of every child's whole-process figure)."""
    rss = _read_status_kb("self", "VmRSS")
    if rss is None:  # not Linux
        import psutil

        rss = psutil.Process().memory_info().rss
    sys.stdout.write(f"{IDLE_TAG} {rss}\n")
    sys.stdout.flush()
    return rss


def report_payload(obj: Any) -> None:
    """Child side: print the kernel high-water mark and the JSON payload. Call at the very end."""
    hwm = _self_hwm_bytes()
    if hwm is not None:
        sys.stdout.write(f"{HWM_TAG} {hwm}\n")
    sys.stdout.write(f"{PAYLOAD_TAG} {json.dumps(obj)}\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- parent side

def _drain(stream, sink) -> None:
    # Pipes are read in threads so a chatty child can never block on a full pipe
    # while the parent is busy sampling.
    for line in iter(stream.readline, ""):
        sink.append(line)
    stream.close()


def measure_peak_rss(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    interval: float = 0.005,
    timeout: float | None = None,
    cwd: str | None = None,
    gpu: bool = False,
) -> MemoryResult:
    """Run ``argv`` in a fresh process and measure its peak RSS above its reported idle level.

    Two figures: ``peak_rss_mb`` from sampling the child's RSS every ``interval`` seconds
    (can miss a spike shorter than the interval) and ``hwm_mb`` from the kernel's high-water
    mark (exact, Linux only): the larger of VmHWM read by the parent while sampling and the
    one the child reports in ``BENCH_HWM``. Both are over the child's whole life, imports
    included, minus idle. ``process_peak_mb`` is the same peak without subtracting idle: the
    interpreter, the runtime libraries, the model and the work, as a container's limit counts
    them (the kernel mark where readable, else the sampled peak). With ``gpu``, also the child's peak GPU memory as NVML lists it
    for that process (sampled every 10th interval: NVML's process list is slower to read).
    """
    # here, not at the top: the child imports this module to report, and must hold only what
    # a deployment holds (psutil, subprocess and threading belong to the measuring side)
    import subprocess
    import threading

    import psutil

    gpu_sampler = None
    if gpu:
        from bench.measure.gpu_memory import GpuMemorySampler

        gpu_sampler = GpuMemorySampler()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=None if env is None else dict(env), cwd=cwd,
        encoding="utf-8", errors="replace",
    )
    out_lines: list[str] = []
    err_lines: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
    readers = [threading.Thread(target=_drain, args=(proc.stdout, out_lines), daemon=True),
               threading.Thread(target=_drain, args=(proc.stderr, err_lines), daemon=True)]
    for t in readers:
        t.start()

    peak_rss = 0
    parent_hwm: int | None = None
    n_samples = 0
    timed_out = False
    try:
        ps = psutil.Process(proc.pid)
    except psutil.Error:
        ps = None
    try:
        while proc.poll() is None:
            if timeout is not None and time.perf_counter() - t0 > timeout:
                timed_out = True
                proc.kill()
                break
            if ps is not None:
                try:
                    rss = ps.memory_info().rss
                    n_samples += 1
                    peak_rss = max(peak_rss, rss)
                except psutil.Error:
                    pass  # exiting between poll() and the sample
            hwm = _read_status_kb(proc.pid, "VmHWM")
            if hwm is not None:
                parent_hwm = hwm if parent_hwm is None else max(parent_hwm, hwm)
            if gpu_sampler is not None and n_samples % 10 == 1:
                gpu_sampler.sample(proc.pid)
            time.sleep(interval)
    except BaseException:  # interrupted: the child must not outlive the run
        proc.kill()
        proc.wait()
        raise
    finally:
        if gpu_sampler is not None:
            gpu_sampler.close()
    proc.wait()
    for t in readers:
        t.join(timeout=5.0)
    wall_s = time.perf_counter() - t0
    stderr_tail = "".join(err_lines)[-4000:]

    if timed_out:
        raise MeasureError(f"{argv!r} timed out after {timeout} s; stderr tail:\n{stderr_tail}")
    if proc.returncode != 0:
        raise MeasureError(
            f"{argv!r} exited with code {proc.returncode}; stderr tail:\n{stderr_tail}")

    idle = child_hwm = None
    payload_line = None
    for line in out_lines:
        tag, _, rest = line.rstrip("\n").partition(" ")
        if tag == IDLE_TAG and idle is None:
            idle = int(rest)
        elif tag == HWM_TAG:
            child_hwm = int(rest)
        elif tag == PAYLOAD_TAG:
            payload_line = rest  # the last one wins
    if idle is None:
        raise MeasureError(f"{argv!r} printed no '{IDLE_TAG} <bytes>' line; "
                           f"stderr tail:\n{stderr_tail}")
    if payload_line is None:
        raise MeasureError(f"{argv!r} printed no '{PAYLOAD_TAG} <json>' line; "
                           f"stderr tail:\n{stderr_tail}")
    try:
        payload = json.loads(payload_line)
    except json.JSONDecodeError as e:
        raise MeasureError(f"{argv!r} printed an unreadable payload ({e}): "
                           f"{payload_line[:200]!r}") from e

    # The idle line itself is a sample the parent may have missed (very short children).
    peak_rss = max(peak_rss, idle)
    hwms = [h for h in (parent_hwm, child_hwm) if h is not None]
    hwm_bytes = max(hwms) if hwms else None
    if hwm_bytes is not None:
        # The kernel mark can never be below what we sampled; keep the two consistent.
        hwm_bytes = max(hwm_bytes, peak_rss)
    return MemoryResult(
        peak_rss_mb=(peak_rss - idle) / MB,
        hwm_mb=None if hwm_bytes is None else (hwm_bytes - idle) / MB,
        idle_mb=idle / MB,
        process_peak_mb=(peak_rss if hwm_bytes is None else hwm_bytes) / MB,
        payload=payload,
        returncode=proc.returncode,
        stderr_tail=stderr_tail,
        n_samples=n_samples,
        wall_s=wall_s,
        peak_gpu_mb=None if gpu_sampler is None else gpu_sampler.peak_mb,
        gpu_note=None if gpu_sampler is None else gpu_sampler.reason,
    )
