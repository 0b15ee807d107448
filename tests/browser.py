"""A real headless Chromium for tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Test modules import the fixtures explicitly::

    from browser import browser, page  # noqa: F401

No browser is downloaded (never ``playwright install``). When Playwright or Chromium is
missing the tests skip, or fail when ``BOTKIT_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "browser", "page", "wsgi_server"]

CHROMIUM = os.environ.get("BOTKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("BOTKIT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (BOTKIT_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium shared by the session's tests."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install playwright; no browser download)")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} not found (apt-get install -y chromium)")
    manager = sync_playwright().start()
    try:
        try:
            chromium = manager.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        except Error as exc:
            _unavailable(f"Chromium did not start: {exc}")
        yield chromium
        chromium.close()
    finally:
        manager.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page in its own browser context (no shared cookies or storage)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


class wsgi_server:
    """Serve a WSGI app with Werkzeug on a free loopback port in a thread::

    with wsgi_server(app) as url:
        page.goto(url + "/playground")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        from werkzeug.serving import make_server

        self.server = make_server(host, 0, app, threaded=True)
        self.url = f"http://{host}:{self.server.server_port}"
        self._thread: Any = None

    def __enter__(self) -> str:
        import threading

        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
