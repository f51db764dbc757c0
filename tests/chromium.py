"""Load a page in headless Chromium and tell what a person would have seen go wrong.

Talks the DevTools protocol over a pipe (``--remote-debugging-pipe``: fd 3 in, fd 4 out,
JSON messages ending in NUL), so no driver and no websocket library is needed; Debian's
``chromium`` package is enough (.ci/install-chromium). Collects console errors, uncaught
exceptions, log-domain errors and every request for something other than the page itself.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["find_chromium", "PageLoad", "load_page"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # URLs other than the page and data: URIs
    values: dict = field(default_factory=dict)         # expression -> its value after load


class _Pipe:
    def __init__(self, browser: str, profile: str, extra: list[str]):
        to_r, to_w = os.pipe()      # we write commands, chromium reads fd 3
        from_r, from_w = os.pipe()  # chromium writes fd 4, we read

        def child_fds():  # copies first: a pipe end may itself be fd 3 or 4
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", f"--user-data-dir={profile}",
             "--window-size=1400,1000", *extra, "about:blank"],
            pass_fds=(3, 4), preexec_fn=child_fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self.w = os.fdopen(to_w, "wb", buffering=0)
        self.r = os.fdopen(from_r, "rb", buffering=0)
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def _read_message(self) -> dict:
        while b"\0" not in self.buf:
            chunk = self.r.read(1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.w.write(json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float) -> dict:
        end = time.monotonic() + timeout
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        while time.monotonic() < end:
            ev = self._read_message()
            self.events.append(ev)
            if ev.get("method") == method:
                return ev
        raise TimeoutError(f"no {method} within {timeout} s")

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def load_page(path: Path, expressions: dict[str, str], screenshot: Path | None = None,
              javascript: bool = True, timeout: float = 60) -> PageLoad:
    """Open ``path``, wait for the load event, evaluate ``expressions`` (name -> JS) and
    optionally write a full-page PNG screenshot."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("chromium not found (install it with .ci/install-chromium)")
    url = Path(path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        pipe = _Pipe(browser, profile, [])
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            s = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.call(f"{domain}.enable", session=s)
            if not javascript:
                pipe.call("Emulation.setScriptExecutionDisabled", {"value": True}, session=s)
            pipe.events.clear()
            pipe.call("Page.navigate", {"url": url}, session=s)
            pipe.wait_event("Page.loadEventFired", timeout)
            result = PageLoad()
            for name, js in expressions.items():
                r = pipe.call("Runtime.evaluate", {"expression": js, "returnByValue": True}, session=s)
                result.values[name] = r.get("result", {}).get("value")
            if screenshot is not None:
                size = pipe.call("Page.getLayoutMetrics", session=s)["cssContentSize"]
                shot = pipe.call("Page.captureScreenshot", {
                    "format": "png", "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": size["width"],
                             "height": min(size["height"], 16000), "scale": 1}}, session=s)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            pipe.call("Runtime.evaluate", {"expression": "0"}, session=s)  # flush pending events
        finally:
            pipe.close()
    for ev in pipe.events:
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            result.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                                  for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            result.exceptions.append(str(d.get("exception", {}).get("description") or d.get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            result.log_errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif m == "Network.requestWillBeSent":
            u = p.get("request", {}).get("url", "")
            if u != url and not u.startswith("data:"):
                result.requests.append(u)
    return result
