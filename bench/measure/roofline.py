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
from collections import defaultdict
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bench.measure.flops import Count, GraphFlops


def _sessions(rec) -> dict:
    inner = getattr(rec, "recognizer", rec)  # unwrap the long-recording windows
    found = {name: s for name, s in vars(inner).items() if hasattr(s, "run") and hasattr(s, "get_inputs")}
    found.update(getattr(inner, "sessions", {}) or {})
    return found


@contextmanager
def _counted(session, label: str, log: dict, counting: list):
    counter = GraphFlops(session._model_path)
    original = session.run

    def run(output_names, feeds, *args, **kwargs):
        t = time.perf_counter()
        out = original(output_names, feeds, *args, **kwargs)
        spent = time.perf_counter() - t
        t = time.perf_counter()
        count = counter.count(feeds)
        counting[0] += time.perf_counter() - t
        entry = log[label]
        entry["runs"] += 1
        entry["seconds"] += spent
        entry["count"] = entry["count"] + count
        return out

    session.run = run
    try:
        yield
    finally:
        del session.run  # the instance's own attribute: the class's method shows again


def _share(count: Count, seconds: float, peaks: dict) -> dict:
    ideal = count.fp32 / (peaks["fp32_gflops"] * 1e9) + count.int8 / (peaks["int8_gops"] * 1e9)
    ops = count.fp32 + count.int8
    return {"gflop_fp32": round(count.fp32 / 1e9, 3), "gop_int8": round(count.int8 / 1e9, 3),
            "seconds": round(seconds, 4), "gops_per_s": round(ops / seconds / 1e9, 2) if seconds else None,
            "peak_percent": round(100 * ideal / seconds, 2) if seconds else None}


def roofline(rec, inputs: list, peaks: dict) -> dict:
    """Decode ``inputs`` once with every graph run counted; the per-graph and total shares."""
    log = defaultdict(lambda: {"runs": 0, "seconds": 0.0, "count": Count()})
    counting = [0.0]
    with ExitStack() as stack:
        for label, s in _sessions(rec).items():
            stack.enter_context(_counted(s, label, log, counting))
        t = time.perf_counter()
        for x in inputs:
            rec(x)
        decode_s = time.perf_counter() - t - counting[0]
    graphs = {label: {"runs": e["runs"], "graph": Path(_sessions(rec)[label]._model_path).name,
                      **_share(e["count"], e["seconds"], peaks),
                      **({"uncounted_ops": e["count"].uncounted} if e["count"].uncounted else {})}
              for label, e in log.items()}
    total = sum((e["count"] for e in log.values()), Count())
    graph_s = sum(e["seconds"] for e in log.values())
    return {"peaks": peaks, "graphs": graphs, "in_graphs": _share(total, graph_s, peaks),
            "end_to_end": _share(total, decode_s, peaks)}
