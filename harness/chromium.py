"""Debian's headless Chromium driven over the DevTools protocol, to look at pages the way a person's browser does.

One browser per `Chromium()` context: a fresh profile directory, no network chatter (no component updates, sync
or background requests), the DevTools endpoint on a loopback port chosen by Chromium (read from the profile's
DevToolsActivePort file), and one page target spoken to through websocket-client. Console errors, uncaught
exceptions, Log entries (where Content-Security-Policy refusals land) and `securitypolicyviolation` events are
collected so a test can assert that a page ran clean.
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
    "--disable-dev-shm-usage",  # containers often give /dev/shm 64 MB: large pages would crash the renderer
]

# Runs before any page script, outside the page's CSP: records every violation the page causes.
_WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def find():
    """The chromium binary, or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def skip_reason():
    """Why a browser check cannot run here (None when it can)."""
    if find() is None:
        return "chromium is not installed (`make test` as root installs Debian's chromium: mk/report.mk)"
    try:
        import websocket  # noqa: F401
    except ImportError:
        return "websocket-client is missing: run `make venv` (pyproject's test extra)"
    return None


class ChromiumError(RuntimeError):
    pass


class Chromium:
    def __init__(self, width=1400, height=1000, timeout=60):
        self.width, self.height, self.timeout = width, height, timeout
        self.events = []
        self._id = 0
        self.proc = self.ws = self.profile = None

    def __enter__(self):
        import websocket

        binary = find()
        if binary is None:
            raise ChromiumError(skip_reason())
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self._log = open(os.path.join(self.profile, "stderr.log"), "wb")
        argv = (
            [binary]
            + FLAGS
            + [
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ]
        )
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        try:
            port = self._wait_port()
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
                targets = json.load(resp)
            page = next(t for t in targets if t.get("type") == "page")
            self.ws = websocket.create_connection(
                page["webSocketDebuggerUrl"],
                timeout=self.timeout,
                suppress_origin=True,
                http_no_proxy=["127.0.0.1"],
                enable_multithread=False,
            )
            for domain in ("Page", "Runtime", "Log"):
                self.send(f"{domain}.enable")
            self.send("Page.addScriptToEvaluateOnNewDocument", source=_WATCH_CSP)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_port(self):
        marker = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChromiumError(f"chromium exited with {self.proc.returncode}: {self._stderr_tail()}")
            try:
                with open(marker) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise ChromiumError(f"chromium did not open its DevTools port in {self.timeout}s: {self._stderr_tail()}")

    def _stderr_tail(self):
        try:
            with open(os.path.join(self.profile, "stderr.log"), "rb") as f:
                return f.read()[-1500:].decode("utf-8", "replace")
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self.ws is not None:
            try:
                self.ws.close()
            except Exception:
                pass
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    # --- the protocol -------------------------------------------------------------------------------------

    def send(self, method, **params):
        """One DevTools command; events arriving meanwhile are kept in self.events."""
        self._id += 1
        mine = self._id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mine:
                if "error" in msg:
                    raise ChromiumError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_event(self, method, timeout=None):
        """The first event named `method` not seen yet (it is removed from the queue)."""
        import websocket

        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while True:
                for i, ev in enumerate(self.events):
                    if ev["method"] == method:
                        return self.events.pop(i)
                if time.monotonic() > deadline:
                    raise ChromiumError(f"no {method} within {timeout or self.timeout}s")
                self.ws.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    msg = json.loads(self.ws.recv())
                except websocket.WebSocketTimeoutException:
                    continue  # the deadline check above reports it
                if "method" in msg:
                    self.events.append(msg)
        finally:
            self.ws.settimeout(self.timeout)  # commands after this wait as long as they may

    def navigate(self, url, scripts=True):
        """Load `url` and wait for its load event; scripts=False loads it with JavaScript disabled."""
        self.send("Emulation.setScriptExecutionDisabled", value=not scripts)
        self.events = []  # problems() reports the page being loaded now, not the previous one
        start = time.perf_counter()
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise ChromiumError(f"navigate {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired")
        return time.perf_counter() - start

    def evaluate(self, expression, await_promise=False):
        """The JSON value of a JavaScript expression in the page (DevTools may run it even with scripts off)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise ChromiumError(f"evaluate failed: {text}")
        return result["result"].get("value")

    def click(self, selector):
        """A real mouse click (pressed and released) in the middle of the element."""
        box = self.evaluate(
            f"(function(){{var e=document.querySelector({json.dumps(selector)});if(!e)return null;"
            "e.scrollIntoView({block:'center'});var r=e.getBoundingClientRect();"
            "return [r.left+r.width/2, r.top+r.height/2];})()"
        )
        if box is None:
            raise ChromiumError(f"click: nothing matches {selector}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def type_text(self, selector, text):
        """Focus the element and type `text` as keyboard input."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, path, full_page=False):
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
        data = base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    def problems(self):
        """Console errors, uncaught exceptions, error Log entries (CSP refusals) and recorded violations."""
        self.send("Runtime.evaluate", expression="0")  # flush events that are in flight
        out = []
        for ev in self.events:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p.get("exceptionDetails", {}).get("text")))
            elif ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + json.dumps([a.get("value") for a in p.get("args", [])]))
            elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(f"log ({p['entry'].get('source')}): {p['entry'].get('text')}")
        out += ["csp: " + v for v in (self.evaluate("window.__cspViolations || []") or [])]
        return out
