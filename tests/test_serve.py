"""`chute serve` (tui/serve.py): the console in a real browser, attached to a headless daemon.

Headless Chromium driven by selenium opens the page, sees the Files pane with a loaded file,
presses `?` and sees the help. xterm.js draws on a canvas, so the test reads what the browser
received over the console's WebSocket (a hook installed before the page loads) and saves a
screenshot of what it drew to screenshots/.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chute.core.ledger import Ledger
from tests.conftest import ROOT, chute_cmd, wait_for
from tests.procs import stop

TOKEN = "serve-test-token-5b1f0c2e9a"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

# Records every terminal frame the page receives (ArrayBuffer or Blob) as text in window.__chute.
HOOK = """
window.__chute = [];
const Native = window.WebSocket;
window.WebSocket = function(url, protocols) {
  const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
  ws.addEventListener('message', (e) => {
    if (typeof e.data === 'string') return;
    if (e.data instanceof ArrayBuffer) { window.__chute.push(new TextDecoder().decode(e.data)); return; }
    const r = new FileReader(); r.onload = () => window.__chute.push(r.result); r.readAsText(e.data);
  });
  return ws;
};
window.WebSocket.prototype = Native.prototype;
Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
"""
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=]*[A-Za-z~]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]|\x1b[=>78]")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Site:
    def __init__(self, root: Path, port: int, env: dict[str, str]) -> None:
        self.root, self.port, self.env = root, port, env
        self.url = f"http://127.0.0.1:{port}"

    def get(self, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request("GET", path, headers=headers or {})
        return conn.getresponse()

    def paused(self) -> str | None:
        ledger = Ledger(self.root / "state", readonly=True)
        try:
            return ledger.meta("paused")
        finally:
            ledger.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A headless daemon with one loaded file, and `chute serve` (with a token) attached to it."""
    root = tmp_path_factory.mktemp("serve")
    (root / "data").mkdir()
    (root / "data" / "events.csv").write_bytes(b"id,name\n1,a\n2,b\n3,c\n")
    (root / "token").write_text(TOKEN + "\n")
    env = dict(os.environ, CHUTE_CLICKHOUSE_URL=f"chdb://{root / 'engine'}", CHUTE_STATE_DIR=str(root / "state"))
    env.pop("CHUTE_SERVE_TOKEN", None)
    daemon = subprocess.Popen(chute_cmd("--no-ui", str(root / "data")), cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=(root / "daemon.log").open("w"))
    serve = None
    try:
        def loaded() -> bool:
            if not (root / "state" / Ledger.FILENAME).exists():
                return False
            ledger = Ledger(root / "state", readonly=True)
            try:
                row = ledger.current("events.csv")
                return row is not None and row.state == "loaded"
            except sqlite3.OperationalError:  # the daemon is still creating the ledger
                return False
            finally:
                ledger.close()

        wait_for(loaded, timeout=120, interval=0.2, what="the daemon to load events.csv")
        port = _free_port()
        serve = subprocess.Popen(chute_cmd("serve", "--port", str(port), "--token-file", str(root / "token")),
                                 cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=(root / "serve.log").open("w"))
        s = Site(root, port, env)

        def answers() -> bool:
            assert serve.poll() is None, (root / "serve.log").read_text()
            try:
                return s.get("/").status == 200
            except OSError:
                return False

        wait_for(answers, timeout=60, interval=0.2, what="chute serve to answer")
        yield s
    finally:
        if serve is not None:
            stop(serve)
        stop(daemon)


def test_the_token_is_checked_and_moves_into_a_strict_cookie(site: Site) -> None:
    assert site.get("/?token=wrong-token-0000000000").status == 403
    ok = site.get(f"/?token={TOKEN}")
    assert ok.status == 302 and ok.getheader("Location") == "/"
    cookie = ok.getheader("Set-Cookie")
    assert f"chute_token={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    ws = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Origin": "http://evil.example"}
    assert site.get("/ws", ws).status == 403  # another site's page cannot drive the console
    assert site.get("/", {"Host": f"rebound.example:{site.port}"}).status == 421  # DNS rebinding
    page = site.get("/").read().decode()
    assert f"ws://127.0.0.1:{site.port}/ws" in page


def test_serve_refuses_a_short_token(tmp_path: Path) -> None:
    proc = subprocess.run(chute_cmd("serve", "--state-dir", str(tmp_path)), cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, CHUTE_SERVE_TOKEN="short"))
    assert proc.returncode == 2 and "too short" in proc.stderr and "Traceback" not in proc.stderr


