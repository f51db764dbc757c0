"""ESPnet's typeguard checks: on by default (measurements), off with BENCH_TYPEGUARD=0 (the tests)."""
import os
import subprocess
import sys

import pytest

# UtteranceMVN.__init__ is @typechecked with norm_means: bool: a string passes only unchecked
PROBE = ("import bench\n"
         "from espnet2.layers.utterance_mvn import UtteranceMVN\n"
         "UtteranceMVN(norm_means='yes')\n"
         "print('unchecked')\n")


@pytest.mark.parametrize("setting, checked", [(None, True), ("1", True), ("0", False)])
def test_typechecked_stays_on_unless_switched_off(setting, checked):
    env = {k: v for k, v in os.environ.items() if k != "BENCH_TYPEGUARD"}
    if setting is not None:
        env["BENCH_TYPEGUARD"] = setting
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                       timeout=120)
    if checked:
        assert r.returncode != 0 and "TypeCheckError" in r.stderr, r.stderr[-2000:]
    else:
        assert r.returncode == 0 and "unchecked" in r.stdout, r.stderr[-2000:]


def test_the_tests_run_with_the_checks_off():
    import bench.espnet_checks

    assert os.environ["BENCH_TYPEGUARD"] == "0" and bench.espnet_checks.SWITCHED_OFF
