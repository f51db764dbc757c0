"""The main job end to end through `python -m bench run`, on the smallest card.

Checks the documents a release decision reads, and that the gate fails a regression:
a baseline whose speedup the run cannot reach makes the case fail with a message that
names the metric, the baseline, the measured value and the tolerance.
"""
import json
import os
import subprocess
import sys

import pytest

from bench.identity import baseline_key
from bench.results import load_results

# the smoke card is exported once per test session, into the shared cache
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("in_shared_cache")]


def bench_run(tmp_path, *extra, pytest_args=()):
    env = dict(os.environ, BENCH_BASELINES=str(tmp_path / "baselines"))
    cmd = [sys.executable, "-m", "bench", "run", "--fast", "--card", "asr-conformer-smoke",
           "--variant", "pytorch,onnx", "--threads", "1", "--out", str(tmp_path / "reports"), *extra,
           "--", *pytest_args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def test_run_writes_results_report_and_gates(tmp_path):
    first = bench_run(tmp_path, pytest_args=["--benchmark-json", str(tmp_path / "pb.json")])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    doc = load_results(tmp_path / "reports" / "results.json")
    assert doc["run"]["machine"]["class"]
    cases = {c["variant"]: c for c in doc["cases"]}
    assert set(cases) == {"pytorch", "onnx"}
    onnx = cases["onnx"]
    assert onnx["status"] == "ok" and onnx["gate"]["verdict"] == "new"
    m = onnx["metrics"]
    for key in ("rtf", "rtfx", "speedup", "first_call_ms", "load_ms", "peak_rss_mb",
                "process_peak_mb", "model_mb", "agreement_ter"):
        assert isinstance(m[key], float), key
    # the whole process holds at least its libraries on top of what lies above idle
    assert m["process_peak_mb"] >= m["peak_rss_mb"] + onnx["settings"]["memory"]["idle_mb"] - 1
    # random weights: not scored against the references (their WER is noise), and it says so
    assert m["wer"] is None and m["cer"] is None
    assert onnx["settings"]["references"].startswith("not scored: random weights")
    lo, hi = m["speedup_ci95"]
    assert lo <= m["speedup"] <= hi
    assert m["agreement_ter"] == 0.0
    assert onnx["settings"]["memory"]["child_torch_imported"] is False
    # the size study's figures: the PyTorch model's parameters on every case, the roofline's audio
    assert onnx["settings"]["parameters"] == cases["pytorch"]["settings"]["parameters"] > 10_000
    from bench.studies import _gflop_per_audio_second
    assert onnx["settings"]["roofline"]["audio_seconds"] > 0 and _gflop_per_audio_second(onnx) > 0
    lines = (tmp_path / "reports" / "utterances.jsonl").read_text().splitlines()
    assert len(lines) == 2 * onnx["n_utterances"]
    assert {"id", "duration", "seconds", "hypothesis", "reference"} <= set(json.loads(lines[0]))
    assert "asr-conformer-smoke" in (tmp_path / "reports" / "report.html").read_text()
    # pytest-benchmark's format, with our measured rounds and metrics
    pb = {b["extra_info"]["case"]: b for b in json.loads((tmp_path / "pb.json").read_text())["benchmarks"]}
    onnx_pb = pb["asr/asr-conformer-smoke/onnx/cpu"]
    assert onnx_pb["stats"]["rounds"] == onnx["settings"]["timing"]["rounds"]
    assert onnx_pb["extra_info"]["metrics"]["speedup"] == m["speedup"]

    # a baseline the run cannot reach: the gate must fail, naming the evidence
    base_dir = tmp_path / "baselines"
    base_dir.mkdir()
    cls = doc["run"]["machine"]["class"]
    key = baseline_key(onnx)  # what was measured: card data, decode settings, variant definition
    assert key.startswith("asr/asr-conformer-smoke/onnx/cpu@") and onnx["identity"]["data_source"] == "card"
    host = doc["run"]["machine"]["host"]
    baseline = {"schema": "bench-baseline/3", "machine_class": cls, "created_from": None,
                "tolerances": {}, "card_tolerances": {},
                "cases": {key: {"identity": onnx["identity"], "metrics": {"speedup": m["speedup"] * 100},
                                "runs": [{"run_id": "r0", "host": host, "speedup": m["speedup"] * 100}]}}}
    (base_dir / f"{cls}.json").write_text(json.dumps(baseline))
    before = (tmp_path / "reports" / "results.json").read_text()
    second = bench_run(tmp_path, "--update-baselines")
    assert second.returncode == 1  # a regression (not 3, a harness error)
    assert "speedup fell" in second.stdout and "baseline" in second.stdout
    assert "(baseline: r0; this host)" in second.stdout
    doc2 = load_results(tmp_path / "reports" / "results.json")
    failed = [c for c in doc2["cases"] if c["gate"] and c["gate"]["verdict"] == "fail"]
    assert [c["variant"] for c in failed] == ["onnx"]
    assert (tmp_path / "reports" / "results.json").read_text() != before  # a complete run
    # a failing run never rewrites the baselines
    assert json.loads((base_dir / f"{cls}.json").read_text()) == baseline


@pytest.mark.timing
def test_aa_two_runs_of_the_same_commit_pass(tmp_path):
    """A/A on the real smoke card: the second run, gated against baselines written by the
    first (full rounds, not --fast), passes."""
    def run(*extra):
        env = dict(os.environ, BENCH_BASELINES=str(tmp_path / "baselines"))
        cmd = [sys.executable, "-m", "bench", "run", "--card", "asr-conformer-smoke",
               "--variant", "pytorch,onnx", "--threads", "1", "--out", str(tmp_path / "reports"),
               *extra]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)

    first = run("--update-baselines")
    assert first.returncode == 0, first.stdout[-3000:]
    assert "baselines updated" in first.stdout, first.stdout[-2000:]
    second = run()
    doc = load_results(tmp_path / "reports" / "results.json")
    verdicts = {c["variant"]: c["gate"]["verdict"] for c in doc["cases"]}
    assert second.returncode == 0 and verdicts == {"pytorch": "pass", "onnx": "pass"}, \
        (verdicts, [c["gate"]["reasons"] for c in doc["cases"]])
    # absolute speed against one run of this host: noted, not gated (docs/gate.md, section 2)
    assert all(any("latency_p50_ms not gated: 1 baseline run(s) of this host" in n
                   for n in c["gate"]["notes"]) for c in doc["cases"]), doc["cases"][0]["gate"]
    # other speech (--data): never judged by the card's own figures; new, for its own key
    from bench.paths import shared_dir

    libri = shared_dir() / "real-speech" / "librispeech" if shared_dir() else None
    if libri is None or not libri.is_dir():
        pytest.skip("../shared/real-speech/librispeech is not present (set BENCH_SHARED)")
    data = tmp_path / "libri"
    data.mkdir()
    texts = [line.split(maxsplit=1) for line in (libri / "text").read_text().splitlines() if line.strip()]
    (data / "text").write_text("".join(f"{u} {t}\n" for u, t in texts))
    (data / "wav.scp").write_text("".join(f"{u} {libri / (u + '.flac')}\n" for u, _ in texts))
    third = run("--data", str(data), "--update-baselines", "--fast")  # verdicts, not figures
    doc = load_results(tmp_path / "reports" / "results.json")
    assert third.returncode == 0, third.stdout[-3000:]
    assert {c["variant"]: c["gate"]["verdict"] for c in doc["cases"]} == {"pytorch": "new", "onnx": "new"}
    assert all(c["identity"]["data_source"] == str(data) for c in doc["cases"])
    stored = json.loads(next((tmp_path / "baselines").glob("*.json")).read_text())["cases"]
    assert len([k for k in stored if k.startswith("asr/asr-conformer-smoke/onnx/cpu@")]) == 2


def test_gpu_run_without_a_gpu_skips_every_case_and_still_reports(tmp_path):
    """What `tox -e bench-gpu` does on a machine without CUDA: every case skipped with its
    reason (here: no CUDA provider, or no device), exit 0, results and a report written."""
    r = bench_run(tmp_path, "--device", "cuda", "--variant", "pytorch,onnx,onnx-fp16")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    doc = load_results(tmp_path / "reports" / "results.json")
    cases = doc["cases"]
    assert {c["variant"] for c in cases} == {"pytorch", "onnx", "onnx-fp16"}
    for c in cases:
        assert c["device"] == "cuda" and c["status"] == "skipped", c
        assert "CUDA" in c["error"] or "cuda" in c["error"], c
    assert (tmp_path / "reports" / "report.html").exists()


def test_fp16_named_for_cpu_is_skipped_with_its_reason(tmp_path):
    r = bench_run(tmp_path, "--variant", "onnx-fp16")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (case,) = load_results(tmp_path / "reports" / "results.json")["cases"]
    assert case["status"] == "skipped"
    assert "measured on cuda only, not on cpu" in case["error"], case
