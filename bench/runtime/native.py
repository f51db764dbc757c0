"""The beam search's two compiled loops, built on first use with this machine's C compiler
and loaded with ctypes; numpy stands in where they cannot be built.

- ctc_prefix.c: the frame loop of CTC prefix scoring. In numpy each frame costs 8 calls whose
  overhead, not arithmetic, was a third of the int8 paper card's decoding time.
- topk_rows.c: the pre-beam's k best tokens of each hypothesis.

Why built here and not at install: the harness must still install and run on a machine
without a compiler (it then says so, and the ONNX ASR cases are slower). The library is
cached under .cache/native/, keyed by the sources, the flags, the compiler's binary and the CPU's
flags (it is built with -march=native), so a clone moved to another host rebuilds it.

BENCH_NATIVE=0 turns it off (numpy then runs; both are tested to agree).
"""
from __future__ import annotations

import ctypes
import os
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.paths import REPO_ROOT

SOURCES = [Path(__file__).with_name(n) for n in ("ctc_prefix.c", "topk_rows.c")]
FLAGS = ["-O3", "-fno-math-errno", "-ffinite-math-only", "-fopenmp-simd", "-march=native", "-shared",
         "-fPIC"]

__all__ = ["ctc_prefix", "topk_rows", "kernels_status"]


def _cache_dir() -> Path:
    return Path(os.environ.get("BENCH_NATIVE_CACHE", REPO_ROOT / ".cache" / "native"))


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.split(":")[0].strip() in ("flags", "Features"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _on_path(name: str) -> str | None:
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _find_compiler() -> str | None:
    """$CC, else cc or gcc on PATH. Neither shutil.which nor ``cc --version`` for the cache
    key: every ONNX speech runtime loads this module, and shutil and subprocess would bring
    bz2, lzma, threading and more (1.2 MB) into the process whose memory the harness reports
    as a deployment's, which loads the built library and runs no compiler."""
    cc = os.environ.get("CC")
    if cc:
        return cc if os.sep in cc else (_on_path(cc) or cc)
    return _on_path("cc") or _on_path("gcc")


def _compiler_identity(cc: str) -> str:
    """The compiler's binary as the cache key sees it, read without running it: its resolved
    path, size and time, which an upgrade changes."""
    try:
        real = os.path.realpath(cc)
        st = os.stat(real)
        return f"{real} {st.st_size} {st.st_mtime_ns}"
    except OSError:
        return cc


def _compiler_version(cc: str) -> str:
    """First line of ``cc --version``, recorded beside the library when it is built."""
    import subprocess

    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.splitlines()[0].strip() if out.stdout else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def _key(text: str) -> str:
    """Two 32-bit checksums of the build's inputs: zlib, not hashlib, because this module is
    loaded by every ONNX speech runtime, and hashlib brings OpenSSL (4 MB resident) into the
    process whose memory the harness reports as a deployment's."""
    data = text.encode()
    return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


@lru_cache(maxsize=1)
def _load() -> tuple[object | None, str]:
    """(the loaded library or None, a line saying which code runs and why)."""
    if os.environ.get("BENCH_NATIVE", "1") == "0":
        return None, "numpy (BENCH_NATIVE=0)"
    cc = _find_compiler()
    if not cc:
        return None, "numpy (no C compiler found: set CC, or install gcc, for the compiled loops)"
    key = _key("\n".join([*(p.read_text() for p in SOURCES), " ".join(FLAGS), _compiler_identity(cc),
                          _cpu_flags()]))
    lib = _cache_dir() / f"search-{key}.so"
    version_file = lib.with_suffix(".version")
    names = " and ".join(p.name for p in SOURCES)
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        import subprocess
        import tempfile

        # build beside the target and rename: concurrent workers never load a half-written file
        fd, tmp = tempfile.mkstemp(dir=lib.parent, suffix=".so")
        os.close(fd)
        try:
            out = subprocess.run([cc, *FLAGS, "-o", tmp, *map(str, SOURCES), "-lm"],
                                 capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                msg = (out.stderr or out.stdout).strip().splitlines()
                return None, f"numpy ({cc} failed on {names}: {msg[0] if msg else out.returncode})"
            version_file.write_text(_compiler_version(cc))
            os.replace(tmp, lib)
        except (OSError, subprocess.SubprocessError) as e:
            return None, f"numpy ({cc} failed on {names}: {e})"
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    try:
        so = ctypes.CDLL(str(lib))
        so.ctc_prefix.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long] * 4 + [ctypes.c_void_p] * 2
        so.topk_rows.argtypes = [ctypes.c_void_p] + [ctypes.c_long] * 3 + [ctypes.c_void_p]
    except (OSError, AttributeError) as e:
        return None, f"numpy (could not load {lib}: {e})"
    so.ctc_prefix.restype = so.topk_rows.restype = ctypes.c_int
    version = version_file.read_text().strip() if version_file.exists() else ""
    return so, f"compiled ({version or cc}, {' '.join(FLAGS[:5])})"


def kernels_status() -> str:
    """Which code this process's beam search runs, compiled or numpy, e.g. for a run's header."""
    return _load()[1]


def ctc_prefix(xT: np.ndarray, xb: np.ndarray, ids: np.ndarray, Z: np.ndarray,
               start: int) -> np.ndarray | None:
    """Fill Z (T, 3, N) from frame ``start`` and return psi (N,), as ctc_prefix.c says; xT (V, T)
    the CTC log-probabilities transposed, xb (T,) their blank column, ids (N,) each column's
    token. None (Z untouched) when the compiled kernel is unavailable."""
    lib = _load()[0]
    if lib is None:
        return None
    V, T = xT.shape
    N = ids.shape[0]
    for name, a, shape, dtype in (("xT", xT, (V, T), np.float32), ("xb", xb, (T,), np.float32),
                                  ("ids", ids, (N,), np.int64), ("Z", Z, (T, 3, N), np.float32)):
        if a.shape != shape or a.dtype != dtype or not a.flags.c_contiguous:
            raise ValueError(f"ctc_prefix: {name} is {a.shape} {a.dtype}, expected a C-contiguous "
                             f"{shape} {np.dtype(dtype)}")
    psi = np.empty(N, dtype=np.float32)
    if lib.ctc_prefix(xT.ctypes.data, xb.ctypes.data, ids.ctypes.data, T, V, N, int(start),
          Z.ctypes.data, psi.ctypes.data) != 0:
        raise MemoryError(f"ctc_prefix: no memory for {N} columns")
    return psi


def topk_rows(x: np.ndarray, k: int) -> np.ndarray | None:
    """(n, k) ids of each row's k largest values of x (n, V), larger first, ties to the lower
    id; None when the compiled loop is unavailable."""
    lib = _load()[0]
    if lib is None:
        return None
    if x.ndim != 2 or x.dtype != np.float32 or not x.flags.c_contiguous or not 0 < k <= x.shape[1]:
        raise ValueError(f"topk_rows: x is {x.shape} {x.dtype}, expected a C-contiguous float32 "
                         f"(n, V) with 0 < k={k} <= V")
    n, V = x.shape
    out = np.empty((n, k), dtype=np.int64)
    lib.topk_rows(x.ctypes.data, n, V, k, out.ctypes.data)
    return out
