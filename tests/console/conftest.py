"""The console under a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium):
one browser per test session (per xdist worker), a console per test on a free port."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from syncengine.config import Config, load_config
from syncengine.console import create_app
from syncengine.serving import WsgiServer

PASSWORD = "console-test-password"
VT_KEY, ALFA_KEY = "vt-console-key", "alfa-console-key"

MAPPING = """
left = "vt:Contacts"
right = "alfa:customer"
match_on = ["email"]
conflict = "newest"
on_delete = "propagate"

[fields]
name  = { left = "lastname", right = "name" }
email = { left = "email", right = "email[0]", normalize = "email" }
note  = { left = "description", right = "note", conflict = "manual" }
is_study   = { right = "is_study", const = 1 }
legal_type = { right = "legal_type", const = 1 }
"""


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        message = "the browser tests need Debian's chromium and chromium-driver (.ci/run installs them as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000", "--lang=en-US"):
        options.add_argument(arg)
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.implicitly_wait(0)
    yield chrome
    chrome.quit()


@pytest.fixture
def console_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCENGINE_UI_PASSWORD", PASSWORD)
    monkeypatch.setenv("VT_ACCESS_KEY", VT_KEY)
    monkeypatch.setenv("ALFA_API_KEY", ALFA_KEY)


@pytest.fixture
def crm_pair(emulator: Callable[..., Any], write_config: Callable[..., Path], sqlite_url: str,
             console_env: None) -> Any:
    """vtiger and Alfa CRM emulators (3 contacts in vtiger), a sync.toml with [ui] and a job,
    and the ``contacts`` mapping (``note`` is settled by hand)."""
    vt = emulator("vtiger", records=0, access_key=VT_KEY)
    alfa = emulator("alfacrm", records=0, api_key=ALFA_KEY)
    for i in range(3):
        vt.app.control_write("Contacts", {"lastname": f"Петров{i}", "firstname": "Иван",
                                          "email": f"p{i}@example.com", "description": ""})
    path = write_config(sqlite_url, {
        "vt": {"kind": "vtiger", "url": vt.url, "username": "admin", "access_key": "${VT_ACCESS_KEY}",
               "entities": ["Contacts"], "retries": 1},
        "alfa": {"kind": "alfacrm", "url": alfa.url, "email": "admin@example.com", "api_key": "${ALFA_API_KEY}",
                 "entities": ["customer"], "use_log": False, "retries": 1},
    }, jobs=[{"name": "contacts-job", "every": "15m", "mappings": ["contacts"]}],
        extra='\n[ui]\npassword = "${SYNCENGINE_UI_PASSWORD}"\n')
    (path.parent / "mappings").mkdir(exist_ok=True)
    (path.parent / "mappings" / "contacts.toml").write_text(MAPPING, encoding="utf-8")
    return Crms(vt, alfa, path)


class Crms:
    def __init__(self, vt: Any, alfa: Any, path: Path):
        self.vt, self.alfa, self.path = vt, alfa, path

    @property
    def config(self) -> Config:
        return load_config(self.path)


@pytest.fixture
def console() -> Iterator[Callable[..., WsgiServer]]:
    """``console(config)`` → a started console (waitress on a free port), stopped after the test."""
    started: list[WsgiServer] = []

    def start(config: Config, **kwargs: Any) -> WsgiServer:
        password = config.ui.password if config.ui else None
        server = WsgiServer(create_app(config, password=password, **kwargs), port=0, name="console").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


class Page:
    """The browser on one console: log in, open pages, submit forms, save screenshots."""

    def __init__(self, browser: Any, url: str, shots: Path):
        self.browser, self.url, self.shots = browser, url, shots
        browser.delete_all_cookies()

    def open(self, path: str) -> Any:
        self.browser.get(self.url + path)
        return self.browser

    def login(self, name: str = "Анна", password: str = PASSWORD) -> None:
        from selenium.webdriver.common.by import By

        self.open("/login")
        self.browser.find_element(By.NAME, "name").send_keys(name)
        self.browser.find_element(By.NAME, "password").send_keys(password)
        self.submit("form.login button")

    def submit(self, css: str) -> None:
        """Click a submit button and wait for the answer page (the old page's body goes stale)."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.wait import WebDriverWait

        body = self.browser.find_element(By.TAG_NAME, "body")
        self.browser.find_element(By.CSS_SELECTOR, css).click()
        WebDriverWait(self.browser, 60).until(lambda _: _gone(body))

    def path(self) -> str:
        from urllib.parse import urlsplit

        return urlsplit(self.browser.current_url).path

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return str(self.browser.find_element(By.TAG_NAME, "body").text)

    def click(self, css: str) -> None:
        from selenium.webdriver.common.by import By

        self.browser.find_element(By.CSS_SELECTOR, css).click()

    def shot(self, name: str) -> Path:
        """A screenshot of the window under the test's tmp dir."""
        self.shots.mkdir(exist_ok=True)
        path = self.shots / f"{name}.png"
        self.browser.save_screenshot(str(path))
        return path


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Callable[[str], Page]:
    return lambda url: Page(browser, url, tmp_path / "screenshots")


def _gone(element: Any) -> bool:
    """The old page's element is stale. Chromium says so in one of two ways: a stale-element error,
    or, caught mid-navigation, "does not belong to the document" (a bare WebDriverException)."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in str(exc):
            return True
        raise
    return False
