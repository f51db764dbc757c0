"""Per-process GPU memory from NVML: the measured child's own figure, not the device's."""
import sys
from types import SimpleNamespace

from bench.measure.gpu_memory import GpuMemorySampler


class FakeNvml:
    """Two GPUs; the lists of compute processes change from one sample to the next."""

    def __init__(self, timeline):
        self.timeline = timeline  # per sample: {device: [(pid, bytes)]}
        self.i = -1

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        if h == 0:
            self.i += 1
        return [SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in self.timeline[self.i].get(h, [])]


MB = 2 ** 20


def test_peak_is_the_pids_own_memory_summed_over_devices():
    nvml = FakeNvml([
        {0: [(42, 100 * MB), (7, 5000 * MB)]},                 # another process: not ours
        {0: [(42, 300 * MB)], 1: [(42, 50 * MB), (7, 10 * MB)]},  # ours on two devices: 350
        {0: [(42, 120 * MB)]},
        {0: [(42, None)]},                                     # hidden by the driver: 0
    ])
    s = GpuMemorySampler(nvml)
    assert s.available and s.reason is None
    for _ in range(4):
        s.sample(42)
    assert s.peak_mb == 350


def test_a_pid_not_on_the_gpu_holds_nothing():
    s = GpuMemorySampler(FakeNvml([{0: [(7, 10 * MB)]}]))
    s.sample(42)
    assert s.peak_mb == 0


def test_no_nvml_is_a_reason_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    s = GpuMemorySampler()
    assert not s.available and s.peak_mb is None
    assert "NVML unavailable" in s.reason
    s.sample(1)  # does nothing, raises nothing
    assert s.peak_mb is None


def test_child_measurement_on_a_machine_without_gpu_says_why(monkeypatch):
    import os

    from bench.measure.memory import measure_peak_rss
    from bench.paths import REPO_ROOT

    monkeypatch.setitem(sys.modules, "pynvml", None)
    code = "from bench.measure.memory import report_idle, report_payload; report_idle(); report_payload({})"
    r = measure_peak_rss([sys.executable, "-c", code], gpu=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert r.peak_gpu_mb is None and "NVML unavailable" in r.gpu_note
