"""SLU suite: SLURP-style cards (an ASR model whose first output word is the intent),
scored by intent accuracy and the WER of the transcript after the intent."""
TASK = "slu"


def test_slu(suite_run, measured_case, benchmark):
    suite_run.conclude(benchmark, measured_case)
