"""ASR suite: every ASR card x variant x device, measured, recorded and gated (WER, CER)."""
TASK = "asr"


def test_asr(suite_run, measured_case, benchmark):
    suite_run.conclude(benchmark, measured_case)
