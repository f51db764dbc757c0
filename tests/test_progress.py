"""The per-case progress lines of the suites: their format, and that pytest -q shows them."""
from types import SimpleNamespace

import pytest

from bench.progress import (done_line, format_duration, format_estimate, outcome_of, remaining_s,
                            started_line)

pytest_plugins = ["pytester"]


def test_format_duration_and_estimate():
    assert format_duration(0) == "0s"
    assert format_duration(51.6) == "52s"
    assert format_duration(252) == "4m12s"
    assert format_duration(3600 + 3 * 60 + 7) == "1h03m07s"
    assert format_estimate(40) == "40s"
    assert format_estimate(9 * 60 + 12) == "9m"  # an estimate is not given to the second
    assert format_estimate(65 * 60) == "1h05m"


def test_remaining_is_mean_of_finished_times_remaining_cases():
    assert remaining_s([], 16) is None
    assert remaining_s([100.0, 200.0], 16) == pytest.approx(150.0 * 14)
    assert remaining_s([10.0] * 16, 16) == 0.0


def test_started_and_done_lines():
    label = "asr-conformer-tiny onnx-int8 cpu"
    assert started_line(1, 16, label, 3.2, []) == \
        "[ 1/16] asr-conformer-tiny onnx-int8 cpu: started (elapsed 3s, estimating)"
    # two cases done, 126 s each on average: 14 not finished, this one included
    assert started_line(3, 16, label, 252, [100.0, 152.0]) == \
        "[ 3/16] asr-conformer-tiny onnx-int8 cpu: started (elapsed 4m12s, about 29m left)"
    assert done_line(3, 16, label, 52.4, "pass") == \
        "[ 3/16] asr-conformer-tiny onnx-int8 cpu: done in 52s (pass)"
    assert started_line(2, 9, "x", 0, [1.0]) == "[2/9] x: started (elapsed 0s, about 8s left)"


def _rep(when, outcome, longrepr=None):
    return SimpleNamespace(when=when, passed=outcome == "passed", failed=outcome == "failed",
                           skipped=outcome == "skipped", longrepr=longrepr)


def test_outcome_words():
    ok = [_rep("setup", "passed"), _rep("call", "passed"), _rep("teardown", "passed")]
    assert outcome_of(ok) == "pass"
    assert outcome_of([_rep("setup", "passed"), _rep("call", "failed"),
                       _rep("teardown", "passed")]) == "FAILED"
    assert outcome_of([_rep("setup", "failed"), _rep("teardown", "passed")]) == "ERROR"
    skip = ("f.py", 1, "Skipped: onnx-fp16 needs cuda")
    assert outcome_of([_rep("setup", "skipped", skip)]) == "skipped: onnx-fp16 needs cuda"
    noisy = ("f.py", 1, "Skipped: INVALID (too noisy to decide): speedup interval ...")
    assert outcome_of([_rep("setup", "passed"), _rep("call", "skipped", noisy)]) == \
        "invalid: too noisy to decide"
    new = _rep("call", "passed")
    new.user_properties = [("verdict", "new")]
    assert outcome_of([_rep("setup", "passed"), new]) == "new"  # the gate's word, not pytest's
    long = ("f.py", 1, "Skipped: " + "x" * 200)
    assert len(outcome_of([_rep("setup", "skipped", long)])) < 90


def test_lines_show_under_pytest_q(pytester):
    # the plugin as the suites register it, with a clock that moves 15 s per reading
    pytester.makeconftest("""
import itertools
from bench.progress import CaseProgress

def pytest_configure(config):
    ticks = itertools.count(0, 15)
    config.pluginmanager.register(
        CaseProgress(config, label=lambda item: item.name.upper(), clock=lambda: next(ticks)),
        "bench-progress")
""")
    pytester.makepyfile(test_cases="""
import pytest

@pytest.mark.parametrize("n", [1, 2, 3])
def test_case(n):
    if n == 2:
        pytest.skip("no cuda here")
    assert n != 3
""")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    out = result.stdout.str()
    lines = [line for line in out.splitlines() if line.startswith("[")]
    assert lines == [
        "[1/3] TEST_CASE[1]: started (elapsed 15s, estimating)",
        "[1/3] TEST_CASE[1]: done in 15s (pass)",
        "[2/3] TEST_CASE[2]: started (elapsed 45s, about 30s left)",
        "[2/3] TEST_CASE[2]: done in 15s (skipped: no cuda here)",
        "[3/3] TEST_CASE[3]: started (elapsed 1m15s, about 15s left)",
        "[3/3] TEST_CASE[3]: done in 15s (FAILED)",
    ], out
    result.assert_outcomes(passed=1, skipped=1, failed=1)
