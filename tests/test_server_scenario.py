"""The server scenario: N streams over one FIFO queue, offline and at a fixed arrival rate.
Service times here are sleeps (not CPU work), so the queueing they imply is what is checked."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from bench.measure import server as S
from bench.trackers import SERVER_LOAD, server_queries, track_server

SERVICE = 0.05


def _sleeper(log=None):
    def rec(x):
        time.sleep(SERVICE)
        if log is not None:
            log.append(x)
        return x
    return rec


def test_offline_queues_everything_and_shares_it_among_the_streams():
    log = []
    r = S.offline([_sleeper(log), _sleeper(log)], list(range(6)), [2.0] * 6)
    assert sorted(log) == list(range(6))  # every query decoded once
    # 6 queries of 50 ms on 2 streams: 3 rounds, never fewer
    assert r["queries"] == 6 and r["wall_s"] >= 3 * SERVICE * 0.9
    assert r["rtfx"] == pytest.approx(12.0 / r["wall_s"], rel=0.01)


def test_latency_counts_the_wait_in_the_queue():
    # one stream, every query at once: the k-th waits for the k-1 before it
    latency, wall = S._serve([_sleeper()], [0, 1, 2, 3], np.zeros(4))
    assert latency == sorted(latency)
    assert latency[3] >= 4 * SERVICE * 0.9 and wall >= latency[3]


def test_server_arrivals_follow_the_rate_and_the_same_seed():
    r = S.server([_sleeper(), _sleeper()], list(range(8)), [1.0] * 8, rate_qps=10.0)
    assert r["rate_qps"] == 10.0 and r["queries"] == 8
    # arrivals are spread (mean gap 0.1 s): the run lasts at least until the last arrival
    gaps = np.random.default_rng(S.SEED).exponential(0.1, 8)
    assert r["wall_s"] >= gaps[:-1].sum()
    # at this light load (one 50 ms query a 100 ms on 2 streams) latency is mostly service
    assert r["latency_ms"]["p50"] >= SERVICE * 1000 * 0.9


def test_a_failing_query_fails_the_scenario():
    def broken(x):
        raise ValueError("too short")

    with pytest.raises(ValueError, match="too short"):
        S.offline([broken, _sleeper()], [0, 1, 2], [1.0] * 3)


@dataclasses.dataclass
class _Utt:
    input: int
    seconds: float


def test_track_server_sets_every_variant_against_pytorchs_offline_throughput():
    subset = [_Utt(0, 1.0), _Utt(1, 3.0), _Utt(2, 5.0)]
    inputs, audio = server_queries(subset)
    assert len(inputs) == 24 and audio[:3] == [1.0, 3.0, 5.0]
    reference = {"queries": 24, "wall_s": 2.4, "rtfx": 72.0 / 2.4}
    r = track_server(_sleeper, "onnx", 2, subset, reference)
    assert r.detail["server"]["rate_qps"] == pytest.approx(SERVER_LOAD * 24 / 2.4, rel=1e-3)
    assert r.metrics["server_speedup"] == pytest.approx(r.detail["offline"]["rtfx"] / reference["rtfx"])
    assert r.metrics["server_p99_ms"] == r.detail["server"]["latency_ms"]["p99"]
    # the reference is not measured twice offline, and has no speedup against itself
    ref = track_server(_sleeper, "pytorch", 2, subset, reference)
    assert ref.detail["offline"] is reference and "server_speedup" not in ref.metrics
