"""Debian's headless chromium, driven by Selenium through Debian's chromium-driver, for
the status page's tests and benchmark. Only loopback: every background service Chromium
would reach out to is off (this machine's network is closed, and a test must not leave it)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--window-size=1400,1000",
)  # fmt: skip

# Records, in the page, when each replica first appeared and each state it showed, and
# marks the window: a reload would lose the mark.
WATCH = """
window.__mark = 'kept';
window.__seen = {};
const note = () => {
  for (const e of document.querySelectorAll('#live .replica')) {
    const key = e.dataset.service + '|' + e.dataset.name + '|' + e.dataset.state;
    if (!(key in window.__seen)) window.__seen[key] = {t: Date.now(), reason: e.title};
  }
};
note();
new MutationObserver(note).observe(document.getElementById('live'),
                                   {childList: true, subtree: true});
"""


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            return (
                f"{path} is missing (scripts/test installs Debian's chromium and chromium-driver)"
            )
    return None


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    profile = tempfile.mkdtemp(prefix="ebbflow-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()  # stops chromedriver and its browser
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, name: str) -> None:
    """With EBBFLOW_SCREENSHOTS=<folder>: the whole page as <folder>/<name>.png."""
    folder = os.environ.get("EBBFLOW_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return document.body.scrollHeight")
        driver.set_window_size(1400, min(max(600, int(height) + 40), 2400))
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


# Which node's column each replica is drawn in: replica name → the column's node.
COLUMNS = """
const heads = [...document.querySelectorAll('table.topology thead th.node')]
  .map(th => th.dataset.node);
const out = {};
for (const tr of document.querySelectorAll('table.topology tbody tr')) {
  [...tr.querySelectorAll('td.cell')].forEach((td, i) => {
    for (const r of td.querySelectorAll('.replica')) out[r.dataset.name] = heads[i];
  });
}
return out;
"""


def text_of(driver: Any, css: str) -> str:
    """The text of the first element `css` selects, read in one step: the live part is
    replaced whole at each update, so an element found first and read after may be gone."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css
    )
    return str(found)


def texts_of(driver: Any, css: str) -> list[str]:
    found = driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText);", css
    )
    return [str(t) for t in found]


def classes_of(driver: Any, css: str) -> str:
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.className : '';", css
    )
    return str(found)
