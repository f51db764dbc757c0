"""One line per benchmark case when it starts and when it ends, for a person following a run.

pytest's own output in the main job (`-q`) is a row of dots; a case can take minutes. The
suites register :class:`CaseProgress` (suites/conftest.py), which writes through pytest's
terminal reporter, so the lines show with -q and -v alike:

    [ 3/16] asr-conformer-tiny onnx-int8 cpu: started (elapsed 4m12s, about 9m left)
    [ 3/16] asr-conformer-tiny onnx-int8 cpu: done in 52s (pass)

"About N left" is the mean duration of the cases finished so far times the cases not yet
finished (this one included); before the first case ends it says "estimating". The line
formatting is kept in pure functions (:func:`started_line`, :func:`done_line`).
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import pytest

__all__ = ["CaseProgress", "done_line", "format_duration", "format_estimate",
           "remaining_s", "started_line", "outcome_of"]


def format_duration(seconds: float) -> str:
    """Elapsed time, to the second: 0s, 52s, 4m12s, 1h03m07s."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def format_estimate(seconds: float) -> str:
    """An estimate, no finer than it deserves: 40s, 9m (from 1 minute on), 1h05m."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    m = int(round(s / 60.0))
    if m < 60:
        return f"{m}m"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def remaining_s(finished_s: Sequence[float], total: int) -> float | None:
    """Mean seconds per finished case x cases not finished yet; None before any has finished."""
    if not finished_s:
        return None
    left = max(0, total - len(finished_s))
    return sum(finished_s) / len(finished_s) * left


def _prefix(index: int, total: int, label: str) -> str:
    width = len(str(total))
    return f"[{index:>{width}}/{total}] {label}"


def started_line(index: int, total: int, label: str, elapsed_s: float,
                 finished_s: Sequence[float]) -> str:
    """``[ 3/16] label: started (elapsed 4m12s, about 9m left)``; index counts from 1."""
    left = remaining_s(finished_s, total)
    estimate = "estimating" if left is None else f"about {format_estimate(left)} left"
    return f"{_prefix(index, total, label)}: started (elapsed {format_duration(elapsed_s)}, {estimate})"


def done_line(index: int, total: int, label: str, seconds: float, outcome: str) -> str:
    """``[ 3/16] label: done in 52s (pass)``."""
    return f"{_prefix(index, total, label)}: done in {format_duration(seconds)} ({outcome})"


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
    return reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason


def outcome_of(reports: Sequence, max_reason: int = 70) -> str:
    """One word (and a short reason for a skip) from a test's setup/call/teardown reports:
    pass (or new: the gate's verdict when the suite recorded one), FAILED, ERROR,
    invalid (too noisy), skipped: <reason>."""
    by_when = {r.when: r for r in reports}
    setup, call, teardown = by_when.get("setup"), by_when.get("call"), by_when.get("teardown")
    if setup is not None and setup.failed:
        return "ERROR"
    skipped = next((r for r in (setup, call) if r is not None and r.skipped), None)
    if skipped is not None:
        reason = " ".join(_skip_reason(skipped).split())
        if reason.startswith("INVALID"):
            return "invalid: too noisy to decide"
        if len(reason) > max_reason:
            reason = reason[:max_reason - 3] + "..."
        return f"skipped: {reason}" if reason else "skipped"
    if call is not None and call.failed:
        return "FAILED"
    if teardown is not None and teardown.failed:
        return "ERROR in teardown"
    if call is not None and call.passed:
        verdict = dict(getattr(call, "user_properties", None) or []).get("verdict")
        return verdict if verdict in ("pass", "new") else "pass"
    return "not run"


def _default_label(item) -> str:
    return item.nodeid


class CaseProgress:
    """A pytest plugin: a started and a done line per test, through the terminal reporter.

    ``label(item)`` names a case (default: its node id); ``clock`` is injectable for tests.
    """

    def __init__(self, config, label: Callable = _default_label,
                 clock: Callable[[], float] = time.monotonic):
        self.config = config
        self.label = label
        self.clock = clock
        self.t0 = clock()
        self.total = 0
        self.labels: dict[str, str] = {}
        self.index: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.reports: dict[str, list] = {}
        self.finished_s: list[float] = []

    def _write(self, line: str) -> None:
        tr = self.config.pluginmanager.get_plugin("terminalreporter")
        if tr is None:  # -p no:terminal
            return
        tr.ensure_newline()  # ends a line pytest began with a file name or test id
        tw = getattr(tr, "_tw", None)
        # with -q the dots are written without a file name, which ensure_newline does not see
        if tw is not None and getattr(tw, "width_of_current_line", 0):
            tw.line()
        tr.write_line(line)
        tr.flush()

    def pytest_sessionstart(self, session) -> None:
        self.t0 = self.clock()

    def pytest_collection_finish(self, session) -> None:
        self.total = len(session.items)
        for i, item in enumerate(session.items, 1):
            self.labels[item.nodeid] = self.label(item)
            self.index[item.nodeid] = i

    @pytest.hookimpl(tryfirst=True)  # before the reporter starts the test's own line (-v)
    def pytest_runtest_logstart(self, nodeid, location) -> None:
        now = self.clock()
        self.started[nodeid] = now
        self.reports[nodeid] = []
        index = self.index.get(nodeid, len(self.finished_s) + 1)
        self._write(started_line(index, max(self.total, index), self.labels.get(nodeid, nodeid),
                                 now - self.t0, self.finished_s))

    def pytest_runtest_logreport(self, report) -> None:
        self.reports.setdefault(report.nodeid, []).append(report)

    @pytest.hookimpl(trylast=True)  # after the reporter's own end-of-test output ([100%])
    def pytest_runtest_logfinish(self, nodeid, location) -> None:
        now = self.clock()
        seconds = now - self.started.pop(nodeid, now)
        self.finished_s.append(seconds)
        index = self.index.get(nodeid, len(self.finished_s))
        self._write(done_line(index, max(self.total, index), self.labels.get(nodeid, nodeid),
                              seconds, outcome_of(self.reports.pop(nodeid, []))))
