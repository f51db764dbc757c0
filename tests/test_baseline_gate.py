"""Baselines and the gate: direction, intervals, messages, refusal to learn from bad runs."""
import json

import numpy as np
import pytest

from bench import baseline as bl
from bench.measure.stats import bootstrap_ci
from bench.results import add_case, make_case, new_run, run_environment, set_error, write_json_atomic

CLASS = "cpu-x86_64-avx512vnni-2c"


def _case(card="asr-tiny", variant="onnx-int8", **metrics):
    c = make_case("asr", card, variant, "cpu")
    c["metrics"].update(metrics)
    return c


def _run(*cases):
    doc = new_run({"class": CLASS, "cpu": "test cpu", "cores": 2, "gpu": None},
                  {"onnxruntime": "1.23.2"}, "abc123")
    for c in cases:
        add_case(doc, c)
    return doc


TOL = bl.DEFAULT_TOLERANCES


def test_speedup_interval_wholly_below_limit_fails_with_numbers():
    entry = {"speedup": 2.0}
    g = bl.compare_case(_case(speedup=1.1, speedup_ci95=[1.0, 1.2]), entry, TOL)
    assert g["verdict"] == "fail"
    (reason,) = g["reasons"]
    assert reason.startswith("speedup fell")
    # four significant digits, so the comparison shows in the numbers themselves
    for text in ("1.100", "[1.000, 1.200]", "2.000", "0.1", "1.800", "<"):
        assert text in reason, reason


def test_speedup_interval_overlapping_or_above_passes():
    entry = {"speedup": 2.0}
    assert bl.compare_case(_case(speedup=2.0, speedup_ci95=[1.6, 2.5]), entry, TOL) == \
        {"verdict": "pass", "reasons": [], "notes": []}
    # Rising is fine, however much.
    assert bl.compare_case(_case(speedup=9.0, speedup_ci95=[8.0, 10.0]), entry, TOL)["verdict"] == "pass"
    # Point below the limit but interval reaching above it: not evidence enough.
    assert bl.compare_case(_case(speedup=1.5, speedup_ci95=[1.4, 1.85]), entry, TOL)["verdict"] == "pass"
    # Without an interval the point value decides.
    assert bl.compare_case(_case(speedup=1.5), entry, TOL)["verdict"] == "fail"


def test_missing_entry_is_new():
    g = bl.compare_case(_case(speedup=2.0), None, TOL, machine_class=CLASS)
    assert g["verdict"] == "new"
    assert "no baseline" in g["reasons"][0] and CLASS in g["reasons"][0]


def test_quality_memory_size_directions_and_messages():
    entry = {"wer": 4.0, "cer": 2.0, "agreement_ter": 0.3, "peak_rss_mb": 400.0,
             "model_mb": 30.0, "bleu": 20.0}
    ok = _case(wer=4.4, cer=1.0, agreement_ter=1.2, peak_rss_mb=490.0, model_mb=32.9, bleu=19.5)
    assert bl.compare_case(ok, entry, TOL) == {"verdict": "pass", "reasons": [], "notes": []}
    bad = _case(wer=4.6, cer=2.6, agreement_ter=1.4, peak_rss_mb=510.0, model_mb=33.1, bleu=18.5)
    g = bl.compare_case(bad, entry, TOL)
    assert g["verdict"] == "fail"
    joined = "\n".join(g["reasons"])
    assert "wer rose: measured 4.600 > baseline 4.000 + 0.5 = 4.500" in joined
    assert "cer rose" in joined and "agreement_ter rose" in joined and "bleu fell" in joined
    assert "peak_rss_mb rose: measured 510.0 > baseline 400.0 x (1 + 0.25) = 500.0" in joined
    assert "model_mb rose" in joined
    assert len(g["reasons"]) == 6
    # Better in every direction passes.
    good = _case(wer=0.0, cer=0.0, agreement_ter=0.0, peak_rss_mb=10.0, model_mb=1.0, bleu=90.0)
    assert bl.compare_case(good, entry, TOL)["verdict"] == "pass"


