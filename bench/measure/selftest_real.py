"""The gate's error rates on the real cards, in fresh processes (`bench selftest --real`).

- A/A: a first run writes a baseline (into a scratch folder: the committed files are never
  touched); each later run of the same commit, a fresh `bench run` process, is gated against
  it. Every later run is also gated against the committed class file (hosts and days other
  than this one). A failing case comparison is a false alarm.
- Detection: runs with every ONNX variant made slower by a known factor (bench.measure.inject:
  each call costs (1 + f) x its own time), gated against the same scratch baseline. A case
  comparison that does not fail is a miss.
- Through `bench compare` (``--compare``): A/A is the working tree against itself, and
  detection the same with the head side's ONNX variants slowed (``--inject-head``).
- Quality: the trained ASR card's int8 encoder rebuilt with the mel-filterbank MatMul in int8
  too (the bug that once gave WER 96%), and with its float weights rounded to 3 bits (a
  milder loss, about one WER point), decoded over the whole test split and gated against the
  shipped int8's WER.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.paths import REPO_ROOT, baselines_dir

ONNX_VARIANTS = ("onnx", "onnx-fused", "onnx-int8")


def _bench_run(cards: str, out: Path, env: dict, update: bool, fast: bool,
               variants=ONNX_VARIANTS) -> dict:
    args = [sys.executable, "-m", "bench", "run", "--card", cards, "--variant",
            ",".join(("pytorch",) + tuple(variants)), "--out", str(out)]
    args += ["--fast"] * fast + ["--update-baselines"] * update
    print(f"selftest: {' '.join(args[3:])}" + (f"  [{env.get('BENCH_INJECT_SLOWDOWN')}]"
                                                 if env.get("BENCH_INJECT_SLOWDOWN") else ""),
          flush=True)
    subprocess.run(args, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    path = out / "results.json"
    if not path.exists():
        raise RuntimeError(f"selftest: {' '.join(args)} wrote no {path}")
    return json.loads(path.read_text())


def _verdicts(doc: dict, variants=ONNX_VARIANTS + ("pytorch",)) -> list[tuple[str, str, list]]:
    return [(f"{c['card']}/{c['variant']}", (c.get("gate") or {}).get("verdict") or c["status"],
             (c.get("gate") or {}).get("reasons") or [c.get("error")])
            for c in doc["cases"] if c["variant"] in variants]


def speed_error_rates(cards: str, repeats: int, slowdown: float, fast: bool = False,
                      workdir: Path | None = None, variants=ONNX_VARIANTS) -> dict:
    from bench.baseline import gate_results

    work = Path(workdir or tempfile.mkdtemp(prefix="bench-selftest-"))
    env = {"BENCH_BASELINES": str(work / "baselines")}
    run = lambda name, extra=None, update=False: _bench_run(  # noqa: E731
        cards, work / name, {**env, **(extra or {})}, update, fast, variants)
    run("run0", update=True)
    aa, committed, detect = [], [], []
    inject = ",".join(f"{v}={slowdown:g}" for v in variants)
    for i in range(repeats):
        doc = run(f"aa{i}")
        aa += _verdicts(doc)
        committed += _verdicts(gate_results(json.loads(json.dumps(doc)), baselines_dir()))
        if slowdown:  # 0: A/A only
            doc = run(f"slow{i}", {"BENCH_INJECT_SLOWDOWN": inject})
            detect += _verdicts(doc, tuple(variants))
    return {"workdir": str(work), "aa": aa, "aa_committed": committed, "detect": detect,
            "slowdown": slowdown}


def _compare(cards: str, out: Path, variants, fast: bool, inject: str | None) -> dict:
    """Run one `bench compare` of the working tree against itself; its compare.json."""
    args = [sys.executable, "-m", "bench", "compare", "--base", "WORKTREE", "--head", "WORKTREE",
            "--card", cards, "--variant", ",".join(variants), "--out", str(out)]
    args += ["--fast"] * fast + ["--inject-head", inject] * bool(inject)
    print(f"selftest: {' '.join(args[3:])}", flush=True)
    subprocess.run(args, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = out / "compare.json"
    if not path.exists():
        raise RuntimeError(f"selftest: {' '.join(args)} wrote no {path}")
    return json.loads(path.read_text())


def history_rows(doc: dict, kind: str, slowdown: float) -> list[dict]:
    """One line of the self-test's history per case of a compare.json: what was measured, not
    only the verdict, so a later rule can re-judge it (:func:`rejudged`)."""
    from bench.compare_verdict import CAP_S, MAX_PAIRS, MIN_PAIRS, STOP_REL_WIDTH

    rows = []
    for c in doc["cases"]:
        t = c.get("time") or {}
        others = [r for r in c.get("reasons") or [] if not r.startswith("head/base time")]
        rows.append({"kind": kind, "slowdown": slowdown if kind == "detect" else 0.0,
                     "card": c["card"], "variant": c["variant"], "status": c.get("status"),
                     "median": t.get("median"), "ci95": t.get("ci95"), "n_pairs": t.get("n_pairs"),
                     "stop_reason": t.get("stop_reason"), "other_reasons": others,
                     "verdict_then": c.get("verdict"), "commit": doc["head"].get("sha"),
                     "dirty": doc["head"].get("dirty"), "host": doc["host"].get("host"),
                     "cpu": doc["host"].get("cpu"), "class": doc["host"].get("class"),
                     "started": doc.get("started"), "fast": doc["settings"].get("fast"),
                     "timing_rule": {"min_pairs": MIN_PAIRS, "max_pairs": MAX_PAIRS, "cap_s": CAP_S,
                                     "stop_rel_width": STOP_REL_WIDTH}})
    return rows


def rejudged(row: dict) -> str:
    """A history row's verdict under today's rule (bench.compare_verdict.verdict on its time;
    any other figure that failed then still fails)."""
    from bench.compare_verdict import verdict

    if row["status"] != "ok" or row["median"] is None:
        return "error"
    if row["other_reasons"]:
        return "fail"
    return verdict({"time": {k: row[k] for k in ("median", "ci95", "n_pairs", "stop_reason")}})[0]


def append_history(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def read_history(paths) -> list[dict]:
    rows = []
    for p in paths:
        for n, line in enumerate(Path(p).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{p}: line {n} is not JSON: {e}") from None
    return rows


def _rate(verdicts, bad) -> str:
    n, k = len(verdicts), sum(v in bad for v in verdicts)
    return f"{k}/{n}" + (f" ({100 * k / n:.1f}%)" if n else "")


def history_summary(rows: list[dict]) -> str:
    """The error rates over every recorded compare, re-judged with today's rule, by kind."""
    lines = []
    for kind, label in (("aa", "A/A (working tree against itself): failed"),
                        ("detect", "injected slowdown: caught")):
        sel = [r for r in rows if r["kind"] == kind and not r.get("fast")]
        if not sel:
            continue
        verdicts = [rejudged(r) for r in sel]
        hosts = sorted({f"{r['host']} ({r['cpu']})" for r in sel})
        days = sorted({(r["started"] or "")[:8] for r in sel})
        at = "" if kind == "aa" else " at slowdown " + ", ".join(
            f"{100 * s:.0f}%" for s in sorted({r["slowdown"] for r in sel}))
        lines.append(f"{label} {_rate(verdicts, {'fail'})}{at}; invalid {verdicts.count('invalid')}, "
                     f"error {verdicts.count('error')}; {len(hosts)} host(s): {', '.join(hosts)}; "
                     f"days {', '.join(days)}")
        for what in ("card", "host"):
            groups = sorted({r[what] for r in sel})
            if len(groups) > 1:
                lines.append(f"  by {what}: " + ", ".join(
                    f"{g} {_rate([v for r, v in zip(sel, verdicts) if r[what] == g], {'fail'})}"
                    for g in groups))
        for r, v in zip(sel, verdicts):
            if (v == "fail") != (kind == "detect"):  # a false alarm, or a miss
                what = "false alarm" if kind == "aa" else "missed"
                ratio = "" if r["median"] is None else \
                    f", head/base {r['median']:.4f} [{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]"
                lines.append(f"  {what} {r['card']}/{r['variant']} {r['started']}: {v}{ratio}")
        meds = sorted(r["median"] for r in sel if r["median"] is not None)
        if meds:
            lines.append(f"  head/base medians: min {meds[0]:.4f}, median {meds[len(meds) // 2]:.4f}, "
                         f"max {meds[-1]:.4f}")
    return "\n".join(lines) or "no recorded compares"


