"""The short version of `bench selftest --real`, in CI: on the real smoke card, in fresh
`bench run` processes, an A/A run passes against the baseline of a first run and a run with
an injected slowdown fails."""
import pytest

from bench.measure.selftest_real import speed_error_rates, summary

pytestmark = pytest.mark.slow


def test_real_card_aa_passes_and_injected_slowdown_fails(tmp_path, monkeypatch, shared_cache):
    monkeypatch.setenv("BENCH_CACHE", str(shared_cache))
    # --fast (2 fixed rounds): a 50% slowdown shows through the wider interval, and A/A
    # still passes because a wide interval does not fall below the bar
    rates = speed_error_rates("asr-conformer-smoke", repeats=1, slowdown=0.5, workdir=tmp_path,
                              variants=("onnx",), fast=True)
    text = summary(rates, None)
    assert [v for _, v, _ in rates["aa"]] == ["pass", "pass"], text  # pytorch and onnx
    assert [v for _, v, _ in rates["detect"]] == ["fail"], text
    assert "slowdown injected in every ONNX variant: caught 1/1" in text
    reasons = rates["detect"][0][2]  # same host: rtf and latency may fail beside the speedup
    speedup = [r for r in reasons if r.startswith("speedup fell")]
    assert speedup and "this host" in speedup[0], reasons
