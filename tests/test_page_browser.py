"""The supervisor page in a real headless Chromium (Debian's, driven by Playwright).

Two set-ups: the real ``qc-station demo`` in a subprocess (counters rising live over
SSE, a reject's detail, the English switch), and the API over the fake station in
this process, for what the demo cannot be made to do on demand (a faulted station,
labelling through the page). Screenshots go to ``test-output/`` for people to look
at; ``UPDATE_SCREENSHOTS=1`` also refreshes the README's ``docs/images`` picture.

Playwright's own browser download is not used (and not available here): Debian's
``chromium`` package is launched instead. In CI a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.ctrl_c import sigint_as_from_a_terminal
from helpers.fake_station import FakeStation

from station.store import QCStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "test-output"
DOCS_IMAGE = REPO / "docs" / "images" / "supervisor-page.png"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Any]:
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if in_ci:
            pytest.fail("playwright is not installed (pip install playwright)")
        pytest.skip("playwright is not installed")
    if not Path(CHROMIUM).exists():
        if in_ci:
            pytest.fail(f"{CHROMIUM} missing: apt-get install chromium")
        pytest.skip(f"{CHROMIUM} missing")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield b
        b.close()


class PageWatch:
    """A page plus what it logged and fetched (console errors fail the tests)."""

    def __init__(self, browser: Any, viewport: dict[str, int], **kwargs: Any) -> None:
        self.context = browser.new_context(viewport=viewport, **kwargs)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, url: str) -> Any:
        self.page.goto(url)
        self.page.wait_for_selector("html[data-ready]", timeout=20_000)
        return self.page

    def number(self, selector: str) -> int:
        text = self.page.text_content(selector) or ""
        digits = re.sub(r"\D", "", text)
        return int(digits) if digits else -1

    def close(self) -> None:
        self.context.close()


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    OUT.mkdir(exist_ok=True)
    path = OUT / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


# -- the real demo ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("demo")
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "station.cli", "demo", "--port", str(port)),
            *("--data-dir", str(data), "--seed", "11"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=sigint_as_from_a_terminal,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    )
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert proc.poll() is None, "demo exited:\n" + "".join(lines)
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                    if json.loads(r.read())["ok"]:
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("demo did not answer /healthz:\n" + "".join(lines))
        yield base, data
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_demo_page_counts_live_opens_a_reject_and_speaks_english(
    browser: Any, demo: tuple[str, Path]
) -> None:
    base, data = demo
    watch = PageWatch(browser, DESKTOP)
    page = watch.open(base + "/")
    assert page.get_attribute("html", "lang") == "fr"
    assert page.text_content("#counts-title") == "Compteurs"

    # Counters rise with no reload and no polling of the counts: the SSE stream does it.
    page.wait_for_function("() => document.querySelector('#n-total').textContent.match(/\\d/)")
    first = watch.number("#n-total")
    counts_fetches = sum("/api/v1/counts" in u for u in watch.requests)
    total_js = "parseInt(document.querySelector('#n-total').textContent.replace(/\\D/g, ''))"
    page.wait_for_function(f"() => {total_js} > {first}", timeout=60_000)
    assert watch.number("#n-total") > first
    assert sum("/api/v1/counts" in u for u in watch.requests) == counts_fetches
    assert any("/api/v1/events" in u for u in watch.requests)

    # A reject appears in the gallery; its detail shows measurements against limits.
    page.wait_for_selector(".thumb img", timeout=90_000)
    page.wait_for_function("() => document.querySelector('.thumb img').complete")
    shot(page, "page-fr-desktop.png")
    page.click(".thumb")
    page.wait_for_selector("#detail[open]")
    page.wait_for_function("() => document.querySelectorAll('#detail-measures tr').length === 5")
    assert page.text_content("#detail-verdict") in ("Rejeté", "Erreur")
    assert page.locator("#detail-defects li").count() >= 1
    page.wait_for_function("() => document.querySelector('#detail-image').complete")
    shot(page, "page-fr-detail.png", full_page=False)
    page.keyboard.press("Escape")

    # The supervisor enters the token printed at the first start, then confirms the reject.
    token = (data / "supervisor.token").read_text().strip()
    page.click("#token-open")
    page.fill("#token-input", token)
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#token-dialog[open]", state="hidden")
    reject_id = page.get_attribute(".thumb", "data-id")
    # By its id: the gallery is live, and a newer reject may take the first place.
    page.click(f'.thumb[data-id="{reject_id}"]')
    page.wait_for_selector("#detail[open]")
    if page.is_visible("#label-confirm"):
        page.click("#label-confirm")
    else:  # an error reject: its label is a correction
        page.select_option("#label-select", "good")
        page.click("#label-correct")
    page.wait_for_function("() => document.querySelector('#label-message').dataset.level === 'ok'")
    index = (data / "training" / "real" / "labels.jsonl").read_text().splitlines()
    assert json.loads(index[-1])["id"] == reject_id
    page.keyboard.press("Escape")

    page.click("#lang-switch")
    page.wait_for_function("() => document.documentElement.lang === 'en'")
    assert page.text_content("#counts-title") == "Counters"
    assert page.text_content(".card-accepted h3") == "Accepted"
    assert page.text_content("#lang-switch") == "Français"
    shot(page, "page-en-desktop.png")
    page.click("#lang-switch")  # back to French: the choice is remembered in the browser
    page.wait_for_function("() => document.documentElement.lang === 'fr'")
    assert not watch.errors, watch.errors
    watch.close()


@pytest.mark.skipif(
    os.environ.get("UPDATE_SCREENSHOTS") != "1", reason="set UPDATE_SCREENSHOTS=1 to refresh"
)
def test_readme_screenshot(browser: Any, demo: tuple[str, Path]) -> None:
    """The README's picture: a big screen after a few minutes of the demo, in French."""
    base, _ = demo
    watch = PageWatch(browser, {"width": 1600, "height": 1000})
    page = watch.open(base + "/")
    total_js = "parseInt(document.querySelector('#n-total').textContent.replace(/\\D/g, ''))"
    page.wait_for_function(f"() => {total_js} >= 60", timeout=240_000)
    page.wait_for_timeout(12_000)  # the control chart refreshes at most every 10 s
    DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(DOCS_IMAGE))
    assert DOCS_IMAGE.stat().st_size < 300_000
    watch.close()


