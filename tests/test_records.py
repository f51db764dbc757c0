"""The results document as records (bench.records): typed reads, round trips, kept extras."""
import copy
import json

import pytest

from bench import results as R
from bench.records import Case, Gate, Metrics, Results, ResultsError
from report_inputs import nights


def _doc_with_a_gated_case():
    doc = R.new_run({"class": "cpu-x86_64-avx2-2c", "host": "h1"}, {"torch": "2.11"}, "abc")
    doc["run"].update(threads=2, fast=False, data_dir=None)
    c = R.make_case("asr", "asr-tiny", "onnx", "cpu")
    c["metrics"].update(rtf=0.05, speedup=2.0, speedup_ci95=[1.8, 2.2], wer=4.1)
    c["settings"] = {"threads": 2, "timing": {"rounds": 7}}
    c["identity"] = {"key": "asr/asr-tiny/onnx/cpu@abc", "data_source": "card"}
    c["gate"] = {"verdict": "fail", "reasons": ["speedup fell"], "notes": ["n"]}
    R.add_case(doc, c)
    return doc


def test_a_document_reads_as_records_and_writes_back_unchanged():
    doc = _doc_with_a_gated_case()
    rec = Results.from_dict(copy.deepcopy(doc))
    (case,) = rec.cases
    assert isinstance(case, Case) and isinstance(case.metrics, Metrics) and isinstance(case.gate, Gate)
    assert case.metrics.speedup == 2.0 and case.gate.verdict == "fail"
    assert case.gate.extra == {"notes": ["n"]}  # a key the record does not name is kept
    assert rec.run.extra["threads"] == 2 and rec.run.machine["class"] == "cpu-x86_64-avx2-2c"
    assert rec.to_dict() == doc


def test_keys_a_newer_harness_added_survive_a_round_trip():
    doc = _doc_with_a_gated_case()
    doc["made_by"] = "bench 9"
    doc["run"]["power_w"] = 41.5
    doc["cases"][0]["energy_j"] = 3.0
    doc["cases"][0]["metrics"]["p95_ms"] = 12.0
    assert Results.from_dict(copy.deepcopy(doc)).to_dict() == doc


def test_the_report_fixtures_round_trip(tmp_path):
    # the documents the report tests read: several nights and classes, a failing case
    for path in nights(tmp_path, fail_latest="asr/asr-tiny/onnx-int8"):
        doc = json.loads(path.read_text())
        assert Results.from_dict(copy.deepcopy(doc)).to_dict() == doc


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["cases"][0]["metrics"].update(wer="4.1"), r"cases\[0\] \(asr/asr-tiny/onnx/cpu\)\.metrics\.wer"),
    (lambda d: d["cases"][0].update(gate={"verdict": "maybe"}), r"cases\[0\] \(asr/asr-tiny/onnx/cpu\)\.gate\.verdict"),
    (lambda d: d["cases"][0].update(card=""), r"cases\[0\]\.card"),
    (lambda d: d["run"].update(started=None), r"run\.started"),
    (lambda d: d["run"]["machine"].pop("class"), r"run\.machine\.class"),
])
def test_a_bad_field_is_named(edit, field):
    doc = _doc_with_a_gated_case()
    edit(doc)
    with pytest.raises(ResultsError, match=r"night\.json: " + field):
        Results.from_dict(doc, "night.json")
