"""One request on its way through a Kafka connection: decided, forwarded, answered."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gatekeeper.kafka.apis.base import Listing
from gatekeeper.kafka.request import DecodedRequest

if TYPE_CHECKING:
    from gatekeeper.kafka.auditing import RequestDraft

__all__ = ["Entry"]


class Entry:
    """One request on its way through: decided, forwarded, answered."""

    __slots__ = ("approvals", "audit", "decided", "forwarded_at", "masked", "received_at", "filter_listing", "forward", "internal", "mask", "merge", "outgoing", "request", "response")

    def __init__(self, request: DecodedRequest | None, internal: Callable[[bytes], None] | None = None) -> None:
        self.request = request
        self.internal = internal  # Gatekeeper's own request (a probe): what to do with its answer
        self.decided = False
        self.forward = False
        self.response: bytes | None = None
        self.outgoing: bytes | None = None  # what goes to the broker (original bytes unless split)
        self.merge: Any = None  # adds denied entities' errors to a split request's response
        self.filter_listing: Listing | None = None  # drop listed resources the principal may not see
        self.mask: dict[Any, tuple[str, Any]] | None = None  # Fetch: topic key -> (name, mask plan)
        self.approvals: dict[Any, dict[str, Any]] | None = None  # (operation, resource) -> approval outcome, once held
        self.audit: tuple[Any, RequestDraft] | None = None  # (trail slot, request record to be) until its outcome
        self.masked: dict[str, tuple[int, int]] | None = None  # produce: topic -> (records, fields) masked
        self.received_at = 0.0
        self.forwarded_at: float | None = None

    @property
    def processed(self) -> bool:
        """Its response must be decoded (rewritten, merged or filtered, or read for the audit
        trail's outcome) before the client sees it."""
        return self.rewritten or self.audited_response

    @property
    def rewritten(self) -> bool:
        """Its response is rewritten, merged or filtered before the client sees it."""
        return self.merge is not None or self.filter_listing is not None or self.mask is not None

    @property
    def audited_response(self) -> bool:
        """Its response is read for the audit trail's outcome (a Produce's offsets, a Fetch's)."""
        return self.audit is not None and self.request is not None and self.request.header.api_key in (0, 1)
