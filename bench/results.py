"""The results document (schema ``bench-results/2``): build, validate, migrate, write, read.

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

SCHEMA = "bench-results/2"
STATUSES = ("ok", "error", "skipped", "partial")
VERDICTS = ("pass", "fail", "new", "invalid")  # invalid: too noisy to decide

# Every case carries every metric key, None until measured, so readers never guess
# whether a missing key means "not measured" or "renamed".
METRIC_KEYS = (
    "rtf", "rtfx", "speedup", "speedup_ci95", "latency_ms", "first_call_ms", "load_ms",
    "peak_rss_mb", "peak_gpu_mb", "model_mb", "wer", "cer", "bleu", "intent_acc",
    "tts_distance", "agreement_ter",
)


class ResultsError(ValueError):
    """A results document is malformed; the message names the file and the field."""


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
    return {
        "schema": SCHEMA,
        "run": {"id": run_id, "started": started, "git_commit": git_commit,
                "machine": machine, "libraries": dict(libraries)},
        "cases": [],
    }


def make_case(task: str, card: str, variant: str, device: str) -> dict:
    """An unmeasured case: status ``ok``, every metric present and None, no gate verdict yet."""
    metrics: dict[str, Any] = {k: None for k in METRIC_KEYS}
    metrics["latency_ms"] = {"p50": None, "p90": None, "p99": None}
    return {
        "task": task, "card": card, "variant": variant, "device": device,
        "status": "ok", "error": None,
        "n_utterances": None, "audio_seconds": None,
        "metrics": metrics,
        # What makes the case reproducible: threads, provider, opset, quantization, ...
        "settings": {},
        # What it was measured on (bench.identity): its baseline key with the fields above
        "identity": None,
        # The speed interval was too wide once and measured again: the first interval
        "remeasured": None,
        # Still too wide the second time: why the gate cannot decide (verdict "invalid")
        "too_noisy": None,
        "gate": None,
    }


def case_key(case: Mapping[str, Any]) -> str:
    """``task/card/variant/device``: the case's identity in baselines and reports."""
    return f"{case['task']}/{case['card']}/{case['variant']}/{case['device']}"


# The run fields that can change a figure without any change to the model: the report lists
# those that differ between a run and the run its baselines came from.
ENVIRONMENT_FIELDS = ("threads", "ort_providers", "fast", "data_dir")


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

def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate_results(doc: Any, source: str = "<results>") -> dict:
    """Check the fields that reports and the gate rely on; raise :class:`ResultsError`."""
    def fail(field: str, msg: str) -> None:
        raise ResultsError(f"{source}: {field}: {msg}")

    if not isinstance(doc, dict):
        fail("(document)", f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("schema") != SCHEMA:
        readable = ", ".join([*MIGRATIONS, SCHEMA])
        fail("schema", f"expected {SCHEMA!r}, got {doc.get('schema')!r} (this harness reads "
                       f"{readable}; a newer schema needs a newer harness)")
    run = doc.get("run")
    if not isinstance(run, dict):
        fail("run", "missing or not an object")
    for k in ("id", "started"):
        if not isinstance(run.get(k), str) or not run.get(k):
            fail(f"run.{k}", f"expected a non-empty string, got {run.get(k)!r}")
    if run.get("git_commit") is not None and not isinstance(run["git_commit"], str):
        fail("run.git_commit", f"expected a string or null, got {run['git_commit']!r}")
    machine = run.get("machine")
    if not isinstance(machine, dict):
        fail("run.machine", "missing or not an object")
    if not isinstance(machine.get("class"), str) or not machine.get("class"):
        fail("run.machine.class", f"expected a non-empty string, got {machine.get('class')!r}")
    if not isinstance(run.get("libraries"), dict):
        fail("run.libraries", "missing or not an object")
    cases = doc.get("cases")
    if not isinstance(cases, list):
        fail("cases", "missing or not a list")
    for i, c in enumerate(cases):
        where = f"cases[{i}]"
        if not isinstance(c, dict):
            fail(where, "not an object")
        for k in ("task", "card", "variant", "device"):
            if not isinstance(c.get(k), str) or not c.get(k):
                fail(f"{where}.{k}", f"expected a non-empty string, got {c.get(k)!r}")
        where = f"cases[{i}] ({case_key(c)})"
        if c.get("status") not in STATUSES:
            fail(f"{where}.status", f"expected one of {STATUSES}, got {c.get('status')!r}")
        m = c.get("metrics")
        if not isinstance(m, dict):
            fail(f"{where}.metrics", "missing or not an object")
        for k, v in m.items():
            if k == "latency_ms":
                if v is not None and not isinstance(v, dict):
                    fail(f"{where}.metrics.latency_ms", f"expected an object, got {v!r}")
            elif k.endswith("_ci95"):
                if v is not None and not (isinstance(v, list) and len(v) == 2
                                          and all(_is_num(x) for x in v)):
                    fail(f"{where}.metrics.{k}", f"expected [lo, hi] or null, got {v!r}")
            elif k in METRIC_KEYS and v is not None and not _is_num(v):
                fail(f"{where}.metrics.{k}", f"expected a number or null, got {v!r}")
        if c.get("too_noisy") is not None and not isinstance(c["too_noisy"], str):
            fail(f"{where}.too_noisy", f"expected a string or null, got {c['too_noisy']!r}")
        if c.get("remeasured") is not None and not isinstance(c["remeasured"], dict):
            fail(f"{where}.remeasured", f"expected an object or null, got {c['remeasured']!r}")
        ident = c.get("identity")
        if ident is not None and not (isinstance(ident, dict) and isinstance(ident.get("key"), str)):
            fail(f"{where}.identity", f"expected an object with a 'key' string, or null, got {ident!r}")
        g = c.get("gate")
        if g is not None:
            if not isinstance(g, dict):
                fail(f"{where}.gate", f"expected an object or null, got {g!r}")
            if g.get("verdict") not in VERDICTS:
                fail(f"{where}.gate.verdict", f"expected one of {VERDICTS}, got {g.get('verdict')!r}")
            if not isinstance(g.get("reasons", []), list):
                fail(f"{where}.gate.reasons", "expected a list")
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
