"""The approver page in a real headless Chromium (Debian's chromium + chromedriver, selenium),
served by the real approvals listener and service: sign in with a token, see requests arrive
live, approve, deny and revoke, and nothing a requester controls becomes markup."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor

from harness.approvals import ApprovalsServer
from harness.approver_page import (
    approve_first_pending,
    browser,
    decide,
    pending_card,
    sign_in,
    wait_until,
)
from harness.tokens import TestIdp
from tests.integration.conftest import in_thread

pytestmark = pytest.mark.integration

_n = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = ApprovalsServer(tmp_path_factory.mktemp("approver-page"), TestIdp(), _reactor)
    pytest_twisted.blockon(srv.start())
    yield srv
    pytest_twisted.blockon(srv.stop())


@pytest.fixture
def page(tmp_path) -> Any:
    """A headless Chromium for one test (its profile under the test's tmp dir)."""
    with browser(tmp_path / "profile") as driver:
        yield driver


def _by() -> Any:
    from selenium.webdriver.common.by import By

    return By


@pytest_twisted.inlineCallbacks
def test_a_request_opened_while_the_page_is_open_appears_live_and_is_approved(server, page, tmp_path):
    By = _by()
    requester = f"svc-live-{next(_n)}"
    yield in_thread(sign_in, page, server.url, server.token("carol", "data-owners"))
    assert "carol" in page.find_element(By.ID, "who-name").text
    page.execute_script("window.__sameDocument = true;")  # gone if the page reloaded

    req = server.open_request(requester, resource=("topic", "payments"), reason="payments writes need an owner")
    card = yield in_thread(pending_card, page, req.id)
    assert card.find_element(By.CSS_SELECTOR, ".requester").text == requester
    assert card.find_element(By.CSS_SELECTOR, ".resource").text == "topic payments"
    assert card.find_element(By.CSS_SELECTOR, ".op").text == "produce"
    assert card.find_element(By.CSS_SELECTOR, ".why").text == "payments writes need an owner"
    assert page.execute_script("return window.__sameDocument === true;")
    page.save_screenshot(str(tmp_path / "pending.png"))

    decided = yield in_thread(decide, page, card, "approve", "checked with the payments team")
    assert decided == req.id
    after = server.service.request(req.id)
    assert after.status == "approved"
    assert [(v.sub, v.verdict, v.reason) for v in after.votes] == [("carol", "approve", "checked with the payments team")]
    row = yield in_thread(wait_until, "decided row", lambda: page.find_elements(By.CSS_SELECTOR, f'#decided tr[data-id="{req.id}"]'))
    assert "approved" in row[0].text and "checked with the payments team" in row[0].text
    yield in_thread(wait_until, "the grant listed", lambda: page.find_elements(By.CSS_SELECTOR, f'#grants tr[data-id="{after.grant_id}"]'))
    page.save_screenshot(str(tmp_path / "approved.png"))
    assert (tmp_path / "approved.png").stat().st_size > 0


@pytest_twisted.inlineCallbacks
def test_the_reusable_helper_approves_the_first_pending_request(server, tmp_path):
    """What an end-to-end test calls: open the page, sign in, approve the first pending request."""
    req = server.open_request(f"svc-helper-{next(_n)}", approvers=("user:helper-approver",))
    shot = tmp_path / "helper.png"
    decided = yield in_thread(approve_first_pending, server.url, server.token("helper-approver"), "ok by the helper",
                              screenshot=shot)
    assert decided == req.id and server.service.request(req.id).status == "approved"
    assert shot.read_bytes().startswith(b"\x89PNG")


@pytest_twisted.inlineCallbacks
def test_the_requester_sees_its_own_request_without_a_way_to_decide_it(server, page):
    By = _by()
    requester = f"svc-self-{next(_n)}"
    req = server.open_request(requester, groups=("data-owners",))
    yield in_thread(sign_in, page, server.url, server.token(requester, "data-owners"))
    card = yield in_thread(pending_card, page, req.id)
    assert not card.find_element(By.CSS_SELECTOR, "form.decide").is_displayed()
    assert "segregation of duties" in card.find_element(By.CSS_SELECTOR, ".note").text


@pytest_twisted.inlineCallbacks
def test_deny_and_revoke_from_the_page(server, page):
    By = _by()
    yield in_thread(sign_in, page, server.url, server.token("dave", "data-owners"))
    denied = server.open_request(f"svc-deny-{next(_n)}")
    card = yield in_thread(pending_card, page, denied.id)
    yield in_thread(decide, page, card, "deny", "not during the freeze")
    assert server.service.request(denied.id).status == "denied"

    approved = server.open_request(f"svc-revoke-{next(_n)}")
    card = yield in_thread(pending_card, page, approved.id)
    yield in_thread(decide, page, card, "approve", "fine")
    grant_id = server.service.request(approved.id).grant_id
    row = (yield in_thread(wait_until, "grant row", lambda: page.find_elements(By.CSS_SELECTOR, f'#grants tr[data-id="{grant_id}"]')))[0]
    row.find_element(By.NAME, "reason").send_keys("access no longer needed")
    yield in_thread(row.find_element(By.CSS_SELECTOR, "form.revoke button").click)
    yield in_thread(wait_until, "grant row gone",
                    lambda: not page.find_elements(By.CSS_SELECTOR, f'#grants tr[data-id="{grant_id}"]'))
    grant = server.service.grant(grant_id)
    assert grant.revoked_by == "dave" and grant.revoke_reason == "access no longer needed"


@pytest_twisted.inlineCallbacks
def test_a_refused_token_keeps_the_page_signed_out_with_a_message(server, page):
    By = _by()
    expired = server.token("carol", "data-owners", lifetime=-60)
    with pytest.raises(AssertionError, match="refused"):
        yield in_thread(sign_in, page, server.url, expired)
    assert page.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "signed-out"
    assert not page.find_element(By.ID, "app").is_displayed()
    assert page.execute_script("return sessionStorage.length") == 0


XSS = '<img src=x onerror="window.__pwned=1">'
XSS_SCRIPT = "<script>window.__pwned=2</script>"


@pytest_twisted.inlineCallbacks
def test_names_reasons_and_resources_are_shown_as_text_never_markup(server, page, tmp_path):
    By = _by()
    requester = f'{XSS}"\'&svc-{next(_n)}'
    approver = f"{XSS_SCRIPT}approver"
    req = server.open_request(requester, groups=(XSS,), resource=("topic", XSS_SCRIPT + "orders"),
                              reason=f"because {XSS} & <b>bold</b>", approvers=(f"user:{approver}",),
                              operation="produce" + XSS, client_id=XSS)
    yield in_thread(sign_in, page, server.url, server.token(approver))
    assert page.find_element(By.ID, "who-name").text == f"Signed in as {approver}"
    card = yield in_thread(pending_card, page, req.id)
    assert card.find_element(By.CSS_SELECTOR, ".requester").text == f"{requester} ({XSS})"
    assert card.find_element(By.CSS_SELECTOR, ".resource").text == f"topic {XSS_SCRIPT}orders"
    assert card.find_element(By.CSS_SELECTOR, ".why").text == f"because {XSS} & <b>bold</b>"
    assert card.find_element(By.CSS_SELECTOR, ".op").text == "produce" + XSS
    assert XSS in card.find_element(By.CSS_SELECTOR, ".details").text
    yield in_thread(decide, page, card, "approve", f"ok {XSS}")
    yield in_thread(wait_until, "decided row", lambda: page.find_elements(By.CSS_SELECTOR, f'#decided tr[data-id="{req.id}"]'))
    grant_id = server.service.request(req.id).grant_id
    yield in_thread(wait_until, "grant row", lambda: page.find_elements(By.CSS_SELECTOR, f'#grants tr[data-id="{grant_id}"]'))
    page.save_screenshot(str(tmp_path / "xss.png"))
    # Nothing injected ran or became an element anywhere on the page.
    assert page.execute_script("return window.__pwned === undefined;")
    assert page.find_elements(By.CSS_SELECTOR, "main img, main script, main b") == []
    assert f"ok {XSS}" in page.find_element(By.ID, "decided").text
    assert XSS in page.find_element(By.ID, "grants").text
    errors = [e for e in page.get_log("browser") if e.get("level") == "SEVERE"]
    assert errors == [], errors


@pytest_twisted.inlineCallbacks
def test_a_link_with_request_id_brings_that_request_forward(server, page):
    By = _by()
    req = server.open_request(f"svc-link-{next(_n)}", resource=("topic", "linked"))
    # (page.get waits for the page, which this reactor serves: in a thread)
    yield in_thread(page.get, server.url + "/static/app.css")
    page.execute_script("sessionStorage.setItem('gatekeeper.approvals.token', arguments[0]);",
                        server.token("carol", "data-owners"))
    yield in_thread(page.get, server.url + f"/?request={req.id}")  # signed in from the session, as after a notification's link
    card = yield in_thread(pending_card, page, req.id)
    yield in_thread(wait_until, "the linked card marked", lambda: "linked" in card.get_attribute("class"))
    assert page.switch_to.active_element == card.find_element(By.NAME, "reason")
