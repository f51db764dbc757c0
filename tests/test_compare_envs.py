"""The candidate environments of `bench compare --head-env/--base-env` (bench/compare_envs.py).

Building one installs real wheels from the registry (small, pure-Python ones here)."""
import subprocess
import sys

import pytest

from bench.compare_envs import EnvError, candidate_python, installed, parse_pins
from bench.lock import read_lock


def test_pins_are_parsed_and_a_bad_one_is_named():
    assert parse_pins("onnxruntime==1.31.1, onnx==1.23.2") == {"onnxruntime": "1.31.1", "onnx": "1.23.2"}
    assert parse_pins("ml_dtypes==0.5.4") == {"ml-dtypes": "0.5.4"}
    with pytest.raises(EnvError, match=r"--head-env: 'onnxruntime>=1.31' is not 'package==version'"):
        parse_pins("onnx==1.23.2 onnxruntime>=1.31")
    with pytest.raises(EnvError, match="--base-env: no 'package==version' given"):
        parse_pins(" , ", "--base-env")


@pytest.mark.slow
def test_a_candidate_is_this_environment_with_the_pins_over_it(tmp_path):
    locked = read_lock()["tabulate"]
    assert locked != "0.9.0", "pick another version for this test"
    python = candidate_python({"tabulate": "0.9.0"}, repo=tmp_path)
    got = installed(python, ["tabulate", "numpy", "onnxruntime"])
    # the pin is what the candidate imports; everything else is this environment's own files
    assert got["tabulate"] == "0.9.0"
    assert got["numpy"] == installed(sys.executable, ["numpy"])["numpy"]
    imported = subprocess.run([python, "-c", "import tabulate, numpy; print(tabulate.__file__, numpy.__file__)"],
                              capture_output=True, text=True, check=True).stdout.split()
    assert str(tmp_path) in imported[0] and str(tmp_path) not in imported[1]
    # built once: the same pins give the same interpreter without a rebuild
    assert candidate_python({"tabulate": "0.9.0"}, repo=tmp_path) == python
    # this environment is untouched
    assert installed(sys.executable, ["tabulate"])["tabulate"] == locked


@pytest.mark.slow
def test_a_candidate_that_breaks_the_shared_packages_is_refused(tmp_path):
    # onnx needs protobuf >= 6.31; protobuf 3.20 over this environment would break it
    with pytest.raises(EnvError, match=r"pip check.*onnx .*protobuf"):
        candidate_python({"protobuf": "3.20.3"}, repo=tmp_path)
    with pytest.raises(EnvError, match="cannot install tabulate==0.0.0-no-such"):
        candidate_python({"tabulate": "0.0.0-no-such"}, repo=tmp_path)
    # neither left a half-built environment that a later call would take for complete
    assert not [p for p in (tmp_path / ".cache" / "envs").iterdir() if not p.name.startswith(".")]
