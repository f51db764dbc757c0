"""ST suite: ESPnet STTask cards, scored by BLEU (sacrebleu, its signature kept with the case)."""
TASK = "st"


def test_st(suite_run, measured_case, benchmark):
    suite_run.conclude(benchmark, measured_case)
