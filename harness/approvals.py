"""The approvals service and its HTTP listener in this process, on the running reactor, for tests.

The real pieces: ``Approvals`` on a real SQLite store, the ``IdentityService`` validating the
test IdP's tokens (``harness.tokens``) from a JWKS file, and the ``ApprovalsListener`` on a
loopback port. ``open_request`` opens an approval request as an approve decision on the Kafka
side would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import defer

from gatekeeper.api import Principal, Resource
from gatekeeper.approvals.listener import ApprovalsListener
from gatekeeper.approvals.service import Approvals
from gatekeeper.config import parse_config
from gatekeeper.identity.service import IdentityService
from harness.ports import LOOPBACK, free_port
from harness.tokens import TestIdp

__all__ = ["ApprovalsServer", "approvals_config"]


def approvals_config(workdir: Path, idp: TestIdp, **approvals: Any) -> Any:
    """A whole gateway config (through the real loader) with an ``approvals`` section on a
    fresh SQLite file and a free loopback port, and JWT identity from ``idp``."""
    jwks = idp.write_jwks(workdir / "jwks.json")
    raw = {
        "listeners": [{"name": "default", "bind": f"{LOOPBACK}:9192", "broker_ports": "9193-9195"}],
        "upstream": {"bootstrap_servers": [f"{LOOPBACK}:9"]},
        "policy": {"engine": "allow-all"},
        "identity": {"jwt": {"issuer": idp.issuer, "audience": idp.audience, "jwks_file": str(jwks), "leeway": "2s"}},
        "approvals": {"store": str(workdir / "approvals.sqlite"), "bind": f"{LOOPBACK}:{free_port()}", **approvals},
    }
    return parse_config(json.loads(json.dumps(raw)))


class ApprovalsServer:
    """``Approvals`` + ``ApprovalsListener`` on the reactor: ``yield start()``, ``yield stop()``."""

    def __init__(self, workdir: Path, idp: TestIdp, reactor: Any, **approvals: Any) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.idp = idp
        self.reactor = reactor
        self.config = approvals_config(workdir, idp, **approvals)
        self.identity = IdentityService(self.config.identity.jwt, reactor)
        self.service = Approvals.from_config(self.config.approvals, reactor=reactor)
        self.listener = ApprovalsListener(reactor, self.config.approvals, self.service, self.identity)

    @property
    def url(self) -> str:
        return self.listener.url

    @defer.inlineCallbacks
    def start(self) -> Any:
        yield self.service.start()
        yield self.listener.start()
        return self

    @defer.inlineCallbacks
    def stop(self) -> Any:
        yield self.listener.stop()
        yield self.service.stop()
        self.identity.stop()

    def token(self, sub: str, *groups: str, lifetime: float = 300, **claims: Any) -> str:
        return self.idp.token(sub=sub, groups=tuple(groups), lifetime=lifetime, **claims)

    def open_request(self, sub: str, *, groups: tuple[str, ...] = (), operation: str = "produce",
                     resource: tuple[str, str] = ("topic", "orders"), approvers: tuple[str, ...] = ("group:data-owners",),
                     approvals_required: int = 1, reason: str = "writes to orders need a data owner's approval",
                     client_id: str = "test-client") -> Any:
        """Open an approval request as the Kafka side does for an approve decision."""
        principal = Principal(sub=sub, issuer=self.idp.issuer, groups=groups, mechanism="OAUTHBEARER")
        approval = {"approvers": list(approvers), "grant_ttl": "15m", "wait": "20s", "approvals_required": approvals_required}
        return self.service.open(principal=principal, client={"id": client_id, "address": LOOPBACK}, operation=operation,
                                 resource=Resource(*resource), summary={"partitions": [0], "record_count": 1, "bytes": 42},
                                 reason=reason, approval=approval)