def test_serve_runs_the_engine_itself_when_no_daemon_does(tmp_path: Path) -> None:
    from chute.core.engine import StateLock

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "alone.csv").write_bytes(b"id\n1\n")
    env = dict(os.environ, CHUTE_CLICKHOUSE_URL=f"chdb://{tmp_path / 'engine'}",
               CHUTE_STATE_DIR=str(tmp_path / "state"))
    env.pop("CHUTE_SERVE_TOKEN", None)
    site = Site(tmp_path, _free_port(), env)
    proc = subprocess.Popen(chute_cmd("serve", str(tmp_path / "data"), "--port", str(site.port)), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("w"))
    try:
        wait_for(lambda: (StateLock.holder(tmp_path / "state") or "").endswith("serve"), timeout=120, interval=0.2,
                 what="serve to hold the state dir")

        def loaded() -> bool:
            ledger = Ledger(tmp_path / "state", readonly=True)
            try:
                row = ledger.current("alone.csv")
                return row is not None and row.state == "loaded"
            except sqlite3.OperationalError:
                return False
            finally:
                ledger.close()

        wait_for(loaded, timeout=120, interval=0.2, what="the served engine to load alone.csv")
        assert site.get("/").status == 200
    finally:
        stop(proc)
    assert proc.returncode == 0, (tmp_path / "serve.log").read_text()
    assert StateLock.holder(tmp_path / "state") is None


@pytest.fixture
def browser() -> Iterator[object]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium is not installed (Debian packages chromium and chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOK})
    try:
        yield driver
    finally:
        driver.quit()


def _screen_text(driver) -> str:
    return ESCAPES.sub("", "".join(driver.execute_script("return window.__chute || []")))


def _shots(tmp_path: Path) -> Path:
    """screenshots/ when asked (CHUTE_UPDATE_SCREENSHOTS=1, as `make screenshots` does), else a tmp dir:
    a test run leaves the tree as it found it."""
    return ROOT / "screenshots" if os.environ.get("CHUTE_UPDATE_SCREENSHOTS") == "1" else tmp_path


def _press(driver, keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, ".textual-terminal").click()
    ActionChains(driver).send_keys(keys).perform()


def _wait_text(driver, words: str, timeout: float = 60) -> str:
    return wait_for(lambda: words in _screen_text(driver) and _screen_text(driver), timeout=timeout, interval=0.25,
                    what=f"{words!r} in the browser")


def test_browser_sees_the_files_pane_and_the_help(site: Site, browser, tmp_path: Path) -> None:
    browser.get(site.url + "/")
    text = _wait_text(browser, "events.csv")
    assert "loaded" in text and "Files" in text and "read-only" not in text
    assert "this help" not in text  # the help is not open yet (negative control for the next check)
    _press(browser, "?")
    _wait_text(browser, "this help")
    _wait_text(browser, "Files, Errors, Quarantine")
    assert browser.save_screenshot(str(_shots(tmp_path) / "serve-help.png"))

    # Without the token the console is read-only: pausing intake is refused, with the reason.
    drawn = len(_screen_text(browser))
    _press(browser, "\ue00c")  # escape closes the help
    # The main screen drawn again (the text is everything drawn so far): a "p" sent sooner went to the help.
    wait_for(lambda: "events.csv" in _screen_text(browser)[drawn:], timeout=60, interval=0.25,
             what="the help closed")
    _press(browser, "p")
    _wait_text(browser, "read-only")
    assert site.paused() == "0"


def test_with_the_token_the_browser_may_act(site: Site, browser, tmp_path: Path) -> None:
    browser.get(f"{site.url}/?token={TOKEN}")  # sets the cookie and goes to /
    _wait_text(browser, "events.csv")
    assert browser.current_url.rstrip("/") == site.url  # the token left the address bar
    _press(browser, "p")
    wait_for(lambda: site.paused() == "1", timeout=60, what="the daemon to pause intake")
    _wait_text(browser, "intake paused")
    assert browser.save_screenshot(str(_shots(tmp_path) / "serve-paused.png"))
    _press(browser, "p")
    wait_for(lambda: site.paused() == "0", timeout=60, what="the daemon to resume intake")


def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    env = dict(os.environ, CHUTE_CLICKHOUSE_URL=f"chdb://{tmp_path / 'engine'}", CHUTE_STATE_DIR=str(tmp_path / "s"))
    env.pop("CHUTE_SERVE_TOKEN", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(chute_cmd("serve", str(tmp_path / "data"), "--port", str(port)), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"cannot serve on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
