"""Calibration data for static int8: each graph's inputs as the plain export receives them,
recorded while it synthesises the card's own dev sentences (never its test ones).

Only the TTS cards are calibrated: their time goes to the vocoder's convolutions, which
dynamic int8 leaves in float (it quantizes MatMul only), while static int8 with activation
ranges from real inputs runs them ~1.9x faster (DESIGN notes, README). Speech-to-text graphs
keep dynamic int8.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from bench.tasks import get_task
from bench.zoo.cards import Card

CALIBRATION = {"split": "dev", "n_utterances": 8}


def calibration_feeds(card: Card, artifact: Path, meta: dict) -> dict[str, list[dict]]:
    """{graph file: [feeds, ...]} from the plain export on the dev split; {} when the card
    is not calibrated (another task family, or data that is not a corpus split)."""
    if get_task(card.task).family != "text2speech" or card.data.get("source") != "grammar":
        return {}
    from bench.data.sets import load_text_set
    from bench.runtime.onnx_tts import OnnxText2Speech

    dev = dataclasses.replace(card, data={**card.data, **CALIBRATION})
    rec = OnnxText2Speech(artifact / "onnx", artifact / "exp", meta, card.decode)
    feeds: dict[str, list[dict]] = {g: [] for g in rec.sessions}
    for graph, session in rec.sessions.items():
        session.run = _recording(session.run, feeds[graph])
    for item in load_text_set(dev):
        rec(item.input)
    return feeds


def _recording(run, sink: list):
    def recorded(output_names, input_feed, *args, **kwargs):
        sink.append({k: v.copy() for k, v in input_feed.items()})
        return run(output_names, input_feed, *args, **kwargs)
    return recorded
