"""The release report: verdict from the current cases, history, bad inputs, environments."""
import json
import subprocess
import sys

import pytest

from bench import results as R
from bench.baseline import update_baselines
from bench.report.frames import cases_frame, current_cases
from bench.report.html import decide, render_report, render_report_files
from bench.report.inputs import load_inputs
from report_inputs import CLASS_A, CLASS_B, nights, other_schema, run_doc, truncated, write_run


def _verdict(paths):
    runs, left = load_inputs(paths)
    return decide(current_cases(cases_frame(runs)), runs, left)


def test_all_passing_nights_are_go_with_every_section(tmp_path):
    out, left = render_report_files(nights(tmp_path), tmp_path / "report.html", tmp_path / "nobase")
    text = out.read_text(encoding="utf-8")
    assert left == []
    assert 'class="verdict go">GO<' in text and "NO-GO" not in text
    for task in ("asr", "st", "tts"):
        assert f'id="task-{task}"' in text
    # one table per task and machine class, charts as data: URIs, history for class A only
    assert text.count("Machine class " + CLASS_A) == 3 and text.count("Machine class " + CLASS_B) == 3
    assert "Runs of 2 machine classes" in text
    assert text.count('src="data:image/svg+xml;base64,') >= 3 * 2 * 4 + 3
    assert text.count(f"History on {CLASS_A}") == 3 and f"History on {CLASS_B}" not in text
    s = 2.9   # asr onnx on night 21 of class A, with its interval
    assert f"{s:.2f} [{0.95 * s:.2f}, {1.05 * s:.2f}]" in text
    assert "6.90 (Δ +0.20)" in text           # int8 WER and its delta to PyTorch
    # the roofline columns, and the peaks they were set against (none for PyTorch)
    assert "% of GEMM peak" in text and "fp32 150 GFLOP/s, int8 700 GOP/s" in text
    assert "whole process" in text or "process peak MB" in text
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_verdict_comes_from_the_latest_run_of_each_case(tmp_path):
    paths = nights(tmp_path, fail_latest="asr/asr-tiny/onnx-int8")
    verdict, why = _verdict(paths)
    assert verdict == "NO-GO" and len(why) == 1
    text, link = why[0]
    assert "asr/asr-tiny/onnx-int8/cpu" in text and "gate failed" in text and CLASS_A in text
    html = render_report_files(paths, tmp_path / "r.html", tmp_path / "nobase")[0].read_text()
    assert f'href="{link}"' in html and f'id="{link[1:]}"' in html   # linked to its evidence
    # an older night that failed is history once a newer night of the same case passed
    newer = write_run(tmp_path / "a22", run_doc(CLASS_A, 22))
    assert _verdict(paths + [newer]) == ("GO", [])


