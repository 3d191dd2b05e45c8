"""Headless Chromium over the DevTools protocol: load a page, collect console errors,
count drawn plotly figures, take a screenshot. A test helper, not part of the package."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import websocket  # websocket-client

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--remote-debugging-port=0", "--window-size=1280,1600"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_chromium() -> str:
    """The chromium executable; skip the calling test when there is none, fail under CI=true
    (where ``make test`` must have installed it: the browser test runs or fails, never skips)."""
    found = chromium()
    if found is None:
        reason = "Debian's chromium is not installed (make test installs it as root)"
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason}; CI=true: the browser test must run", pytrace=False)
        pytest.skip(reason)
    return found


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="paradox-chromium-")
        self.process = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.time() > deadline:
                raise RuntimeError("Chromium did not open its DevTools port within 30 s.")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        target = json.loads(urllib.request.urlopen(request, timeout=10).read())
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.next_id = 0
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")

    def call(self, method: str, events: list | None = None, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                return message.get("result", {})
            if events is not None and "method" in message:
                events.append(message)

    def visit(self, url: str, settle: float = 2.0) -> dict:
        """Load ``url``; return console errors, the number of plotly SVGs and a PNG."""
        events: list[dict] = []
        self.call("Page.navigate", events, url=url)
        deadline = time.time() + 30
        while not any(e["method"] == "Page.loadEventFired" for e in events) and time.time() < deadline:
            events.append(json.loads(self.ws.recv()))
        end = time.time() + settle
        self.ws.settimeout(0.2)
        while time.time() < end:
            try:
                events.append(json.loads(self.ws.recv()))
            except websocket.WebSocketTimeoutException:
                pass
        self.ws.settimeout(30)
        count = self.call("Runtime.evaluate", events, expression="document.querySelectorAll('.main-svg').length")
        png = base64.b64decode(self.call("Page.captureScreenshot", events, format="png")["data"])
        return {"errors": _errors(events), "svgs": count["result"]["value"], "png": png}

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            self.process.wait(timeout=10)
            shutil.rmtree(self.profile, ignore_errors=True)


def _errors(events: list[dict]) -> list[str]:
    out = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            out.append("exception: " + details.get("exception", {}).get("description", details.get("text", "")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return out
