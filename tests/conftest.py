"""Fixtures shared by the tests of the harness."""
import os
import subprocess
import sys

import pytest


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
    card runs fusion four times: build it once per session, not once per test)."""
    return tmp_path_factory.mktemp("shared-artifacts")


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
