"""Where things live: the repository, the artifact cache, ../shared, reports.

Every location can be moved with an environment variable, so CI jobs and tests can
point the harness at scratch directories without touching the repository.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def pythonpath_first(root: Path) -> str:
    """A PYTHONPATH with ``root`` ahead of the caller's own entries (packages installed with
    pip --target, say), for a child process that must import this checkout's bench."""
    return os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))


def cache_dir() -> Path:
    """Exported models and their variants, keyed by content hash (BENCH_CACHE)."""
    return Path(os.environ.get("BENCH_CACHE", REPO_ROOT / ".cache" / "artifacts"))


def reports_dir() -> Path:
    return Path(os.environ.get("BENCH_REPORTS", REPO_ROOT / "reports"))


def baselines_dir() -> Path:
    return Path(os.environ.get("BENCH_BASELINES", REPO_ROOT / "baselines"))


def shared_dir() -> Path | None:
    """The read-only ../shared folder beside the project (recipe configs, real clips)."""
    p = Path(os.environ.get("BENCH_SHARED", REPO_ROOT.parent / "shared"))
    return p if p.is_dir() else None


def corpora_dir() -> Path:
    """Generated spoken corpora (BENCH_CORPORA); rebuilt from the grammar when missing."""
    return Path(os.environ.get("BENCH_CORPORA", REPO_ROOT / ".cache" / "corpora"))
