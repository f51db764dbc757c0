"""The short version of `bench selftest --real`, in CI: on the real smoke card, in fresh
`bench run` processes, an A/A run is gated against the baseline of a first run on this host
and a run with an injected slowdown fails."""
import pytest

from bench.measure.selftest_real import speed_error_rates, summary

pytestmark = [pytest.mark.slow, pytest.mark.timing]


def test_real_card_aa_is_gated_and_injected_slowdown_fails(tmp_path, monkeypatch, shared_cache):
    monkeypatch.setenv("BENCH_CACHE", str(shared_cache))
    # --fast (2 fixed rounds) keeps it short. Whether an A/A run passes is a rate, printed by
    # `bench selftest --real` over many runs (docs/gate.md), not asserted from one run: one
    # fast run here once fell 15% below the run before it. What must hold every time: the
    # A/A cases are gated against this host's fresh baseline, and a doubled time fails.
    # Why doubled, not +50%: --fast's interval is the span of its two rounds' ratios, and
    # with the other test worker busy on the second core one disturbed round once hid a
    # 50% slowdown (rounds 1.85 and 3.03 against a limit of 3.01). The gate's power at
    # 20-25% is measured by `bench selftest`, on the full rule (docs/gate.md).
    rates = speed_error_rates("asr-conformer-smoke", repeats=1, slowdown=1.0, workdir=tmp_path,
                              variants=("onnx",), fast=True)
    text = summary(rates, None)
    print(text)
    assert len(rates["aa"]) == 2 and all(v in ("pass", "fail") for _, v, _ in rates["aa"]), text
    for _, verdict, reasons in rates["aa"]:
        assert verdict == "pass" or all("this host" in r for r in reasons), text
    assert [v for _, v, _ in rates["detect"]] == ["fail"], text
    assert "100% slowdown injected in every ONNX variant: caught 1/1" in text
    reasons = rates["detect"][0][2]  # same host: rtf and latency may fail beside the speedup
    speedup = [r for r in reasons if r.startswith("speedup fell")]
    assert speedup and "this host" in speedup[0], reasons
