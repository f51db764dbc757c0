"""The gate's error rates under a stated noise model (bench.measure.selftest.SimulatedHost:
seeded, so the same on every host; a real clock's rates depend on how busy the host is and
are printed by `bench selftest`, not asserted here)."""
from bench.measure.selftest import SimulatedHost, gate_error_rates


def rates(slowdown, tol=None):
    r = gate_error_rates(comparisons=200, slowdown=slowdown, speedup_tol=tol,
                         host=SimulatedHost(seed=0))
    print(r.summary())
    return r


def test_false_alarms_and_detection_on_a_noisy_host():
    r = rates(0.25)
    assert r.aa_fail <= 2, r.summary()             # at most 1% false alarms
    assert r.slowdown_caught >= 190, r.summary()   # at least 95% of 25% slowdowns
    assert r.wer_caught == 200, r.summary()        # a 1-point WER loss, always
    r = rates(0.20)
    assert r.aa_fail <= 2 and r.slowdown_caught >= 150, r.summary()  # docs/gate.md: 83.5%


def test_the_rates_tell_a_broken_tolerance():
    assert rates(0.20, tol=0.0).aa_fail > 2        # no tolerance: false alarms
    assert rates(0.20, tol=0.3).slowdown_caught == 0  # too wide: blind to 20%
