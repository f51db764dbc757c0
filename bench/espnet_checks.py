"""ESPnet's runtime type checks, off in the harness's processes (BENCH_TYPEGUARD=1 keeps them).

ESPnet decorates its functions with typeguard's ``@typechecked``, which recompiles each one
with checks when its module is imported: ``python -c "import espnet2.bin.asr_inference"``
takes 11-16 s here with them and 5 s without, and every bench process (the run, each
memory child, each compare worker) pays it. The checks themselves run a few times per
utterance: 3.8 ms in 2.9 s of decoding the tiny card (cProfile), far inside the timing
noise. typeguard makes ``@typechecked`` a no-op under ``python -O``; this does the same
without stripping the harness's own asserts. It must run before ESPnet is first imported,
so the package's ``__init__`` imports it.
"""
from __future__ import annotations

import os


def _unchecked(target=None, **_options):
    """``@typechecked`` and ``@typechecked(...)`` both hand the target back unchanged."""
    return _unchecked if target is None else target


def switch_off() -> bool:
    """Replace ``typeguard.typechecked`` before ESPnet imports it; False when kept on."""
    if os.environ.get("BENCH_TYPEGUARD") == "1":
        return False
    try:
        import typeguard
    except ImportError:  # an ESPnet without typeguard: nothing to switch off
        return False
    typeguard.typechecked = _unchecked
    return True


SWITCHED_OFF = switch_off()
