"""Options shared by the benchmark suites (suites/) and the unit tests (tests/)."""
import os

# ESPnet's TTS text frontends pull nltk, which tries to download data at import time;
# there is no network here, so tell it where (not) to look before anything imports it.
os.environ.setdefault("NLTK_DATA", os.path.join(os.path.dirname(__file__), ".cache", "nltk"))


def pytest_addoption(parser):
    g = parser.getgroup("bench", "benchmark harness")
    g.addoption("--bench-tier", default="main",
                help="card tiers to run: main (the main job's cards), smoke, accuracy, paper "
                     "(comma-separated), or all")
    g.addoption("--bench-card", default=None, help="only these cards (comma-separated names)")
    g.addoption("--bench-variant", default=None, help="only these variants (comma-separated)")
    g.addoption("--bench-device", default="cpu", help="devices: cpu, cuda or cpu,cuda")
    g.addoption("--bench-threads", type=int, default=None,
                help="intra-op threads for torch and ORT (default: usable cores)")
    g.addoption("--bench-fast", action="store_true",
                help="minimum rounds only: checks the harness, gives no trustworthy figures")
    g.addoption("--bench-out", default=None, help="reports folder (default: reports/)")
    g.addoption("--bench-server", type=int, default=0,
                help="also the server scenario with this many concurrent streams (speech input)")
    g.addoption("--bench-model", default=None,
                help="your own ESPnet ASR model: an exp dir (config.yaml + .pth), a .pth in one, "
                     "or a packed model zip; it is run instead of the built-in cards")
    g.addoption("--bench-data", default=None,
                help="a Kaldi-style data dir (wav.scp, text) that replaces every card's data")
    g.addoption("--bench-against", default=None,
                help="gate against these earlier results documents of this machine class "
                     "(files or folders, comma-separated) instead of the committed baseline file")
    g.addoption("--update-baselines", action="store_true",
                help="after a fully successful run, rewrite this machine class's baseline file")
