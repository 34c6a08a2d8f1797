#!/usr/bin/env python3
"""Drives headless Chromium through chromedriver (W3C WebDriver over HTTP, standard library only)
against a running goalpost dashboard, asserts what it shows, and saves a screenshot.

Usage: scripts/browser_test.py --url http://127.0.0.1:PORT/ --screenshot out.png
Run by scripts/browser-test, which starts `goalpost demo` first.
"""

import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

# Headless, and fit for CI: no sandbox (CI runs as root, where Chromium's sandbox refuses to
# start), no GPU, and /tmp instead of /dev/shm (small in containers; Chromium crashes when full).
CHROME_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    "--hide-scrollbars",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--lang=en-US",
]
VIEWPORT = (1400, 1000)
MAX_SHOT_HEIGHT = 4000

# Installed before the page's own scripts run: records uncaught errors, unhandled rejections and
# console.error calls, so the test sees them even where the log endpoint is not available.
ERROR_HOOK = """
window.__testErrors = [];
window.addEventListener('error', e => window.__testErrors.push('error: ' + (e.message || e.type) +
  (e.filename ? ' at ' + e.filename + ':' + e.lineno : '')));
document.addEventListener('securitypolicyviolation', e => window.__testErrors.push(
  'Content-Security-Policy violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')));
window.addEventListener('unhandledrejection', e => window.__testErrors.push('unhandled rejection: ' +
  (e.reason && e.reason.message || e.reason)));
const __origError = console.error;
console.error = function (...args) { window.__testErrors.push('console.error: ' + args.join(' ')); return __origError.apply(this, args); };
"""

START = time.monotonic()


def log(msg):
    print(f"[browser-test {time.monotonic() - START:5.1f}s] {msg}", file=sys.stderr, flush=True)


class Fail(Exception):
    pass


