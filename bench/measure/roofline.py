"""Where an ONNX variant stands against this machine's arithmetic limit.

One extra pass over the timed subset: every graph run is timed and its arithmetic counted
(bench.measure.flops; the count runs outside the timed call). Per graph and over all graphs:
the operations, the achieved rate, and the share of the machine's peak (bench.measure.peak)
it reaches: the time the graph's fp32 and int8 operations would take at the GEMM probe's
rates, over the time they took. End to end, the same against the whole decode's time (the
numpy search and everything else included).
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

from bench.measure.breakdown import graph_sessions, timed_attr
from bench.measure.flops import Count, GraphFlops


def _share(count: Count, seconds: float, peaks: dict) -> dict:
    ideal = count.fp32 / (peaks["fp32_gflops"] * 1e9) + count.int8 / (peaks["int8_gops"] * 1e9)
    ops = count.fp32 + count.int8
    return {"gflop_fp32": round(count.fp32 / 1e9, 3), "gop_int8": round(count.int8 / 1e9, 3),
            "seconds": round(seconds, 4), "gops_per_s": round(ops / seconds / 1e9, 2) if seconds else None,
            "peak_percent": round(100 * ideal / seconds, 2) if seconds else None}


def roofline(rec, inputs: list, peaks: dict) -> dict:
    """Decode ``inputs`` once with every graph run counted; the per-graph and total shares."""
    seconds, calls, counts = Counter(), Counter(), defaultdict(Count)
    counting = [0.0]  # time spent counting, inside the decode but not part of it

    def counter(label, session):
        flops = GraphFlops(session._model_path)

        def count(output_names, feeds, *args, **kwargs):
            t = time.perf_counter()
            counts[label] += flops.count(feeds)
            counting[0] += time.perf_counter() - t
        return count

    sessions = graph_sessions(rec)
    with ExitStack() as stack:
        for label, s in sessions.items():
            stack.enter_context(timed_attr(s, "run", label, seconds, calls, after=counter(label, s)))
        t = time.perf_counter()
        for x in inputs:
            rec(x)
        decode_s = time.perf_counter() - t - counting[0]
    graphs = {label: {"runs": calls[label], "graph": Path(sessions[label]._model_path).name,
                      **_share(counts[label], seconds[label], peaks),
                      **({"uncounted_ops": counts[label].uncounted} if counts[label].uncounted else {})}
              for label in calls}
    total = sum(counts.values(), Count())
    graph_s = sum(seconds.values())
    return {"peaks": peaks, "graphs": graphs, "in_graphs": _share(total, graph_s, peaks),
            "end_to_end": _share(total, decode_s, peaks)}
