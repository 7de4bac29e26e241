"""A real browser for the web view's tests: Debian's chromium, headless, driven by Selenium.

Everything the page asked the network and every websocket frame is kept (Chromium's performance
log, i.e. the DevTools protocol's Network events), so that a test can look for a value in what
went over the wire, and in the answers' bodies (``Network.getResponseBody``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# What Chromium needs to run on a test machine (no GPU, no sandbox for root, no network of its own).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "web"
T = TypeVar("T")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: install Debian's {package} package (make test does it as root)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is missing: pip install -e '.[dev]'"
    return None


class Browser:
    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="cpn-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        # The driver's path is given: Selenium Manager never looks for (or downloads) one.
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # -- the page --------------------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.driver.get("about:blank")
        self.driver.get(url)
        self.wait(lambda: self.js("return document.body.dataset.ready === 'true'"), what="the page to load")

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, predicate: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
        """Until ``predicate()`` is truthy (its value is returned); fails the test after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                shot = self.screenshot("timed-out")  # what the page showed, to look at
                raise AssertionError(f"timed out waiting for {what} (the page: {shot})")
            time.sleep(0.02)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def console_errors(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    # -- what went over the network --------------------------------------------------------------

    def network(self) -> list[dict[str, Any]]:
        """Every Network.* event so far (the log is drained by each read, so it is kept here)."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"].startswith("Network."):
                self.events.append(message)
        return self.events

    def response_bodies(self) -> list[str]:
        """The bodies of the answers the page received (those Chromium still holds)."""
        from selenium.common.exceptions import WebDriverException

        bodies = []
        for event in self.network():
            if event["method"] != "Network.loadingFinished":
                continue
            request = {"requestId": event["params"]["requestId"]}
            try:
                got = self.driver.execute_cdp_cmd("Network.getResponseBody", request)
            except WebDriverException:
                got = {}  # a body Chromium no longer holds (a redirect, an evicted one)
            bodies.append(str(got.get("body", "")))
        return bodies
