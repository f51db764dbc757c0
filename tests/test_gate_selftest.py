"""The gate's error rates on this machine, measured (issue: A/A <= 1%, 20% slowdown >= 95%)."""
import pytest

from bench.measure.selftest import gate_error_rates


@pytest.mark.slow
def test_gate_error_rates():
    r = gate_error_rates(comparisons=200, slowdown=0.20)
    print(r.summary())
    assert r.aa_fail <= 2, r.summary()             # at most 1% false alarms
    assert r.slowdown_caught >= 190, r.summary()   # at least 95% of real 20% slowdowns
    assert r.wer_caught == 200, r.summary()        # a 1-point WER loss, always
