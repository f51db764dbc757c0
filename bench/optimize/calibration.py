"""Calibration data for static int8: each graph's inputs as it receives them while its
runtime runs the card's dev data (never its test data); the family picks the inputs.

onnx-int8 calibrates the TTS cards only (bench/families/text2speech.py): their time goes to
the vocoder's convolutions, which dynamic int8 leaves in float (it quantizes MatMul only),
while static int8 with activation ranges from real inputs runs them ~1.9x faster (DESIGN
notes, README); its speech-to-text graphs are dynamic int8. The int8 study's static variants
(bench/variants.py) calibrate every family, on the graphs of their base variant.
"""
from __future__ import annotations

CALIBRATION = {"split": "dev", "n_utterances": 8}
FEEDS_PER_GRAPH = 64  # a decoder step is called hundreds of times an utterance
# how every static int8 here quantizes: QDQ, per-channel int8 weights, uint8 activations, MinMax
QDQ_SETTINGS = {"format": "QDQ", "per_channel": True, "weight_type": "QInt8",
                "activation_type": "QUInt8", "calibration": "MinMax"}


def record_feeds(runtime, inputs: list, limit: int | None = None) -> dict[str, list[dict]]:
    """{graph file: [feeds, ...]}: what each of the runtime's ORT sessions (``.sessions``)
    was fed while the runtime ran on ``inputs`` (the family picks the inputs: bench.families).
    With ``limit``, a graph called more often (a decoder step) keeps a seeded uniform sample
    of that many calls, in call order."""
    feeds: dict[str, list[dict]] = {g: [] for g in runtime.sessions}
    for graph, session in runtime.sessions.items():
        session.run = _recording(session.run, feeds[graph], limit)
    for x in inputs:
        runtime(x)
    return {g: [f for _, f in sorted(kept, key=lambda p: p[0])] for g, kept in feeds.items()}


def _recording(run, sink: list, limit: int | None):
    import random

    rng, calls = random.Random(0), [0]

    def recorded(output_names, input_feed, *args, **kwargs):
        i = calls[0]
        calls[0] += 1
        # reservoir sampling: call i is kept with probability limit / (i + 1)
        slot = len(sink) if limit is None or i < limit else rng.randrange(i + 1)
        if limit is None or slot < limit:
            item = (i, {k: v.copy() for k, v in input_feed.items()})
            if slot == len(sink):
                sink.append(item)
            else:
                sink[slot] = item
        return run(output_names, input_feed, *args, **kwargs)
    return recorded


def feed_reader(feeds: list[dict]):
    """The feeds as ORT's quantizer reads calibration data."""
    from onnxruntime.quantization import CalibrationDataReader

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.items = iter(feeds)

        def get_next(self):
            return next(self.items, None)

    return Feeds()


def calibrated_qdq(src, dst, op_types, excluded: list[str], feeds: list[dict], settings: dict) -> None:
    """ORT's static quantization of ``op_types`` in ``src`` (QDQ), ranges from ``feeds``; the
    weight and activation types, per-channel and the calibration method from ``settings``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(str(src), str(dst), feed_reader(feeds), quant_format=getattr(QuantFormat, settings["format"]),
                    op_types_to_quantize=list(op_types), nodes_to_exclude=excluded,
                    per_channel=settings["per_channel"],
                    activation_type=getattr(QuantType, settings["activation_type"]),
                    weight_type=getattr(QuantType, settings["weight_type"]),
                    calibrate_method=getattr(CalibrationMethod, settings["calibration"]))