def compare_error_rates(cards: str, repeats: int, slowdown: float, fast: bool = False,
                        workdir: Path | None = None, variants=ONNX_VARIANTS,
                        history: Path | None = None) -> dict:
    """The same rates through `bench compare` (the working tree against itself, pairs
    interleaved on this host): each repeat one A/A compare of PyTorch and every ONNX variant,
    and one with the head side's ONNX variants slowed (--inject-head). ``history``: a JSON-lines
    file each compare's cases are appended to as soon as it ends."""
    work = Path(workdir or tempfile.mkdtemp(prefix="bench-selftest-compare-"))
    inject = ",".join(f"{v}={slowdown:g}" for v in variants)
    aa, detect = [], []
    kinds = [("aa", "aa", ("pytorch",) + tuple(variants), None)]
    if slowdown:  # 0: A/A only
        kinds.append(("detect", "slow", tuple(variants), inject))
    for i in range(repeats):
        for kind, name, var, inj in kinds:
            doc = _compare(cards, work / f"{name}{i}", var, fast, inj)
            rows = history_rows(doc, kind, slowdown)
            if history:
                append_history(history, rows)
            (aa if kind == "aa" else detect).extend(
                (f"{c['card']}/{c['variant']}", c["verdict"], c.get("reasons") or []) for c in doc["cases"])
    return {"workdir": str(work), "aa": aa, "detect": detect, "slowdown": slowdown, "via": "compare"}


