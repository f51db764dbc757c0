"""requirements.lock: what ./run and tox install, and what each results document records."""
import re


import pytest

from bench.lock import LOCK_FILE, LockError, lock_status, normalize, read_lock
from bench.paths import REPO_ROOT
from bench.results import run_environment

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _requirements():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + [r for reqs in project["optional-dependencies"].values()
                                      for r in reqs]


def test_the_lock_holds_every_requirement_at_the_version_pyproject_pins():
    """./run installs the lock with the project --no-deps: a requirement missing from the lock,
    or pinned elsewhere to another version, would be installed wrong or not at all."""
    pins = read_lock()
    for req in _requirements():
        name = normalize(re.match(r"[A-Za-z0-9._-]+", req).group(0))
        assert name in pins, f"{req} is not in requirements.lock (run ./run lock)"
        exact = re.search(r"==\s*([^,;\s\"]+)", req)
        if exact:
            assert pins[name] == exact.group(1), f"pyproject.toml pins {req}, the lock {pins[name]}"


def test_the_pinned_onnx_is_past_the_known_cves():
    # CVE-2026-28500 and CVE-2026-27489: onnx 1.20.1 and older; fixed in 1.21.0
    major, minor = (int(x) for x in read_lock()["onnx"].split(".")[:2])
    assert (major, minor) >= (1, 21)


def test_run_and_tox_install_the_lock():
    run = (REPO_ROOT / "run").read_text()
    assert "-r requirements.lock" in run and "--no-deps -e ." in run and "pip check" in run
    assert "requirements.lock" in run.split("stamp=", 1)[1].split("\n", 1)[0]  # a new lock reinstalls
    assert "deps = -r requirements.lock" in (REPO_ROOT / "tox.ini").read_text()


def test_a_bad_lock_line_is_named(tmp_path):
    bad = tmp_path / "requirements.lock"
    bad.write_text("# header\nnumpy==2.2.6\ntorch>=2\n")
    with pytest.raises(LockError, match=r"requirements.lock:3: expected 'name==version', got 'torch>=2'"):
        read_lock(bad)
    bad.write_text("ml_dtypes==0.7.0\nml-dtypes==0.7.0\n")
    with pytest.raises(LockError, match="pinned twice"):
        read_lock(bad)


def test_status_names_what_strays_from_the_lock(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# made by hand for the test\nnumpy==2.2.6\nOnnxRuntime==1.23.2\nml_dtypes==0.7.0\n")
    same = lock_status(lock, {"numpy": "2.2.6", "onnxruntime-gpu": "1.23.2", "ml-dtypes": "0.7.0"})
    assert same["packages"] == 3 and same["differs"] == {} and len(same["sha256"]) == 64
    status = lock_status(lock, {"numpy": "2.3.0", "onnxruntime": "1.23.2"})
    assert status["differs"] == {"numpy": {"locked": "2.2.6", "installed": "2.3.0"},
                                 "ml-dtypes": {"locked": "0.7.0", "installed": None}}
    env = run_environment({"lock": status})
    assert env["lock"].startswith("requirements.lock sha256:")
    assert env["lock.differs"] == "ml-dtypes None (locked 0.7.0), numpy 2.3.0 (locked 2.2.6)"
    assert lock_status(tmp_path / "absent.lock") is None


def test_this_environment_is_the_lock():
    """The tests run in the venv ./run built: it must be the lock, or the lock does not
    describe what CI measures."""
    if not LOCK_FILE.is_file():
        pytest.skip("no requirements.lock beside this checkout")
    status = lock_status()
    strays = {n: d for n, d in status["differs"].items() if n not in ("onnxruntime",)}
    assert strays == {}, strays


# --- which Pythons the lock installs on (bench/python_support.py; no network here) ----------

def _files(*names, requires=None):
    return [{"filename": n, "requires-python": requires} for n in names]


def test_a_wheel_for_the_python_is_taken_before_the_sdist():
    from bench.python_support import availability

    files = _files("pkg-1.0.tar.gz", "pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
                   "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", "pkg-2.0-py3-none-any.whl")
    assert availability("pkg", "1.0", files, (3, 12)).how == "wheel"
    assert availability("pkg", "1.0", files, (3, 13)).how == "sdist"  # built at install
    assert availability("pkg", "2.0", files, (3, 13)).how == "wheel"  # pure Python


def test_requires_python_and_missing_releases_are_named():
    from bench.python_support import availability

    files = _files("pkg-1.0-py3-none-any.whl", requires=">=3.11")
    no = availability("pkg", "1.0", files, (3, 10))
    assert (no.how, no.detail) == ("none", "Requires-Python >=3.11")
    assert availability("pkg", "1.0", files, (3, 11)).how == "wheel"
    gone = availability("pkg", "3.0", files, (3, 11))
    assert gone.how == "none" and "no files of this version" in gone.detail
    only_old = availability("ort", "1.0", _files("ort-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"), (3, 14))
    assert only_old.how == "none" and "no wheel for cp314" in only_old.detail
