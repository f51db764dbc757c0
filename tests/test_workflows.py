"""The GitHub Actions definitions parse and wire the jobs the way the harness expects."""
import subprocess
import sys
from pathlib import Path

import yaml

WORKFLOWS = Path(__file__).resolve().parent.parent / ".github" / "workflows"


def load(name):
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(doc.get("jobs"), dict) and doc["jobs"], name
    for job_name, job in doc["jobs"].items():
        assert "runs-on" in job and job.get("steps"), f"{name}: job {job_name}"
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), f"{name}: {job_name}: {step}"
    return doc


def runs(job):
    return "\n".join(s.get("run", "") for s in job["steps"])


def test_pull_request_workflow_runs_tests_and_smoke_suite():
    doc = load("pull-request.yml")
    assert "pull_request" in doc[True]  # YAML 1.1 reads the key `on` as True
    text = runs(doc["jobs"]["tests"])
    assert "./run tests" in text and "./run bench --tier smoke" in text
    # the verdict that holds on a hosted runner: the change against its merge base, side by side
    assert "python -m bench compare --base \"$(git merge-base HEAD origin/" in text
    assert doc["jobs"]["tests"]["steps"][0]["with"]["fetch-depth"] == 0


def test_nightly_workflow_matrix_history_and_merged_report():
    doc = load("nightly.yml")
    assert "schedule" in doc[True]
    jobs = doc["jobs"]
    bench = jobs["bench"]
    assert bench["strategy"]["fail-fast"] is False
    rows = {r["name"]: r for r in bench["strategy"]["matrix"]["include"]}
    assert set(rows) == {"cpu-x86-avx512", "cpu-arm64", "gpu"}
    assert "arm" in rows["cpu-arm64"]["runs-on"] and "self-hosted" in rows["gpu"]["runs-on"]
    assert rows["gpu"]["device"] == "cuda" and rows["gpu"]["gpu"] == "1"  # else no CUDA provider
    step = next(s for s in bench["steps"] if "nightly-bench" in s.get("run", ""))
    assert step["env"]["BENCH_GPU"] == "${{ matrix.gpu }}" and "matrix.device" in step["run"]
    assert any(s.get("with", {}).get("ref") == "bench-history" for s in bench["steps"])
    assert any("upload-artifact" in s.get("uses", "") for s in bench["steps"])
    # the studies run on the CPU runners, into the uploaded reports/
    for name in ("int8", "size"):
        study = next(s for s in bench["steps"] if f"bench study {name}" in s.get("run", ""))
        assert "matrix.device == 'cpu'" in study["if"] and "--out reports/" in study["run"]
    names = [s.get("name", "") for s in bench["steps"]]
    assert names.index(study["name"]) < next(i for i, s in enumerate(bench["steps"])
                                              if "upload-artifact" in s.get("uses", ""))
    # the recipe coverage table: its own job, its table uploaded
    recipes = runs(jobs["recipes"])
    assert "python -m bench recipes ../shared/espnet-recipes --out reports/recipes" in recipes
    assert any("upload-artifact" in s.get("uses", "") for s in jobs["recipes"]["steps"])
    report = jobs["report"]
    assert report["needs"] == ["bench"] and report["if"] == "always()"
    text = runs(report)
    assert "append-history" in text and "python -m bench report" in text
    assert "find nightly history" in text and "git push origin HEAD:bench-history" in text
    script = (WORKFLOWS.parent.parent / ".ci" / "nightly-bench").read_text()
    assert "--against" in script and "baselines/$class.json" in script


def test_append_history_keeps_complete_runs_once(tmp_path):
    """Runs are appended per class and never overwritten; an interrupted run is not history."""
    import json

    def run(root, run_id, cls, partial, wer):
        d = root / "results-x" / "runs" / run_id
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(
            {"run": {"id": run_id, "machine": {"class": cls}, "partial": partial}, "wer": wer}))

    dl, hist = tmp_path / "dl", tmp_path / "history"
    run(dl, "r1", "cpu-a", False, 1)
    run(dl, "r2", "cpu-a", True, 2)
    run(dl, "r3", "cpu-b", False, 3)
    script = str(WORKFLOWS.parent.parent / ".ci" / "append-history")
    subprocess.run([script, str(dl), str(hist)], check=True)
    found = sorted(str(p.relative_to(hist)) for p in hist.rglob("results.json"))
    assert found == ["cpu-a/r1/results.json", "cpu-b/r3/results.json"]
    (dl / "results-x" / "runs" / "r1" / "results.json").write_text("changed")
    subprocess.run([script, str(dl), str(hist)], check=True)
    assert json.loads((hist / "cpu-a" / "r1" / "results.json").read_text())["wer"] == 1


def test_report_job_needs_no_torch():
    """The merge job installs only pandas, pyyaml, numpy, psutil and matplotlib: `bench report`
    must not pull in torch, espnet, onnxruntime or the metric libraries, and must find what
    it does import in the job's install line."""
    code = ("import sys, bench.__main__, bench.report.html, bench.results; "
            "bad = [m for m in ('torch', 'espnet', 'espnet2', 'onnxruntime', 'jiwer', 'sacrebleu') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    jobs = load("nightly.yml")["jobs"]
    for package in ("pandas", "matplotlib"):
        assert package in runs(jobs["report"]), package


def test_ci_installs_the_browser_and_requires_it():
    """A browser test that skips in CI would be a test that cannot fail."""
    ci = (WORKFLOWS.parent.parent / ".ci" / "run").read_text()
    assert ".ci/install-chromium" in ci and "BENCH_REQUIRE_CHROMIUM=1" in ci
    steps = load("pull-request.yml")["jobs"]["tests"]["steps"]
    test_step = next(s for s in steps if "./run tests" in s.get("run", ""))
    assert test_step["env"]["BENCH_REQUIRE_CHROMIUM"] == "1"
    assert any(".ci/install-chromium" in s.get("run", "") for s in steps)


def test_gpu_installs_pin_the_same_onnxruntime_as_the_project():
    """./run (BENCH_GPU=1) reads the pin from pyproject.toml; tox's bench-gpu names it: they
    must not drift apart, or the GPU runs would measure another onnxruntime."""
    import re

    root = WORKFLOWS.parent.parent
    pin = re.search(r'"onnxruntime==([0-9.]+)"', (root / "pyproject.toml").read_text()).group(1)
    # [cuda,cudnn]: the CUDA 12 libraries it was built for; torch's CUDA 13 ones do not serve it
    assert f"onnxruntime-gpu[cuda,cudnn]=={pin}" in (root / "tox.ini").read_text()
    run = (root / "run").read_text()
    assert 'BENCH_GPU' in run and 'onnxruntime-gpu[cuda,cudnn]==$ort' in run
