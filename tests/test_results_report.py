"""Results documents (schema, atomic writes, utterance logs); the markdown tables.

The HTML report has its own tests: test_report.py, test_report_browser.py."""
import json
import os
import re

import numpy as np
import pytest

from bench import results as R

MACHINE = {"class": "cpu-x86_64-avx512vnni-2c", "cpu": "Test CPU", "cores": 2, "gpu": None,
           "isa": ["avx2", "avx512f"]}


def _doc():
    return R.new_run(MACHINE, {"onnxruntime": "1.23.2", "torch": None}, "deadbeef")


def _ok_case(variant="onnx", card="asr-tiny", verdict="pass", reasons=()):
    c = R.make_case("asr", card, variant, "cpu")
    c["metrics"].update(rtf=0.05, rtfx=20.0, speedup=2.0, speedup_ci95=[1.8, 2.2],
                        latency_ms={"p50": 140.0, "p90": 210.0, "p99": 260.0},
                        wer=4.1, cer=1.9, agreement_ter=0.3, peak_rss_mb=410.0, model_mb=31.0)
    c["gate"] = {"verdict": verdict, "reasons": list(reasons)}
    return c


def test_new_run_and_make_case_shape():
    doc = _doc()
    assert doc["schema"] == "bench-results/2"
    run = doc["run"]
    assert run["git_commit"] == "deadbeef" and run["machine"]["class"] == MACHINE["class"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run["started"])
    assert run["id"] and doc["cases"] == []
    c = R.make_case("asr", "asr-tiny", "onnx-int8", "cpu")
    assert c["status"] == "ok" and c["error"] is None
    assert set(R.METRIC_KEYS) <= set(c["metrics"])
    assert c["metrics"]["latency_ms"] == {"p50": None, "p90": None, "p99": None}
    assert all(v is None for k, v in c["metrics"].items() if k != "latency_ms")
    assert R.case_key(c) == "asr/asr-tiny/onnx-int8/cpu"
    R.validate_results({**doc, "cases": [c]})


def test_new_run_fills_class_from_fingerprint():
    doc = R.new_run({"arch": "x86_64", "isa": ["avx2"], "cores": 4, "gpu": None}, {}, None)
    assert doc["run"]["machine"]["class"] == "cpu-x86_64-avx2-4c"


def test_add_case_replaces_same_key():
    doc = _doc()
    R.add_case(doc, _ok_case())
    c2 = _ok_case()
    c2["metrics"]["wer"] = 9.0
    R.add_case(doc, c2)
    R.add_case(doc, _ok_case(variant="onnx-int8"))
    assert [c["metrics"]["wer"] for c in doc["cases"]] == [9.0, 4.1]


def test_write_atomic_and_load_roundtrip(tmp_path):
    doc = _doc()
    c = _ok_case()
    c["metrics"]["rtf"] = np.float32(0.25)          # numpy scalars are written as numbers
    c["metrics"]["speedup_ci95"] = np.array([1.5, 2.5])
    c["metrics"]["bleu"] = float("nan")             # NaN is not JSON: written as null
    R.add_case(doc, c)
    path = tmp_path / "sub" / "results.json"
    R.write_json_atomic(path, doc)
    back = R.load_results(path)
    m = back["cases"][0]["metrics"]
    assert m["rtf"] == 0.25 and m["speedup_ci95"] == [1.5, 2.5] and m["bleu"] is None
    assert os.listdir(path.parent) == ["results.json"]


