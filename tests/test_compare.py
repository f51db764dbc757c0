"""`python -m bench compare`: the verdict rules on synthetic numbers, usage errors, and on the
smoke card an A/A comparison that passes and a commit with an injected slowdown that fails
the slowed variant, and only it."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.compare import exit_status, time_pairs
from bench.compare_verdict import (MAX_PAIRS, MIN_PAIRS, MIN_PAIRS_FAST, confirmed, fmt,
                                   needs_confirmation, pooled_summary, stop_reason, tolerances,
                                   verdict)
from bench.paths import REPO_ROOT

SMOKE = "asr-conformer-smoke"
INJECT = "bench/measure/inject.py"


def timed(median, lo, hi, n=10):
    return {"time": {"median": median, "ci95": [lo, hi], "n_pairs": n, "stop_reason": "test"}}


# ---------------------------------------------------------------- rules (no models)

def test_time_ratio_fails_when_the_median_is_beyond_the_tolerance_and_the_interval_above_1():
    v, reasons = verdict(timed(1.3, 1.25, 1.35))
    assert v == "fail"
    assert reasons == ["head/base time 1.3000 [1.2500, 1.3500]: median > 1 + 0.10 = 1.1000 "
                       "and the interval above 1"]
    assert verdict(timed(1.0, 0.97, 1.03)) == ("pass", [])
    assert verdict(timed(1.19, 1.09, 1.25))[0] == "fail"  # a 20% slowdown's typical interval
    assert verdict(timed(1.12, 0.99, 1.2))[0] == "pass"  # large but not significant: may be noise
    assert verdict(timed(1.08, 1.05, 1.11))[0] == "pass"  # significant but within the tolerance
    assert verdict(timed(1.1, 1.05, 1.15))[0] == "pass"  # the tolerance itself is not a failure
    assert verdict(timed(0.7, 0.65, 0.75))[0] == "pass"  # faster is never a failure


def test_wide_interval_is_invalid_unless_something_fails():
    v, reasons = verdict(timed(1.0, 0.6, 1.4))
    assert v == "invalid" and "wider than 0.50 x the median 1.0000" in reasons[0]
    assert verdict(timed(2.0, 1.4, 2.6))[0] == "fail"  # slower for sure, however wide


def test_quality_sizes_and_agreement_use_the_gate_tolerances():
    case = {**timed(1.0, 0.98, 1.02),
            "quality": {"base": {"wer": 10.0, "bleu": 30.0, "agreement_ter": 0.0},
                        "head": {"wer": 10.6, "bleu": 28.5, "agreement_ter": 2.0}},
            "between": {"agreement_ter": 40.0},  # reported, not judged: different is not worse
            "model_mb": {"base": 100.0, "head": 111.0},
            "peak_rss_mb": {"base": 400.0, "head": 440.0}}
    v, reasons = verdict(case)
    assert v == "fail"
    assert reasons == ["wer 10.00 -> 10.60 > 10.00 + 0.50 = 10.50",
                       "bleu 30.00 -> 28.50 < 30.00 - 1.00 = 29.00",
                       "agreement_ter 0.0000 -> 2.000 > 0.0000 + 1.00 = 1.000",
                       "model_mb 100.0 -> 111.0 > 100.0 x (1 + 0.10) = 110.0"]  # RSS +10% < 25%
    case["peak_rss_mb"]["head"] = 520.0
    assert verdict(case)[1][-1] == "peak_rss_mb 400.0 -> 520.0 > 400.0 x (1 + 0.25) = 500.0"
    better = {**timed(1.0, 0.98, 1.02), "quality": {"base": {"wer": 10.0}, "head": {"wer": 5.0}},
              "between": {"agreement_ter": 0.5}, "model_mb": {"base": 100.0, "head": 50.0}}
    assert verdict(better) == ("pass", [])
    # the tolerances are read through one function: a stricter table gives a stricter verdict
    strict = {**tolerances(), "speedup": {"mode": "relative", "value": 0.01, "worse": "lower"}}
    assert verdict(timed(1.05, 1.03, 1.07), strict)[0] == "fail"


def test_real_speech_agreement_is_judged_only_on_the_same_clips():
    """The change the nightly gate caught on st-conformer-tiny (real-clip TER 0.0 -> 9.7, test
    set unmoved) must fail a pull request's comparison too, and only on the clips both read."""
    from bench.compare import real_agreement

    ref = {"tokens": [[1, 2, 3, 4], [5, 6, 7, 8, 9]], "identity": "clips-a"}
    same = {"tokens": [[1, 2, 3, 4], [5, 6, 7, 8, 9]], "identity": "clips-a", "dir": "real"}
    flipped = {"tokens": [[1, 2, 3, 0], [5, 0, 7, 8, 9]], "identity": "clips-a", "dir": "real"}
    r = real_agreement({"base": ref, "head": ref}, {"base": same, "head": flipped})
    assert r["ter"] == {"base": 0.0, "head": pytest.approx(100 * 2 / 9)}
    case = {**timed(1.0, 0.98, 1.02), "quality": {n: {"real_agreement_ter": t} for n, t in r["ter"].items()}}
    v, reasons = verdict(case)
    assert v == "fail" and reasons[0].startswith("real_agreement_ter 0.0000 -> 22.22 > 0.0000 + 6.00")
    other = {**flipped, "identity": "clips-b"}
    assert real_agreement({"base": ref, "head": ref}, {"base": same, "head": other}) == \
        {"ter": {}, "note": "real_agreement_ter not judged: the two sides read other clips"}
    none = {"tokens": None, "why": "this revision does not decode real clips"}
    r = real_agreement({"base": ref, "head": ref}, {"base": none, "head": same})
    assert r["ter"] == {} and "base: this revision does not decode real clips" in r["note"]


