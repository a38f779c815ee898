"""What the harnesses share: a cluster view that knows a few topics, a mask plan, and the
fixed inputs the connection core and the JWT harness need (no I/O when a harness runs)."""

from __future__ import annotations

import uuid
from typing import Any

from gatekeeper.kafka.cluster import ClusterView

__all__ = ["KNOWN_TOPIC_ID", "make_cluster", "mask_plan"]

KNOWN_TOPIC_ID = uuid.UUID("7c1e52b1-5d2e-4c8b-9a0e-1f6e2d3c4b5a")


def make_cluster() -> ClusterView:
    """A cluster view with one broker and one topic known by id."""
    cluster = ClusterView(3)
    cluster.observe_broker(1, "127.0.0.1", 19092)
    cluster.observe_topics([(KNOWN_TOPIC_ID, "orders")])
    return cluster


def mask_plan() -> Any:
    """A compiled plan masking a JSON field and e-mail addresses anywhere (as a consume rule
    with on_error: deny would, so RecordRefused is reachable too)."""
    from gatekeeper.masking import Masking
    from gatekeeper.testing.fakes import fake_config

    masking = Masking(fake_config().masking)
    return masking.plan([{"field": "$.card", "masker": "last4"}, {"detector": "email", "masker": "redact"}], "consume")