def test_whole_process_peak_is_gated():
    entry = {"peak_rss_mb": 130.0, "process_peak_mb": 180.0}
    assert bl.compare_case(_case(peak_rss_mb=130.0, process_peak_mb=220.0), entry, TOL)["verdict"] == "pass"
    # torch imported by an ONNX process: nothing above idle changes, the whole process does
    g = bl.compare_case(_case(peak_rss_mb=130.0, process_peak_mb=700.0), entry, TOL)
    assert g["verdict"] == "fail"
    assert g["reasons"] == ["process_peak_mb rose: measured 700.0 > baseline 180.0 x (1 + 0.25) = 225.0"]


def test_none_on_either_side_is_skipped():
    g = bl.compare_case(_case(wer=None, speedup=0.1), {"wer": 1.0, "speedup": None}, TOL)
    assert g == {"verdict": "pass", "reasons": [], "notes": []}


def _entry(*runs, **metrics):
    """A schema-3 entry: the latest figures and the runs (host, speedup, rtf) behind them."""
    return {"identity": None, "metrics": metrics,
            "runs": [{"run_id": f"run{i}", "host": h, "speedup": s, "rtf": r}
                     for i, (h, s, r) in enumerate(runs)]}


def test_rtf_gated_only_against_runs_of_this_host():
    entry = _entry(("hostA", None, 0.10), ("hostA", None, 0.12), ("hostB", None, 0.05))
    # the median of this host's runs (0.11) x 1.5 = 0.165
    assert bl.compare_case(_case(rtf=0.16), entry, TOL, host="hostA")["verdict"] == "pass"
    g = bl.compare_case(_case(rtf=0.17), entry, TOL, host="hostA")
    assert g["verdict"] == "fail" and g["reasons"][0].startswith("rtf rose: measured 0.1700 > "
                                                                 "median of this host's runs 0.1100")
    assert "2 runs, latest run1; this host" in g["reasons"][0]
    # another host: recorded, never gated, and the gate says so
    g = bl.compare_case(_case(rtf=0.50), entry, TOL, host="hostC")
    assert g["verdict"] == "pass" and "rtf not gated: no baseline run of this host" in g["notes"][0]


def test_absolute_speed_needs_two_runs_of_this_host_and_widens_with_their_spread():
    # one run of this host: its level, not how far it moves between runs; noted, not gated
    g = bl.compare_case(_case(rtf=0.30), _entry(("hostA", None, 0.10)), TOL, host="hostA")
    assert g["verdict"] == "pass"
    assert g["notes"] == ["rtf not gated: 1 baseline run(s) of this host, 2 needed to know how "
                          "far it moves between runs"]
    # runs 0.08 and 0.12: median 0.10, spread 0.2 < 0.5/1.5, so the tolerance stays 0.5
    tight = _entry(("hostA", None, 0.08), ("hostA", None, 0.12))
    assert bl.compare_case(_case(rtf=0.151), tight, TOL, host="hostA")["verdict"] == "fail"
    # runs 0.06 and 0.14: spread 0.4, tolerance 1.5 x 0.4 = 0.6: 0.151 is within it, 0.161 is not
    wide = _entry(("hostA", None, 0.06), ("hostA", None, 0.14))
    assert bl.compare_case(_case(rtf=0.151), wide, TOL, host="hostA")["verdict"] == "pass"
    g = bl.compare_case(_case(rtf=0.161), wide, TOL, host="hostA")
    assert g["reasons"][0].startswith("rtf rose: measured 0.1610 > median of this host's runs "
                                      "0.1000 x (1 + 0.6) = 0.1600"), g


