"""ESPnet's runtime type checks: on, as ESPnet ships them, unless BENCH_TYPEGUARD=0.

ESPnet decorates its functions with typeguard's ``@typechecked``, which recompiles each one
with checks when its module is imported: ``python -c "import espnet2.bin.asr_inference"``
takes 11-16 s here with them and 5 s without, in every process that imports ESPnet. The
checks also run on every call, and that is part of the PyTorch reference a speedup is
measured against: ``bench compare --base 3754a21 --head e9fb242`` (checks off in the head)
timed ESPnet's SLU inference at 0.947 [0.893, 0.984] of its time with them. So measurements
keep them; the unit tests (tests/conftest.py), which judge behaviour, not figures, switch
them off.
typeguard itself makes ``@typechecked`` a no-op under ``python -O``; this does the same
without stripping asserts. It must run before ESPnet is first imported, so the package's
``__init__`` imports it.
"""
from __future__ import annotations

import os


def _unchecked(target=None, **_options):
    """``@typechecked`` and ``@typechecked(...)`` both hand the target back unchanged."""
    return _unchecked if target is None else target


def switch_off_if_asked() -> bool:
    """With BENCH_TYPEGUARD=0, replace ``typeguard.typechecked`` before ESPnet imports it."""
    if os.environ.get("BENCH_TYPEGUARD", "1") != "0":
        return False
    try:
        import typeguard
    except ImportError:  # an ESPnet without typeguard: nothing to switch off
        return False
    typeguard.typechecked = _unchecked
    return True


SWITCHED_OFF = switch_off_if_asked()
