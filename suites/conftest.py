"""Suite plumbing: parametrize cases, keep one BenchSession, write results at the end."""
from __future__ import annotations

import pytest

from bench.progress import CaseProgress
from bench.runner import SuiteRun
from bench.signals import drop_lineless_entries, stop_signals_ignored, terminate_as_interrupt
from bench.variants import DEFAULT_VARIANTS, VARIANTS
from bench.zoo.cards import CardError, list_cards, load_card

RUN_KEY = pytest.StashKey()


def _split(value):
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def pytest_generate_tests(metafunc):
    if "bench_case" not in metafunc.fixturenames:
        return
    task = metafunc.module.TASK
    opt = metafunc.config.getoption
    names = _split(opt("--bench-card"))
    if names:  # cards named on the command line run whatever their tier; a .yaml is a card file
        files = [n for n in names if n.endswith((".yaml", ".yml"))]
        names = [n for n in names if n not in files]
        known = {c.name for c in list_cards("all")}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise pytest.UsageError(f"--bench-card: no built-in card named {', '.join(unknown)} "
                                    f"(known: {', '.join(sorted(known))})")
        try:
            from_files = [load_card(f) for f in files]
        except CardError as e:
            raise pytest.UsageError(f"--bench-card: {e}") from None
        cards = [c for c in list_cards("all", task=task) if c.name in names] + \
            [c for c in from_files if c.task == task]
    else:
        cards = list_cards(opt("--bench-tier"), task=task)
    if opt("--bench-model"):
        # a user's model runs instead of the built-in cards; --bench-card adds some back
        from bench.zoo.user_model import TASK, user_card

        user = [user_card(opt("--bench-model"))] if task == TASK else []
        cards = user + (cards if names else [])
    named = _split(opt("--bench-variant"))
    variants = named or DEFAULT_VARIANTS  # a study's variants run when named
    devices = _split(opt("--bench-device")) or ["cpu"]
    # a variant runs on the devices it names (onnx-fp16: cuda); named on the command line
    # for another device, its case is kept and skipped with that reason
    params = [pytest.param((c, v, d), id=f"{c.name}-{v}-{d}")
              for c in cards for d in devices for v in variants
              if named or d in VARIANTS[v].devices]
    metafunc.parametrize("bench_case", params)


@pytest.fixture
def measured_case(request, suite_run, bench_case):
    # Measuring happens in a fixture, so a case that cannot run shows as a pytest ERROR,
    # while a regression found by the gate shows as a FAILURE.
    case = suite_run.measure(*bench_case)
    # the progress line says "new" or "pass", as the gate does (pytest knows only "passed")
    request.node.user_properties.append(("verdict", (case.get("gate") or {}).get("verdict")))
    return case


@pytest.fixture(scope="session")
def suite_run(pytestconfig):
    run = SuiteRun.from_pytest_config(pytestconfig)
    pytestconfig.stash[RUN_KEY] = run
    return run


def case_label(item) -> str:
    """``asr-conformer-tiny onnx-int8 cpu``: how a person names a case in the progress lines."""
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("bench_case") if callspec is not None else None
    if not isinstance(case, tuple) or len(case) != 3:  # e.g. an empty parameter set: NOTSET
        return item.nodeid
    card, variant, device = case
    return f"{card.name} {variant} {device}"


def pytest_configure(config):
    terminate_as_interrupt()  # a cancelled job (SIGTERM) ends like Ctrl-C: partial results kept
    # a started and a done line per case, with the time so far and an estimate of what is left
    # (pytest -q alone shows a dot per finished case, and a case can take minutes)
    if not config.pluginmanager.has_plugin("bench-progress"):
        config.pluginmanager.register(CaseProgress(config, label=case_label), "bench-progress")


@pytest.hookimpl(tryfirst=True)
def pytest_keyboard_interrupt(excinfo):
    # before pytest's terminal reporter renders the traceback, which a line-less entry crashes
    drop_lineless_entries(excinfo.value)


def pytest_sessionfinish(session, exitstatus):
    # Here, unlike in a fixture teardown, we know whether the run was interrupted.
    run = session.config.stash.get(RUN_KEY, None)
    if run is not None:
        with stop_signals_ignored():
            run.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
