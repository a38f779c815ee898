"""Drive the approver page in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``harness.deps.ensure_chromium``; selenium is pointed at them
and never downloads a browser).

Blocking (selenium): from a pytest-twisted test whose reactor serves the page, call these in a
thread (``yield in_thread(approve_first_pending, url, token, "reason")``) — and so any WebDriver
call that makes the browser load from that server (``driver.get``, a click that posts): on the
reactor thread it would wait for a reactor it blocks. The one-call helper
for end-to-end tests is :func:`approve_first_pending`; the pieces are there for finer tests.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.deps import ensure_chromium

__all__ = ["approve_first_pending", "browser", "decide", "pending_card", "sign_in", "wait_until"]


@contextlib.contextmanager
def browser(profile_dir: Path | None = None, width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver (closed on exit)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = ensure_chromium()
    with contextlib.ExitStack() as stack:
        if profile_dir is None:
            profile_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gk-chromium-")))
        options = webdriver.ChromeOptions()
        options.binary_location = str(chromium)
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    f"--window-size={width},{height}", f"--user-data-dir={profile_dir}"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path=str(chromedriver)), options=options)
        stack.callback(driver.quit)
        driver.set_page_load_timeout(30)
        yield driver


def wait_until(what: str, check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll ``check()`` until it returns something truthy; its value, or TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(f"approver page: {what} within {timeout}s")
        time.sleep(interval)


def sign_in(driver: Any, url: str, token: str, timeout: float = 20.0) -> None:
    """Open the page at ``url`` and sign in by pasting ``token``; returns once signed in."""
    from selenium.webdriver.common.by import By

    driver.get(url.rstrip("/") + "/")
    field = driver.find_element(By.ID, "token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#signin button[type=submit]").click()

    def signed_in() -> bool:
        state = driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")
        error = driver.find_element(By.ID, "signin-error").text
        if error:
            raise AssertionError(f"approver page refused the sign-in: {error}")
        return state == "signed-in"

    wait_until("signed in", signed_in, timeout)


def pending_card(driver: Any, request_id: str | None = None, timeout: float = 20.0) -> Any:
    """The pending request's card (the first one when ``request_id`` is None), once shown."""
    from selenium.webdriver.common.by import By

    selector = "#pending li.card" + (f'[data-id="{request_id}"]' if request_id else "")

    def found() -> Any:
        cards = driver.find_elements(By.CSS_SELECTOR, selector)
        return cards[0] if cards else None

    return wait_until(f"a pending request {request_id or ''} shown", found, timeout)


def decide(driver: Any, card: Any, verdict: str, reason: str, timeout: float = 20.0) -> str:
    """Approve or deny the request of ``card`` with ``reason``; returns its id once it has left
    the pending list. A refusal shown on the card raises AssertionError with its text."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    request_id = card.get_attribute("data-id")
    field = card.find_element(By.NAME, "reason")
    field.clear()
    field.send_keys(reason)
    card.find_element(By.CSS_SELECTOR, f"button.{verdict}").click()

    def gone() -> bool:
        try:
            error = card.find_element(By.CSS_SELECTOR, ".decide .error").text
        except StaleElementReferenceException:
            return True
        if error:
            raise AssertionError(f"approver page: {verdict} of {request_id} refused: {error}")
        return not driver.find_elements(By.CSS_SELECTOR, f'#pending li.card[data-id="{request_id}"]')

    wait_until(f"request {request_id} decided", gone, timeout)
    return str(request_id)


def approve_first_pending(url: str, token: str, reason: str, *, request_id: str | None = None,
                          screenshot: Path | None = None, timeout: float = 30.0) -> str:
    """In a fresh headless Chromium: open the approver page at ``url``, sign in with ``token``,
    wait for the first pending request (or ``request_id``), approve it with ``reason``, and wait
    until the page shows it approved. Returns the request id; ``screenshot`` gets a PNG of the
    page afterwards."""
    from selenium.webdriver.common.by import By

    with browser() as driver:
        sign_in(driver, url, token, timeout)
        card = pending_card(driver, request_id, timeout)
        decided = decide(driver, card, "approve", reason, timeout)
        wait_until(f"request {decided} shown as decided",
                   lambda: driver.find_elements(By.CSS_SELECTOR, f'#decided tr[data-id="{decided}"]'), timeout)
        if screenshot is not None:
            driver.save_screenshot(str(screenshot))
        return decided