def test_write_atomic_failure_keeps_old_file(tmp_path):
    path = tmp_path / "r.json"
    R.write_json_atomic(path, {"a": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError):
        R.write_json_atomic(path, {"a": object()})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["r.json"]


def test_load_results_errors_name_file_and_field(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("[")
    with pytest.raises(R.ResultsError, match="bad.json: not valid JSON"):
        R.load_results(p)
    doc = _doc()
    doc["schema"] = "bench-results/0"
    p.write_text(json.dumps(doc))
    with pytest.raises(R.ResultsError, match="bad.json: schema"):
        R.load_results(p)
    doc = _doc()
    c = _ok_case()
    c["status"] = "done"
    doc["cases"] = [c]
    p.write_text(json.dumps(doc))
    with pytest.raises(R.ResultsError, match=r"bad.json: cases\[0\] \(asr/asr-tiny/onnx/cpu\).status"):
        R.load_results(p)
    c["status"] = "ok"
    c["metrics"]["wer"] = "low"
    p.write_text(json.dumps(doc))
    with pytest.raises(R.ResultsError, match=r"metrics.wer"):
        R.load_results(p)
    del doc["run"]["machine"]["class"]
    p.write_text(json.dumps(doc))
    with pytest.raises(R.ResultsError, match=r"run.machine.class"):
        R.load_results(p)


def test_append_utterances_jsonl(tmp_path):
    p = tmp_path / "utt.jsonl"
    case = R.make_case("asr", "asr-tiny", "onnx", "cpu")
    n = R.append_utterances_jsonl(p, [{"id": "u1", "duration": 1.5, "seconds": 0.1,
                                       "hypothesis": "héllo", "reference": "hello"}], case=case)
    R.append_utterances_jsonl(p, [{"id": "u2", "seconds": np.float64(0.2)}])
    assert n == 1
    lines = [json.loads(l) for l in p.read_text(encoding="utf-8").splitlines()]
    assert lines[0] == {"task": "asr", "card": "asr-tiny", "variant": "onnx", "device": "cpu",
                        "id": "u1", "duration": 1.5, "seconds": 0.1,
                        "hypothesis": "héllo", "reference": "hello"}
    assert lines[1] == {"id": "u2", "seconds": 0.2}


def test_harness_modules_never_import_torch():
    # These modules run in measurement children that must stay torch-free.
    import subprocess
    import sys
    code = ("import sys\n"
            "import bench.measure.stats, bench.measure.timing, bench.measure.memory\n"
            "import bench.fingerprint, bench.results, bench.baseline, bench.report.html\n"
            "bench.fingerprint.machine_fingerprint()\n"
            "bad = [m for m in ('torch', 'espnet', 'onnxruntime') if m in sys.modules]\n"
            "assert not bad, bad\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_speedup_table_puts_each_variant_beside_the_papers_figure():
    from bench.report.table import speedup_table

    doc = R.new_run({"class": "cpu-test"}, {}, "abc1234")
    for task, card, variant, s in [("st", "st-x", "pytorch", None), ("st", "st-x", "onnx", 2.2),
                                   ("tts", "tts-y", "onnx", 1.05), ("tts", "tts-y", "onnx-int8", 0.9)]:
        c = R.make_case(task, card, variant, "cpu")
        c["metrics"]["speedup"], c["metrics"]["speedup_ci95"] = s, [s - 0.1, s + 0.1] if s else None
        R.add_case(doc, c)
    lines = speedup_table([doc]).splitlines()
    assert lines[0] == "| task | card | onnx | onnx-int8 | paper (CPU) |"
    assert lines[2] == "| st | st-x | 2.20 [2.10, 2.30] | - | about 2x |"
    assert lines[3] == "| tts | tts-y | 1.05 [0.95, 1.15] | 0.90 [0.80, 1.00] | 1.3x |"


def test_tables_tell_a_runs_cuda_cases_from_its_cpu_cases():
    from bench.report.table import markdown_table, speedup_table

    doc = R.new_run({"class": "gpu-test"}, {}, "abc1234")
    for variant, device, s, gpu in [("pytorch", "cuda", None, 782.0), ("onnx-fused", "cuda", 1.6, 300.0),
                                    ("pytorch", "cpu", None, None), ("onnx-fused", "cpu", 4.7, None)]:
        c = R.make_case("asr", "asr-x", variant, device)
        c["metrics"].update(speedup=s, speedup_ci95=[s - 0.1, s + 0.1] if s else None,
                            process_peak_mb=2048.0, peak_gpu_mb=gpu)
        c["status"] = "ok"
        R.add_case(doc, c)
    lines = speedup_table([doc]).splitlines()
    assert lines[0] == "| task | card | onnx-fused (cuda) | onnx-fused | paper (CPU) |"
    assert lines[2].startswith("| asr | asr-x | 1.60 [1.50, 1.70] | 4.70 [4.60, 4.80] |")
    table = markdown_table(doc)
    assert "| asr-x | pytorch (cuda) | reference |" in table and "| 2048 + GPU 782 |" in table
    assert "| asr-x | pytorch | reference |" in table


def test_memory_table_says_how_far_below_pytorch_each_figure_lies():
    from bench.report.table import memory_table

    doc = R.new_run({"class": "cpu-test"}, {}, "abc1234")
    for variant, whole, work in [("pytorch", 1200.0, 400.0), ("onnx-int8", 181.0, 140.0)]:
        c = R.make_case("asr", "asr-x", variant, "cpu")
        c["metrics"].update(process_peak_mb=whole, peak_rss_mb=work)
        if variant == "onnx-int8":
            c["settings"]["memory"] = {"runs": {"process_peak_mb": [176.0, 180.0, 206.0]}}
        R.add_case(doc, c)
    lines = memory_table([doc]).splitlines()
    assert lines[2] == "| asr-x | pytorch | 1200 | 0.0% | 400 | 0.0% | - |"
    # 84.9% is not 85%: a target is never met by rounding
    assert lines[3] == "| asr-x | onnx-int8 | 181 | 84.9% | 140 | 65.0% | 176, 180, 206 |"


def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path):
    # mkstemp's 0600 would leave reports unreadable to the CI user that uploads or serves them
    umask = os.umask(0o022)
    try:
        path = R.write_text_atomic(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def _v1_file(tmp_path):
    """A bench-results/1 document as the harness wrote them before schema 2: the re-measure
    and too-noisy flags in the case's settings, one case without an identity."""
    doc = _doc()
    noisy, plain = _ok_case("onnx"), _ok_case("onnx-int8")
    for c in (noisy, plain):
        del c["remeasured"], c["too_noisy"]
    del plain["identity"]
    noisy["settings"] = {"threads": 2, "remeasured": {"first_ci95": [0.9, 2.9]},
                         "too_noisy": "speedup interval [0.80, 3.10] is wider than 0.5 x ..."}
    noisy["gate"] = {"verdict": "invalid", "reasons": [noisy["settings"]["too_noisy"]]}
    doc["schema"] = "bench-results/1"
    doc["cases"] = [noisy, plain]
    p = tmp_path / "v1.json"
    p.write_text(json.dumps(doc))
    return p


def test_an_older_schema_is_migrated_when_read(tmp_path):
    doc = R.load_results(_v1_file(tmp_path))
    assert doc["schema"] == R.SCHEMA == "bench-results/2"
    noisy, plain = doc["cases"]
    assert noisy["too_noisy"].startswith("speedup interval [0.80, 3.10]")
    assert noisy["remeasured"] == {"first_ci95": [0.9, 2.9]}
    assert noisy["settings"] == {"threads": 2}  # moved, not copied
    assert plain["too_noisy"] is None and plain["remeasured"] is None and plain["identity"] is None
    assert noisy["gate"]["verdict"] == "invalid"


def test_the_report_reads_an_older_results_file(tmp_path):
    from bench.report.inputs import load_inputs

    runs, left = load_inputs([_v1_file(tmp_path)])
    assert not left and len(runs) == 1 and runs[0].doc["cases"][0]["too_noisy"]


def test_a_newer_schema_is_refused_with_what_this_harness_reads(tmp_path):
    doc = _doc()
    doc["schema"] = "bench-results/7"
    p = tmp_path / "new.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(R.ResultsError, match=r"new.json: schema: .*bench-results/1, bench-results/2; "
                                             r"a newer schema needs a newer harness"):
        R.load_results(p)
