"""Stopping a run: a cancelled CI job (SIGTERM) ends like Ctrl-C (SIGINT).

Either way pytest unwinds, the cases measured so far are written apart and marked partial,
and the last complete results, report and baselines stay as they were. While those files
are written, a second signal is ignored, so an impatient second Ctrl-C cannot cut it short.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from types import TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def terminate_as_interrupt() -> None:
    """Make SIGTERM raise KeyboardInterrupt (Python's default for it is to die on the spot),
    and SIGINT too even where the run was started with it ignored: a shell starts background
    jobs so, and Python then never installs its KeyboardInterrupt handler, so a SIGINT sent
    on purpose (by `bench run` passing one on) would be lost and the run go on to the end."""
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def drop_lineless_entries(exc: BaseException) -> None:
    """Unlink the traceback entries that have no line number, in ``exc`` and its chain.

    A signal can land on a bytecode that CPython 3.11 maps to no line; that entry's
    ``tb_lineno`` is None, and pytest's Ctrl-C report (which does ``tb_lineno - 1``) then
    crashes with a TypeError, turning an interrupted run (exit 2) into an internal error."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = _relink(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


def _relink(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and tb.tb_lineno is None:
        tb = tb.tb_next
    node = tb
    while node is not None:
        nxt = node.tb_next
        while nxt is not None and nxt.tb_lineno is None:
            nxt = nxt.tb_next
        node.tb_next = nxt
        node = nxt
    return tb


@contextmanager
def stop_signals_ignored():
    old = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def forward_stop_signals(proc) -> None:
    """In a parent that waits on ``proc`` (started in its own session, so a terminal's Ctrl-C
    reaches it once, through here): pass SIGINT and SIGTERM on and keep waiting for it to
    write its partial results, instead of dying and leaving it orphaned."""
    def forward(signum, frame):
        if proc.poll() is None:
            proc.send_signal(signum)

    for s in STOP_SIGNALS:
        signal.signal(s, forward)
