"""A run of the suites: the results document, the gate, and what is written at the end.

Each run writes into reports/runs/<run id>/ first; the top-level results.json,
utterances.jsonl and report.html are then replaced atomically. An interrupted run
leaves the previous top-level files as they were.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.baseline import (BaselineError, baseline_from_results, baseline_path, gate_case,
                            load_baselines, update_baselines)
from bench.cases import BenchSession, run_case
from bench.fingerprint import library_versions, machine_class, machine_fingerprint
from bench.lock import lock_status
from bench.paths import REPO_ROOT, baselines_dir, reports_dir
from bench.results import add_case, append_utterances_jsonl, load_results, new_run, write_json_atomic
from bench.runtime.native import kernels_status

LIBRARIES = ("torch", "torchaudio", "espnet", "onnx", "onnxruntime", "onnxruntime-gpu",
             "numpy", "jiwer", "sacrebleu", "espeakng-loader")


class RegressionFailure(AssertionError):
    """A gate said fail: the figures regressed against the baseline."""


class CaseError(RuntimeError):
    """The case could not run: a harness or input error, not a regression."""


def _split_paths(value) -> list[str]:
    """--bench-against takes results files and folders (each folder: its results.json files)."""
    out: list[str] = []
    for part in (value or "").split(","):
        p = Path(part.strip()) if part.strip() else None
        if p is None:
            continue
        out += [str(f) for f in sorted(p.rglob("results.json"))] if p.is_dir() else [str(p)]
    return out


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip() or None
    except Exception:
        return None


@dataclass
class SuiteRun:
    session: BenchSession
    out_dir: Path
    baselines: Path
    update: bool
    against: list[str] = field(default_factory=list)
    doc: dict = field(default_factory=dict)
    baseline_doc: dict | None = None

    @classmethod
    def from_pytest_config(cls, config) -> "SuiteRun":
        opt = config.getoption
        threads = opt("--bench-threads") or len(os.sched_getaffinity(0))
        out = Path(opt("--bench-out")) if opt("--bench-out") else reports_dir()
        run = cls(BenchSession(threads=threads, fast=opt("--bench-fast"), data_dir=opt("--bench-data"),
                               server_streams=opt("--bench-server") or 0),
                  out, baselines_dir(), opt("--update-baselines"), _split_paths(opt("--bench-against")))
        fp = machine_fingerprint()
        fp["class"] = machine_class(fp)
        run.doc = new_run(fp, library_versions(LIBRARIES), git_commit())
        run.doc["run"]["threads"] = threads
        import onnxruntime

        run.doc["run"]["ort_providers"] = onnxruntime.get_available_providers()
        run.doc["run"]["fast"] = run.session.fast
        run.doc["run"]["data_dir"] = run.session.data_dir  # None: each card's own data
        run.doc["run"]["lock"] = lock_status()  # which requirements.lock, and what differs
        # built here once, before the cases' processes look for it
        run.doc["run"]["search_kernels"] = kernels = kernels_status()
        if not kernels.startswith("compiled"):
            print(f"bench: the beam search's loops run in {kernels}; the ONNX ASR cases decode "
                  "slower than with the compiled ones (README: C compiler)", file=sys.stderr)
        # A broken baseline file must stop the run before hours of measuring, with its name.
        run.baseline_doc = run.load_bar(fp["class"])
        return run

    def load_bar(self, machine_class: str) -> dict | None:
        """What the cases are gated against: earlier results documents (--against), else the
        class's committed baseline file, else nothing (every case new)."""
        if self.against:
            docs = [load_results(p) for p in self.against]
            return baseline_from_results(docs, machine_class)
        path = baseline_path(self.baselines, machine_class)
        return load_baselines(path) if path.exists() else None

    def measure(self, card, variant: str, device: str) -> dict:
        """Run one case and gate it. Called from a fixture: a harness error is a pytest ERROR."""
        case = run_case(self.session, card, variant, device)
        if case["status"] == "ok":
            noisy = case.get("too_noisy")
            case["gate"] = {"verdict": "invalid", "reasons": [noisy]} if noisy else \
                gate_case(case, self.baseline_doc, self.doc["run"]["machine"]["class"],
                          host=self.doc["run"]["machine"].get("host"))
        add_case(self.doc, case)
        if case["status"] == "skipped":
            pytest.skip(case["error"])
        if case["status"] == "error":
            raise CaseError(case["error"])
        return case

    def conclude(self, benchmark, case: dict) -> None:
        """The body of every suite's test: hand the figures to pytest-benchmark, then gate."""
        self.record_benchmark(benchmark, case)
        self.check(case)

    @staticmethod
    def record_benchmark(benchmark, case: dict) -> None:
        """Hand our measured rounds to pytest-benchmark, so `--benchmark-json` and the tools
        that read its format see this run; nothing is timed again. results.json stays the
        source of truth. Uses the fixture's stats hook (pytest-benchmark 5.x)."""
        timing = case["settings"].get("timing") or {}
        if not timing.get("round_s"):
            return
        benchmark.group = f"{case['task']}/{case['card']}/{case['device']}"
        benchmark.extra_info.update({"case": f"{case['task']}/{case['card']}/{case['variant']}/"
                                             f"{case['device']}",
                                     "timed_region": "one round = the timed subset, end to end "
                                                     "(wave in, text out; TTS: phonemes in, wave out)",
                                     "metrics": case["metrics"], "gate": case["gate"]})
        stats = benchmark._make_stats(1)
        for seconds in timing["round_s"]:
            stats.update(seconds)

    @staticmethod
    def check(case: dict) -> None:
        """The test body: a regression is a pytest FAILURE; too noisy to decide, a skip."""
        verdict = case["gate"]["verdict"]
        if verdict == "invalid":
            pytest.skip("INVALID (too noisy to decide): " + "; ".join(case["gate"]["reasons"]))
        if verdict == "fail":
            raise RegressionFailure("; ".join(case["gate"]["reasons"]))

    def finish(self, interrupted: bool = False) -> None:
        if not self.doc.get("cases"):
            return
        from bench.report.html import render_report_files

        run_dir = self.out_dir / "runs" / self.doc["run"]["id"]
        run_dir.mkdir(parents=True, exist_ok=True)
        self.doc["run"]["partial"] = interrupted
        write_json_atomic(run_dir / "results.json", self.doc)
        append_utterances_jsonl(run_dir / "utterances.jsonl", self.session.utterances)
        render_report_files([run_dir / "results.json"], run_dir / "report.html", self.baselines)
        if interrupted:
            # the last complete run's files stay where release decisions read them
            print(f"\ninterrupted: partial results kept apart in {run_dir}")
            return
        for name in ("results.json", "utterances.jsonl", "report.html"):
            tmp = self.out_dir / f".{name}.tmp"
            shutil.copyfile(run_dir / name, tmp)
            os.replace(tmp, self.out_dir / name)
        print(f"\nresults: {self.out_dir / 'results.json'}\nreport:  {self.out_dir / 'report.html'}")
        strays = (self.doc["run"].get("lock") or {}).get("differs")
        if strays:  # figures from another environment than the baselines' lock: say so up front
            print(f"environment differs from requirements.lock in {len(strays)} package(s): "
                  + ", ".join(f"{n} {d['installed']} (locked {d['locked']})" for n, d in strays.items()))
        if self.update:
            try:
                path = update_baselines(self.doc, self.baselines, allow_skipped=True)
                print(f"baselines updated: {path}")
            except BaselineError as e:
                print(f"baselines NOT updated: {e}")