def test_errors_noise_and_interrupted_runs_are_no_go(tmp_path):
    doc = run_doc(CLASS_A, 21, partial=True)
    R.set_error(doc["cases"][1], "<script>alert('x')</script> & friends")
    doc["cases"][2]["gate"] = {"verdict": "invalid", "reasons": ["interval too wide"]}
    doc["cases"][3].update(status="partial", error="12 of 40 utterances")
    verdict, why = _verdict([write_run(tmp_path / "a", doc)])
    texts = [t for t, _ in why]
    assert verdict == "NO-GO" and len(why) == 4
    assert any("measured only in part: 12 of 40" in t for t in texts)
    assert any("could not run" in t for t in texts) and any("too noisy" in t for t in texts)
    assert any("interrupted" in t for t in texts)
    html = render_report([doc], tmp_path / "r.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html and "&amp; friends" in html


def test_no_cases_is_no_go(tmp_path):
    doc = R.new_run({"class": CLASS_A}, {}, None)
    text = render_report([doc], tmp_path / "r.html").read_text()
    assert ">NO-GO<" in text and "nothing to decide" in text


def test_bad_inputs_are_labelled_never_dropped(tmp_path):
    paths = nights(tmp_path)
    bad = [truncated(tmp_path / "trunc.json", paths[0]), other_schema(tmp_path / "v2.json", paths[1]),
           tmp_path / "missing.json", paths[2].parent]          # a run folder read again
    out, left = render_report_files(paths + bad, tmp_path / "r.html", tmp_path / "nobase")
    text = out.read_text()
    reasons = {lo.source.rsplit("/", 1)[-1]: lo for lo in left}
    assert "not valid JSON" in reasons["trunc.json"].reason
    assert "bench-results/99" in reasons["v2.json"].reason and "another version" in reasons["v2.json"].reason
    assert "cannot read" in reasons["missing.json"].reason
    assert not reasons["results.json"].missing_evidence and "counted once" in reasons["results.json"].reason
    assert '<section id="inputs"><h2>Inputs left out' in text and ">NO-GO<" in text
    for name in ("trunc.json", "v2.json", "missing.json"):
        assert name in text
    # the readable runs are all still in the report
    assert text.count("<h3 id=\"run-") == 4


def test_a_broken_utterance_log_is_noted_not_fatal(tmp_path):
    p = write_run(tmp_path / "a", run_doc(CLASS_A, 21))
    with open(p.with_name("utterances.jsonl"), "a") as f:
        f.write('{"task": "asr", "card": "asr-tiny", "variant": "onnx", "dev')
    runs, _ = load_inputs([p])
    assert len(runs[0].utterances) == 12 * 12 and "1 unreadable line" in runs[0].notes[0]


def test_environment_differences_against_the_baseline(tmp_path):
    base_dir = tmp_path / "baselines"
    first = run_doc(CLASS_A, 19)
    update_baselines(first, base_dir)
    stored = json.loads((base_dir / f"{CLASS_A}.json").read_text())
    assert stored["created_from"]["environment"]["libraries.onnxruntime"] == "1.23.2"
    later = write_run(tmp_path / "a21", run_doc(CLASS_A, 21, libs={"torch": "2.11.0",
                                                                   "onnxruntime": "1.24.0"}))
    text = render_report_files([later], tmp_path / "r.html", base_dir)[0].read_text()
    assert "what differs:" in text
    assert "<td class=\"txt\">libraries.onnxruntime</td><td class=\"txt\">1.23.2</td>" \
           "<td class=\"txt\">1.24.0</td>" in text
    assert "libraries.espnet" in text and "(absent)" in text
    same = write_run(tmp_path / "a20", run_doc(CLASS_A, 20))
    assert "same environment" in render_report_files([same], tmp_path / "s.html", base_dir)[0].read_text()
    # a baseline written before environments were recorded says so
    del stored["created_from"]["environment"]
    (base_dir / f"{CLASS_A}.json").write_text(json.dumps(stored))
    assert "records no environment" in render_report_files([same], tmp_path / "s.html", base_dir)[0].read_text()


def test_cli_writes_the_report_and_exits_2_when_an_input_is_left_out(tmp_path):
    paths = nights(tmp_path)
    out = tmp_path / "r.html"
    ok = subprocess.run([sys.executable, "-m", "bench", "report", *map(str, paths), "-o", str(out)],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert out.exists() and ">GO<" in out.read_text()
    bad = truncated(tmp_path / "trunc.json", paths[0])
    r = subprocess.run([sys.executable, "-m", "bench", "report", *map(str, paths), str(bad), "-o",
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 2 and "trunc.json: not valid JSON" in r.stderr
    assert ">NO-GO<" in out.read_text()


@pytest.mark.parametrize("rows", [0, 1])
def test_quality_delta_is_against_pytorch_of_the_same_run(tmp_path, rows):
    doc = run_doc(CLASS_A, 21)
    if rows == 0:   # no PyTorch case in the run: no delta, not a crash
        doc["cases"] = [c for c in doc["cases"] if c["variant"] != "pytorch"]
    runs, _ = load_inputs([write_run(tmp_path / "a", doc)])
    df = cases_frame(runs)
    int8 = df[(df["key"] == "asr/asr-tiny/onnx-int8/cpu@unidentified")].iloc[0]
    if rows == 0:
        assert int8["delta_wer"] != int8["delta_wer"]   # NaN
    else:
        assert int8["delta_wer"] == pytest.approx(0.2)


def test_other_data_is_its_own_case_in_the_merged_report(tmp_path):
    """A --data run of a card never becomes the card's current figure on its own data."""
    from bench.report.frames import current_cases

    own, other = run_doc(CLASS_A, 21), run_doc(CLASS_A, 22)  # the --data run is the later one
    for doc, key, source in ((own, "aaaaaaaaaaaa", "card"), (other, "bbbbbbbbbbbb", "/data/real")):
        for c in doc["cases"]:
            c["identity"] = {"key": key, "data": key * 2, "data_source": source}
    for c in other["cases"]:
        c["metrics"]["wer"] = 113.6
    runs, _ = load_inputs([write_run(tmp_path / "a", own), write_run(tmp_path / "b", other)])
    cur = current_cases(cases_frame(runs))
    int8 = cur[(cur["card"] == "asr-tiny") & (cur["variant"] == "onnx-int8")]
    assert sorted(int8["wer"]) != [113.6] and len(int8) == 2
    assert set(int8["data"]) == {"card (aaaaaaaa)", "/data/real (bbbbbbbb)"}
    html = render_report([own, other], tmp_path / "r.html").read_text()
    assert "/data/real (bbbbbbbb)" in html


def test_a_study_gets_its_section_only_when_its_variants_ran(tmp_path):
    plain = render_report([run_doc(CLASS_A, 21)], tmp_path / "plain.html", tmp_path / "nobase")
    assert "Study: int8" not in plain.read_text(encoding="utf-8")
    doc = run_doc(CLASS_A, 21)
    c = R.make_case("asr", "asr-tiny", "onnx-int8-static", "cpu")
    c["metrics"].update(speedup=2.5, speedup_ci95=[2.4, 2.6], rtf=0.02, model_mb=8.0, wer=7.0,
                        agreement_ter=0.7)
    c["gate"] = {"verdict": "new", "reasons": []}
    R.add_case(doc, c)
    text = render_report([doc], tmp_path / "study.html", tmp_path / "nobase").read_text(encoding="utf-8")
    assert text.count("Study: int8") == 1  # the asr task only: the others ran no study variant
    section = text[text.index('id="study-int8'):]
    section = section[:section.index("</div>")]
    assert section.count('src="data:image/svg+xml;base64,') == 2
    assert "python -m bench table --study int8" in section


def test_what_the_gate_did_not_judge_is_in_the_report(tmp_path):
    """A pass on a host the baselines never saw judged fewer figures; its notes say which."""
    doc = run_doc(CLASS_A, 21)
    note = "rtf not gated: no baseline run of this host (its RTF on other hosts: 0.0119)"
    doc["cases"][1]["gate"] = {"verdict": "pass", "reasons": [], "notes": [note]}
    out = render_report_files([write_run(tmp_path / "a", doc)], tmp_path / "r.html", tmp_path / "nobase")[0]
    assert "rtf not gated: no baseline run of this host" in out.read_text(encoding="utf-8")
