"""Turns on the machine for parallel test workers: a readers-writer lock over two files.

Tests hold ``room`` shared; a test that must run alone holds it exclusive. ``gate`` is held
by the lone test while it waits for the room to empty, so tests arriving after it queue
behind it instead of keeping the room busy forever (the lock is fair to the lone test).
flock: the kernel drops a lock with its process, so a crashed worker blocks no one.
"""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path


@contextlib.contextmanager
def machine_turn(lock_dir: Path, alone: bool):
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "gate", "a") as gate, open(lock_dir / "room", "a") as room:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(room, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
