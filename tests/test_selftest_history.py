"""The compare self-test's history: rows keep what was measured, today's rule re-judges them,
the summary counts them, and a broken file is named with its line."""
import json

import pytest

from bench.measure.selftest_real import (append_history, history_rows, history_summary,
                                         read_history, rejudged)


def compare_doc(cases):
    return {"started": "20261202T120000Z", "settings": {"fast": False},
            "head": {"sha": "abc", "dirty": False},
            "host": {"host": "h1", "cpu": "CPU X", "class": "cpu-test"},
            "cases": [{"card": "c", "variant": v, "status": "ok", "verdict": "pass",
                       "time": {"median": m, "ci95": ci, "n_pairs": 20, "stop_reason": "40 pairs"},
                       "reasons": reasons} for v, m, ci, reasons in cases]}


def test_rows_are_rejudged_and_counted(tmp_path):
    aa = history_rows(compare_doc([("onnx", 1.0, [0.97, 1.03], []),
                                   ("onnx-int8", 1.13, [1.02, 1.2], []),  # a false alarm today
                                   ("pytorch", 1.0, [0.99, 1.01], ["wer 1.00 -> 2.00 > 1.00 + 0.50 = 1.50"])]),
                      "aa", 0.2)
    detect = history_rows(compare_doc([("onnx", 1.19, [1.09, 1.25], []),
                                       ("onnx-int8", 1.19, [0.6, 1.8], [
                                           "head/base time interval [0.6000, 1.8000] is wider than 0.50 x"])]),
                          "detect", 0.2)
    assert [rejudged(r) for r in aa] == ["pass", "fail", "fail"]
    assert [rejudged(r) for r in detect] == ["fail", "invalid"]  # the time reason is re-derived
    assert aa[0]["slowdown"] == 0.0 and detect[0]["slowdown"] == 0.2
    path = tmp_path / "h.jsonl"
    append_history(path, aa)
    append_history(path, detect)
    rows = read_history([path])
    assert rows == json.loads(json.dumps(aa + detect))
    text = history_summary(rows)
    assert "A/A (working tree against itself): failed 2/3 (66.7%)" in text
    assert "false alarm c/onnx-int8" in text and "false alarm c/pytorch" in text
    assert "injected slowdown: caught 1/2 (50.0%) at slowdown 20%; invalid 1" in text
    assert "missed c/onnx-int8" in text and "1 host(s): h1 (CPU X); days 20261202" in text
    assert "by card" not in text  # one card, one host: no breakdown


def test_the_summary_breaks_counts_down_by_card_and_host():
    rows = []
    for host, card, median in (("h1", "a", 1.0), ("h1", "b", 1.13), ("h2", "a", 1.0)):
        doc = compare_doc([("onnx", median, [1.02, 1.2], [])])
        doc["host"]["host"], doc["cases"][0]["card"] = host, card
        rows += history_rows(doc, "aa", 0.2)
    text = history_summary(rows)
    assert "failed 1/3 (33.3%)" in text
    assert "  by card: a 0/2 (0.0%), b 1/1 (100.0%)" in text
    assert "  by host: h1 1/2 (50.0%), h2 0/1 (0.0%)" in text


def test_fast_rows_do_not_count_and_a_broken_line_is_named(tmp_path):
    doc = compare_doc([("onnx", 1.0, [0.97, 1.03], [])])
    doc["settings"]["fast"] = True
    path = tmp_path / "h.jsonl"
    append_history(path, history_rows(doc, "aa", 0.2))
    assert history_summary(read_history([path])) == "no recorded compares"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ValueError, match=r"h.jsonl: line 2 is not JSON"):
        read_history([path])


def test_history_only_cli_names_a_missing_file(tmp_path):
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "bench", "selftest", "--history-only",
                        str(tmp_path / "none.jsonl")], capture_output=True, text=True)
    assert p.returncode == 2 and "none.jsonl" in p.stderr, p.stderr