def test_speedup_against_other_hosts_uses_the_wider_floor():
    entry = _entry(("hostA", 2.20, None))
    slower_host = _case(speedup=1.59, speedup_ci95=[1.29, 1.72])  # the false alarm
    assert bl.compare_case(slower_host, entry, TOL, host="hostA")["verdict"] == "fail"
    assert bl.compare_case(slower_host, entry, TOL, host="hostB")["verdict"] == "pass"
    # a lost optimisation is still caught across hosts: half the speed
    g = bl.compare_case(_case(speedup=1.10, speedup_ci95=[1.00, 1.20]), entry, TOL, host="hostB")
    assert g["verdict"] == "fail"
    assert "baseline (other hosts) 2.200 x (1 - 0.4) = 1.320" in g["reasons"][0]
    assert "(baseline: run0; host hostA)" in g["reasons"][0]


def test_speedup_tolerance_widens_with_the_spread_of_baseline_runs():
    steady = _entry(("h", 2.0, None), ("h", 2.02, None), ("h", 1.98, None))
    spread = _entry(("h", 2.0, None), ("h", 2.3, None), ("h", 1.7, None))  # +-15%
    case = _case(speedup=1.70, speedup_ci95=[1.65, 1.75])
    assert bl.compare_case(case, steady, TOL, host="h")["verdict"] == "fail"  # 10% floor
    # 1.5 x 15% = 22.5%: 2.0 x 0.775 = 1.55 < 1.75
    assert bl.compare_case(case, spread, TOL, host="h")["verdict"] == "pass"
    g = bl.compare_case(_case(speedup=1.2, speedup_ci95=[1.1, 1.3]), spread, TOL, host="h")
    assert g["verdict"] == "fail" and "median of 3 baseline runs 2.000 x (1 - 0.225)" in g["reasons"][0]


def test_other_data_or_settings_is_new_never_a_failure(tmp_path):
    """A --data run of the card has another identity: it is new, and stored beside the default."""
    card_data = _case(wer=6.7, speedup=2.0, speedup_ci95=[1.9, 2.1])
    card_data["identity"] = {"key": "aaaaaaaaaaaa", "data": "d1"}
    bl.update_baselines(_run(card_data), tmp_path)
    other = _case(wer=113.6, speedup=1.0, speedup_ci95=[0.9, 1.1])
    other["identity"] = {"key": "bbbbbbbbbbbb", "data": "d2"}
    later = _run(other)
    bl.gate_results(later, tmp_path)
    g = later["cases"][0]["gate"]
    assert g["verdict"] == "new" and "@bbbbbbbbbbbb" in g["reasons"][0]
    bl.update_baselines(later, tmp_path)
    keys = set(bl.load_baselines(bl.baseline_path(tmp_path, CLASS))["cases"])
    assert keys == {"asr/asr-tiny/onnx-int8/cpu@aaaaaaaaaaaa", "asr/asr-tiny/onnx-int8/cpu@bbbbbbbbbbbb"}
    # and the same data again is judged by its own figures
    again = _case(wer=120.0)
    again["identity"] = {"key": "bbbbbbbbbbbb"}
    g = bl.gate_results(_run(again), tmp_path)["cases"][0]["gate"]
    assert g["verdict"] == "fail" and "measured 120.0 > baseline 113.6 + 0.5" in g["reasons"][0]


def _real(ter, clips="clips-a"):
    c = _case(real_agreement_ter=ter)
    c["identity"] = {"key": "aaaaaaaaaaaa"}
    c["settings"]["real_speech"] = {"measured": True, "identity": clips}
    return c