def test_demo_page_on_a_phone(browser: Any, demo: tuple[str, Path]) -> None:
    base, _ = demo
    watch = PageWatch(browser, PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = watch.open(base + "/")
    page.wait_for_function("() => document.querySelector('#n-total').textContent.match(/\\d/)")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width} px)"
    shot(page, "page-fr-phone.png", full_page=False)
    assert not watch.errors, watch.errors
    watch.close()


# -- the fake station -------------------------------------------------------------------------
@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[tuple[str, FakeStation]]:
    import uvicorn

    from station.api import create_app

    store = QCStore(tmp_path / "qc.sqlite3")
    station = FakeStation(store, tmp_path)
    port = free_port()
    app = create_app(store, station, token="browser-test-token-0123456789")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", station
    finally:
        station.close()
        server.should_exit = True
        thread.join(timeout=10)
        store.close()


def test_fault_banner_and_labelling_through_the_page(
    browser: Any, fake_server: tuple[str, FakeStation], tmp_path: Path
) -> None:
    base, station = fake_server
    station.state = {**station.state, "state": "error", "camera": {"state": "closed", "fps": 0}}
    rec = station.inspect("reject", ("seam_gap",))
    watch = PageWatch(browser, DESKTOP)
    page = watch.open(base + "/")
    page.wait_for_selector("#banner.banner-fault:not([hidden])")
    assert "caméra" in (page.text_content("#banner-text") or "")
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#banner')).backgroundColor")
        == "rgb(179, 38, 30)"
    )

    # A new reject arrives live and lands first in the gallery.
    live = station.inspect("reject", ("hole",))
    page.wait_for_selector(f".thumb[data-id='{live.id}']")
    page.click(f".thumb[data-id='{rec.id}']")
    page.wait_for_selector("#detail[open]")
    assert "Couture" in (page.text_content("#label-confirm") or "")
    page.click("#label-confirm")
    page.wait_for_function("() => document.querySelector('#label-message').dataset.level === 'bad'")
    assert "jeton" in (page.text_content("#label-message") or "").lower()
    page.keyboard.press("Escape")

    page.click("#token-open")
    page.fill("#token-input", "not-the-token-at-all")
    page.click("#token-form button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#token-message').textContent.includes('refusé')"
    )
    page.fill("#token-input", "browser-test-token-0123456789")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#token-dialog[open]", state="hidden")

    page.click(f".thumb[data-id='{rec.id}']")
    page.wait_for_selector("#detail[open]")
    page.select_option("#label-select", "good")
    page.click("#label-correct")
    page.wait_for_function("() => document.querySelector('#label-message').dataset.level === 'ok'")
    assert (tmp_path / "training" / "real" / "good" / f"{rec.id}.jpg").is_file()
    page.wait_for_selector(f".thumb[data-id='{rec.id}'] .badge")
    shot(page, "page-fr-faulted-labelled.png", full_page=False)
    assert not [e for e in watch.errors if "401" not in e], watch.errors
    watch.close()


def test_static_assets_are_vendored() -> None:
    vendor = REPO / "station" / "web" / "vendor" / "uplot"
    assert "MIT License" in (vendor / "LICENSE").read_text()
    assert (vendor / "uPlot.iife.min.js").stat().st_size < 100_000
