"""The results document as records: Results, Run, Case, Metrics and Gate.

Each record's ``from_dict`` checks every field it reads and raises ResultsError naming the
document and the field; ``to_dict`` gives the JSON shape back. Keys a record does not know
go to its ``extra`` and are written back unchanged, so a document that only gained keys
(the schema grows by adding keys) reads and round-trips. The code that builds a run (the
suites, the gate, the report) still hands plain dicts about: these records are the schema,
stated once, and what turns a dict into a checked one. Migrations of older schemas live in
bench.results and run before ``from_dict``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

SCHEMA = "bench-results/2"
STATUSES = ("ok", "error", "skipped", "partial")
VERDICTS = ("pass", "fail", "new", "invalid")  # invalid: too noisy to decide

class ResultsError(ValueError):
    """A results document is malformed; the message names the file and the field."""


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


class _Reader:
    """Reads fields of one object; each failure names ``source: where.field``."""

    def __init__(self, d: Any, source: str, where: str):
        self.source, self.where = source, where
        if not isinstance(d, Mapping):
            self.fail("", "missing or not an object")
        self.d = d

    def fail(self, name: str, msg: str):
        path = f"{self.where}.{name}" if name and self.where else (name or self.where)
        raise ResultsError(f"{self.source}: {path}: {msg}")

    def text(self, name: str, required: bool = True) -> str | None:
        v = self.d.get(name)
        if required and (not isinstance(v, str) or not v):
            self.fail(name, f"expected a non-empty string, got {v!r}")
        if not required and v is not None and not isinstance(v, str):
            self.fail(name, f"expected a string or null, got {v!r}")
        return v

    def obj(self, name: str, required: bool = False) -> dict | None:
        v = self.d.get(name)
        if v is None and not required:
            return None
        if not isinstance(v, dict):
            self.fail(name, "missing or not an object" if required else
                      f"expected an object or null, got {v!r}")
        return v

    def extra(self, known) -> dict:
        return {k: v for k, v in self.d.items() if k not in known}


class _Record:
    """What the records share: their field names, and to_dict (the fields, records among
    them as dicts, then the extra keys this harness does not know, kept)."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    def to_dict(self) -> dict:
        def plain(v):
            if isinstance(v, _Record):
                return v.to_dict()
            return [plain(x) for x in v] if isinstance(v, list) else v
        return {**{n: plain(getattr(self, n)) for n in self.names()}, **self.extra}


@dataclass
class Metrics(_Record):
    """Every metric of a case; None is "not measured". ``latency_ms`` holds p50/p90/p99."""
    rtf: float | None = None
    rtfx: float | None = None
    speedup: float | None = None
    speedup_ci95: list | None = None
    latency_ms: dict | None = field(default_factory=lambda: {"p50": None, "p90": None, "p99": None})
    first_call_ms: float | None = None
    load_ms: float | None = None
    peak_rss_mb: float | None = None
    process_peak_mb: float | None = None
    peak_gpu_mb: float | None = None
    model_mb: float | None = None
    wer: float | None = None
    cer: float | None = None
    bleu: float | None = None
    intent_acc: float | None = None
    tts_distance: float | None = None
    agreement_ter: float | None = None
    real_agreement_ter: float | None = None  # the same on real recordings (trained cards)
    gops_per_s: float | None = None  # arithmetic rate in the graphs (bench.measure.roofline)
    peak_percent: float | None = None  # that rate as a share of the machine's GEMM peak
    server_rtfx: float | None = None  # N streams at once: audio seconds per wall second (offline)
    server_speedup: float | None = None  # that throughput over PyTorch's
    server_p99_ms: float | None = None  # p99 latency at a fixed arrival rate, queueing included
    block_p90_ms: float | None = None  # streaming: p90 compute of a call that ran a decoder block
    first_token_s: float | None = None  # streaming: when the first token shows, audio in real time
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, source: str, where: str) -> "Metrics":
        r = _Reader(d, source, where)
        for k, v in d.items():
            if k == "latency_ms":
                if v is not None and not isinstance(v, dict):
                    r.fail("latency_ms", f"expected an object, got {v!r}")
            elif k.endswith("_ci95"):
                if v is not None and not (isinstance(v, list) and len(v) == 2 and all(map(_is_num, v))):
                    r.fail(k, f"expected [lo, hi] or null, got {v!r}")
            elif k in METRIC_KEYS and v is not None and not _is_num(v):
                r.fail(k, f"expected a number or null, got {v!r}")
        known = {k: d[k] for k in METRIC_KEYS if k in d}
        # a key absent from an older document reads as None, not as the fresh default
        missing = {k: None for k in METRIC_KEYS if k not in d}
        return cls(**known, **missing, extra=r.extra(METRIC_KEYS))


