"""bench.atomic.build_once: the one way the artifact cache, the corpora and bench compare's
checkouts build a folder (whole or not at all; one builder at a time)."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from bench.atomic import build_once
from bench.zoo import corpus


def _complete(path):
    return (path / "done").exists()


def _write(tmp):
    (tmp / "data").write_text("x")
    (tmp / "done").write_text("")


def test_builds_once_and_reuses(tmp_path):
    calls = []
    final = tmp_path / "thing"
    for _ in range(2):
        assert build_once(final, lambda t: (calls.append(t), _write(t)), _complete) == final
    assert len(calls) == 1 and (final / "data").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".thing.lock", "thing"]


def test_a_failed_build_leaves_nothing(tmp_path):
    def broken(tmp):
        (tmp / "half").write_text("")
        raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        build_once(tmp_path / "thing", broken, _complete)
    assert [p.name for p in tmp_path.iterdir()] == [".thing.lock"]


def test_what_a_killed_build_left_is_removed_before_building(tmp_path):
    (tmp_path / ".thing.k1ll3d").mkdir()  # a SIGKILLed builder's temporary folder
    (tmp_path / "thing").mkdir()  # and an incomplete final folder
    (tmp_path / "thing" / "junk").write_text("")
    build_once(tmp_path / "thing", _write, _complete)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".thing.lock", "thing"]
    assert sorted(p.name for p in (tmp_path / "thing").iterdir()) == ["data", "done"]


def test_a_builder_killed_by_sigkill_leaves_only_its_temp_folder(tmp_path):
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from bench.atomic import build_once
        def slow(tmp):
            (tmp / "started").write_text("")
            time.sleep(60)
        build_once(Path({str(tmp_path / 'thing')!r}), slow, lambda p: (p / "done").exists())
    """)
    p = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ))
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".thing.*/started")) and time.monotonic() < deadline:
        time.sleep(0.02)
    p.kill()
    p.wait()
    assert list(tmp_path.glob(".thing.*/started")) and not (tmp_path / "thing").exists()
    build_once(tmp_path / "thing", _write, _complete)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".thing.lock", "thing"]


def test_corpus_generation_builds_this_way(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "corpus_dir", lambda kind, seed: tmp_path / f"{kind}-seed{seed}")
    (tmp_path / ".tts-seed7.dead01").mkdir()  # left by a killed generation
    calls = []

    def fake_generate(kind, out, seed):
        calls.append((kind, seed))
        (out / "corpus.json").write_text("{}")

    monkeypatch.setattr(corpus, "generate", fake_generate)
    out = corpus.ensure_corpus("tts", 7)
    assert out == tmp_path / "tts-seed7" and (out / "corpus.json").exists()
    assert corpus.ensure_corpus("tts", 7) == out and calls == [("tts", 7)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tts-seed7.lock", "tts-seed7"]