def http(method, url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            detail = json.loads(raw).get("value", {})
            detail = f"{detail.get('error')}: {detail.get('message', '')[:500]}"
        except Exception:
            detail = raw[:500]
        raise Fail(f"{method} {url} -> HTTP {e.code}: {detail}") from None
    return json.loads(raw) if raw else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    """A chromedriver process and one W3C session."""

    def __init__(self, chromedriver, chromium):
        port = free_port()
        self.logfile = tempfile.NamedTemporaryFile(prefix="chromedriver-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([chromedriver, f"--port={port}"], stdout=self.logfile,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        self.session = None
        deadline = time.monotonic() + 20
        while True:
            if self.proc.poll() is not None:
                raise Fail(f"chromedriver exited with {self.proc.returncode} (log: {self.logfile.name})")
            try:
                if http("GET", self.base + "/status", timeout=2)["value"].get("ready"):
                    break
            except (OSError, Fail):
                pass
            if time.monotonic() > deadline:
                raise Fail("chromedriver did not become ready within 20 s")
            time.sleep(0.2)
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": CHROME_ARGS},
            "goog:loggingPrefs": {"browser": "ALL"},
            "pageLoadStrategy": "normal",
        }
        value = http("POST", self.base + "/session", {"capabilities": {"alwaysMatch": caps}}, timeout=60)["value"]
        self.session = value["sessionId"]
        self.url = f"{self.base}/session/{self.session}"
        log(f"Chromium {value['capabilities'].get('browserVersion', '?')} started")

    def cmd(self, method, path, body=None, timeout=30):
        return http(method, self.url + path, body, timeout)["value"]

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def cdp(self, cmd, params):
        return self.cmd("POST", "/goog/cdp/execute", {"cmd": cmd, "params": params})

    def browser_log(self):
        """The browser console log since the last call, or None where not supported."""
        for path in ("/se/log", "/log"):
            try:
                return self.cmd("POST", path, {"type": "browser"})
            except Fail:
                continue
        return None

    def close(self):
        try:
            if self.session:
                http("DELETE", self.url, timeout=10)
        except (OSError, Fail):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.logfile.close()
        os.unlink(self.logfile.name)


def wait_for(what, timeout, probe, interval=0.25):
    """Polls probe() until it returns a truthy value; returns it, or fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise Fail(f"timed out after {timeout:.0f} s waiting for {what}")


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise Fail(f"{path} is not a PNG file")
    return struct.unpack(">II", head[16:24])


def screenshot(d, path):
    """A full-page PNG: the viewport stretched to the page height, then restored."""
    full = False
    try:
        height = int(d.js("return Math.ceil(document.documentElement.scrollHeight)") or VIEWPORT[1])
        height = max(VIEWPORT[1], min(height, MAX_SHOT_HEIGHT))
        d.cdp("Emulation.setDeviceMetricsOverride",
              {"width": VIEWPORT[0], "height": height, "deviceScaleFactor": 1, "mobile": False})
        full = True
        time.sleep(0.5)  # let the layout settle at the new height
    except Fail as e:
        log(f"full-page screenshot not available ({e}); taking the viewport")
    try:
        png = base64.b64decode(d.cmd("GET", "/screenshot", timeout=60))
    finally:
        if full:
            try:
                d.cdp("Emulation.clearDeviceMetricsOverride", {})
            except Fail:
                pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(png)
    return png


STATE_JS = """
const q = (s) => Array.from(document.querySelectorAll(s));
return {
  initial: document.body.dataset.initialFeed === 'done',
  polled: Number(document.body.dataset.polled || 0),
  stream: document.body.dataset.stream || '',
  status: (document.getElementById('status') || {}).textContent || '',
  banner: (document.getElementById('banner') || {}).textContent || '',
  cards: q('[data-testid="goal-card"]').map(e => e.dataset.goal),
  progress: q('[data-testid="progress-bar"]').map(e => e.dataset.progress),
  paceLines: q('[data-testid="pace-line"]').length,
  statuses: q('[data-testid="group-row"]').filter(e => e.dataset.status).map(e => ({status: e.dataset.status,
    flag: (e.querySelector('[data-testid="at-risk"]') || {}).textContent || ''})),
  feed: q('[data-testid="feed-item"]').map(e => ({id: e.dataset.id, kind: e.dataset.kind, source: e.dataset.source})),
  errors: window.__testErrors || [],
};
"""


def run(args):
    base = args.url.rstrip("/") + "/"
    defs = http("GET", base + "v1/goals")["goals"]
    goals = [g["id"] for g in defs]
    look_ahead = [g["id"] for g in defs if g.get("status")]
    if not goals:
        raise Fail("/v1/goals lists no goal")
    log(f"/v1/goals: {len(goals)} goals")

    d = Driver(args.chromedriver, args.chromium)
    console = []
    try:
        try:
            d.cdp("Page.addScriptToEvaluateOnNewDocument", {"source": ERROR_HOOK})
        except Fail as e:
            log(f"cannot install the error hook ({e}); relying on the console log only")
        d.cmd("POST", "/url", {"url": base})
        state = lambda: d.js(STATE_JS)  # noqa: E731

        # 1. One card per goal, and the initial feed loaded.
        s = wait_for("the goal cards and the initial feed", args.timeout,
                     lambda: (lambda s: s if s["initial"] and s["cards"] else None)(state()))
        if s["banner"]:
            raise Fail(f"the page shows an error: {s['banner']}")
        if s["cards"] != goals:
            raise Fail(f"goal cards {s['cards']} != goals of /v1/goals {goals}")
        initial_ids = {f["id"] for f in s["feed"]}
        log(f"{len(s['cards'])} goal cards; initial feed: {len(s['feed'])} items")

        # 2. Progress appears.
        def progressing():
            s = state()
            vals = [float(p) for p in s["progress"] if p not in ("", None)]
            return s if any(v > 0 for v in vals) else None
        s = wait_for("a progress bar with progress > 0", args.timeout, progressing)
        positive = sum(1 for p in s["progress"] if p not in ("", None) and float(p) > 0)
        log(f"{len(s['progress'])} progress bars, {positive} with progress > 0")

        # 2b. Goals with status: a pace line per row, and every group at risk marked in words.
        if look_ahead:
            s = wait_for("the pace lines of goals with status", args.timeout,
                         lambda: (lambda s: s if s["paceLines"] else None)(state()))
            unmarked = [r for r in s["statuses"] if (r["status"] == "at_risk") != (r["flag"] == "AT RISK")]
            if unmarked:
                raise Fail(f"rows whose at-risk mark does not match their status: {unmarked}")
            at_risk = sum(1 for r in s["statuses"] if r["status"] == "at_risk")
            log(f"{s['paceLines']} pace lines; {at_risk} of {len(s['statuses'])} rows with status at risk, all marked")
        else:
            log("no goal with status: pace lines and at-risk marks not checked")

        # 3. A milestone arrives through the server-sent events stream, after the initial fill.
        def streamed_milestone():
            s = state()
            new = [f for f in s["feed"] if f["kind"] == "milestone" and f["source"] == "stream"
                   and f["id"] not in initial_ids]
            return (s, new) if new else None
        s, new = wait_for("a milestone feed item from the SSE stream", args.timeout, streamed_milestone)
        streamed = sum(1 for f in s["feed"] if f["source"] == "stream")
        log(f"milestone {new[0]['id']} arrived live; {streamed} feed items from the stream so far")
        s = wait_for("the connection status to read live", 15,
                     lambda: (lambda s: s if s["stream"] == "open" and s["status"] == "live" else None)(state()))

        # Let a couple more polls and events land, so the screenshot shows a settled page.
        polled = s["polled"]
        wait_for("two more window polls", 15, lambda: state()["polled"] >= polled + 2)

        # 4. No JavaScript errors.
        s = state()
        entries = d.browser_log()
        if entries is None:
            log("the browser log endpoint is not available; checked the error hook only")
        else:
            console = [f"{e.get('level')}: {e.get('message')}" for e in entries]
        # A 503 is the API's documented "busy, try again" (the page retries); anything else fails.
        severe = [c for c in console if c.startswith("SEVERE") and not (
            "Failed to load resource" in c and "status of 503" in c)]
        if s["errors"] or severe:
            raise Fail("JavaScript errors on the page:\n  " + "\n  ".join(s["errors"] + severe))
        log(f"no JavaScript errors ({len(console)} console entries)")

        # 5. Screenshot.
        png = screenshot(d, args.screenshot)
        w, h = png_size(args.screenshot)
        if w < 1000 or h < 700 or len(png) < 30_000:
            raise Fail(f"the screenshot looks empty: {w}x{h}, {len(png)} bytes")
        log(f"screenshot {args.screenshot}: {w}x{h}, {len(png) // 1024} KiB")
    except Exception:
        if console:
            log("browser console:\n  " + "\n  ".join(console[-30:]))
        try:
            failed = os.path.splitext(args.screenshot)[0] + "-failed.png"
            screenshot(d, failed)
            log(f"screenshot of the failure: {failed}")
        except Exception:
            pass
        raise
    finally:
        d.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="the dashboard, e.g. http://127.0.0.1:8080/")
    p.add_argument("--screenshot", required=True, help="where to save the PNG")
    p.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    p.add_argument("--chromedriver", default=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    p.add_argument("--timeout", type=float, default=45, help="seconds to wait for each step")
    args = p.parse_args()
    try:
        run(args)
    except Fail as e:
        log(f"FAIL: {e}")
        return 1
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
