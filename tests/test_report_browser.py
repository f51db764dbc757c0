"""The report as a person sees it: loaded in headless Chromium, with JavaScript on and off.

CI installs Debian's chromium (.ci/install-chromium) and sets BENCH_REQUIRE_CHROMIUM=1, so
there a missing browser fails instead of skipping. The screenshot is kept under
reports/browser-check/ for whoever reads a red build.
"""
import os
import shutil
from pathlib import Path

import pytest

from bench.report.html import render_report_files
from chromium import find_chromium, load_page
from report_inputs import nights, other_schema, truncated

pytestmark = pytest.mark.slow

if find_chromium() is None:
    if os.environ.get("BENCH_REQUIRE_CHROMIUM") == "1":
        raise RuntimeError("BENCH_REQUIRE_CHROMIUM=1 but no chromium on PATH: run .ci/install-chromium")
    pytestmark = [pytestmark, pytest.mark.skip(reason="no chromium on PATH (install: .ci/install-chromium)")]

KEEP = Path(__file__).resolve().parent.parent / "reports" / "browser-check"

PROBES = {
    "verdict": "document.getElementById('verdict').textContent",
    "why": "Array.from(document.querySelectorAll('ul.why a')).map(a => a.textContent)",
    "broken_links": "Array.from(document.querySelectorAll('a[href^=\"#\"]'))"
                    ".filter(a => !document.getElementById(a.getAttribute('href').slice(1))).length",
    "tasks": "Array.from(document.querySelectorAll('h2[id^=\"task-\"]')).map(h => h.id)",
    "tables_after_task": "Array.from(document.querySelectorAll('h2[id^=\"task-\"]')).map(h => {"
                         " let n = h.nextElementSibling; while (n && !n.querySelector('table')) "
                         "n = n.nextElementSibling; return n ? n.querySelectorAll('tr').length : 0 })",
    "images": "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)",
    "left_out": "(document.getElementById('inputs') || {}).textContent || ''",
}


def _check_clean(page):
    assert page.console_errors == [], page.console_errors
    assert page.exceptions == [], page.exceptions
    assert page.log_errors == [], page.log_errors
    assert page.requests == [], f"the report asked the network for {page.requests}"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("nights")
    paths = nights(root, fail_latest="st/st-tiny/onnx-int8")
    paths += [truncated(root / "trunc.json", paths[0]), other_schema(root / "v2.json", paths[1])]
    out, left = render_report_files(paths, root / "report.html", root / "no-baselines")
    assert len(left) == 2
    return out


def test_report_loads_clean_with_verdict_tables_and_charts(report):
    shot = report.with_suffix(".png")
    page = load_page(report, PROBES, screenshot=shot)
    _check_clean(page)
    v = page.values
    assert v["verdict"] == "NO-GO"
    assert any("st/st-tiny/onnx-int8/cpu" in w and "gate failed" in w for w in v["why"])
    assert any("trunc.json" in w for w in v["why"]) and any("v2.json" in w for w in v["why"])
    assert v["broken_links"] == 0
    assert v["tasks"] == ["task-asr", "task-st", "task-tts"]
    assert all(n >= 5 for n in v["tables_after_task"]), v["tables_after_task"]  # header + 4 variants
    assert len(v["images"]) >= 20 and all(v["images"]), "a chart did not decode"
    assert "trunc.json" in v["left_out"] and "v2.json" in v["left_out"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    KEEP.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, KEEP / "report.png")
    shutil.copyfile(report, KEEP / "report.html")


def test_core_tables_read_with_javascript_off(report):
    probes = {"verdict": PROBES["verdict"],
              "rows": "document.querySelectorAll('table tr').length",
              "images": PROBES["images"]}
    page = load_page(report, probes, javascript=False)
    _check_clean(page)
    assert page.values["verdict"] == "NO-GO"
    assert page.values["rows"] > 6 * 5 and all(page.values["images"])


def test_the_check_sees_what_goes_wrong(tmp_path):
    # a check that cannot fail proves nothing: a page with each fault must be caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p id='verdict'>GO</p>"
                   "<img src='http://report-check.invalid/x.png'>"
                   "<script>console.error('boom'); notDefined();</script></body></html>")
    page = load_page(bad, {"verdict": PROBES["verdict"]}, timeout=30)
    assert page.console_errors == ["boom"]
    assert page.exceptions and "notDefined" in page.exceptions[0]
    assert page.requests == ["http://report-check.invalid/x.png"]
