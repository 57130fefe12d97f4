"""The Dagster UI in a real browser: ``dagster-webserver`` on an instance, and Debian's Chromium
driven by Selenium, offline.

The driver is always ``/usr/bin/chromedriver`` (``make system-deps``), passed explicitly, so
Selenium Manager never looks for one to download; the browser is started with everything that
would reach the network turned off. Pages are read as text (``page_text``) and waited on by text
(``wait_for_text``): the UI is a React app, and its CSS classes change between releases.
"""

from __future__ import annotations

import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import azaion_assets
from azaion_assets.dev.localbroker import free_port
from azaion_assets.dev.localdaemon import BIN, start_in_session, stop_group

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WINDOW = (1600, 1000)  # the screenshots' size
# AZAION_SCREENSHOTS=<folder> (relative to the project): the UI test saves its pages there as
# PNG. Read at import, since the tests' clean_env clears every AZAION_* variable before each test.
SCREENSHOTS = os.environ.get("AZAION_SCREENSHOTS", "")
PROJECT = Path(azaion_assets.__file__).resolve().parents[1]
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--metrics-recording-only",
    "--no-default-browser-check",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


class Webserver:
    """A started ``dagster-webserver``: its URL, and its log for a failure's message."""

    def __init__(self, url: str, log: Path):
        self.url, self.log = url, log

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def write_workspace(folder: Path) -> Path:
    """A workspace.yaml loading this checkout's code location, as the project's own does."""
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: azaion_assets.definitions\n"
        "      location_name: azaion_assets\n"
        f"      working_directory: {PROJECT}\n"
    )
    return workspace


@contextmanager
def webserver(
    dagster_home: Path, env: Mapping[str, str], folder: Path, timeout: float = 120
) -> Iterator[Webserver]:
    """``dagster-webserver`` on 127.0.0.1 for the instance in ``dagster_home``, with ``env`` (the
    settings the code location loads with), in a process group of its own, stopped with it."""
    port = free_port()
    workspace = write_workspace(folder)
    log = folder / "webserver.log"
    argv = [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-w", str(workspace)]
    env = {**env, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(PROJECT)}
    with open(log, "w") as out:
        proc = start_in_session(argv, folder, env, out)
        server = Webserver(f"http://127.0.0.1:{port}", log)
        try:
            _wait_until_serving(server, proc, timeout)
            yield server
        finally:
            stop_group(proc, timeout=20)


def _wait_until_serving(server: Webserver, proc, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited ({proc.returncode}):\n{server.tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}/server_info", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"dagster-webserver did not answer in {timeout:.0f}s:\n{server.tail()}")


@contextmanager
def chromium() -> Iterator[webdriver.Chrome]:
    """Headless Chromium at ``WINDOW``, with a profile of its own in tmp, quit at the end."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            # The viewport itself, not the window around it, so screenshots are WINDOW exactly.
            width, height = WINDOW
            metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            yield driver
        finally:
            driver.quit()


def page_text(driver: webdriver.Chrome) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def wait_for_text(driver: webdriver.Chrome, *texts: str, timeout: float = 30) -> str:
    """The page's text once it holds every one of ``texts``; a timeout names what is missing
    and shows the page as it was."""
    found = {"text": ""}

    def ready(d: webdriver.Chrome) -> bool:
        found["text"] = text = page_text(d)
        return all(t in text for t in texts)

    try:
        WebDriverWait(driver, timeout, poll_frequency=0.25).until(ready)
    except TimeoutException:
        text = found["text"]
        missing = [t for t in texts if t not in text]
        raise AssertionError(
            f"{driver.current_url}: after {timeout:.0f}s the page lacks {missing}; it shows:\n"
            f"{text[:3000]}"
        ) from None
    return found["text"]


def open_page(driver: webdriver.Chrome, url: str, *texts: str, timeout: float = 30) -> str:
    driver.get(url)
    return wait_for_text(driver, *texts, timeout=timeout)


def screenshot(driver: webdriver.Chrome, name: str, settle: float = 3.0) -> Path | None:
    """Save the page as ``<AZAION_SCREENSHOTS>/<name>.png`` when that variable was set; else
    nothing. It waits ``settle`` seconds first: the text a test waits for comes before the
    live parts a picture should show (graph nodes' status, sensors' toggles)."""
    if not SCREENSHOTS:
        return None
    time.sleep(settle)
    path = (PROJECT / SCREENSHOTS / f"{name}.png").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
    return path


def markdown_images(
    driver: webdriver.Chrome, key: str, timeout: float = 30
) -> list[tuple[str, int]]:
    """Open the Markdown metadata entry ``key`` of the page's materialisation (its
    ``[Show Markdown]`` link) and return each image in it as (alt text, natural width) once all
    have loaded; the dialog stays open for a screenshot."""
    row = f"//tr[td[normalize-space()='{key}']]"
    link = WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.XPATH, f"{row}//*[contains(text(), 'Show Markdown')]")
    )
    link.click()
    script = (
        "const d = [...document.querySelectorAll('[role=dialog]')].pop();"
        "if (!d) return null; const imgs = [...d.querySelectorAll('img')];"
        "return imgs.every(i => i.complete) ? imgs.map(i => [i.alt, i.naturalWidth]) : null;"
    )
    try:
        found = WebDriverWait(driver, timeout, poll_frequency=0.25).until(
            lambda d: d.execute_script(script)
        )
    except TimeoutException:
        raise AssertionError(f"{driver.current_url}: {key}'s pictures did not load") from None
    return [(alt, int(width)) for alt, width in found]


def close_dialog(driver: webdriver.Chrome) -> None:
    driver.find_element(By.XPATH, "//button[normalize-space()='Close']").click()