def _requantized(settings: dict):
    """Re-quantize the float encoder with the shipped int8 settings changed by ``settings``."""
    def build(src: Path, dst: Path) -> None:
        from bench.optimize.quantize import quantize

        quantize(src, dst, settings=settings)
    return build


def _rounded_weights(bits: int):
    """The encoder's float MatMul weights rounded to ``bits`` bits, one symmetric scale per
    tensor (the filterbank left as it is): the error a coarser weight quantization brings,
    with the graph, its ops and its speed unchanged. 4 bits cost this card nothing (nor did
    ORT's 4-bit MatMulNBits); 3 bits cost it about one WER point (docs/gate.md)."""
    def build(src: Path, dst: Path) -> None:
        import numpy as np
        import onnx
        from onnx import numpy_helper

        from bench.optimize.quantize import kept_float

        model = onnx.load(str(src))
        weights = {i.name: i for i in model.graph.initializer}
        keep = set(kept_float(model.graph))
        levels = 2 ** (bits - 1) - 1
        for node in model.graph.node:
            w = weights.get(node.input[1]) if node.op_type == "MatMul" else None
            if w is None or node.name in keep:
                continue
            a = numpy_helper.to_array(w).astype(np.float32)
            scale = float(np.abs(a).max()) / levels or 1.0
            w.CopyFrom(numpy_helper.from_array((np.round(a / scale) * scale).astype(np.float32), w.name))
        onnx.save(model, str(dst))
    return build


# The quality losses the gate must catch, each a way to rebuild the int8 variant's encoder
# from the float (onnx-fused) one; the decoder and the rest stay as shipped.
QUALITY_LOSSES = {
    # the bug that once took the trained ASR card from WER 6.7 to 96
    "filterbank-int8": _requantized({"exclude_prefixes": []}),
    # a milder loss, about one WER point on asr-conformer-tiny
    "3-bit-weights": _rounded_weights(3),
}