def test_the_decision_and_the_page_show_every_case_that_blocks_the_candidate():
    from bench.compare_verdict import decision
    from bench.report.compare_page import format_table, render_compare_html

    ok = {"card": "c", "variant": "onnx", "verdict": "pass", "reasons": [], **timed(0.95, 0.9, 1.0),
          "quality": {"base": {"wer": 6.7, "agreement_ter": 0.0}, "head": {"wer": 6.7, "agreement_ter": 0.0}},
          "sides": {"head": {"libraries": {"onnxruntime": "1.32.0"}}}}
    doc = {"complete": True, "cases": [ok], "base": {"rev": "HEAD", "sha": "a" * 40, "env": {"pins": {}}},
           "head": {"rev": "HEAD", "sha": "a" * 40, "env": {"pins": {"onnxruntime": "1.32.0"}}},
           "host": {"host": "h1", "cpu": "EPYC", "cores": 2, "class": "k"}, "settings": {"threads": 2}}
    assert decision(doc) == ("GO", [])
    page = render_compare_html(doc)
    assert ">GO</div>" in page and "HEAD (aaaaaaaaaa) + onnxruntime==1.32.0" in page
    assert "onnxruntime 1.32.0" in page and "wer 6.700-&gt;6.700, agreement_ter 0.0000-&gt;0.0000" in page
    bad = {**ok, "variant": "onnx-int8", "verdict": "fail", "reasons": ["wer 6.70 -> 9.00 <script>"]}
    doc["cases"].append(bad)
    assert decision(doc) == ("NO-GO", ["c onnx-int8: fail: wer 6.70 -> 9.00 <script>"])
    page = render_compare_html(doc)
    assert ">NO-GO</div>" in page and "<script>" not in page and "&lt;script&gt;" in page
    assert "onnx-int8" in format_table(doc["cases"]).splitlines()[2]
    doc.update(complete=False, cases=[ok])
    assert decision(doc)[0] == "NO-GO" and "did not finish" in decision(doc)[1][0]


