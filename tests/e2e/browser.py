"""Debian's chromium, headless, driven by Selenium through /usr/bin/chromedriver (never a downloaded driver), and a
page object for the web console with bounded waits."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.server import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1200,900")


def start_chromium(profile: Path) -> webdriver.Chrome:
    """A headless chromium with a fresh profile; the test fails (never skips) with the apt line when it is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (or make system-deps as "
                    "root)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class ConsolePage:
    """The console in the browser: actions a person takes, and what the page shows (read from the DOM)."""

    def __init__(self, driver: webdriver.Chrome):
        self.driver = driver

    def open(self, url: str) -> ConsolePage:
        """Load the page (its module scripts have run when this returns)."""
        self.driver.get(url)
        self.wait(lambda: self.driver.execute_script("return document.readyState") == "complete")
        return self

    def wait(self, condition: Callable[[], Any], timeout: float = 30, message: str = "") -> Any:
        """Poll `condition` until it is truthy; fail with `message` and the page's status after `timeout` s."""
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(lambda _driver: condition())
        except Exception as failure:
            raise AssertionError(f"{message or 'condition'} not met within {timeout} s; state: {self.state()}; "
                                 f"timeline: {self.text('#timeline')[-2000:]!r}") from failure

    def find(self, css: str) -> WebElement:
        """The first element matching `css` (NoSuchElementException when none does)."""
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        """Every element matching `css`."""
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def texts(self, css: str) -> list[str]:
        """The textContent of every match (collapsed parts included)."""
        return [found.get_attribute("textContent") or "" for found in self.all(css)]

    def text(self, css: str) -> str:
        """The textContent of the first match, or "" when nothing matches."""
        return next(iter(self.texts(css)), "")

    def run_task(self, task: str) -> None:
        """Type the task and run it from the keyboard (Ctrl+Enter)."""
        box = self.find("#task-input")
        box.send_keys(task)
        box.send_keys(Keys.CONTROL, Keys.ENTER)

    def state(self) -> tuple[str, str]:
        """The stream state the page shows: (its data-state, its text)."""
        found = self.all("#stream-state")
        return (found[0].get_attribute("data-state") or "", found[0].text) if found else ("", "")

    def events(self) -> list[tuple[str, str]]:
        """(id, type) of every event element in the timeline, in page order."""
        return [tuple(pair) for pair in self.driver.execute_script(
            "return [...document.querySelectorAll('#timeline [data-event-id]')]"
            ".map(node => [node.dataset.eventId, node.dataset.eventType])")]

    def wait_for_event(self, event_type: str, timeout: float = 30) -> None:
        """Wait until an event of `event_type` is in the timeline."""
        self.wait(lambda: self.all(f'#timeline [data-event-type="{event_type}"]'), timeout, f"a {event_type} event")

    def script_errors(self) -> list[str]:
        """What the page's scripts threw (uncaught), from the browser's console log."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry.get("source") == "javascript"]

    def screenshot(self, name: str) -> Path:
        """Save the whole page (beyond the window too) as test-artifacts/<name>.png."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        height = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"]
        width = self.driver.execute_script("return window.innerWidth")  # the page as laid out without a scrollbar
        clip = {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1}
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
