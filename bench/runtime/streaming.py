"""What the two streaming recognizers (ESPnet's Speech2TextStreaming and ours on ONNX) share:
how a waveform is cut into the chunks they are fed, and the log of one stream's calls from
which a streaming user's figures are computed (bench.trackers.track_streaming).

No torch here: the ONNX runtime imports it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

DEFAULT_CHUNK = 640  # samples; 40 ms at 16 kHz, tedlium2's decode_asr_streaming.yaml
SAMPLE_RATE = 16000  # the rate the audio positions of a stream's calls are counted in


def stream_chunks(n_samples: int, chunk: int) -> list[tuple[int, int, bool]]:
    """(start, end, is_final) of each call, as ESPnet's streaming inference() cuts an utterance
    with ``sim_chunk_length``: whole chunks, then the rest (possibly empty) as the final call.
    ESPnet crashes (NameError) on an utterance shorter than one chunk; here it becomes one final
    call. Chunk 0 means one final call, as there."""
    if chunk <= 0 or n_samples < chunk:
        return [(0, n_samples, True)]
    whole = n_samples // chunk
    return [(i * chunk, (i + 1) * chunk, False) for i in range(whole)] + \
        [(whole * chunk, n_samples, True)]


def streaming_options(decode: dict) -> dict:
    """The decode keys both streaming recognizers take beside the beam search's own."""
    return {"disable_repetition_detection": bool(decode.get("disable_repetition_detection", False)),
            "decoder_text_length_limit": int(decode.get("decoder_text_length_limit", 0)),
            "encoded_feat_length_limit": int(decode.get("encoded_feat_length_limit", 0))}


@dataclass
class StreamCall:
    audio_end_s: float  # audio fed so far, this chunk included
    compute_s: float  # this call's compute
    blocks: int  # decoder blocks the search processed in this call
    partial_tokens: int  # tokens of the best hypothesis the user sees after this call
    is_final: bool


@dataclass
class StreamLog:
    """The calls of the last stream a recognizer decoded."""
    calls: list[StreamCall] = field(default_factory=list)

    def add(self, audio_end_s: float, started: float, blocks: int, partial_tokens: int,
            is_final: bool) -> None:
        self.calls.append(StreamCall(audio_end_s, time.perf_counter() - started, blocks,
                                     partial_tokens, is_final))


def simulated_finish(calls: list[StreamCall]) -> list[float]:
    """When each call would end if the audio arrived in real time: a call starts when its chunk
    has arrived and the previous call has ended (seconds from the stream's start)."""
    end, out = 0.0, []
    for c in calls:
        end = max(c.audio_end_s, end) + c.compute_s
        out.append(end)
    return out


def stream_figures(logs: list[StreamLog]) -> dict:
    """A streaming user's figures over the streams of ``logs`` (one per utterance):
    call_ms (every call), block_call_ms (calls that ran at least one decoder block: the latency
    of a block), final_ms (the last call: the endpoint), each as p50/p90/p99; the first token's
    audio position and its simulated wall time, median over the streams; the share of calls
    that end after the next chunk has arrived (falling behind real time)."""
    from bench.measure.stats import percentiles_ms

    calls = [c for log in logs for c in log.calls]
    first_audio, first_at, late, n_next = [], [], 0, 0
    for log in logs:
        finish = simulated_finish(log.calls)
        for k, c in enumerate(log.calls):
            if k + 1 < len(log.calls):
                n_next += 1
                late += finish[k] > log.calls[k + 1].audio_end_s
        first = next((k for k, c in enumerate(log.calls) if c.partial_tokens > 0), None)
        if first is not None:
            first_audio.append(log.calls[first].audio_end_s)
            first_at.append(finish[first])
    med = (lambda xs: round(float(np.median(xs)), 3) if xs else None)  # noqa: E731
    return {
        "streams": len(logs), "calls": len(calls),
        "call_ms": percentiles_ms([c.compute_s for c in calls]),
        "block_call_ms": percentiles_ms([c.compute_s for c in calls if c.blocks > 0]),
        "final_ms": percentiles_ms([c.compute_s for c in calls if c.is_final]),
        "first_token_audio_s": med(first_audio), "first_token_s": med(first_at),
        "streams_without_token": len(logs) - len(first_audio),
        "behind_real_time": round(late / n_next, 4) if n_next else None,
    }
