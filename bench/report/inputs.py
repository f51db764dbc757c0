"""What the report is made from: results documents read leniently, one by one.

A report merges many nights; one unreadable file must not sink the others, and must not
vanish either. Each input that cannot be used becomes a `LeftOut` with the file and the
reason, which the report shows and counts against the verdict.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from bench.results import ResultsError, load_results

__all__ = ["ReportRun", "LeftOut", "load_inputs"]

UTTERANCE_LOG = "utterances.jsonl"  # written beside results.json by every run


@dataclass
class ReportRun:
    source: Path
    doc: dict
    utterances: list[dict] = field(default_factory=list)  # per-utterance log, [] if none
    notes: list[str] = field(default_factory=list)        # what was odd but usable

    @property
    def run(self) -> dict:
        return self.doc["run"]

    @property
    def id(self) -> str:
        return self.run["id"]

    @property
    def machine_class(self) -> str:
        return self.run["machine"]["class"]

    @property
    def started(self) -> str:
        return self.run["started"]

    @property
    def partial(self) -> bool:
        return bool(self.run.get("partial"))


@dataclass
class LeftOut:
    source: str
    reason: str
    # an unreadable document is missing evidence (NO-GO); a repeat of a run lost nothing
    missing_evidence: bool = True


def _results_file(path: Path) -> Path:
    return path / "results.json" if path.is_dir() else path


def _read_utterances(path: Path, notes: list[str]) -> list[dict]:
    """The timed seconds of each utterance, for latency distributions. A bad line is noted
    and skipped: the log is evidence beside the results, not the results."""
    if not path.exists():
        return []
    out, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                rec = json.loads(line)
                if not all(isinstance(rec.get(k), str) for k in ("task", "card", "variant", "device")):
                    raise ValueError
                float(rec["seconds"])
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            out.append({k: rec[k] for k in ("task", "card", "variant", "device", "seconds")})
    if bad:
        notes.append(f"{path}: {bad} unreadable line(s) left out of the latency distributions")
    return out


def load_inputs(paths: Iterable[str | Path]) -> tuple[list[ReportRun], list[LeftOut]]:
    """Read each results document (a file, or a folder holding results.json), in the order
    given. Unreadable documents and repeats of a run already read come back as `LeftOut`."""
    runs: list[ReportRun] = []
    left: list[LeftOut] = []
    seen: dict[str, Path] = {}
    for p in paths:
        path = _results_file(Path(p))
        try:
            doc = load_results(path)
        except ResultsError as e:
            reason = str(e).removeprefix(f"{path}: ")  # the report puts the file beside it
            if "schema" in reason:
                reason += " (written by another version of the harness)"
            left.append(LeftOut(str(path), reason))
            continue
        run_id = doc["run"]["id"]
        if run_id in seen:
            # the top-level results.json is a copy of the latest runs/<id>/results.json
            left.append(LeftOut(str(path), f"run {run_id} is already in the report, "
                                           f"read from {seen[run_id]}: counted once", False))
            continue
        seen[run_id] = path
        notes: list[str] = []
        utterances = _read_utterances(path.with_name(UTTERANCE_LOG), notes)
        runs.append(ReportRun(path, doc, utterances, notes))
    return runs, left
