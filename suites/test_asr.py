"""ASR suite: every ASR card x variant x device, measured, recorded and gated.

Measuring happens in a fixture, so a case that cannot run shows as a pytest ERROR, while
a regression found by the gate shows as a FAILURE.
"""
import pytest

TASK = "asr"


@pytest.fixture
def measured_case(suite_run, bench_case):
    return suite_run.measure(*bench_case)


def test_asr(suite_run, measured_case, benchmark):
    suite_run.record_benchmark(benchmark, measured_case)
    suite_run.check(measured_case)