def test_stop_rule():
    assert stop_reason([1.0] * (MIN_PAIRS - 1), 1e6) is None  # never before the minimum
    assert stop_reason([1.0] * MIN_PAIRS_FAST, 0.0, fast=True) is None  # a few pairs' range proves nothing
    assert stop_reason([1.0] * MIN_PAIRS, 0.0, fast=True).startswith("interval narrower")
    assert stop_reason([1.0] * MIN_PAIRS_FAST, 21.0, fast=True) == "time cap (20 s)"
    noisy = [0.7, 1.3] * (MIN_PAIRS // 2)
    assert stop_reason(noisy, 1.0) is None
    assert stop_reason(noisy, 121.0) == "time cap (120 s)"
    assert stop_reason(noisy, 21.0, fast=True) == "time cap (20 s)"
    assert stop_reason([0.7, 1.3] * (MAX_PAIRS // 2), 1.0) == f"{MAX_PAIRS} pairs"


def pairs_of(*ratios):
    return {"median": float(sorted(ratios)[len(ratios) // 2]), "pairs": [{"ratio": r} for r in ratios]}


def test_one_process_pair_s_own_slowness_does_not_fail_once_re_timed_on_a_fresh_pair():
    # the A/A of the smoke card's PyTorch that failed a CI run: one pair of workers, 6 pairs
    biased = [1.1002, 1.0417, 1.1233, 1.1010, 1.0950, 1.1100]
    first = {**pairs_of(*biased), "ci95": [1.0417, 1.1233]}
    first["median"] = 1.1002
    assert needs_confirmation(first)  # alone it would fail
    t = confirmed([first, pairs_of(0.99, 1.01, 1.0, 0.98, 1.02, 1.0)])
    assert t["n_pairs"] == 12 and len(t["process_pairs"]) == 2
    assert t["ci95"][0] < 1.0 < t["ci95"][1]  # the interval spans both process pairs' levels
    assert verdict({"time": t})[0] == "pass"
    assert not needs_confirmation(pairs_of(1.0, 0.98) | {"ci95": [0.97, 1.03]})


def test_a_slowdown_seen_by_both_process_pairs_still_fails():
    t = confirmed([pairs_of(1.21, 1.18, 1.25, 1.2, 1.19, 1.23), pairs_of(1.17, 1.2, 1.22, 1.19, 1.24, 1.2)])
    assert verdict({"time": t})[0] == "fail"
    assert t["stop_reason"].startswith("re-timed on 2 pairs of worker processes")


def test_pooled_interval_of_one_block_is_its_own_bootstrap_and_seeded():
    ratios = [1.0, 1.1, 0.9, 1.05, 0.95, 1.02]
    median, (lo, hi) = pooled_summary([ratios])
    assert median == pytest.approx(1.01) and lo < median < hi
    assert pooled_summary([ratios]) == pooled_summary([ratios])  # re-reading never changes it
    with pytest.raises(ValueError):
        pooled_summary([[]])


def test_pairs_alternate_and_ratio_is_head_over_base():
    calls = []

    def side(name, s):
        return lambda: calls.append(name) or s

    t = time_pairs(side("b", 1.0), side("h", 1.25), fast=True, clock=lambda: 0.0)
    assert calls[:6] == ["b", "h", "b", "h", "h", "b"]  # warm-up, A B, B A, ...
    assert [p["order"] for p in t["pairs"]] == ["base,head", "head,base"] * (MIN_PAIRS // 2)
    assert t["median"] == pytest.approx(1.25) and t["ci95"] == pytest.approx([1.25, 1.25])
    assert t["warmup"] == {"base_s": 1.0, "head_s": 1.25}


def test_exit_status_worst_first_and_digits():
    assert exit_status([{"verdict": "pass"}, {"verdict": "invalid"}, {"verdict": "error"},
                        {"verdict": "fail"}]) == 1
    assert exit_status([{"verdict": "invalid"}, {"verdict": "error"}]) == 3
    assert exit_status([{"verdict": "pass"}, {"verdict": "invalid"}]) == 4
    assert exit_status([{"verdict": "pass"}]) == 0
    assert [fmt(x) for x in (1.20345, 12.345, 469.21, 1234.5, 0.012345)] == \
        ["1.203", "12.35", "469.2", "1234", "0.01235"]


def test_worker_runs_its_side_s_bench_and_a_crash_names_side_and_log(tmp_path):
    from bench.compare import Worker, WorkerError
    from bench.compare_revs import Side

    fake = tmp_path / "side"
    (fake / "bench").mkdir(parents=True)
    (fake / "bench" / "__init__.py").write_text("")
    (fake / "bench" / "artifacts.py").write_text(
        "import os, sys\n"
        "def ensure_artifact(card):\n"
        "    print('chatter on stdout')  # must not break the protocol\n"
        "    if card.name == 'crash':\n"
        "        sys.stderr.write('dying now\\n'); sys.stderr.flush(); os._exit(7)\n"
        "    return 'artifact of ' + card.name\n")
    (fake / "bench" / "zoo").mkdir()
    (fake / "bench" / "zoo" / "__init__.py").write_text("")
    (fake / "bench" / "zoo" / "cards.py").write_text(
        "from types import SimpleNamespace\n"
        "def load_card(name):\n"
        "    return SimpleNamespace(name=name)\n")
    w = Worker(Side("head", "X", "f" * 40, root=fake), tmp_path / "w.log")
    try:
        assert w.call("export", card="ok") == {"artifact": "artifact of ok"}
        with pytest.raises(WorkerError, match=r"head X \(ffffffffff\): no_such_op: AttributeError"):
            w.call("no_such_op")
        with pytest.raises(WorkerError, match=r"exited with status 7 during export; its log .*w.log ends: .*dying now"):
            w.call("export", card="crash")
    finally:
        w.close()


# ---------------------------------------------------------------- command line

def compare(*args, cwd=REPO_ROOT, env=None, timeout=900):
    cmd = [sys.executable, "-m", "bench", "compare", *args]
    return subprocess.run(cmd, cwd=cwd, env=env or os.environ, capture_output=True, text=True,
                          timeout=timeout)


def test_bad_usage_names_what_is_wrong(tmp_path):
    p = compare("--base", "no-such-rev-4711", "--card", SMOKE, "--out", str(tmp_path))
    assert p.returncode == 2, p.stderr
    assert "unknown revision 'no-such-rev-4711'" in p.stderr
    p = compare("--base", "WORKTREE", "--card", "no-such-card", "--out", str(tmp_path))
    assert p.returncode == 2 and "no-such-card" in p.stderr
    p = compare("--base", "WORKTREE", "--card", SMOKE, "--inject-head", "onnx", "--out", str(tmp_path))
    assert p.returncode == 2 and "--inject-head" in p.stderr and "'onnx'" in p.stderr
    p = compare("--head-model", str(tmp_path), "--out", str(tmp_path))
    assert p.returncode == 2 and "--base-model is missing" in p.stderr
    p = compare("--base-model", str(tmp_path / "nowhere"), "--head-model", str(tmp_path),
                "--out", str(tmp_path))
    assert p.returncode == 2 and f"--base-model: {tmp_path / 'nowhere'}: model not found" in p.stderr
    p = compare("--base-model", str(tmp_path), "--head-model", str(tmp_path), "--out", str(tmp_path))
    assert p.returncode == 2 and f"--base-model: {tmp_path}: no config.yaml" in p.stderr
    assert not list(tmp_path.iterdir())  # nothing ran


def run_env(cache, root):
    env = dict(os.environ, BENCH_CACHE=str(cache), BENCH_REPORTS=str(root / "reports"),
               PYTHONPATH=str(root))
    env.pop("BENCH_INJECT_SLOWDOWN", None)
    return env


def cases_of(out: Path) -> dict:
    doc = json.loads((out / "compare.json").read_text())
    assert doc["schema"] == "bench-compare/1" and doc["complete"]
    return doc, {c["variant"]: c for c in doc["cases"]}


@pytest.mark.slow
@pytest.mark.timing
def test_a_a_passes_and_an_unknown_variant_is_that_case_s_error(smoke_cache, tmp_path):
    out = tmp_path / "aa"
    p = compare("--base", "WORKTREE", "--head", "WORKTREE", "--card", SMOKE, "--variant", "onnx",
                "--fast", "--threads", "1", "--out", str(out), env=run_env(smoke_cache, REPO_ROOT))
    assert p.returncode == 0, p.stdout + p.stderr
    doc, cases = cases_of(out)
    c = cases["onnx"]
    assert c["verdict"] == "pass" and c["between"]["agreement_ter"] == 0.0
    assert c["quality"]["base"]["agreement_ter"] == c["quality"]["head"]["agreement_ter"] == 0.0
    assert c["model_mb"]["delta"] == 0.0 and not any(c["torch_imported"].values())
    print(f"A/A head/base {c['time']['median']:.4f} {c['time']['ci95']} ({c['time']['n_pairs']} pairs)")
    assert doc["host"]["cores"] and doc["base"]["rev"] == "WORKTREE"

    p = compare("--base", "WORKTREE", "--head", "WORKTREE", "--card", SMOKE, "--variant",
                "no-such-variant", "--fast", "--out", str(tmp_path / "bad"), env=run_env(smoke_cache, REPO_ROOT))
    assert p.returncode == 3, p.stdout + p.stderr
    _, cases = cases_of(tmp_path / "bad")
    assert cases["no-such-variant"]["verdict"] == "error"
    assert "unknown variant 'no-such-variant'" in cases["no-such-variant"]["reasons"][0]


@pytest.mark.slow
def test_an_environment_comparison_runs_the_candidate_s_libraries(smoke_cache, tmp_path):
    """--head-env alone: the same revision on both sides, the head in a venv with the pin
    (bench/compare_envs.py). What it checks is that each side ran its own libraries and
    exported its own artifact; the speed verdict is the measurement's, not asserted here."""
    from bench.lock import read_lock

    locked = read_lock()["onnxruntime"]
    candidate = "1.31.1" if locked != "1.31.1" else "1.32.0"
    out = tmp_path / "env"
    p = compare("--base", "WORKTREE", "--head-env", f"onnxruntime=={candidate}", "--card", SMOKE,
                "--variant", "onnx", "--fast", "--threads", "1", "--out", str(out),
                env=run_env(smoke_cache, REPO_ROOT))
    assert p.returncode in (0, 1, 4), p.stdout + p.stderr  # a verdict, not a harness error
    assert f"+ onnxruntime=={candidate}" in p.stderr
    doc, cases = cases_of(out)
    assert doc["head"]["rev"] == "WORKTREE" and doc["head"]["env"]["pins"] == {"onnxruntime": candidate}
    assert doc["base"]["env"] == {"pins": {}, "python": None}
    sides = cases["onnx"]["sides"]
    assert sides["base"]["libraries"]["onnxruntime"] == locked
    assert sides["head"]["libraries"]["onnxruntime"] == candidate
    assert sides["base"]["artifact"] != sides["head"]["artifact"]  # exported under each onnxruntime
    assert cases["onnx"]["between"]["agreement_ter"] is not None

    p = compare("--head-env", "onnxruntime>=1.31", "--card", SMOKE, "--out", str(tmp_path / "bad"))
    assert p.returncode == 2 and "--head-env: 'onnxruntime>=1.31' is not 'package==version'" in p.stderr


@pytest.mark.slow
def test_two_checkpoints_run_side_by_side_and_are_judged_on_quality(smoke_cache, tmp_path):
    """--base-model/--head-model: each side runs its own checkpoint of one recipe (here the
    smoke model and a copy with its weights perturbed, standing for a retrained one). Each gets
    its own artifact; they disagree, and that alone fails nothing."""
    import torch

    env = run_env(smoke_cache, REPO_ROOT)
    exp = Path(subprocess.run([sys.executable, "-m", "bench", "export", SMOKE], env=env, check=True,
                              capture_output=True, text=True).stdout.splitlines()[0]) / "exp"
    retrained = tmp_path / "retrained"
    shutil.copytree(exp, retrained)
    state = torch.load(exp / "model.pth", map_location="cpu", weights_only=True)
    g = torch.Generator().manual_seed(0)
    state = {k: v + 0.5 * v.std().nan_to_num() * torch.randn(v.shape, generator=g)
             if v.is_floating_point() and v.numel() > 1 else v for k, v in state.items()}
    torch.save(state, retrained / "model.pth")
    out = tmp_path / "models"
    p = compare("--base-model", str(exp), "--head-model", str(retrained / "model.pth"),
                "--variant", "onnx", "--fast", "--threads", "1", "--out", str(out), env=env)
    assert p.returncode in (0, 1, 4), p.stdout + p.stderr  # a verdict, not a harness error
    doc, cases = cases_of(out)
    assert doc["base"]["model"] == str(exp) and doc["head"]["model"] == str(retrained / "model.pth")
    assert doc["head"]["rev"] == doc["base"]["rev"] == "HEAD"  # one revision: the models differ
    c = cases["onnx"]
    assert c["card"] == "models" and c["sides"]["base"]["artifact"] != c["sides"]["head"]["artifact"]
    assert c["between"]["agreement_ter"] > 0  # reported, never a reason by itself
    assert not any(r.startswith("agreement_ter (head vs base)") for r in c["reasons"])
    # each side against its own PyTorch: the smoke card's onnx is token for token
    assert c["quality"]["base"]["agreement_ter"] == 0.0 and c["quality"]["head"]["agreement_ter"] is not None
    assert {"wer", "cer"} <= set(c["quality"]["base"]) and c["quality"]["head"]["wer"] is not None
    assert (out / "compare.html").is_file() and "candidate: " in p.stdout


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=bench test", "-c",
                           "user.email=bench@test.invalid", "-c", "commit.gpgsign=false", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def repo_of_this_tree(dest: Path) -> Path:
    """A scratch git repository holding this tree as it is (tracked and untracked files that git
    does not ignore): the same code in a clean CI clone and in a working copy with edits, and
    nothing of the user's own repository (branch, index, worktree list) is touched."""
    files = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], check=True, capture_output=True, text=True).stdout
    for rel in filter(None, files.split("\0")):
        src = REPO_ROOT / rel
        if src.is_file():  # a tracked file deleted in the working tree is left out
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "clean")
    return dest


@pytest.mark.slow
@pytest.mark.timing
def test_injected_slowdown_fails_the_slowed_variant_only(smoke_cache, tmp_path):
    if not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: the scratch repository is made from git's file list")
    repo = repo_of_this_tree(tmp_path / "repo")
    clean = git(repo, "rev-parse", "HEAD")
    inject = repo / INJECT
    text = inject.read_text()
    assert '\nDEFAULT = ""\n' in text, f"{INJECT} no longer has the line this test changes"
    # 40% leaves a margin over the 10% tolerance with --fast's few pairs on a busy CI host; the
    # ~20% case with full rounds is measured by hand (docs/gate.md)
    inject.write_text(text.replace('\nDEFAULT = ""\n', '\nDEFAULT = "onnx=0.4"\n'))
    git(repo, "commit", "-q", "-am", "slow down onnx by 40%")
    slowed = git(repo, "rev-parse", "HEAD")

    out = tmp_path / "out"
    p = compare("--base", clean, "--head", slowed, "--card", SMOKE, "--variant", "onnx,pytorch",
                "--fast", "--threads", "1", "--out", str(out), cwd=repo, env=run_env(smoke_cache, repo))
    assert p.returncode == 1, p.stdout + p.stderr
    doc, cases = cases_of(out)
    onnx, pt = cases["onnx"], cases["pytorch"]
    for c in (onnx, pt):
        print(f"{c['variant']} head/base {c['time']['median']:.4f} {c['time']['ci95']} "
              f"({c['time']['n_pairs']} pairs, {c['time']['stop_reason']})")
    assert onnx["verdict"] == "fail", onnx
    assert [r for r in onnx["reasons"] if r.startswith(f"head/base time {onnx['time']['median']:.4f} [")]
    assert pt["verdict"] == "pass", pt
    # a slowdown is confirmed on a fresh pair of workers before it fails
    assert [len(t["pairs"]) > 0 for t in onnx["time"]["process_pairs"]] == [True, True]
    assert (out / "logs" / f"{SMOKE}.onnx.head.confirm.log").exists()
    assert onnx["between"]["agreement_ter"] == 0.0  # slower, same output
    # each side ran its own commit's code, from a complete checkout that later runs reuse
    assert (doc["base"]["sha"], doc["head"]["sha"]) == (clean, slowed)
    for name, sha in (("base", clean), ("head", slowed)):
        checkout = repo / ".cache" / "compare" / sha
        assert Path(onnx["sides"][name]["bench_file"]).is_relative_to(checkout)
    assert not [p for p in (repo / ".cache" / "compare").glob(".*") if p.is_dir()]  # no half checkout
    assert f"head/base time {onnx['time']['median']:.4f}" in p.stdout  # the printed table
