"""The two sides of `python -m bench compare`: git revisions, resolved and checked out.

``WORKTREE`` is this repository's working tree as it is, uncommitted changes included; it runs
from the repository itself. Any other revision is checked out once, with
``git worktree add --detach``, into ``.cache/compare/<full sha>`` (ignored by git) and reused
by later comparisons. A checkout is made under a temporary name and moved into place when
complete, under a lock, so a killed run or two concurrent ones never leave a half-made tree
where a later run would take it for complete.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from bench.atomic import build_once
from bench.paths import REPO_ROOT

WORKTREE = "WORKTREE"


class RevError(ValueError):
    """A revision that names no commit of the repository (a usage error)."""


@dataclass(frozen=True)
class Side:
    name: str               # "base" or "head"
    rev: str                # as given
    sha: str | None         # the commit; for WORKTREE the commit it sits on (None outside git)
    dirty: bool = False     # WORKTREE only: it has changes the commit does not
    root: Path | None = None  # the checkout whose bench/ this side runs (set by checkout)
    pins: tuple = ()        # (name, version) installed over this environment (bench.compare_envs)
    python: str | None = None  # the interpreter with those pins; None: this one
    model: str | None = None  # a user's ESPnet model this side runs instead of the cards

    @property
    def label(self) -> str:
        short = self.sha[:10] if self.sha else "no git"
        env = "".join(f" + {n}=={v}" for n, v in self.pins)
        model = f", model {self.model}" if self.model else ""
        return f"{self.rev} ({short}{', uncommitted changes' if self.dirty else ''}){env}{model}"

    def as_dict(self) -> dict:
        return {"rev": self.rev, "sha": self.sha, "dirty": self.dirty,
                "root": str(self.root) if self.root else None,
                "env": {"pins": dict(self.pins), "python": self.python}, "model": self.model}


def _git(repo: Path, *args: str) -> str:
    p = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if p.returncode:
        raise subprocess.CalledProcessError(p.returncode, ["git", *args], p.stdout, p.stderr)
    return p.stdout.strip()


def resolve(name: str, rev: str, repo: Path = REPO_ROOT) -> Side:
    """The side ``rev`` names; RevError (naming it) when it is not a commit of ``repo``."""
    if rev == WORKTREE:
        try:
            sha = _git(repo, "rev-parse", "--verify", "HEAD^{commit}")
            dirty = bool(_git(repo, "status", "--porcelain"))
        except (OSError, subprocess.CalledProcessError):  # not a git checkout (an unpacked sdist)
            sha, dirty = None, False
        return Side(name, rev, sha, dirty, root=repo)
    try:
        sha = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise RevError(f"unknown revision {rev!r} (--{name}): not a commit of {repo}") from None
    except OSError as e:
        raise RevError(f"cannot resolve revision {rev!r} (--{name}): {e}") from None
    return Side(name, rev, sha)


def checkouts_dir(repo: Path = REPO_ROOT) -> Path:
    return repo / ".cache" / "compare"


def _is_checkout(path: Path, sha: str) -> bool:
    """A complete, unmodified checkout of ``sha``."""
    if not (path / ".git").is_file():
        return False
    try:
        # tracked files only: an old revision's .gitignore may not cover the __pycache__ it grows
        return (_git(path, "rev-parse", "HEAD") == sha
                and not _git(path, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return False


def checkout(side: Side, repo: Path = REPO_ROOT) -> Side:
    """``side`` with ``root`` set: the repository for WORKTREE, else a cached checkout of its commit."""
    if side.rev == WORKTREE:
        return side
    def add(tmp: Path) -> None:
        _git(repo, "worktree", "prune")  # forget the git records of removed checkouts
        _git(repo, "worktree", "add", "--detach", str(tmp), side.sha)

    final = build_once(checkouts_dir(repo) / side.sha, add, lambda path: _is_checkout(path, side.sha),
                       place=lambda tmp, dst: _git(repo, "worktree", "move", str(tmp), str(dst)))
    return replace(side, root=final)
