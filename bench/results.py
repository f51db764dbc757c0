"""The results document (schema ``bench-results/2``): build, validate, migrate, write, read.
Its fields are stated once, as the records of bench.records.

Reports, the gate and outside tools read these names; keep them stable and extend only by
adding keys. A change that moves or renames a field is a new schema with a migration step
from the one before (MIGRATIONS), so every older document still reads: a report over last
month's nights, a `--against` run, the history branch. Files are written atomically so a
crashed run never leaves half a document.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = [
    "SCHEMA", "STATUSES", "VERDICTS", "METRIC_KEYS", "ResultsError",
    "new_run", "make_case", "case_key", "run_environment", "add_case", "set_error", "set_skipped",
    "validate_results", "migrate_results", "load_results", "write_text_atomic", "write_json_atomic",
    "append_utterances_jsonl",
]

from bench.records import (METRIC_KEYS, SCHEMA, STATUSES, VERDICTS, Case, ResultsError, Results,
                           Run, case_key)


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run(machine: Mapping[str, Any], libraries: Mapping[str, Any],
            git_commit: str | None) -> dict:
    """A fresh results document with no cases.

    ``machine`` is a fingerprint (see :mod:`bench.fingerprint`); its ``class`` is filled in
    from it when absent, since the gate files baselines by class.
    """
    machine = dict(machine)
    if not machine.get("class"):
        from bench.fingerprint import machine_class
        machine["class"] = machine_class(machine)
    started = _utc_now()
    run_id = started.replace("-", "").replace(":", "") + "-" + uuid.uuid4().hex[:8]
    return Results(run=Run(run_id, started, git_commit, machine, dict(libraries))).to_dict()


def make_case(task: str, card: str, variant: str, device: str) -> dict:
    """An unmeasured case: status ``ok``, every metric present and None, no gate verdict yet."""
    return Case(task, card, variant, device).to_dict()


# The run fields that can change a figure without any change to the model: the report lists
# those that differ between a run and the run its baselines came from.
ENVIRONMENT_FIELDS = ("threads", "ort_providers", "fast", "data_dir", "search_kernels")


def run_environment(run: Mapping[str, Any]) -> dict[str, Any]:
    """A flat ``{"machine.cpu": ..., "libraries.torch": ..., "threads": ...}`` of a run."""
    env: dict[str, Any] = {}
    for k, v in sorted((run.get("machine") or {}).items()):
        env[f"machine.{k}"] = v
    for k, v in sorted((run.get("libraries") or {}).items()):
        env[f"libraries.{k}"] = v
    for k in ENVIRONMENT_FIELDS:
        if k in run:
            env[k] = run[k]
    lock = run.get("lock")
    if isinstance(lock, dict):  # bench.lock.lock_status: the lock's hash, and what strays from it
        env["lock"] = f"{lock.get('file')} sha256:{str(lock.get('sha256'))[:12]}"
        env["lock.differs"] = ", ".join(
            f"{name} {d.get('installed')} (locked {d.get('locked')})"
            for name, d in sorted((lock.get("differs") or {}).items())) or "none"
    return env


def add_case(doc: dict, case: dict) -> dict:
    """Append ``case``, replacing an earlier case with the same key (a re-run of one case)."""
    key = case_key(case)
    doc["cases"] = [c for c in doc["cases"] if case_key(c) != key]
    doc["cases"].append(case)
    return case


def set_error(case: dict, message: str) -> dict:
    case["status"] = "error"
    case["error"] = str(message)
    return case


def set_skipped(case: dict, reason: str) -> dict:
    case["status"] = "skipped"
    case["error"] = str(reason)
    return case


# ---------------------------------------------------------------- migrations

def _v1_to_v2(doc: dict) -> dict:
    """v2: whether a case was re-measured or too noisy to gate are fields of the case (v1
    kept them in its free-form settings); every case has an identity, null if unknown."""
    for c in doc.get("cases") or []:
        if not isinstance(c, dict):
            continue  # validation names it
        settings = c.get("settings") if isinstance(c.get("settings"), dict) else {}
        c["remeasured"] = settings.pop("remeasured", None)
        c["too_noisy"] = settings.pop("too_noisy", None)
        c.setdefault("identity", None)
    doc["schema"] = "bench-results/2"
    return doc


# schema -> the step that turns such a document into the next schema
MIGRATIONS = {"bench-results/1": _v1_to_v2}


def migrate_results(doc: Any) -> Any:
    """An older results document brought to SCHEMA step by step (in place); any other
    document comes back as it is, for validation to judge."""
    while isinstance(doc, dict) and doc.get("schema") in MIGRATIONS:
        doc = MIGRATIONS[doc["schema"]](doc)
    return doc


# ---------------------------------------------------------------- validation

def validate_results(doc: Any, source: str = "<results>") -> dict:
    """Check the fields that reports and the gate rely on (bench.records); raise
    :class:`ResultsError` naming ``source`` and the field. Returns ``doc`` itself."""
    Results.from_dict(doc, source, readable=(*MIGRATIONS, SCHEMA))
    return doc


def load_results(path: str | os.PathLike) -> dict:
    """Read, migrate (an older schema) and validate a results document; errors name the
    file and the field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ResultsError(f"{path}: cannot read: {e}") from e
    except UnicodeDecodeError as e:
        raise ResultsError(f"{path}: not UTF-8 text (byte {e.start}): not a results document") from e
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path}: not valid JSON: {e}") from e
    return validate_results(migrate_results(doc), source=str(path))


# ---------------------------------------------------------------- writing

def _plain(obj: Any) -> Any:
    """JSON-safe copy: numpy scalars/arrays to Python, NaN/inf to None (strict JSON for
    outside tools; a NaN metric means "no number" anyway)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):  # numpy scalar or array, without importing numpy here
        return _plain(obj.tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a
    half-written one: a temp file in the same directory (same filesystem, so the rename is
    atomic), fsync, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would, so a report
        # or results file stays readable by the CI user that serves or uploads it
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Serialise ``obj`` fully first (a TypeError leaves the old file alone), then write it
    atomically."""
    text = json.dumps(_plain(obj), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text_atomic(path, text)


def append_utterances_jsonl(path: str | os.PathLike, records: Iterable[Mapping[str, Any]],
                            *, case: Mapping[str, Any] | None = None) -> int:
    """Append one JSON line per utterance (id, duration, seconds, hypothesis, reference, ...).

    With ``case`` each line also names task/card/variant/device, so one file can hold a whole
    run and still be re-scored per case. Returns the number of lines written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ident = {k: case[k] for k in ("task", "card", "variant", "device")} if case else {}
    lines = []
    for r in records:
        rec = {**ident, **dict(r)}
        lines.append(json.dumps(_plain(rec), ensure_ascii=False, allow_nan=False))
    # One write of whole lines: an interrupted run loses lines, never splits one.
    with open(path, "a", encoding="utf-8") as f:
        if lines:
            f.write("\n".join(lines) + "\n")
    return len(lines)
