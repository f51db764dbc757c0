"""Fixtures shared by the tests of the harness."""
import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    # a shared 2-core machine: more torch threads only add contention
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
