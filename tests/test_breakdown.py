"""`python -m bench breakdown`: where an ONNX variant's time goes, parts adding up to the whole."""
import pytest

pytestmark = pytest.mark.slow


def test_breakdown_names_each_graph_and_adds_up(shared_cache, monkeypatch):
    from bench.measure.breakdown import breakdown, format_breakdown
    from bench.runtime import beam_search

    monkeypatch.setenv("BENCH_CACHE", str(shared_cache))
    original = beam_search._CTCPrefixScorer.score
    topk = beam_search._topk_rows_set
    b = breakdown("asr-conformer-smoke", "onnx-fused", threads=1, rounds=1)
    labels = {label for label, _, _ in b["parts"]}
    assert {"graph encoder", "graph decoder", "graph cross_kv", "CTC prefix scoring", "rest"} <= labels
    assert not {label for label in labels if label.endswith(".onnx")}  # each session timed once
    assert abs(sum(s for _, s, _ in b["parts"]) - b["total_s"]) < 1e-9
    assert all(s >= 0 for label, s, _ in b["parts"] if label != "rest")
    # the timers are taken off again: class, module and instance attributes alike
    assert beam_search._CTCPrefixScorer.score is original and beam_search._topk_rows_set is topk
    assert "graph decoder" in format_breakdown(b)
    with pytest.raises(ValueError, match="ONNX variants only"):
        breakdown("asr-conformer-smoke", "pytorch")
