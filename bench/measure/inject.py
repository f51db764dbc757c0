"""A known slowdown, injected on purpose, so the gate's power can be measured on real cards.

``BENCH_INJECT_SLOWDOWN="onnx-int8=0.2"`` makes every call of that variant's recognizer
spend 20% more time: after the real call it computes (a busy loop, not a sleep, so it
competes for the CPU like real work) for 0.2 x the call's own seconds. The cost scales
with the work, so a 20% slowdown stays 20% on short and long inputs and on fast and slow
hosts. Several variants: comma-separated. A run made with an injection records it in the
case's settings, and its figures never become a baseline.
"""
from __future__ import annotations

import os
import time

ENV = "BENCH_INJECT_SLOWDOWN"
# Stays empty in the project; `bench compare`'s self-test commits a one-line change here to
# make a head commit that is slower in one variant.
DEFAULT = ""


def injected_fractions(spec: str | None = None) -> dict[str, float]:
    """{variant: extra fraction} from ``spec`` (default: the environment, then DEFAULT)."""
    spec = os.environ.get(ENV, DEFAULT) if spec is None else spec
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not sep or not name or fraction < 0:
            raise ValueError(f"{ENV}: expected VARIANT=FRACTION[,...] with FRACTION >= 0, got {part!r}")
        out[name.strip()] = fraction
    return out


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    x = 0
    while time.perf_counter() < end:
        x += 1


class Slowed:
    """A recognizer whose every call costs (1 + fraction) x its own time."""

    def __init__(self, inner, fraction: float):
        self.inner, self.fraction = inner, fraction

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        out = self.inner(*args, **kwargs)
        _busy(self.fraction * (time.perf_counter() - t))
        return out

    def __getattr__(self, name):  # everything else is the real recognizer's
        return getattr(self.inner, name)


def maybe_slowed(recognizer, variant: str):
    fraction = injected_fractions().get(variant)
    return Slowed(recognizer, fraction) if fraction else recognizer
