"""Peak RSS above idle, measured in a fresh child process."""
import os
import sys
import textwrap
from pathlib import Path

import pytest

from bench.measure.memory import MeasureError, measure_peak_rss

ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _child(body: str) -> list[str]:
    code = "from bench.measure.memory import report_idle, report_payload\n" + textwrap.dedent(body)
    return [sys.executable, "-c", code]


def test_child_touching_200mb_reports_about_200mb():
    argv = _child("""
        import time
        report_idle()
        buf = bytearray(b"\\x01") * (200 * 2**20)   # written, so every page is resident
        time.sleep(0.2)                            # long enough for the sampler to see it
        report_payload({"n": len(buf), "note": "done"})
    """)
    r = measure_peak_rss(argv, env=_env(), timeout=60)
    assert r.returncode == 0
    assert r.payload == {"n": 200 * 2**20, "note": "done"}
    assert 160 <= r.peak_rss_mb <= 240, r
    assert r.hwm_mb is not None and 160 <= r.hwm_mb <= 240, r
    assert r.hwm_mb >= r.peak_rss_mb - 1e-9  # the kernel mark is never below a sample
    assert 1 < r.idle_mb < 500
    assert r.n_samples > 0
    # the whole process: its idle level (interpreter, imports) plus the work
    assert r.process_peak_mb == pytest.approx(r.idle_mb + r.hwm_mb)


def test_whole_process_peak_sees_what_idle_hides():
    # 150 MB resident before the idle line and kept (as a heavy library is): invisible above
    # idle, but a container's memory limit sees it.
    argv = _child("""
        buf = bytearray(b"\x01") * (150 * 2**20)
        report_idle()
        report_payload("done")
    """)
    r = measure_peak_rss(argv, env=_env(), timeout=60)
    assert r.peak_rss_mb < 20, r
    assert r.process_peak_mb >= 150, r


def test_child_allocating_nothing_reports_little():
    argv = _child("""
        import time
        report_idle()
        time.sleep(0.1)
        report_payload([1, 2, 3])
    """)
    r = measure_peak_rss(argv, env=_env(), timeout=60)
    assert r.payload == [1, 2, 3]
    assert r.peak_rss_mb < 20, r
    assert r.hwm_mb is None or r.hwm_mb < 20, r


def test_short_spike_is_caught_by_high_water_mark():
    # Allocated and freed between two samples at most: the sampler may miss it, the kernel
    # high-water mark must not.
    argv = _child("""
        report_idle()
        buf = bytearray(b"\\x01") * (100 * 2**20)
        del buf
        report_payload(None)
    """)
    r = measure_peak_rss(argv, env=_env(), interval=0.05, timeout=60)
    assert r.hwm_mb is not None and 70 <= r.hwm_mb <= 140, r


def test_failing_child_raises_with_stderr_tail():
    argv = _child("""
        report_idle()
        raise RuntimeError("model file is missing: /nowhere.onnx")
    """)
    with pytest.raises(MeasureError) as ei:
        measure_peak_rss(argv, env=_env(), timeout=60)
    assert "model file is missing" in str(ei.value)
    assert "exited with code 1" in str(ei.value)


def test_protocol_violations_raise():
    with pytest.raises(MeasureError, match="BENCH_IDLE_RSS"):
        measure_peak_rss([sys.executable, "-c", "print('hello')"], timeout=60)
    with pytest.raises(MeasureError, match="BENCH_PAYLOAD"):
        measure_peak_rss(_child("report_idle()"), env=_env(), timeout=60)


def test_timeout_kills_child():
    argv = _child("""
        import time
        report_idle()
        time.sleep(30)
    """)
    with pytest.raises(MeasureError, match="timed out"):
        measure_peak_rss(argv, env=_env(), timeout=1.0)


def test_chatty_child_does_not_block_on_pipes():
    argv = _child("""
        import sys
        report_idle()
        for i in range(20000):
            print("noise line", i)
            sys.stderr.write("err line %d\\n" % i)
        report_payload({"ok": True})
    """)
    r = measure_peak_rss(argv, env=_env(), timeout=60)
    assert r.payload == {"ok": True}
    assert "err line 19999" in r.stderr_tail


