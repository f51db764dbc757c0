"""`python -m bench compare`: is a change slower or worse than the code it changes, on this host?

A baseline holds only on the machine class it was measured on; this verdict holds on any host,
because both sides of the change are measured in one session on one host. For each
(card, variant) two worker processes run, one per side, each importing its own side's bench
(bench/compare_worker.py, started by path with PYTHONPATH at the side's checkout). Both use the
same interpreter and libraries and share the artifact and corpora caches, so equal export
code reuses one exported model. Timing alternates the sides pair by pair (A B, B A, ...), so
slow drift of the host hits both alike and cancels in each pair's head/base ratio. The rules
(when to stop, what fails) are in bench.compare_verdict.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.families import get_family
from bench.paths import cache_dir, corpora_dir, pythonpath_first, reports_dir, shared_dir

SCHEMA = "bench-compare/1"
MODELS = "models"  # the case's card name when both sides run a user's model (--base/--head-model)
WORKER = Path(__file__).resolve().parent / "compare_worker.py"
EXIT_FAIL, EXIT_USAGE, EXIT_ERROR, EXIT_INVALID = 1, 2, 3, 4
EXIT_HELP = """exit status (worst first): 1 a case failed (head slower or worse than base beyond
the gate's tolerances); 3 a case could not run (a worker error, a variant or card unknown to one
side: the message says which); 4 a case's timing was too noisy to decide; 0 every case passed;
2 bad usage (an unknown revision or card) or interrupted."""


class WorkerError(RuntimeError):
    """A side's worker failed; the message names the side, the operation and the cause."""


