"""Fetch: one ``consume`` per topic. Denied partitions get an empty record set, as the broker
sends on an error partition (a null one is a parse failure for librdkafka)."""

from __future__ import annotations

import struct
from typing import Any

from gatekeeper.api import Operation
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    Entities,
    OpContext,
    Resolve,
    force,
    topic_resource,
)


def _operations(b: Any, c: OpContext) -> list[Operation]:
    iso = getattr(b, "isolation_level", 0) or 0
    return [
        Operation(
            "consume",
            c.topic(getattr(t, "topic", None), getattr(t, "topic_id", None)),
            {"partitions": [p.partition for p in t.partitions], "isolation_level": iso},
        )
        for t in b.topics
    ]


def _error_response(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.FetchableTopicResponse
    P = T.PartitionData
    out = []
    for t in b.topics:
        d = deny(topic_resource(getattr(t, "topic", None), getattr(t, "topic_id", None), resolve))
        key = {"topic_id": t.topic_id} if v >= 13 else {"topic": t.topic}
        out.append(T(**key, partitions=[
            # An empty record set and an empty aborted-transaction list, as the broker sends on an
            # error partition: a null record set is a parse failure for librdkafka
            # ("invalid MessageSetSize -1"), which then refetches at once, without backoff.
            P(partition_index=p.partition, error_code=d.code, high_watermark=-1, last_stable_offset=-1,
              log_start_offset=-1, aborted_transactions=[], preferred_read_replica=-1, records=b"")
            for p in t.partitions]))
    return R[v](throttle_time_ms=0, error_code=0, session_id=0, responses=out)


_ENTITIES = Entities("topics", "responses",
                     lambda e, r: topic_resource(getattr(e, "topic", None), getattr(e, "topic_id", None), r))

_I32x2 = struct.Struct(">ii")


def disable_fetch_session(version: int, header_size: int, frame: bytes) -> bytes:
    """The Fetch request as a sessionless full fetch (session id 0, epoch -1), patched in place.

    Incremental fetch sessions let a client stop naming partitions it keeps fetching; with them
    off, every Fetch names every partition, so every partition is decided on every fetch.
    """
    if version < 7:
        return frame
    offset = header_size + (4 if version < 15 else 0) + 4 + 4 + 4 + 1
    patched = bytearray(frame)
    _I32x2.pack_into(patched, offset, 0, -1)
    return bytes(patched)


def _sessionless(version: int, body: Any) -> None:
    if version >= 7:
        body.session_id, body.session_epoch = 0, -1


def _as_a_consumer(version: int, body: Any) -> bool:
    """A client fetches as a consumer (replica id -1). A replica id of 0 or more is a follower
    fetch and -3 a future-replica fetch: the broker would serve them under Gatekeeper's identity,
    ignoring the isolation level (records of open transactions), so they are forced to -1."""
    if version < 15:
        return force(body, "replica_id", -1)
    if body.replica_state is not None and body.replica_state.replica_id != -1:
        body.replica_state = None
        return True
    return False


UNITS = [ApiUnit(ApiKey.FETCH, _operations, _error_response, entities=lambda v: _ENTITIES, normalize=_as_a_consumer,
                 normalize_frame=disable_fetch_session, normalize_body=_sessionless,
                 # v16 adds the new leader's real address to an answer (KIP-951 ``node_endpoints``,
                 # after the records), and v17-18 only fields of followers: offered up to v15, the
                 # answer never has it and still passes unread (spliced, cut through).
                 max_version=15)]
