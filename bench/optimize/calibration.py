"""Calibration data for static int8: each graph's inputs as the plain export receives them,
recorded while it synthesises the card's own dev sentences (never its test ones).

Only the TTS cards are calibrated (bench/families/text2speech.py picks the sentences): their
time goes to the vocoder's convolutions, which dynamic int8 leaves in float (it quantizes
MatMul only), while static int8 with activation ranges from real inputs runs them ~1.9x
faster (DESIGN notes, README). Speech-to-text graphs keep dynamic int8.
"""
from __future__ import annotations

CALIBRATION = {"split": "dev", "n_utterances": 8}


def record_feeds(runtime, inputs: list) -> dict[str, list[dict]]:
    """{graph file: [feeds, ...]}: what each of the runtime's ORT sessions (``.sessions``)
    was fed while the runtime ran on ``inputs`` (the family picks the inputs: bench.families)."""
    feeds: dict[str, list[dict]] = {g: [] for g in runtime.sessions}
    for graph, session in runtime.sessions.items():
        session.run = _recording(session.run, feeds[graph])
    for x in inputs:
        runtime(x)
    return feeds


def _recording(run, sink: list):
    def recorded(output_names, input_feed, *args, **kwargs):
        sink.append({k: v.copy() for k, v in input_feed.items()})
        return run(output_names, input_feed, *args, **kwargs)
    return recorded