class Worker:
    """One side's worker process, spoken to in JSON lines."""

    def __init__(self, side, log: Path, inject: str | None = None):
        self.side, self.log = side, log
        env = dict(os.environ, PYTHONPATH=pythonpath_first(side.root),
                   BENCH_CACHE=str(cache_dir()), BENCH_CORPORA=str(corpora_dir()), PYTHONUNBUFFERED="1")
        # an injection by environment would slow both sides alike; a compare measures code
        env.pop("BENCH_INJECT_SLOWDOWN", None)
        if inject:  # --inject-head: a known slowdown in this side only, for the gate's self-test
            env["BENCH_INJECT_SLOWDOWN"] = inject
        if shared_dir():  # a checkout under .cache/ has no ../shared beside it
            env["BENCH_SHARED"] = str(shared_dir())
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as err:
            self.proc = subprocess.Popen([side.python or sys.executable, str(WORKER)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True,
                                         cwd=side.root, env=env)

    def call(self, op: str, **kw) -> dict:
        try:
            self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:  # a broken pipe: the worker is gone
            line = ""
        if not line:
            code = self.proc.wait()
            raise WorkerError(f"{self.side.name} {self.side.label}: the worker exited with status "
                              f"{code} during {op}; its log {self.log} ends: {_tail(self.log)}")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise WorkerError(f"{self.side.name} {self.side.label}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("quit")
                self.proc.wait(timeout=30)
            except (WorkerError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            f.close()


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(unreadable)"


def time_pairs(run_base, run_head, fast: bool, clock=time.monotonic) -> dict:
    """One warm-up round each, then pairs in alternating order until stop_reason says enough."""
    from bench.compare_verdict import ratio_summary, stop_reason

    warmup = {"base_s": run_base(), "head_s": run_head()}
    pairs, t0 = [], clock()
    while True:
        head_first = len(pairs) % 2 == 1
        if head_first:
            h, b = run_head(), run_base()
        else:
            b, h = run_base(), run_head()
        pairs.append({"order": "head,base" if head_first else "base,head", "base_s": b, "head_s": h,
                      "ratio": h / b})
        reason = stop_reason([p["ratio"] for p in pairs], clock() - t0, fast)
        if reason:
            break
    median, ci = ratio_summary([p["ratio"] for p in pairs])
    return {"median": median, "ci95": list(ci), "n_pairs": len(pairs), "stop_reason": reason,
            "timing_s": clock() - t0, "warmup": warmup, "pairs": pairs}


def run_case(sides: dict, card: str, variant: str, opts, logs: Path, references: dict | None = None) -> dict:
    """Measure one (card, variant) on both sides; errors are reported in the case.

    ``references`` caches each side's PyTorch outputs per card across the run's cases (they
    live under logs/../references/): each side's variant is scored against its own side's
    PyTorch, as the main job scores agreement.
    """
    from bench.compare_verdict import confirmed, needs_confirmation, verdict
    from bench.variants import REFERENCE, VARIANTS

    name = Path(card).stem  # a card file's name without its folder
    case = {"card": name, "variant": variant, "device": opts.device, "status": "ok"}
    references = {} if references is None else references
    workers: dict = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
            artifacts = {}
            for side in sides.values():  # exports (and the references) in a process of their own:
                w = Worker(side, logs / f"{name}.{variant}.{side.name}.export.log")  # not in the peak RSS
                try:
                    # a study's variant is derived on demand (only then is it named: a side of a
                    # revision from before studies takes no variant, nor knows one)
                    study = {"variant": variant} if getattr(VARIANTS.get(variant), "study", None) else {}
                    artifacts[side.name] = w.call("export", card=card, model=side.model, **study)["artifact"]
                    if variant != REFERENCE and (side.name, card) not in references:
                        references[side.name, card] = _reference_outputs(w, side, card, artifacts[side.name],
                                                                         opts, logs.parent / "references")
                finally:
                    w.close()

            def start(order: tuple[str, ...], log_suffix: str = "") -> dict:
                """Fresh workers for the timed variant, started and loaded in ``order``."""
                for n in order:
                    workers[n] = Worker(sides[n], logs / f"{name}.{variant}.{n}{log_suffix}.log",
                                        inject=opts.inject_head if n == "head" else None)
                loaded = {n: workers[n].call("load", card=card, variant=variant, device=opts.device,
                                             threads=opts.threads, artifact=artifacts[n], data=opts.data,
                                             model=sides[n].model)
                          for n in order}
                for n, info in loaded.items():  # the worker must run its side's code, nothing else
                    if not Path(info["bench_file"]).resolve().is_relative_to(Path(sides[n].root).resolve()):
                        raise WorkerError(f"{n} worker imported bench from {info['bench_file']}, "
                                          f"not from its checkout {sides[n].root}")
                return loaded

            def timed() -> dict:
                return time_pairs(lambda: workers["base"].call("round")["seconds"],
                                  lambda: workers["head"].call("round")["seconds"], opts.fast)

            loaded = start(("base", "head"))
            waves = {n: str(Path(tmp) / f"{n}.npz") for n in workers}
            quality = {n: w.call("quality", waves_path=waves[n]) for n, w in workers.items()}
            family = get_family(loaded["head"]["family"])
            if variant != REFERENCE:  # copies: outputs_agreement consumes the records it reads
                for n in workers:
                    ref = references[n, card]
                    quality[n]["metrics"].update(family.outputs_agreement(
                        dict(ref["quality"]), dict(quality[n]), {"base": ref["waves"], "head": waves[n]}))
                case["real_speech"] = real_agreement(
                    {n: references[n, card].get("real") for n in workers},
                    {n: w.call("real_speech") for n, w in workers.items()})
                for n, ter in case["real_speech"]["ter"].items():
                    quality[n]["metrics"]["real_agreement_ter"] = ter
            case["between"] = family.outputs_agreement(quality["base"], quality["head"], waves)
            case["time"] = timed()
            memory = {n: w.call("memory") for n, w in workers.items()}
            if needs_confirmation(case["time"]):  # one process pair's slowdown may be its own
                for w in workers.values():
                    w.close()
                start(("head", "base"), ".confirm")
                case["time"] = confirmed([case["time"], timed()])
    except Exception as e:  # one broken case is reported; the others still run
        msg = str(e) if isinstance(e, WorkerError) else f"{type(e).__name__}: {e}"
        case.update(status="error", verdict="error", reasons=[msg])
        return case
    finally:
        for w in workers.values():
            w.close()

    case["n_items"], case["n_timed"] = loaded["head"]["n_items"], loaded["head"]["n_timed"]
    case["quality"] = {n: q["metrics"] for n, q in quality.items()}
    case["model_mb"] = _pair({n: i["model_mb"] for n, i in loaded.items()})
    case["peak_rss_mb"] = _pair({n: m["hwm_mb"] for n, m in memory.items()})
    case["torch_imported"] = {n: m["torch_imported"] for n, m in memory.items()}
    case["sides"] = {n: {"bench_file": loaded[n]["bench_file"], "artifact": loaded[n]["artifact"],
                         "libraries": loaded[n].get("libraries"),
                         "load_s": loaded[n]["load_s"], "rss_before_load_mb": loaded[n]["rss_before_load_mb"],
                         "quality_s": quality[n]["seconds"], "notes": quality[n]["notes"],
                         "texts": quality[n].get("texts")} for n in workers}
    case["verdict"], case["reasons"] = verdict(case)
    return case


def _reference_outputs(w: Worker, side, card: str, artifact: str, opts, folder: Path) -> dict:
    """The side's PyTorch outputs on the card's data, decoded by worker ``w`` (its export
    process); TTS waves are kept in ``folder``."""
    from bench.variants import REFERENCE

    folder.mkdir(parents=True, exist_ok=True)
    waves = folder / f"{Path(card).stem}.{side.name}.npz"
    w.call("load", card=card, variant=REFERENCE, device=opts.device, threads=opts.threads,
           artifact=artifact, data=opts.data, model=side.model)
    return {"quality": w.call("quality", waves_path=str(waves)), "waves": str(waves),
            "real": w.call("real_speech")}


def real_agreement(refs: dict, outs: dict) -> dict:
    """Each side's agreement with its own PyTorch on the card's real clips, as the main job's
    gated ``real_agreement_ter``: {"ter": {side: TER}, "note": ...}. Judged only when both sides
    decoded the same clips (their content hashes agree); else no figure, and the note says why
    (None for a card without the figure). A change can leave the synthetic test set alone and
    flip many more tokens on real speech."""
    from bench.metrics.text import agreement_ter

    sides = {**{f"{n} PyTorch": r or {} for n, r in refs.items()}, **outs}
    missing = {n: r.get("why") for n, r in sides.items() if r.get("tokens") is None}
    if missing:
        why = [f"{n}: {w}" for n, w in missing.items() if w]
        return {"ter": {}, "note": "real_agreement_ter not measured: " + "; ".join(why) if why else None}
    identities = {r["identity"] for r in [*refs.values(), *outs.values()]}
    if len(identities) > 1:
        return {"ter": {}, "note": "real_agreement_ter not judged: the two sides read other clips"}
    return {"ter": {n: agreement_ter(refs[n]["tokens"], outs[n]["tokens"]) for n in outs},
            "note": f"real clips: {outs['head'].get('dir')}, {len(outs['head']['tokens'])} clips"}


def _pair(values: dict) -> dict:
    b, h = values.get("base"), values.get("head")
    return {"base": b, "head": h, "delta": None if b is None or h is None else h - b}


def exit_status(cases: list[dict]) -> int:
    verdicts = {c.get("verdict") for c in cases}
    if "fail" in verdicts:
        return EXIT_FAIL
    if "error" in verdicts:
        return EXIT_ERROR
    if "invalid" in verdicts:
        return EXIT_INVALID
    return 0


def _usage_error(msg: str) -> int:
    print(f"bench compare: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _cases(a) -> list[tuple[str, str]] | str:
    """(card, variant) pairs to compare, or a usage error's message."""
    from bench.variants import DEFAULT_VARIANTS, device_reason
    from bench.zoo.cards import CardError, list_cards, load_card

    try:
        if a.base_model:  # each side runs its own model (cmd_compare checked the pair)
            cards = [MODELS]
        elif a.card:  # a card file is passed to the workers by absolute path, a built-in card by name
            cards = [c.strip() if not Path(c.strip()).suffix else str(Path(c.strip()).resolve())
                     for c in a.card.split(",") if load_card(c.strip())]
        else:
            cards = [c.name for c in list_cards(a.tier)]
    except CardError as e:
        return str(e)
    if not cards:
        return f"no cards in tier {a.tier!r}"
    if a.variant:  # not checked here: a variant only one side knows is that case's error
        variants = [v.strip() for v in a.variant.split(",") if v.strip()]
    else:
        variants = [v for v in DEFAULT_VARIANTS if device_reason(v, a.device) is None]
    return [(c, v) for c in cards for v in variants]


def _models(a) -> dict[str, str] | str:
    """{side: absolute path} of --base-model/--head-model, or a usage error's message: both or
    neither, not with --card, each one a model bench.zoo.user_model can locate."""
    from bench.zoo.cards import CardError
    from bench.zoo.user_model import locate

    given = {n: m for n, m in (("base", a.base_model), ("head", a.head_model)) if m}
    if not given:
        return {}
    if len(given) == 1:
        missing = "head" if "base" in given else "base"
        return f"--{missing}-model is missing: a model comparison runs one model on each side"
    if a.card:
        return "--card with --base-model/--head-model: a model comparison runs the two models, not cards"
    for n, m in given.items():
        try:
            locate(Path(m).expanduser().resolve())
        except (CardError, OSError, ValueError) as e:
            return f"--{n}-model: {e}"
        except Exception as e:  # a broken zip and the like: still the user's file, named
            return f"--{n}-model {m}: {type(e).__name__}: {e}"
    return {n: str(Path(m).expanduser().resolve()) for n, m in given.items()}


def cmd_compare(a) -> int:
    from dataclasses import replace

    from bench.compare_verdict import decision
    from bench.report.compare_page import format_table

    from bench.compare_revs import WORKTREE, RevError, checkout, resolve
    from bench.fingerprint import machine_class, machine_fingerprint

    from bench.compare_envs import EnvError, candidate_python, parse_pins

    models = _models(a)
    if isinstance(models, str):
        return _usage_error(models)
    if a.head is None:  # an environment or model comparison runs one revision on both sides
        a.head = a.base if (a.head_env and not a.base_env) or models else WORKTREE
    try:
        sides = {"base": resolve("base", a.base), "head": resolve("head", a.head)}
        pins = {n: parse_pins(e, f"--{n}-env") for n, e in (("base", a.base_env), ("head", a.head_env)) if e}
    except (RevError, EnvError) as e:
        return _usage_error(str(e))
    cases = _cases(a)
    if isinstance(cases, str):
        return _usage_error(cases)
    if a.inject_head:
        from bench.measure.inject import injected_fractions

        try:
            injected_fractions(a.inject_head)
        except ValueError as e:
            return _usage_error(f"--inject-head: {e}")
    if a.data:
        if not Path(a.data).is_dir():
            return _usage_error(f"--data {a.data}: not a directory")
        a.data = str(Path(a.data).resolve())
    a.threads = a.threads or len(os.sched_getaffinity(0))
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = Path(a.out) if a.out else reports_dir() / "compare" / f"{started}-{uuid.uuid4().hex[:6]}"
    try:
        sides = {n: replace(checkout(s), model=models.get(n)) for n, s in sides.items()}
    except subprocess.CalledProcessError as e:
        print(f"bench compare: error: cannot check out a revision: {' '.join(e.cmd)}: "
              f"{(e.stderr or '').strip()}", file=sys.stderr)
        return EXIT_ERROR
    try:
        for n, p in pins.items():
            print(f"bench compare: {n} environment: this one + {' '.join(f'{k}=={v}' for k, v in p.items())} "
                  "(built once into .cache/envs/)", file=sys.stderr)
            sides[n] = replace(sides[n], pins=tuple(sorted(p.items())), python=candidate_python(p))
    except (EnvError, subprocess.CalledProcessError) as e:
        print(f"bench compare: error: cannot build the {n} environment: {e}", file=sys.stderr)
        return EXIT_ERROR
    host = machine_fingerprint()
    doc = {"schema": SCHEMA, "started": started, "complete": False,
           "base": sides["base"].as_dict(), "head": sides["head"].as_dict(),
           "host": {**host, "class": machine_class(host)},
           "settings": {"threads": a.threads, "device": a.device, "fast": a.fast, "data": a.data,
                        "inject_head": a.inject_head,
                        "python": sys.executable, "loadavg_1m_before": os.getloadavg()[0]},
           "cases": []}
    print(f"bench compare: base {sides['base'].label} vs head {sides['head'].label}, "
          f"{len(cases)} case(s) -> {out}", file=sys.stderr)
    _write(out, doc)
    references: dict = {}  # each side's PyTorch outputs per card, decoded once in the run
    try:
        for card, variant in cases:
            t = time.monotonic()
            case = run_case(sides, card, variant, a, out / "logs", references)
            case["wall_s"] = time.monotonic() - t
            doc["cases"].append(case)
            _write(out, doc)  # a stopped run keeps the cases it finished
            print(f"  {card} {variant}: {case['verdict']} ({case['wall_s']:.0f} s)", file=sys.stderr)
    except KeyboardInterrupt:  # the workers got the same SIGINT; run_case has closed them
        print(f"bench compare: interrupted; the finished cases are in {out / 'compare.json'}",
              file=sys.stderr)
        return EXIT_USAGE
    doc.update(complete=True, exit_status=exit_status(doc["cases"]))
    doc["settings"]["loadavg_1m_after"] = os.getloadavg()[0]
    _write(out, doc)
    print(format_table(doc["cases"]))
    go, why = decision(doc)
    print(f"head as a candidate: {go}" + "".join(f"\n  - {w}" for w in why))
    print(out / "compare.json")
    print(out / "compare.html")
    return doc["exit_status"]


def _write(out: Path, doc: dict) -> None:
    """compare.json, and the page that shows it (bench.report.compare_page)."""
    from bench.report.compare_page import render_compare_html
    from bench.results import write_json_atomic, write_text_atomic

    write_json_atomic(out / "compare.json", doc)
    write_text_atomic(out / "compare.html", render_compare_html(doc))


def add_parser(sub) -> None:
    """The `compare` sub-command, registered by bench/__main__.py."""
    from bench.compare_revs import WORKTREE
    from bench.compare_verdict import CAP_S, CAP_S_FAST, MAX_PAIRS, MIN_PAIRS, MIN_PAIRS_FAST

    c = sub.add_parser("compare", help="head against base, both measured now on this host: "
                       "the verdict on a change that holds on any machine",
                       description=__doc__, epilog=EXIT_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--base", default="HEAD", help="a git revision of this repository, or "
                   f"{WORKTREE} (the working tree as it is, uncommitted changes included); default HEAD")
    c.add_argument("--head", help=f"as --base; default {WORKTREE}, or --base's revision when only "
                   "--head-env is given (the same code in two environments)")
    c.add_argument("--base-env", metavar="PINS", help="the base side's environment: this one "
                   "(requirements.lock) with these packages at these versions, e.g. 'onnxruntime==1.31.1 "
                   "onnx==1.23.2'; built once into a venv under .cache/envs/ (default: this environment)")
    c.add_argument("--head-env", metavar="PINS", help="as --base-env, for the head side: the candidate "
                   "an upgrade decision is about")
    c.add_argument("--base-model", metavar="PATH", help="your ESPnet ASR model for the base side, "
                   "run instead of the cards: an exp dir, a .pth in one, or a packed zip; with "
                   "--head-model, two checkpoints side by side (the shipped one and its successor): "
                   "judged on the references (--data) and each on agreement with its own PyTorch")
    c.add_argument("--head-model", metavar="PATH", help="as --base-model, for the head side")
    c.add_argument("--card", help="only these cards (comma-separated), whatever their tier")
    c.add_argument("--tier", default="main", help="cards of these tiers when --card is not given: "
                   "main (default), smoke, accuracy, paper (comma-separated), or all")
    c.add_argument("--variant", help="only these variants (comma-separated); default every variant "
                   "this tree knows that runs on --device")
    c.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    c.add_argument("--data", help="a Kaldi-style data dir that replaces every card's data")
    c.add_argument("--threads", type=int, help="intra-op threads of each worker (default: usable cores)")
    c.add_argument("--fast", action="store_true", help=f"{MIN_PAIRS_FAST} pairs at least and "
                   f"{CAP_S_FAST:g} s of timing at most (default {MIN_PAIRS} and {CAP_S:g} s, up to "
                   f"{MAX_PAIRS} pairs): checks of the harness, not figures")
    c.add_argument("--inject-head", metavar="VARIANT=F[,...]",
                   help="the gate's self-test: the head side's calls of VARIANT cost (1 + F) x "
                   "their time (bench/measure/inject.py); recorded in compare.json")
    c.add_argument("--out", help="folder for compare.json and the workers' logs "
                   f"(default {reports_dir()}/compare/<time>-<id>/)")
    c.set_defaults(func=cmd_compare)
