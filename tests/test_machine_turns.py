"""Parallel test workers: tests share the machine, a timing test has it alone."""
import threading
import time

from machine_turns import machine_turn


def _enter(lock_dir, alone, log, name, hold=0.3):
    with machine_turn(lock_dir, alone):
        log.append(("in", name, time.monotonic()))
        time.sleep(hold)
        log.append(("out", name, time.monotonic()))


def _run(lock_dir, plan):
    """Start each (name, alone, delay) after its delay; the enter/leave log, in time order."""
    log = []
    threads = []
    for name, alone, delay in plan:
        t = threading.Thread(target=lambda n=name, a=alone, d=delay: (time.sleep(d), _enter(lock_dir, a, log, n)))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(10)
    return sorted(log, key=lambda e: e[2])


def _overlaps(log, name):
    """The names that were inside while ``name`` was."""
    t_in = next(t for e, n, t in log if e == "in" and n == name)
    t_out = next(t for e, n, t in log if e == "out" and n == name)
    inside = set()
    for e, n, t in log:
        if n == name:
            continue
        n_in = next(tt for ee, nn, tt in log if ee == "in" and nn == n)
        n_out = next(tt for ee, nn, tt in log if ee == "out" and nn == n)
        if n_in < t_out and t_in < n_out:
            inside.add(n)
    return inside


def test_shared_tests_run_together(tmp_path):
    log = _run(tmp_path, [("a", False, 0), ("b", False, 0.05)])
    assert _overlaps(log, "a") == {"b"}


def test_a_timing_test_waits_for_the_room_and_then_has_it_alone(tmp_path):
    # a is inside; t (alone) arrives, then c: t waits for a to leave, c waits for t
    log = _run(tmp_path, [("a", False, 0), ("t", True, 0.05), ("c", False, 0.1)])
    assert _overlaps(log, "t") == set(), log
    order = [n for e, n, _ in log if e == "in"]
    assert order == ["a", "t", "c"], log  # c did not overtake the waiting timing test