def test_the_measured_child_keeps_the_runs_pythonpath(monkeypatch, tmp_path):
    # packages installed with pip --target reach the parent through PYTHONPATH; the child needs them too
    from bench.paths import REPO_ROOT
    from bench.trackers import child_pythonpath

    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    assert child_pythonpath().split(os.pathsep) == [str(REPO_ROOT), str(tmp_path)]
    monkeypatch.delenv("PYTHONPATH")
    assert child_pythonpath() == str(REPO_ROOT)


def test_the_onnx_memory_child_holds_only_what_a_deployment_holds():
    """The whole-process figure is what a deployment's container sees: the ONNX child must not
    carry the harness's own libraries (torch, or OpenSSL through hashlib: 4 MB resident), nor
    what only building needs (subprocess, tempfile and shutil: 1.5 MB), once the search's
    compiled loops are built (here, by this process)."""
    from bench.runtime.native import kernels_status

    kernels_status()
    code = textwrap.dedent("""
        from importlib import import_module
        from bench.families import get_family
        for family, task in (("speech2text", "asr"), ("speech2text", "st"), ("text2speech", "tts")):
            for module in get_family(family).runtime_imports("onnx", task):
                import_module(module)
        import bench.artifacts, bench.measure.child, bench.measure.memory, bench.runtime.load
        from bench.runtime.native import kernels_status
        kernels_status()
    """)
    held = _held_after(code, ("torch", "hashlib", "_hashlib", "espnet2", "onnx", "subprocess",
                              "tempfile", "shutil"))
    assert held == "", f"the ONNX memory child imports {held}"


def test_the_pytorch_memory_child_does_not_hold_onnxruntime():
    """And the other way: PyTorch's whole-process figure must not carry onnxruntime (12 MB)
    through the harness's PyTorch runtimes. torch and ESPnet themselves are left out here
    (slow to import); they import no onnxruntime either."""
    code = textwrap.dedent("""
        import bench.artifacts, bench.families.speech2text, bench.families.text2speech
        import bench.measure.child, bench.measure.memory, bench.runtime.load
        import bench.runtime.torch_asr, bench.runtime.torch_streaming, bench.runtime.torch_tts
    """)
    held = _held_after(code, ("onnxruntime", "onnx"))
    assert held == "", f"the PyTorch memory child imports {held}"


def _held_after(code: str, modules: tuple[str, ...]) -> str:
    """Which of ``modules`` a fresh interpreter holds after running ``code``, comma-separated."""
    import subprocess

    probe = code + f"\nimport sys\nprint(','.join(m for m in {modules!r} if m in sys.modules))\n"
    # as in a benchmark run: the unit tests' BENCH_TYPEGUARD=0 makes every process import
    # typeguard (and with it asyncio, subprocess, tempfile), which a measured child does not
    env = {k: v for k, v in _env().items() if k != "BENCH_TYPEGUARD"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_a_case_reads_memory_as_the_median_of_fresh_children(monkeypatch):
    """One child is one draw from glibc's spread (one in six read 15% high on the paper card):
    the case keeps each figure's median over its children and records every child's."""
    from bench import trackers
    from bench.measure.memory import MemoryResult

    peaks = iter([(130.0, 176.0), (160.0, 206.0), (126.0, 172.0)])  # above idle, whole process

    def child(*args, **kwargs):
        above, whole = next(peaks)
        return MemoryResult(peak_rss_mb=above, hwm_mb=above, idle_mb=46.0, process_peak_mb=whole,
                            payload={"torch_imported": False}, returncode=0, stderr_tail="")

    monkeypatch.setattr(trackers, "measure_child_memory", child)
    memory = trackers.track_memory(Path("art"), None, "onnx-int8", "cpu", 2, [], children=3)
    case = {"metrics": {}, "settings": {}}
    memory.record(case)
    assert case["metrics"] == {"peak_rss_mb": 130.0, "process_peak_mb": 176.0}
    assert case["settings"]["memory"]["runs"] == {"process_peak_mb": [176.0, 206.0, 172.0],
                                                  "peak_rss_mb": [130.0, 160.0, 126.0]}
    assert case["settings"]["memory"]["children"] == 3
