"""Approvals: the protocol-neutral mechanism behind the ``approve`` decision.

An approve decision opens an approval request (or joins the one pending for the same
principal, operation and resource); approvers other than the requester decide it; an approval
records a time-boxed grant that later policy inputs carry in ``grants``. ``model`` holds the
values and rules, ``store`` the persistence, ``service`` the object everyone calls,
``notifiers`` the built-in notifier plugins.
"""

from gatekeeper.approvals.model import (
    APPROVED,
    DENIED,
    EXPIRED,
    PENDING,
    ApprovalRequest,
    ApprovalSpec,
    Grant,
    Refused,
    Vote,
)
from gatekeeper.approvals.notifiers import ConfiguredNotifier, load_notifiers
from gatekeeper.approvals.service import Approvals
from gatekeeper.approvals.store import MemoryStore, SqliteStore, Store, StoreError

__all__ = [
    "APPROVED",
    "DENIED",
    "EXPIRED",
    "PENDING",
    "ApprovalRequest",
    "ApprovalSpec",
    "Approvals",
    "ConfiguredNotifier",
    "Grant",
    "MemoryStore",
    "Refused",
    "SqliteStore",
    "Store",
    "StoreError",
    "Vote",
    "load_notifiers",
]