# Every case carries every metric key, None until measured, so readers never guess
# whether a missing key means "not measured" or "renamed".
METRIC_KEYS = Metrics.names()


@dataclass
class Gate(_Record):
    """The gate's verdict on one case, with the reasons for a failure and notes."""
    verdict: str
    reasons: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, source: str, where: str) -> "Gate":
        r = _Reader(d, source, where)
        if d.get("verdict") not in VERDICTS:
            r.fail("verdict", f"expected one of {VERDICTS}, got {d.get('verdict')!r}")
        if not isinstance(d.get("reasons", []), list):
            r.fail("reasons", "expected a list")
        return cls(d["verdict"], d.get("reasons", []), r.extra(cls.names()))


def case_key(case: Mapping[str, Any]) -> str:
    """``task/card/variant/device``: the case's identity in baselines and reports."""
    return f"{case['task']}/{case['card']}/{case['variant']}/{case['device']}"


@dataclass
class Case(_Record):
    """One card x variant x device: its status, figures, settings and verdict."""
    task: str
    card: str
    variant: str
    device: str
    status: str = "ok"
    error: str | None = None
    n_utterances: int | None = None
    audio_seconds: float | None = None
    metrics: Metrics = field(default_factory=Metrics)
    # What makes the case reproducible: threads, provider, opset, quantization, ...
    settings: dict = field(default_factory=dict)
    # What it was measured on (bench.identity): its baseline key with the fields above
    identity: dict | None = None
    # The speed interval was too wide once and measured again: the first interval
    remeasured: dict | None = None
    # Still too wide the second time: why the gate cannot decide (verdict "invalid")
    too_noisy: str | None = None
    gate: Gate | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, source: str, where: str) -> "Case":
        r = _Reader(d, source, where)
        names = {k: r.text(k) for k in ("task", "card", "variant", "device")}
        r.where = f"{where} ({case_key(names)})"
        if d.get("status") not in STATUSES:
            r.fail("status", f"expected one of {STATUSES}, got {d.get('status')!r}")
        metrics = Metrics.from_dict(r.obj("metrics", required=True), source, f"{r.where}.metrics")
        too_noisy = r.text("too_noisy", required=False)
        remeasured = r.obj("remeasured")
        identity = d.get("identity")
        if identity is not None and not (isinstance(identity, dict) and isinstance(identity.get("key"), str)):
            r.fail("identity", f"expected an object with a 'key' string, or null, got {identity!r}")
        gate = r.obj("gate")
        return cls(**names, status=d["status"], error=d.get("error"),
                   n_utterances=d.get("n_utterances"), audio_seconds=d.get("audio_seconds"),
                   metrics=metrics, settings=d.get("settings", {}), identity=identity,
                   remeasured=remeasured, too_noisy=too_noisy,
                   gate=None if gate is None else Gate.from_dict(gate, source, f"{r.where}.gate"),
                   extra=r.extra(cls.names()))


@dataclass
class Run(_Record):
    """Where and how a run was made: id, start, commit, machine fingerprint, libraries; run
    options (threads, fast, data_dir, ...) and a stopped run's ``partial`` are extra keys."""
    id: str
    started: str
    git_commit: str | None
    machine: dict
    libraries: dict
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, source: str) -> "Run":
        r = _Reader(d, source, "run")
        run_id, started = r.text("id"), r.text("started")
        commit = r.text("git_commit", required=False)
        machine = r.obj("machine", required=True)
        if not isinstance(machine.get("class"), str) or not machine.get("class"):
            r.fail("machine.class", f"expected a non-empty string, got {machine.get('class')!r}")
        libraries = r.obj("libraries", required=True)
        return cls(run_id, started, commit, machine, libraries, r.extra(cls.names()))


@dataclass(kw_only=True)
class Results(_Record):
    """A whole results document: its schema, the run, the cases."""
    schema: str = SCHEMA
    run: Run
    cases: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, source: str = "<results>", readable=(SCHEMA,)) -> "Results":
        if not isinstance(d, dict):
            raise ResultsError(f"{source}: (document): expected a JSON object, got {type(d).__name__}")
        if d.get("schema") != SCHEMA:
            raise ResultsError(f"{source}: schema: expected {SCHEMA!r}, got {d.get('schema')!r} (this "
                               f"harness reads {', '.join(readable)}; a newer schema needs a newer harness)")
        if not isinstance(d.get("run"), dict):
            raise ResultsError(f"{source}: run: missing or not an object")
        run = Run.from_dict(d["run"], source)
        if not isinstance(d.get("cases"), list):
            raise ResultsError(f"{source}: cases: missing or not a list")
        cases = [Case.from_dict(c, source, f"cases[{i}]") for i, c in enumerate(d["cases"])]
        return cls(run=run, cases=cases, extra={k: v for k, v in d.items() if k not in cls.names()})
