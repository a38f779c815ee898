"""``gatekeeper approvals …`` and ``gatekeeper grants …`` as a process, against the running API."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor as _reactor
from twisted.internet import utils

from harness.approvals import ApprovalsServer
from harness.ports import LOOPBACK, free_port, port_open
from harness.tokens import TestIdp

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    srv = ApprovalsServer(tmp_path_factory.mktemp("approvals-cli"), TestIdp(), _reactor)
    pytest_twisted.blockon(srv.start())
    yield srv
    pytest_twisted.blockon(srv.stop())


def gatekeeper(*args: str, env: dict[str, str] | None = None) -> Any:
    """(stdout, stderr, exit code) of ``gatekeeper ARGS`` run as a process, without blocking."""
    base = {k: v for k, v in os.environ.items() if k not in ("GATEKEEPER_APPROVALS_URL", "GATEKEEPER_TOKEN")}
    base["PYTHONPATH"] = str(ROOT)
    d = utils.getProcessOutputAndValue(sys.executable, ["-m", "gatekeeper.cli", *args], env={**base, **(env or {})},
                                       path=str(ROOT))
    return d.addCallback(lambda r: (r[0].decode(), r[1].decode(), r[2]))


def token_file(tmp_path: Path, server: ApprovalsServer, sub: str, *groups: str, **kw: Any) -> str:
    path = tmp_path / f"{sub}.token"
    path.write_text(server.token(sub, *groups, **kw) + "\n")
    return str(path)


@pytest_twisted.inlineCallbacks
def test_a_requester_finds_its_request_and_an_approver_approves_it(server, tmp_path):
    req = server.open_request("svc-cli", resource=("topic", "invoices"))
    mine = token_file(tmp_path, server, "svc-cli", "data-owners")
    out, err, code = yield gatekeeper("approvals", "list", "--mine", "--url", server.url, "--token-file", mine)
    assert code == 0, err
    assert req.id in out and "pending" in out and "topic:invoices" in out
    out, err, code = yield gatekeeper("approvals", "show", req.id, "--url", server.url, "--token-file", mine)
    assert code == 0 and f"id:               {req.id}" in out and "segregation of duties" in out

    out, err, code = yield gatekeeper("approvals", "approve", req.id, "--reason", "mine", "--url", server.url, "--token-file", mine)
    assert code == 1 and "403" in err and "segregation of duties" in err
    assert server.service.request(req.id).status == "pending"

    env = {"GATEKEEPER_APPROVALS_URL": server.url, "GATEKEEPER_TOKEN": server.token("carol", "data-owners")}
    out, err, code = yield gatekeeper("approvals", "list", "--status", "pending", "--json", env=env)
    assert code == 0 and req.id in [r["id"] for r in json.loads(out)["requests"]]
    out, err, code = yield gatekeeper("approvals", "approve", req.id, "--reason", "invoices run", env=env)
    assert code == 0 and out.strip() == f"request {req.id}: approved", err
    assert server.service.request(req.id).status == "approved"
    out, err, code = yield gatekeeper("approvals", "deny", req.id, "--reason", "too late", env=env)
    assert code == 1 and "409" in err

    grant_id = server.service.request(req.id).grant_id
    out, err, code = yield gatekeeper("grants", "list", env=env)
    assert code == 0 and grant_id in out and "live" in out
    out, err, code = yield gatekeeper("grants", "revoke", grant_id, "--reason", "done", env=env)
    assert code == 0 and out.strip() == f"grant {grant_id}: revoked"
    assert server.service.grant(grant_id).revoked_by == "carol"
    out, err, code = yield gatekeeper("grants", "list", env=env)
    assert grant_id not in out
    out, err, code = yield gatekeeper("grants", "list", "--all", env=env)
    assert grant_id in out and "revoked" in out


@pytest_twisted.inlineCallbacks
def test_clear_errors_and_exit_codes(server, tmp_path):
    good = token_file(tmp_path, server, "carol", "data-owners")
    out, err, code = yield gatekeeper("approvals", "list", "--token-file", good)
    assert code == 2 and "GATEKEEPER_APPROVALS_URL" in err
    out, err, code = yield gatekeeper("approvals", "list", "--url", server.url)
    assert code == 2 and "GATEKEEPER_TOKEN" in err
    out, err, code = yield gatekeeper("approvals", "list", "--url", server.url, "--token-file", str(tmp_path / "missing"))
    assert code == 2 and "cannot read --token-file" in err
    expired = token_file(tmp_path, server, "late", lifetime=-60)
    out, err, code = yield gatekeeper("approvals", "list", "--url", server.url, "--token-file", expired)
    assert code == 4 and "401" in err and "fresh token" in err
    out, err, code = yield gatekeeper("approvals", "list", "--url", f"http://{LOOPBACK}:{free_port()}", "--token-file", good)
    assert code == 3 and "cannot reach" in err
    out, err, code = yield gatekeeper("approvals", "show", "apr_nope", "--url", server.url, "--token-file", good)
    assert code == 1 and "404" in err
    out, err, code = yield gatekeeper("approvals", "deny", "apr_nope", "--reason", " ", "--url", server.url, "--token-file", good)
    assert code == 2 and "--reason" in err
    out, err, code = yield gatekeeper("approvals", "approve", "apr_nope", "--url", server.url)
    assert code == 2 and "--reason" in err  # argparse: required


@pytest_twisted.inlineCallbacks
def test_terminal_control_characters_from_the_api_are_shown_not_obeyed(server, tmp_path):
    req = server.open_request("svc-\x1b[2Jterm", resource=("topic", "t\x07bell"))
    out, err, code = yield gatekeeper("approvals", "list", "--url", server.url,
                                      "--token-file", token_file(tmp_path, server, "carol", "data-owners"))
    assert code == 0 and req.id in out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out


@pytest_twisted.inlineCallbacks
def test_over_tls_the_cli_verifies_the_listener_with_cacert(tmp_path):
    from harness.certs import TestCa

    ca = TestCa(tmp_path / "pki")
    cert, key = ca.issue("approvals", "localhost", server=True)
    srv = ApprovalsServer(tmp_path / "srv", TestIdp(), _reactor, tls={"cert_file": str(cert), "key_file": str(key)})
    yield srv.start()
    try:
        assert srv.url.startswith("https://")
        req = srv.open_request("svc-tls")
        tok = token_file(tmp_path, srv, "carol", "data-owners")
        out, err, code = yield gatekeeper("approvals", "list", "--url", srv.url, "--token-file", tok, "--cacert", str(ca.ca_file))
        assert code == 0 and req.id in out, err
        out, err, code = yield gatekeeper("approvals", "list", "--url", srv.url, "--token-file", tok)  # not trusted
        assert code == 3 and "CERTIFICATE_VERIFY_FAILED" in err
    finally:
        yield srv.stop()


def test_twistd_gatekeeper_serves_the_approvals_api_the_cli_talks_to(tmp_path):
    """The whole path from the YAML: twistd starts the service and its listener."""
    import subprocess

    from harness.gateway import TwistdGateway

    idp = TestIdp()
    port = free_port()
    extra = {
        "identity": {"jwt": {"issuer": idp.issuer, "audience": idp.audience, "jwks_file": str(idp.write_jwks(tmp_path / "jwks.json"))}},
        "approvals": {"store": str(tmp_path / "approvals.sqlite"), "bind": f"{LOOPBACK}:{port}"},
    }
    with TwistdGateway(tmp_path / "twistd", f"{LOOPBACK}:9", extra=extra) as gw:
        from harness.waiting import wait_for

        wait_for(lambda: port_open(port), timeout=20, what="the approvals listener", detail=gw.log_tail)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEKEEPER_APPROVALS_URL": f"http://{LOOPBACK}:{port}",
               "GATEKEEPER_TOKEN": idp.token(sub="carol", groups=("data-owners",))}
        done = subprocess.run([sys.executable, "-m", "gatekeeper.cli", "approvals", "list", "--json"], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"requests": [], "truncated": False}
        assert "approvals API and approver page on" in gw.log_path.read_text()
