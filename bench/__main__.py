"""`python -m bench ...`: run the suites, export a card, merge reports, update baselines, print tables."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.paths import REPO_ROOT, baselines_dir, reports_dir
from bench.signals import forward_stop_signals

EXIT_HELP = """exit status of `run` (worst first): 1 a gate failed: a regression;
3 a case could not run (status 'error': a harness or input error, the message names the file);
4 a case was too noisy to decide (verdict 'invalid'); 0 every case passed, is new or skipped;
2 interrupted or bad usage (pytest's own codes pass through when no results were written)."""
EXIT_REGRESSION, EXIT_CASE_ERROR, EXIT_INVALID = 1, 3, 4


def cmd_run(a) -> int:
    args = [sys.executable, "-m", "pytest", str(REPO_ROOT / "suites"), "-p", "no:cacheprovider",
            "-q", "-rfEs", "--bench-tier", a.tier, "--bench-device", a.device]
    # pytest runs in the repository: paths the user gave are made absolute here, where they meant them
    a.out, a.model, a.data = (str(Path(p).resolve()) if p else None for p in (a.out, a.model, a.data))
    if a.card:  # card files (*.yaml) by path, built-in cards by name
        a.card = ",".join(str(Path(c.strip()).resolve()) if c.strip().endswith((".yaml", ".yml"))
                          else c.strip() for c in a.card.split(","))
    for opt, val in (("--bench-card", a.card), ("--bench-variant", a.variant),
                     ("--bench-threads", a.threads), ("--bench-out", a.out), ("--bench-server", a.server),
                     ("--bench-model", a.model), ("--bench-data", a.data)):
        if val:
            args += [opt, str(val)]
    if a.fast:
        args.append("--bench-fast")
    if a.update_baselines:
        args.append("--update-baselines")
    if a.against:
        args += ["--bench-against", ",".join(str(Path(p).resolve()) for p in a.against)]
    results = Path(a.out or reports_dir()) / "results.json"
    before = results.stat().st_mtime if results.exists() else None
    proc = subprocess.Popen(args + a.pytest_args, cwd=REPO_ROOT, start_new_session=True)
    forward_stop_signals(proc)
    code = proc.wait()
    if not results.exists() or results.stat().st_mtime == before:
        return code  # this run wrote no results (interrupted, usage error, no cases)
    a.results_written = results
    return exit_code(json.loads(results.read_text()), code)


def exit_code(doc: dict, pytest_code: int) -> int:
    """Tell a regression from a harness error from a noisy measurement, worst first."""
    verdicts = {(c.get("gate") or {}).get("verdict") for c in doc["cases"]}
    if "fail" in verdicts:
        return EXIT_REGRESSION
    if any(c["status"] == "error" for c in doc["cases"]):
        return EXIT_CASE_ERROR
    if "invalid" in verdicts:
        return EXIT_INVALID
    return pytest_code


def cmd_study(a) -> int:
    """The study's cases through `bench run`, then its table (also on a failed gate: a study's
    question is answered by its figures; the exit code still says what the gate found)."""
    from bench.results import load_results
    from bench.studies import get_study

    study = get_study(a.name)
    run = argparse.Namespace(**{**a.run_defaults, "tier": "all", "card": a.card or ",".join(study.cards),
                                "variant": ",".join(study.variants), "threads": a.threads,
                                "out": a.out, "fast": a.fast})
    code = cmd_run(run)
    if getattr(run, "results_written", None):
        print()
        print(study.table([load_results(run.results_written)]))
    return code


def cmd_recipes(a) -> int:
    """Cards from a folder of recipe configs, run quickly, then the coverage table (printed and
    written beside the results)."""
    from bench.recipes import coverage_table, discover, write_cards
    from bench.results import load_results

    root = Path(a.folder).resolve()
    try:
        recipes = discover(root)
    except ValueError as e:
        print(f"bench recipes: {e}", file=sys.stderr)
        return 2
    out = Path(a.out or reports_dir() / "recipes").resolve()
    code, doc = 0, None
    if a.results:  # the table of earlier runs of these configs
        try:
            doc = [load_results(Path(r)) for r in a.results]
        except (ValueError, OSError) as e:  # ResultsError names the file and the field
            print(f"bench recipes: --results: {e}", file=sys.stderr)
            return 2
    elif (paths := write_cards(recipes, out / "cards")) and not a.plan:
        run = argparse.Namespace(**{**a.run_defaults, "tier": "all", "card": ",".join(map(str, paths)),
                                    "variant": a.variant, "threads": a.threads, "out": str(out),
                                    "fast": True})
        code = cmd_run(run)
        if getattr(run, "results_written", None):
            doc = load_results(run.results_written)
            # a coverage run gates nothing: only a case that could not run sets the exit status
            code = EXIT_CASE_ERROR if any(c["status"] == "error" for c in doc["cases"]) else 0
    table = coverage_table(recipes, doc, root)
    print()
    print(table)
    if doc is not None and not a.results:
        (out / "coverage.md").write_text(table + "\n")
    return code


def cmd_breakdown(a) -> int:
    from bench.measure.breakdown import breakdown, format_breakdown

    print(format_breakdown(breakdown(a.card, a.variant, a.threads, a.rounds)))
    return 0


def cmd_export(a) -> int:
    from bench.cases import BenchSession
    from bench.zoo.cards import load_card

    card = load_card(a.card)
    path = BenchSession().artifact(card)
    print(path)
    print(json.dumps(json.loads((path / "artifact.json").read_text()), indent=2))
    return 0


def cmd_report(a) -> int:
    from bench.report.html import render_report_files

    out, left = render_report_files(a.results, a.output, a.baselines)
    for lo in left:
        print(f"{'error' if lo.missing_evidence else 'note'}: {lo.source}: {lo.reason}", file=sys.stderr)
    print(out)
    # the report is written either way; a left-out document is missing evidence (NO-GO in it)
    return 2 if any(lo.missing_evidence for lo in left) else 0


def cmd_baseline_update(a) -> int:
    from bench.baseline import BaselineError, update_baselines
    from bench.results import ResultsError, load_results

    try:
        path = update_baselines(load_results(a.results), a.baselines,
                                accept_failures=a.accept_failures, allow_skipped=True)
    except (BaselineError, ResultsError, OSError) as e:
        print(f"baselines NOT updated: {e}", file=sys.stderr)
        return 1
    print(f"baselines updated: {path}")
    return 0


def cmd_baseline_spread(a) -> int:
    from bench.baseline import load_baselines, speedup_spread
    from bench.results import load_results

    docs = []
    for p in a.files:
        doc = json.loads(Path(p).read_text())
        docs.append(load_baselines(p) if str(doc.get("schema", "")).startswith("bench-baseline/")
                    else load_results(p))
    print("| case | runs | hosts | median | min | max | largest deviation |")
    print("|---|---|---|---|---|---|---|")
    for r in speedup_spread(docs):
        if r["runs"] >= 2:
            print(f"| {r['case']} | {r['runs']} | {r['hosts']} | {r['median']:.3f} | {r['min']:.3f} | "
                  f"{r['max']:.3f} | {100 * r['max_dev']:.1f}% |")
    return 0


def cmd_table(a) -> int:
    from bench.report.table import (markdown_table, memory_table, roofline_table, server_table, speedup_table,
                                    streaming_table)
    from bench.results import load_results

    docs = [load_results(r) for r in a.results]
    if a.speedups:
        print(speedup_table(docs))
    elif a.memory:
        print(memory_table(docs))
    elif a.roofline:
        print(roofline_table(docs))
    elif a.server:
        print(server_table(docs))
    elif a.streaming:
        print(streaming_table(docs))
    elif a.study:
        from bench.studies import get_study

        print(get_study(a.study).table(docs))
    else:
        print("\n\n".join(markdown_table(d, card=a.card) for d in docs))
    return 0


def cmd_selftest(a) -> int:
    if a.history_only:
        from bench.measure.selftest_real import history_summary, read_history

        try:
            print(history_summary(read_history(a.history_only)))
        except (OSError, ValueError) as e:
            print(f"bench selftest: error: {e}", file=sys.stderr)
            return 2
        return 0
    if a.real:
        from bench.measure.selftest_real import (compare_error_rates, quality_detection,
                                                 speed_error_rates, summary)

        workdir = Path(a.workdir) if a.workdir else None
        if a.history and not a.compare:
            print("bench selftest: error: --history records `bench compare` cases; add --compare",
                  file=sys.stderr)
            return 2
        if not a.repeats:  # --quality alone
            speed = None
        elif a.compare:
            speed = compare_error_rates(a.card, a.repeats, a.slowdown, fast=a.fast, workdir=workdir,
                                        history=Path(a.history) if a.history else None)
        else:
            speed = speed_error_rates(a.card, a.repeats, a.slowdown, fast=a.fast, workdir=workdir)
        quality = quality_detection() if a.quality else None
        print(summary(speed, quality))
        return 0
    from bench.measure.selftest import SimulatedHost, gate_error_rates, measure_noise

    if a.noise:
        print(" ".join(f"{k}={v:.3g}" for k, v in measure_noise().items()))
        return 0
    host = SimulatedHost(seed=0) if a.simulated else None
    print(gate_error_rates(comparisons=a.comparisons, slowdown=a.slowdown, host=host,
                           speedup_tol=a.tolerance).summary())
    return 0


def cmd_cards(a) -> int:
    from bench.zoo.cards import list_cards

    for c in list_cards("all"):
        print(f"{c.name:28s} {c.task:4s} {c.tier:8s} {c.path}")
    return 0


def cmd_zoo_corpus(a) -> int:
    from bench.zoo.corpus import corpus_dir, generate

    out = Path(a.out) if a.out else corpus_dir(a.kind, a.seed)
    m = generate(a.kind, out, seed=a.seed)
    for split, info in m["splits"].items():
        print(f"{split:5s} {info['utterances']:5d} utterances  {info['hours']:.2f} h  "
              f"{info['vocabulary']} words")
    print(f"{out}  sha256 {m['sha256']}  ({m['generate_s']} s)")
    return 0


def cmd_zoo_train(a) -> int:
    from bench.zoo.cards import load_card
    from bench.zoo.train import evaluate_card, train_card

    card = load_card(a.card)
    if not a.eval_only:
        print(json.dumps(train_card(card), indent=2))
    print(json.dumps(evaluate_card(card), indent=2))
    return 0


def cmd_zoo_table(a) -> int:
    """The trained cards' records (training.json) as a Markdown table, for README."""
    from bench.zoo.cards import list_cards
    from bench.zoo.train import CHECKPOINTS

    print("| card | corpus (train / test utterances) | training minutes | epochs averaged | "
          "checkpoint MB | PyTorch figure on the test split |")
    print("|---|---|---|---|---|---|")
    for c in list_cards("accuracy"):
        f = CHECKPOINTS / c.name / "training.json"
        if not c.train or not f.exists():
            continue
        r = json.loads(f.read_text())
        t = r.get("test", {})
        fig = ", ".join(f"{k} {t[k]}" for k in ("wer", "cer", "intent_accuracy", "bleu") if k in t)
        if "bleu_signature" in t:
            fig += " (sacrebleu " + t["bleu_signature"].replace("|", "\\|") + ")"  # | would split the cell
        sp = r["corpus"]["splits"]
        print(f"| {c.name} | {r['corpus']['kind']} ({sp['train']['utterances']} / "
              f"{sp['test']['utterances']}) | {r['train_minutes']} | {len(r['averaged'])} | "
              f"{r['model_mb']} | {fig} |")
    return 0


def cmd_pythons(a) -> int:
    """Which CPython versions requirements.lock installs on, from the registry's files."""
    from bench.lock import LOCK_FILE, read_lock
    from bench.python_support import check

    pythons = []
    for v in a.versions:
        try:
            major, minor = (int(x) for x in v.split("."))
        except ValueError:
            print(f"python -m bench pythons: {v!r} is not a version like 3.12", file=sys.stderr)
            return 2
        pythons.append((major, minor))
    pins = read_lock(LOCK_FILE)
    print(f"{LOCK_FILE.name}: {len(pins)} packages; per Python, how each release installs here "
          f"(wheel, or sdist: built at install)")
    print("| Python | wheels | sdists (built at install) | nothing installable |")
    print("|---|---|---|---|")
    missing = False
    for python, rows in check(pins, pythons).items():
        by = {how: [r for r in rows if r.how == how] for how in ("wheel", "sdist", "none")}
        missing |= bool(by["none"])
        print(f"| {python[0]}.{python[1]} | {len(by['wheel'])} | "
              f"{', '.join(f'{r.package} {r.version}' for r in by['sdist']) or '-'} | "
              f"{', '.join(f'{r.package} {r.version} ({r.detail})' for r in by['none']) or '-'} |")
    return 1 if missing else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, epilog=EXIT_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    from bench.studies import STUDIES

    r = sub.add_parser("run", help="run the benchmark suites (pytest) and write reports/")
    r.add_argument("--tier", default="main", help="main (the main job's cards: trained + paper conformer), "
                   "smoke, accuracy, paper (comma-separated), or all")
    r.add_argument("--device", default="cpu", help="cpu, cuda or cpu,cuda")
    r.add_argument("--card", help="only these cards (comma-separated), whatever their tier")
    r.add_argument("--model", help="your own ESPnet ASR model, run instead of the built-in cards "
                                   "(--card adds some back): an exp dir with config.yaml and a .pth, "
                                   "a .pth file in one, or a packed model zip")
    r.add_argument("--data", help="a Kaldi-style data dir (wav.scp with WAV/FLAC/SPHERE paths, text) "
                                  "that replaces every card's evaluation data")
    r.add_argument("--variant", help="only these variants (comma-separated)")
    r.add_argument("--threads", type=int, help="intra-op threads (default: usable cores)")
    r.add_argument("--out", help=f"reports folder (default {reports_dir()})")
    r.add_argument("--fast", action="store_true", help="minimum rounds: checks, not figures")
    r.add_argument("--server", type=int, metavar="STREAMS",
                   help="also the server scenario: STREAMS single-threaded streams at once, offline "
                        "throughput and p99 latency at 70%% of PyTorch's throughput (speech input)")
    r.add_argument("--update-baselines", action="store_true",
                   help="rewrite this machine class's baselines if every case passed")
    r.add_argument("--against", nargs="+", metavar="RESULTS",
                   help="gate against earlier results documents of this machine class (results.json "
                        "files or folders of runs, e.g. the previous nights' history/) instead of the "
                        "committed baseline file: for runner classes that have none")
    r.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    r.set_defaults(func=cmd_run)

    e = sub.add_parser("export", help="build and export a card (cached), print its artifact")
    e.add_argument("card", help="a built-in card name or a card file")
    e.set_defaults(func=cmd_export)

    sy = sub.add_parser("study", help="run a study (its variants on its cards) and print its table")
    sy.add_argument("name", choices=sorted(STUDIES), help="int8: static int8 of weights and activations, "
                    "and of the convolutions alone, against dynamic int8; size: four sizes of one "
                    "conformer recipe, with parameters, arithmetic per second of audio and speedups")
    sy.add_argument("--card", help="these cards instead of the study's own (comma-separated)")
    sy.add_argument("--threads", type=int, help="intra-op threads (default: usable cores)")
    sy.add_argument("--out", help=f"reports folder (default {reports_dir()})")
    sy.add_argument("--fast", action="store_true", help="minimum rounds: checks, not figures")
    sy.set_defaults(func=cmd_study, run_defaults=vars(r.parse_args([])))

    rc = sub.add_parser("recipes", help="every training config in a folder of ESPnet recipe configs "
                        "as a card (recipe sizes, random weights), run quickly: a coverage table")
    rc.add_argument("folder", help="a folder of ESPnet training and decode configs (YAML), "
                    "e.g. ../shared/espnet-recipes or a recipe's conf/")
    rc.add_argument("--variant", default="pytorch,onnx,onnx-fused,onnx-int8",
                    help="variants to run (comma-separated; pytorch is the reference)")
    rc.add_argument("--threads", type=int, help="intra-op threads (default: usable cores)")
    rc.add_argument("--out", help=f"where the cards, results and coverage.md go "
                    f"(default {reports_dir() / 'recipes'})")
    rc.add_argument("--plan", action="store_true",
                    help="only write the cards and print each config's family, decode config or "
                         "reason for refusal; build and run nothing")
    rc.add_argument("--results", metavar="RESULTS_JSON", nargs="+",
                    help="print the table of earlier `bench recipes` runs of this folder (of parts of "
                         "it: a config's cases come from the last file that has them); run nothing")
    rc.set_defaults(func=cmd_recipes, run_defaults=vars(r.parse_args([])))

    bd = sub.add_parser("breakdown", help="where an ONNX variant's time goes (graphs, CTC "
                        "scoring, top-k, rest) on a card's timed subset: a diagnosis, not a figure")
    bd.add_argument("card")
    bd.add_argument("variant")
    bd.add_argument("--threads", type=int, default=2)
    bd.add_argument("--rounds", type=int, default=2)
    bd.set_defaults(func=cmd_breakdown)

    rep = sub.add_parser("report", help="merge results documents into one HTML report",
                         epilog="exit status: 0 written; 2 written, but an input could not be read "
                                "(the report lists it and says NO-GO)")
    rep.add_argument("results", nargs="+",
                     help="results.json files, or run folders holding one (e.g. reports/runs/*): "
                          "the latest run of each case decides, the older ones are history")
    rep.add_argument("-o", "--output", default=str(reports_dir() / "report.html"))
    rep.add_argument("--baselines", default=str(baselines_dir()),
                     help="baseline files, to show what differs from their environment")
    rep.set_defaults(func=cmd_report)

    b = sub.add_parser("baseline", help="baseline files")
    bsub = b.add_subparsers(dest="baseline_cmd", required=True)
    bu = bsub.add_parser("update", help="rewrite this class's baselines from a successful run")
    bu.add_argument("results", help="a results.json")
    bu.add_argument("--baselines", default=str(baselines_dir()))
    bu.add_argument("--accept-failures", action="store_true",
                    help="take the figures of cases whose gate failed as the new baseline")
    bu.set_defaults(func=cmd_baseline_update)

    bs = bsub.add_parser("spread", help="each case's speedup across runs and hosts (results "
                         "documents and baseline files): the spread the speedup tolerance covers")
    bs.add_argument("files", nargs="+", help="results.json and/or baseline files")
    bs.set_defaults(func=cmd_baseline_spread)

    t = sub.add_parser("table", help="print results documents as Markdown tables")
    t.add_argument("results", nargs="+", help="results.json files")
    t.add_argument("--card", help="only this card")
    t.add_argument("--speedups", action="store_true",
                   help="one row a card: each variant's speedup beside the paper's figure for its task")
    t.add_argument("--memory", action="store_true",
                   help="each case's whole-process and above-idle peak, and how far below PyTorch's")
    t.add_argument("--roofline", action="store_true",
                   help="each ONNX case's graphs: counted arithmetic, rate, share of the GEMM peak")
    t.add_argument("--study", choices=sorted(STUDIES), help="a study's table (python -m bench study NAME)")
    t.add_argument("--server", action="store_true",
                   help="the server scenario of a run made with --server: throughput and p99 latency")
    t.add_argument("--streaming", action="store_true",
                   help="streaming models' figures: per-block latency, first token, falling behind")
    t.set_defaults(func=cmd_table)

    st = sub.add_parser("selftest", help="measure the gate's false-alarm and miss rates")
    st.add_argument("--comparisons", type=int, default=200)
    st.add_argument("--slowdown", type=float, default=0.20,
                    help="the injected slowdown (0.2: 20%%); with --real, 0 runs the A/A part only")
    st.add_argument("--tolerance", type=float,
                    help="speedup tolerance to try instead of the default (e.g. 0 or 0.3)")
    st.add_argument("--simulated", action="store_true",
                    help="on a simulated host (seeded noise, the suites' stopping rule) instead "
                         "of this machine's clock: the rule's own rates, the same everywhere")
    st.add_argument("--noise", action="store_true",
                    help="print this host's timing noise in the simulated host's terms")
    st.add_argument("--real", action="store_true",
                    help="on real cards in fresh `bench run` processes: A/A against a scratch "
                         "baseline and the committed file, detection of an injected slowdown")
    st.add_argument("--card", default="asr-conformer-tiny,slu-conformer-tiny,st-conformer-tiny",
                    help="--real: the cards (comma-separated)")
    st.add_argument("--repeats", type=int, default=2,
                    help="--real: A/A and slowed runs each (0: none, e.g. --quality alone)")
    st.add_argument("--compare", action="store_true",
                    help="--real: through `bench compare` (the working tree against itself; "
                         "the slowdown in the head side only) instead of stored baselines")
    st.add_argument("--fast", action="store_true", help="--real: minimum rounds (CI's short version)")
    st.add_argument("--quality", action="store_true",
                    help="--real: also the int8 quality losses of the trained ASR card")
    st.add_argument("--workdir", help="--real: keep the runs here (default: a temp folder)")
    st.add_argument("--history", help="--real --compare: append every compared case to this "
                    "JSON-lines file (e.g. baselines/selftest/<class>.jsonl, committed, so the "
                    "rates add up over hosts and days)")
    st.add_argument("--history-only", nargs="+", metavar="FILE",
                    help="print the compare error rates over these history files, every case "
                         "re-judged with today's rule; runs nothing")
    st.set_defaults(func=cmd_selftest)

    z = sub.add_parser("zoo", help="generate the synthetic corpora, train the tiny cards")
    zsub = z.add_subparsers(dest="zoo_cmd", required=True)
    zc = zsub.add_parser("corpus", help="generate a spoken corpus with eSpeak NG (deterministic)")
    zc.add_argument("kind", choices=["asr", "slu", "st", "tts"])
    zc.add_argument("--seed", type=int, default=0)
    zc.add_argument("--out", help="folder (default: the corpora cache, where cards look)")
    zc.set_defaults(func=cmd_zoo_corpus)
    zt = zsub.add_parser("train", help="train a tier-accuracy card with ESPnet, then score it on its test split")
    zt.add_argument("card", help="a card name or file with a 'train' section")
    zt.add_argument("--eval-only", action="store_true", help="only score the committed checkpoint")
    zt.set_defaults(func=cmd_zoo_train)
    zsub.add_parser("table", help="the trained cards' records as a Markdown table").set_defaults(func=cmd_zoo_table)

    c = sub.add_parser("cards", help="list the built-in model cards")
    c.set_defaults(func=cmd_cards)

    py = sub.add_parser("pythons", help="which Python versions requirements.lock installs on "
                        "(reads the registry; installs nothing)")
    py.add_argument("versions", nargs="+", metavar="X.Y", help="e.g. 3.11 3.12 3.13")
    py.set_defaults(func=cmd_pythons)

    from bench.compare import add_parser as add_compare_parser  # its options live beside its code
    add_compare_parser(sub)

    a = p.parse_args(argv)
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
