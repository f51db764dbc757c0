"""Fixtures shared by the tests of the harness, and how tests share the machine.

`./run tests` runs pytest-xdist workers, one per core. A test marked ``timing`` decides a
verdict from measured speed (an A/A run must pass, an injected slowdown must fail), and one
marked ``all_cores`` computes on every core; each runs alone: it waits until the tests
running on other workers end, and no test starts until it ends. Everything else runs side
by side, with one torch thread per worker: OpenMP threads of two processes on two cores
spin against each other (a 44 s decode took 158 s beside another worker).
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from machine_turns import machine_turn


# ESPnet's typeguard checks off in the tests and every process they start (bench/espnet_checks.py):
# 6-10 s less per ESPnet import; the tests judge behaviour, and measurements keep the checks.
os.environ.setdefault("BENCH_TYPEGUARD", "0")
ALONE = ("timing", "all_cores")
if os.environ.get("PYTEST_XDIST_WORKER"):  # before anything imports torch
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    config.addinivalue_line("markers", "timing: its verdict rests on measured speed; runs alone")
    config.addinivalue_line("markers", "all_cores: computes on every core; runs alone")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # the whole protocol (module and session fixtures included), so no export or decode of
    # another worker's setup runs while a timing test measures
    workerinput = getattr(item.config, "workerinput", None)
    if workerinput is None:  # one process: nothing to share the machine with
        yield
        return
    lock_dir = Path(tempfile.gettempdir()) / f"bench-tests-{workerinput['testrunuid']}"
    with machine_turn(lock_dir, any(item.get_closest_marker(m) for m in ALONE)):
        yield


@pytest.fixture(scope="module")
def torch_one_thread():
    # a shared 2-core machine: more torch threads only add contention
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One artifact cache for the tests that only read artifacts (each export of the smoke
    card runs fusion four times: build it once per session, not once per test). xdist's
    workers share one (the artifact lock makes concurrent builds of one card safe)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp("shared-artifacts")
    shared = tmp_path_factory.getbasetemp().parent / "shared-artifacts"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def smoke_cache(shared_cache):
    """The shared cache with the smoke card exported by `bench export`, for tests whose
    `bench run` / `bench compare` processes must find it built."""
    subprocess.run([sys.executable, "-m", "bench", "export", "asr-conformer-smoke"], check=True,
                   capture_output=True, env=dict(os.environ, BENCH_CACHE=str(shared_cache)), timeout=900)
    return shared_cache


@pytest.fixture(scope="module")
def in_shared_cache(shared_cache):
    """BENCH_CACHE set to the shared cache for one module's in-process builds, restored after.
    Only for tests that read artifacts: one that damages a file builds its own card."""
    old = os.environ.get("BENCH_CACHE")
    os.environ["BENCH_CACHE"] = str(shared_cache)
    yield shared_cache
    if old is None:
        del os.environ["BENCH_CACHE"]
    else:
        os.environ["BENCH_CACHE"] = old