def test_real_speech_agreement_gated_only_against_the_same_clips(tmp_path):
    bl.update_baselines(_run(_real(1.0)), tmp_path)
    (entry,) = bl.load_baselines(bl.baseline_path(tmp_path, CLASS))["cases"].values()
    assert entry["other_data"] == {"real_agreement_ter": "clips-a"}

    def gate(case):
        return bl.gate_results(_run(case), tmp_path)["cases"][0]["gate"]

    # a few more flipped tokens pass; int8 convolutions' 1.0 -> 10.9 fails
    assert gate(_real(6.9))["verdict"] == "pass"
    g = gate(_real(10.9))
    assert g["verdict"] == "fail"
    assert g["reasons"][0].startswith("real_agreement_ter rose: measured 10.90 > baseline 1.000 + 6 = 7.000")
    # other clips (a user's ../shared): reported, never judged by the committed clips' figure
    g = gate(_real(50.0, clips="clips-b"))
    assert g["verdict"] == "pass"
    assert any("real_agreement_ter not gated" in n for n in g["notes"])
    # a case whose clips have no identity is not judged either
    unknown = _real(50.0)
    del unknown["settings"]["real_speech"]["identity"]
    assert gate(unknown)["verdict"] == "pass"


def test_updates_accumulate_runs_and_gate_against_results(tmp_path):
    runs = []
    for s in (2.0, 2.1, 1.9):
        r = _run(_case(speedup=s, speedup_ci95=[s - 0.05, s + 0.05]))
        r["run"]["machine"]["host"] = "h1"
        bl.update_baselines(r, tmp_path)
        runs.append(r)
    (entry,) = bl.load_baselines(bl.baseline_path(tmp_path, CLASS))["cases"].values()
    assert [r["speedup"] for r in entry["runs"]] == [2.0, 2.1, 1.9]
    assert {r["host"] for r in entry["runs"]} == {"h1"}
    # --against: the same bar, built from the results documents instead of the file
    built = bl.baseline_from_results(runs, CLASS)
    (b_entry,) = built["cases"].values()
    assert [r["speedup"] for r in b_entry["runs"]] == [2.0, 2.1, 1.9]
    slow = _run(_case(speedup=1.0, speedup_ci95=[0.95, 1.05]))
    slow["run"]["machine"]["host"] = "h1"
    bl.gate_results(slow, baseline_doc=built)
    assert slow["cases"][0]["gate"]["verdict"] == "fail"
    # documents of another class are not used
    assert bl.baseline_from_results(runs, "cpu-other")["cases"] == {}


def test_injected_slowdown_never_becomes_a_baseline(tmp_path):
    c = _case(speedup=1.5, speedup_ci95=[1.4, 1.6])
    c["settings"]["injected_slowdown"] = 0.2
    with pytest.raises(bl.BaselineError, match="injected slowdown"):
        bl.update_baselines(_run(c), tmp_path)
    assert not list(tmp_path.iterdir())


def test_card_override_of_tolerance(tmp_path):
    doc = bl.new_baseline(CLASS)
    doc["card_tolerances"] = {"asr-noisy": {"wer": {"value": 3.0}}}
    doc["cases"]["asr/asr-noisy/onnx-int8/cpu@unidentified"] = _entry(wer=4.0)
    doc["cases"]["asr/asr-tiny/onnx-int8/cpu@unidentified"] = _entry(wer=4.0)
    path = tmp_path / f"{CLASS}.json"
    write_json_atomic(path, doc)
    loaded = bl.load_baselines(path)
    assert bl.gate_case(_case(card="asr-noisy", wer=6.0), loaded)["verdict"] == "pass"
    g = bl.gate_case(_case(card="asr-tiny", wer=6.0), loaded)
    assert g["verdict"] == "fail" and "+ 0.5" in g["reasons"][0]
    assert bl.tolerances_for(loaded, _case(card="asr-noisy"))["wer"]["mode"] == "absolute"


