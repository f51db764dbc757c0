"""TTS suite: text-to-wave cards (FastSpeech2 + HiFiGAN, VITS); RTF over the output audio,
quality as mel-cepstral distortion to the PyTorch output."""
TASK = "tts"


def test_tts(suite_run, measured_case, benchmark):
    suite_run.conclude(benchmark, measured_case)
