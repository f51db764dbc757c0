"""A folder built once, whole or not at all, however many processes ask for it at once.

`build_once(final, build, is_complete)`: under an exclusive lock beside ``final``, if the
folder is not complete yet, ``build`` writes it into a fresh temporary folder
(``.NAME.XXXXXX`` beside it), which is then moved into place. A killed build leaves only its
temporary folder; the next caller, holding the lock, knows nobody will finish it and removes
it (and an incomplete ``final``). The artifact cache, the corpora and `bench compare`'s
checkouts all build this way. A leaf module: it imports nothing of bench.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable


@contextmanager
def file_lock(path: Path):
    """An exclusive advisory lock on ``path`` (created), held for the with-block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    import shutil  # here, not at the top: see build_once

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def build_once(final: Path, build: Callable[[Path], None], is_complete: Callable[[Path], bool],
               place: Callable[[Path, Path], None] = os.rename) -> Path:
    """``final``, built by ``build(tmp)`` unless ``is_complete(final)``; ``place(tmp, final)``
    moves the finished folder in (a rename; a git worktree needs ``git worktree move``)."""
    final = Path(final)
    if is_complete(final):
        return final
    # tempfile and shutil only to build: a process that finds the folder built (an ONNX
    # variant's memory child) holds neither, nor the bz2, lzma and random they bring (0.8 MB)
    import tempfile

    root = final.parent
    with file_lock(root / f".{final.name}.lock"):
        if is_complete(final):  # another process built it while we waited
            return final
        # Builders hold this lock, so what is left of this name now is from a killed build.
        for stale in [final, *root.glob(f".{final.name}.*")]:
            if stale.name != f".{final.name}.lock" and (stale.exists() or stale.is_symlink()):
                _remove(stale)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
        try:
            build(tmp)
            place(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
    return final
