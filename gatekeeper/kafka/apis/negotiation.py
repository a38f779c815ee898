"""Protocol negotiation: ApiVersions, SaslHandshake, SaslAuthenticate. Decoded and logged but
not put to the policy (Kafka authorizes none of them, and a client must be able to connect to
be told what it may not do), and never answered with an error. ApiVersions is answered with
the versions both the broker offers and Gatekeeper can inspect."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatekeeper.api import CLUSTER, Operation
from gatekeeper.kafka.apis.base import ApiKey, ApiUnit, OpContext


def _authenticate(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("authenticate", CLUSTER, {})]


def _api_versions(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("api_versions", CLUSTER, {})]


def intersect_api_versions(body: Any, ours: Mapping[int, tuple[int, int]]) -> Any:
    """Keep only the APIs and versions both the broker offers and Gatekeeper can inspect."""
    kept = []
    for k in body.api_keys:
        mine = ours.get(k.api_key)
        if mine is None:
            continue
        lo, hi = max(k.min_version, mine[0]), min(k.max_version, mine[1])
        if lo > hi:
            continue
        k.min_version, k.max_version = lo, hi
        kept.append(k)
    body.api_keys = kept
    return body


UNITS = [
    ApiUnit(ApiKey.SASL_HANDSHAKE, _authenticate, negotiation=True),
    ApiUnit(ApiKey.API_VERSIONS, _api_versions, negotiation=True),
    ApiUnit(ApiKey.SASL_AUTHENTICATE, _authenticate, negotiation=True),
]