def _degraded_artifact(artifact: Path, tmp: Path, name: str, build) -> Path:
    """A scratch artifact whose onnx-int8 encoder is onnx-fused's rebuilt by ``build``."""
    art = tmp / name
    (art / "variants" / "onnx-int8").mkdir(parents=True)
    for p in artifact.iterdir():
        if p.name != "variants":
            (art / p.name).symlink_to(p)
    src, dst = artifact / "variants" / "onnx-fused", art / "variants" / "onnx-int8"
    for g in src.glob("*.onnx"):
        if g.name == "encoder.onnx":
            build(g, dst / g.name)
        else:
            shutil.copyfile(artifact / "variants" / "onnx-int8" / g.name, dst / g.name)
    return art


def quality_detection(card_name: str = "asr-conformer-tiny", threads: int = 2) -> list[dict]:
    """Each of QUALITY_LOSSES decoded over the card's whole test split and gated against the
    shipped int8's figure with the gate's own tolerance."""
    from bench.artifacts import ensure_artifact
    from bench.baseline import DEFAULT_TOLERANCES, compare_case
    from bench.trackers import decode_all
    from bench.data.sets import load_eval_set
    from bench.runtime.load import load_recognizer
    from bench.tasks import get_task
    from bench.zoo.cards import load_card

    card = load_card(card_name)
    artifact = ensure_artifact(card)
    utts = load_eval_set(card)
    task = get_task(card.task)
    refs = [u.text for u in utts]
    metric = task.quality[0]

    def score(art: Path) -> float:
        out = decode_all(load_recognizer(art, card.decode, "onnx-int8", "cpu", threads), utts)
        return task.score(refs, out.outputs, out.outputs)[0][metric]

    shipped = score(artifact)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in QUALITY_LOSSES.items():
            got = score(_degraded_artifact(artifact, Path(tmp), name, build))
            case = {"task": card.task, "card": card.name, "variant": "onnx-int8", "device": "cpu",
                    "metrics": {metric: got}}
            gate = compare_case(case, {metric: shipped}, {metric: DEFAULT_TOLERANCES[metric]})
            rows.append({"loss": name, "card": card.name, "metric": metric,
                         "shipped": shipped, "measured": got, **gate})
    return rows


def summary(speed: dict | None, quality: list[dict] | None) -> str:
    lines = []
    if speed:
        def rate(rows, bad):
            return _rate([v for _, v, _ in rows], bad)
        via_compare = speed.get("via") == "compare"
        against = ("bench compare of the working tree against itself" if via_compare
                   else "a baseline of this host (fresh processes)")
        lines.append(f"A/A against {against}: failed "
                     f"{rate(speed['aa'], {'fail'})}, invalid {rate(speed['aa'], {'invalid'})}, "
                     f"error {rate(speed['aa'], {'error'})}")
        if not via_compare:
            lines.append(f"A/A against the committed class file: failed "
                         f"{rate(speed['aa_committed'], {'fail'})}, new {rate(speed['aa_committed'], {'new'})}")
        if speed["slowdown"]:
            lines.append(f"{100 * speed['slowdown']:.0f}% slowdown injected in every ONNX variant"
                         f"{' of the head side' if via_compare else ''}: caught "
                         f"{rate(speed['detect'], {'fail'})}")
        for key, verdict, reasons in speed["aa"] + speed.get("aa_committed", []):
            if verdict == "fail":
                lines.append(f"  false alarm {key}: {'; '.join(map(str, reasons))}")
        for key, verdict, _ in speed["detect"]:
            if verdict != "fail":
                lines.append(f"  missed {key}: {verdict}")
        lines.append(f"  (runs kept in {speed['workdir']})")
    for r in quality or []:
        lines.append(f"quality loss {r['loss']} ({r['card']} onnx-int8): {r['metric']} "
                     f"{r['shipped']:.2f} -> {r['measured']:.2f}: {r['verdict']}"
                     + (f" ({r['reasons'][0]})" if r["reasons"] else ""))
    return "\n".join(lines)