def test_gate_results_sets_verdicts(tmp_path):
    run = _run(_case(speedup=2.0, speedup_ci95=[1.8, 2.2]))
    bl.update_baselines(run, tmp_path)
    later = _run(_case(speedup=1.0, speedup_ci95=[0.9, 1.1]),
                 _case(variant="onnx-fp16", speedup=1.0),
                 set_error(_case(variant="onnx"), "boom"))
    bl.gate_results(later, tmp_path)
    verdicts = [c["gate"] and c["gate"]["verdict"] for c in later["cases"]]
    assert verdicts == ["fail", "new", None]
    # A class with no file at all: everything is new.
    other = _run(_case(speedup=1.0))
    other["run"]["machine"]["class"] = "cpu-x86_64-avx2-4c"
    bl.gate_results(other, tmp_path)
    assert other["cases"][0]["gate"]["verdict"] == "new"


def test_update_writes_file_and_preserves_tolerances_and_other_entries(tmp_path):
    path = bl.baseline_path(tmp_path, CLASS)
    doc = bl.new_baseline(CLASS)
    doc["tolerances"]["speedup"]["value"] = 0.2
    doc["card_tolerances"] = {"asr-tiny": {"wer": {"value": 1.0}}}
    doc["cases"]["st/st-tiny/onnx/cpu@k"] = _entry(("h", 1.3, None), speedup=1.3)
    write_json_atomic(path, doc)
    run = _run(_case(speedup=2.0, speedup_ci95=[1.8, 2.2], wer=3.0, peak_rss_mb=100.0))
    bl.update_baselines(run, tmp_path)
    new = bl.load_baselines(path)
    assert new["tolerances"]["speedup"]["value"] == 0.2
    assert new["card_tolerances"] == {"asr-tiny": {"wer": {"value": 1.0}}}
    assert new["cases"]["st/st-tiny/onnx/cpu@k"] == _entry(("h", 1.3, None), speedup=1.3)
    e = new["cases"]["asr/asr-tiny/onnx-int8/cpu@unidentified"]["metrics"]
    assert e["speedup"] == 2.0 and e["speedup_ci95"] == [1.8, 2.2] and e["wer"] == 3.0
    assert new["created_from"] == {"run_id": run["run"]["id"], "git_commit": "abc123",
                                   "started": run["run"]["started"],
                                   "environment": run_environment(run["run"])}
    assert new["created_from"]["environment"]["libraries.onnxruntime"] == "1.23.2"
    assert all(t.get("why") for t in new["tolerances"].values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_update_refuses_failed_run_and_leaves_file_byte_identical(tmp_path):
    bl.update_baselines(_run(_case(speedup=2.0, speedup_ci95=[1.8, 2.2])), tmp_path)
    path = bl.baseline_path(tmp_path, CLASS)
    before = path.read_bytes()
    bad = _run(_case(speedup=5.0, speedup_ci95=[4.8, 5.2]),
               set_error(_case(variant="onnx-fused"), "export failed"))
    with pytest.raises(bl.BaselineError) as ei:
        bl.update_baselines(bad, tmp_path)
    assert "asr/asr-tiny/onnx-fused/cpu: error (export failed)" in str(ei.value)
    assert "onnx-int8" not in str(ei.value)
    assert path.read_bytes() == before
    # A noisy run is refused too.
    noisy = _run(_case(speedup=2.0, speedup_ci95=[1.0, 3.5]))
    with pytest.raises(bl.BaselineError, match="noisy"):
        bl.update_baselines(noisy, tmp_path)
    assert path.read_bytes() == before


def test_skipped_cases_refused_unless_allowed(tmp_path):
    c = _case(variant="onnx-fp16")
    c["status"] = "skipped"
    run = _run(_case(speedup=2.0), c)
    with pytest.raises(bl.BaselineError, match="skipped"):
        bl.update_baselines(run, tmp_path)
    bl.update_baselines(run, tmp_path, allow_skipped=True)
    cases = bl.load_baselines(bl.baseline_path(tmp_path, CLASS))["cases"]
    assert list(cases) == ["asr/asr-tiny/onnx-int8/cpu@unidentified"]  # the skipped one is not stored


def test_load_baselines_errors_name_file_and_field(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(bl.BaselineError, match="x.json.*not valid JSON"):
        bl.load_baselines(p)
    doc = bl.new_baseline(CLASS)
    doc["schema"] = "bench-baseline/0"
    p.write_text(json.dumps(doc))
    with pytest.raises(bl.BaselineError, match=r"x.json: schema"):
        bl.load_baselines(p)
    doc = bl.new_baseline(CLASS)
    doc["cases"]["asr/a/b/cpu@k"] = _entry(speedup="fast")
    p.write_text(json.dumps(doc))
    with pytest.raises(bl.BaselineError, match=r"x.json: cases.asr/a/b/cpu@k.metrics.speedup"):
        bl.load_baselines(p)
    doc["cases"] = {"asr/a/b/cpu@k": {**_entry(speedup=1.0), "other_data": {"real_agreement_ter": 3}}}
    p.write_text(json.dumps(doc))
    with pytest.raises(bl.BaselineError, match=r"cases.asr/a/b/cpu@k.other_data: expected an object"):
        bl.load_baselines(p)
    doc["cases"] = {"asr/a/b/cpu": _entry(speedup=1.0)}
    p.write_text(json.dumps(doc))
    with pytest.raises(bl.BaselineError, match=r"key must be task/card/variant/device@identity"):
        bl.load_baselines(p)
    doc = bl.new_baseline(CLASS)
    doc["tolerances"]["wer"]["worse"] = "sideways"
    p.write_text(json.dumps(doc))
    with pytest.raises(bl.BaselineError, match=r"tolerances.wer.worse"):
        bl.load_baselines(p)


def test_gate_error_rates_on_simulated_noise():
    """A/A must almost never fail; a 35% slowdown must almost always fail.

    Rounds are simulated with the +-15% per-measurement noise seen on the 2-core class, and go
    through the same median + bootstrap interval as real timings.
    """
    rng = np.random.default_rng(7)
    n_rounds, trials, true = 12, 200, 2.0

    def measured(speedup):
        r = speedup * rng.lognormal(0.0, 0.15, size=n_rounds)
        return float(np.median(r)), list(bootstrap_ci(r, n_boot=500, seed=int(rng.integers(1 << 30))))

    aa_fail = slow_fail = 0
    for _ in range(trials):
        base, _ = measured(true)
        entry = {"speedup": base}
        s, ci = measured(true)
        aa_fail += bl.compare_case(_case(speedup=s, speedup_ci95=ci), entry, TOL)["verdict"] == "fail"
        s, ci = measured(true * 0.65)
        slow_fail += bl.compare_case(_case(speedup=s, speedup_ci95=ci), entry, TOL)["verdict"] == "fail"
    assert aa_fail / trials <= 0.02, aa_fail
    assert slow_fail / trials >= 0.90, slow_fail


def test_update_refused_when_a_gate_failed(tmp_path):
    """A regression never becomes the new bar by accident; only when accepted explicitly."""
    import json

    from bench.baseline import BaselineError, update_baselines
    from bench.results import make_case, new_run

    doc = new_run({"class": "cpu-test"}, {}, None)
    case = make_case("asr", "c", "onnx", "cpu")
    case["metrics"].update(speedup=1.0, speedup_ci95=[0.95, 1.05])
    case["gate"] = {"verdict": "fail", "reasons": ["speedup fell: measured 1.00 ..."]}
    doc["cases"].append(case)
    with pytest.raises(BaselineError, match="gate failed"):
        update_baselines(doc, tmp_path)
    assert not list(tmp_path.iterdir())
    path = update_baselines(doc, tmp_path, accept_failures=True)
    assert json.loads(path.read_text())["cases"]["asr/c/onnx/cpu@unidentified"]["metrics"]["speedup"] == 1.0


def test_run_exit_codes_tell_regression_error_and_noise_apart():
    from bench.__main__ import exit_code
    from bench.results import make_case, new_run

    def doc(*cases):
        d = new_run({"class": "cpu-test"}, {}, None)
        for status, verdict in cases:
            c = make_case("asr", "c", f"v{len(d['cases'])}", "cpu")
            c["status"] = status
            c["gate"] = {"verdict": verdict, "reasons": []} if verdict else None
            d["cases"].append(c)
        return d

    assert exit_code(doc(("ok", "pass"), ("ok", "new"), ("skipped", None)), 0) == 0
    assert exit_code(doc(("ok", "pass"), ("ok", "invalid")), 0) == 4
    assert exit_code(doc(("ok", "invalid"), ("error", None)), 1) == 3
    assert exit_code(doc(("error", None), ("ok", "fail")), 1) == 1


def test_remeasured_case_replaces_its_migrated_entry(tmp_path):
    path = bl.baseline_path(tmp_path, CLASS)
    doc = bl.new_baseline(CLASS)
    doc["cases"]["asr/asr-tiny/onnx-int8/cpu@pre-identity"] = _entry(("h", 9.0, None), speedup=9.0)
    doc["cases"]["asr/asr-tiny/onnx/cpu@pre-identity"] = _entry(("h", 9.0, None), speedup=9.0)
    write_json_atomic(path, doc)
    c = _case(speedup=2.0, speedup_ci95=[1.9, 2.1])
    c["identity"] = {"key": "cccccccccccc"}
    bl.update_baselines(_run(c), tmp_path)
    assert set(bl.load_baselines(path)["cases"]) == {"asr/asr-tiny/onnx-int8/cpu@cccccccccccc",
                                                     "asr/asr-tiny/onnx/cpu@pre-identity"}


def test_speedup_spread_over_results_and_baseline_files(tmp_path):
    runs = []
    for s, host in ((2.0, "h1"), (2.5, "h2"), (1.5, None)):
        r = _run(_case(speedup=s, speedup_ci95=[s - 0.1, s + 0.1]))
        r["run"]["machine"]["host"] = host
        runs.append(r)
    bl.update_baselines(runs[0], tmp_path)
    base = bl.load_baselines(bl.baseline_path(tmp_path, CLASS))
    (row,) = bl.speedup_spread([base, runs[1], runs[2]])
    assert row["case"] == f"{CLASS} asr/asr-tiny/onnx-int8/cpu"
    assert (row["runs"], row["hosts"], row["median"], row["min"], row["max"]) == (3, 2, 2.0, 1.5, 2.5)
    assert row["max_dev"] == pytest.approx(0.25)


def test_against_reads_results_files_and_run_folders(tmp_path):
    """`bench run --against FILE_OR_FOLDER,...`: what the suites gate with when given results."""
    from bench.cases import BenchSession
    from bench.runner import SuiteRun, _split_paths

    older = _run(_case(speedup=2.0, speedup_ci95=[1.9, 2.1]))
    older["run"]["machine"]["host"] = "h1"
    write_json_atomic(tmp_path / "history" / "r1" / "results.json", older)
    write_json_atomic(tmp_path / "one.json", older)
    paths = _split_paths(f"{tmp_path / 'history'},{tmp_path / 'one.json'}")
    assert paths == [str(tmp_path / "history" / "r1" / "results.json"), str(tmp_path / "one.json")]
    run = SuiteRun(BenchSession(), tmp_path / "out", tmp_path / "no-baselines", False, paths)
    bar = run.load_bar(CLASS)
    assert bar["source"].startswith("earlier results: ") and len(bar["cases"]) == 1
    slow = _case(speedup=1.0, speedup_ci95=[0.95, 1.05])
    assert bl.gate_case(slow, bar, CLASS, host="h1")["verdict"] == "fail"
    # without --against: the class file, or nothing
    assert SuiteRun(BenchSession(), tmp_path, tmp_path / "none", False).load_bar(CLASS) is None
