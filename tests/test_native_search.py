"""The beam search's compiled loops (bench/runtime/native.py: CTC prefix scoring's frame loop,
the pre-beam top-k) against the numpy code they replace, and what happens where they cannot
be built."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from bench.runtime import native
from bench.runtime import beam_search
from bench.runtime.beam_search import LOGZERO, _prefix_numpy


@pytest.fixture
def fresh_kernel(monkeypatch, tmp_path):
    """A kernel loader with an empty cache, cleared again afterwards."""
    monkeypatch.setenv("BENCH_NATIVE_CACHE", str(tmp_path / "native"))
    native._load.cache_clear()
    yield tmp_path / "native"
    native._load.cache_clear()


def _inputs(T=300, V=500, N=150, start=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((T, V)).astype(np.float32) * 3
    x = (logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32)
    xb = np.ascontiguousarray(x[:, 0])
    ids = rng.integers(1, V, N).astype(np.int64)
    Z = np.full((T, 3, N), LOGZERO, np.float32)
    # log_phi falls over time like a real prefix's; some columns stay logzero throughout
    Z[:, 1] = np.cumsum(rng.standard_normal((T, N)).astype(np.float32) - 3, axis=0)
    Z[:, 1, ::17] = LOGZERO
    if start - 1 < T:
        Z[start - 1, 0] = -3.0
    return np.ascontiguousarray(x.T), xb, ids, Z, start  # the compiled loop takes x transposed


needs_cc = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")),
                              reason="no C compiler on this machine: the numpy loop runs")


@needs_cc
@pytest.mark.parametrize("seed,start", [(0, 4), (1, 1), (2, 299), (3, 300), (4, 340)],
                         ids=["mid", "first-step", "last-frame", "at-end", "past-end"])
def test_compiled_loop_agrees_with_numpy(seed, start, fresh_kernel):
    xT, xb, ids, Z, start = _inputs(seed=seed, start=start)
    ref = Z.copy()
    ref_psi = _prefix_numpy(np.ascontiguousarray(xT.T), xb, ids, ref, start)
    psi = native.ctc_prefix(xT, xb, ids, Z, start)
    assert native.kernels_status().startswith("compiled")
    # frames before start are untouched
    np.testing.assert_array_equal(Z[:max(start, 0)], ref[:max(start, 0)])
    # exp/log kernels differ by an ulp or so: far below any score gap that decides a beam
    np.testing.assert_allclose(Z, ref, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(psi, ref_psi, rtol=2e-6, atol=1e-6)
    assert list(fresh_kernel.glob("search-*.so")), "the built library is cached"


@needs_cc
def test_compiled_loop_runs_from_the_cache(fresh_kernel, monkeypatch):
    args = _inputs()
    assert native.ctc_prefix(*args) is not None
    native._load.cache_clear()
    # a second process finds the library and never runs the compiler, nor imports subprocess
    # to (the memory child's process holds what a deployment holds)
    real = native._compiler_identity(native._find_compiler())
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setattr(native, "_compiler_identity", lambda cc: real)
    assert native.ctc_prefix(*args) is not None
    assert native.kernels_status().startswith("compiled (")


def test_no_compiler_falls_back_to_numpy_and_says_why(fresh_kernel, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(fresh_kernel))  # a folder with no compiler in it
    xT, xb, ids, Z, start = _inputs()
    before = Z.copy()
    assert native.ctc_prefix(xT, xb, ids, Z, start) is None
    np.testing.assert_array_equal(Z, before)
    assert "no C compiler" in native.kernels_status()


def test_failing_compiler_falls_back_and_names_the_source(fresh_kernel, monkeypatch):
    monkeypatch.setenv("CC", shutil.which("false") or "/bin/false")
    assert native.ctc_prefix(*_inputs()) is None
    status = native.kernels_status()
    assert status.startswith("numpy") and "ctc_prefix.c and topk_rows.c" in status
    assert not list(fresh_kernel.glob("*.so")), "a failed build leaves nothing to load"


def test_switched_off_by_environment(fresh_kernel, monkeypatch):
    monkeypatch.setenv("BENCH_NATIVE", "0")
    assert native.ctc_prefix(*_inputs()) is None
    assert native.kernels_status() == "numpy (BENCH_NATIVE=0)"


@needs_cc
def test_wrong_layout_is_refused_with_the_array_named(fresh_kernel):
    xT, xb, ids, Z, start = _inputs()
    with pytest.raises(ValueError, match=r"ids is \(150,\) int32"):
        native.ctc_prefix(xT, xb, ids.astype(np.int32), Z, start)
    with pytest.raises(ValueError, match=r"Z is \(300, 3, 75\)"):
        native.ctc_prefix(xT, xb, ids, np.ascontiguousarray(Z[:, :, ::2]), start)
    with pytest.raises(ValueError, match=r"xb is \(300,\) float32, expected a C-contiguous \(500,\)"):
        native.ctc_prefix(np.ascontiguousarray(xT.T), xb, ids, Z, start)


def _stable_topk(x: np.ndarray, k: int) -> np.ndarray:
    return np.stack([np.argsort(-row, kind="stable")[:k] for row in x])


@needs_cc
@pytest.mark.parametrize("k", [1, 2, 15, 499, 500])
def test_compiled_topk_is_the_stable_sorts_first_k(k, fresh_kernel):
    rng = np.random.default_rng(k)
    x = rng.standard_normal((10, 500)).astype(np.float32)
    x[3] = np.round(x[3])                  # many ties, some at the k-th value
    x[4, ::7] = -np.inf                    # masked tokens
    x[5] = 0.5                             # all equal: the lowest ids win
    got = native.topk_rows(x, k)
    np.testing.assert_array_equal(got, _stable_topk(x, k))
    # and the beam search's own helper (either code) picks the same set
    assert [set(r) for r in beam_search._topk_rows_set(x, k)] == [set(r) for r in got]


def test_numpy_topk_picks_the_same_set(monkeypatch):
    monkeypatch.setattr(beam_search, "topk_rows", lambda x, k: None)
    rng = np.random.default_rng(0)
    x = np.round(rng.standard_normal((10, 300)), 1).astype(np.float32)
    for k in (1, 15, 300):
        assert ([set(r) for r in beam_search._topk_rows_set(x, k)]
                == [set(r) for r in _stable_topk(x, k)])


@needs_cc
def test_topk_refuses_a_bad_k_or_layout(fresh_kernel):
    x = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match="k=6"):
        native.topk_rows(x, 6)
    with pytest.raises(ValueError, match="float64"):
        native.topk_rows(x.astype(np.float64), 2)
