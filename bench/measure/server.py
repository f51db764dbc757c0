"""Many utterances at once, as a server meets them (MLPerf's Offline and Server scenarios).

N streams, each a recognizer of its own on one intra-op thread, take queries from one FIFO
queue. Offline: every query is there at the start; the figure is the throughput, audio
seconds decoded per wall second across the streams (RTFx). Server: queries arrive at a fixed
mean rate, with exponential gaps from a fixed seed (a Poisson process, the same schedule for
every variant); a query's latency runs from its arrival to its result, queueing included.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

import numpy as np

from bench.measure.stats import percentiles_ms

SEED = 0


def _serve(recs: Sequence[Callable], inputs: Sequence, arrivals: np.ndarray) -> tuple[list[float], float]:
    """Run every query on the first free stream, none before its arrival (seconds from the
    start). Returns each query's latency (finish - arrival) and the wall time."""
    n = len(inputs)
    latency = [0.0] * n
    nxt = [0]
    lock = threading.Lock()
    errors: list[BaseException] = []
    t0 = time.perf_counter()

    def stream(rec):
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n or errors:
                return
            wait = t0 + arrivals[i] - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                rec(inputs[i])
            except BaseException as e:  # noqa: BLE001 - raised in the caller's thread below
                errors.append(e)
                return
            latency[i] = time.perf_counter() - t0 - arrivals[i]

    threads = [threading.Thread(target=stream, args=(r,), daemon=True) for r in recs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return latency, time.perf_counter() - t0


def offline(recs: Sequence[Callable], inputs: Sequence, audio_s: Sequence[float]) -> dict:
    latency, wall = _serve(recs, inputs, np.zeros(len(inputs)))
    return {"queries": len(inputs), "wall_s": round(wall, 3), "rtfx": sum(audio_s) / wall}


def server(recs: Sequence[Callable], inputs: Sequence, audio_s: Sequence[float], rate_qps: float) -> dict:
    gaps = np.random.default_rng(SEED).exponential(1.0 / rate_qps, len(inputs))
    arrivals = np.concatenate(([0.0], np.cumsum(gaps)[:-1]))
    latency, wall = _serve(recs, inputs, arrivals)
    return {"queries": len(inputs), "rate_qps": round(rate_qps, 4), "wall_s": round(wall, 3),
            "achieved_qps": len(inputs) / wall, "latency_ms": percentiles_ms(latency),
            "rtfx": sum(audio_s) / wall}
