"""Results documents for the report tests: nights of one machine class, another class, logs."""
from __future__ import annotations

import json
from pathlib import Path

from bench import results as R

CLASS_A = "cpu-x86_64-avx512vnni-2c"
CLASS_B = "cpu-x86_64-avx2-8c"
LIBS = {"torch": "2.11.0", "onnxruntime": "1.23.2", "espnet": "202511"}

# (task, card, quality metric and its PyTorch value)
CARDS = [("asr", "asr-tiny", "wer", 6.7), ("st", "st-tiny", "bleu", 76.0),
         ("tts", "tts-tiny", "tts_distance", 0.0)]
VARIANTS = [("pytorch", None), ("onnx", 2.9), ("onnx-fused", 3.0), ("onnx-int8", 3.3)]


def run_doc(machine_class: str, day: int, *, libs=None, speedup_scale: float = 1.0,
            fail: str | None = None, partial: bool = False) -> dict:
    """One night's run: every card x variant, figures drifting a little with ``day``."""
    doc = R.new_run({"class": machine_class, "cpu": "Test CPU", "cores": 2, "gpu": None},
                    libs or LIBS, f"c0ffee{day:02d}")
    doc["run"]["started"] = f"2026-11-{day:02d}T02:00:00Z"
    doc["run"]["id"] = f"202611{day:02d}T020000Z-{machine_class[-3:]}"
    doc["run"]["threads"] = 2
    doc["run"]["partial"] = partial
    for task, card, q, q0 in CARDS:
        for variant, s in VARIANTS:
            c = R.make_case(task, card, variant, "cpu")
            m = c["metrics"]
            rtf0 = 0.05
            if s is not None:
                s = s * speedup_scale * (1 + 0.01 * (day % 3))
                m.update(speedup=s, speedup_ci95=[0.95 * s, 1.05 * s])
            m.update(rtf=rtf0 / (s or 1), rtfx=(s or 1) / rtf0, peak_rss_mb=400.0 / (s or 1), process_peak_mb=1000.0 / (s or 1),
                     model_mb=30.0, agreement_ter=0.0 if variant != "onnx-int8" else 0.4,
                     latency_ms={"p50": 100 / (s or 1), "p90": 150 / (s or 1), "p99": 180 / (s or 1)})
            m[q] = q0 + (0.2 if variant == "onnx-int8" else 0.0)
            if s is not None:  # ONNX variants have a roofline, the PyTorch reference none
                m.update(gops_per_s=20.0 * s, peak_percent=4.0 * s)
                c["settings"]["roofline"] = {"peaks": {"fp32_gflops": 150.0, "int8_gops": 700.0,
                                                       "n": 1024, "runs": 20, "threads": 2}}
            verdict, reasons = "pass", []
            if fail == f"{task}/{card}/{variant}":
                verdict, reasons = "fail", [f"speedup fell: [{0.5:.2f}, {0.6:.2f}] < 2.61"]
            c["gate"] = {"verdict": verdict, "reasons": reasons}
            R.add_case(doc, c)
    return doc


def write_run(folder: Path, doc: dict, with_log: bool = True) -> Path:
    """A run folder as `bench run` leaves it: results.json and utterances.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    R.write_json_atomic(folder / "results.json", doc)
    if with_log:
        for c in doc["cases"]:
            base = (c["metrics"]["latency_ms"]["p50"] or 100) / 1000
            R.append_utterances_jsonl(folder / "utterances.jsonl",
                                      [{"id": f"u{i}", "seconds": base * (0.5 + i / 10)}
                                       for i in range(12)], case=c)
    return folder / "results.json"


def nights(root: Path, *, fail_latest: str | None = None) -> list[Path]:
    """Three nights of class A (the last with ``fail_latest`` failing), one of class B."""
    paths = [write_run(root / f"a{d}", run_doc(CLASS_A, d)) for d in (19, 20)]
    paths.append(write_run(root / "a21", run_doc(CLASS_A, 21, fail=fail_latest,
                                                  libs={**LIBS, "onnxruntime": "1.24.0"})))
    paths.append(write_run(root / "b21", run_doc(CLASS_B, 21, speedup_scale=1.4)))
    return paths


def truncated(path: Path, source: Path) -> Path:
    text = source.read_text()
    path.write_text(text[: len(text) // 2])
    return path


def other_schema(path: Path, source: Path) -> Path:
    doc = json.loads(source.read_text())
    doc["schema"] = "bench-results/99"  # a newer harness's
    path.write_text(json.dumps(doc))
    return path
