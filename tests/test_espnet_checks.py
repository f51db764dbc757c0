"""ESPnet's typeguard instrumentation is off in the harness's processes, on with BENCH_TYPEGUARD=1."""
import os
import subprocess
import sys

import pytest

# UtteranceMVN.__init__ is @typechecked with norm_means: bool: a string passes only unchecked
PROBE = ("import bench\n"
         "from espnet2.layers.utterance_mvn import UtteranceMVN\n"
         "UtteranceMVN(norm_means='yes')\n"
         "print('unchecked')\n")


@pytest.mark.parametrize("keep, checked", [(None, False), ("1", True)])
def test_typechecked_is_switched_off_unless_asked(keep, checked):
    env = {k: v for k, v in os.environ.items() if k != "BENCH_TYPEGUARD"}
    if keep:
        env["BENCH_TYPEGUARD"] = keep
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                       timeout=120)
    if checked:
        assert r.returncode != 0 and "TypeCheckError" in r.stderr, r.stderr[-2000:]
    else:
        assert r.returncode == 0 and "unchecked" in r.stdout, r.stderr[-2000:]
