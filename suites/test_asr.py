"""ASR suite: every ASR card x variant x device, measured, recorded and gated."""
TASK = "asr"


def test_asr(suite_run, bench_case):
    card, variant, device = bench_case
    suite_run.run_and_check(card, variant, device)
