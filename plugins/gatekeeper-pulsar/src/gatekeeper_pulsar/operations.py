"""Client commands to policy operations, and the answer each command gets when it is denied.

A pure mapping: :func:`classify` says what a client command is — forwarded as is (flow control,
acknowledgements, pings, closes), decided (one Operation, with the frame that refuses it), or
refused outright (commands Gatekeeper cannot inspect yet, fail closed).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import attrs

from gatekeeper.api import Operation, Resource
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.framing import Frame
from gatekeeper_pulsar.payload import read_payload

__all__ = ["PASS_THROUGH", "Classified", "classify"]

T = wire.BaseCommand

# Commands that act only on a producer or consumer Gatekeeper already allowed on this
# connection, or on the connection itself: forwarded as their original bytes.
PASS_THROUGH = frozenset({
    T.ACK, T.FLOW, T.PING, T.PONG, T.CLOSE_PRODUCER, T.CLOSE_CONSUMER,
    T.REDELIVER_UNACKNOWLEDGED_MESSAGES, T.CONSUMER_STATS, T.GET_LAST_MESSAGE_ID,
    T.SEEK, T.UNSUBSCRIBE,
})


@attrs.frozen
class Classified:
    """``operation`` None: forward. Else decide it; ``refuse(reason)`` is the frame that denies
    it (``closes``: the connection ends after it, for a refused SEND)."""

    operation: Operation | None
    refuse: Callable[[str], bytes] | None = None
    closes: bool = False
    producer: tuple[int, str] | None = None  # a PRODUCER: (producer_id, topic) once allowed
    consumer: tuple[int, str] | None = None  # a SUBSCRIBE: (consumer_id, topic)
    send: int | None = None  # a SEND: its producer_id


def classify(cmd: wire.BaseCommand, frame: Frame, producers: dict[int, str]) -> Classified:
    t = cmd.type if cmd.HasField("type") else None
    if t in PASS_THROUGH:
        return Classified(None)
    if t == T.LOOKUP:
        r = cmd.lookupTopic
        return Classified(
            Operation("describe_topic", Resource("topic", r.topic), {"lookup": True, "authoritative": r.authoritative}),
            partial(c.lookup_failed_frame, r.request_id, c.AUTHORIZATION_ERROR))
    if t == T.PARTITIONED_METADATA:
        p = cmd.partitionMetadata
        return Classified(
            Operation("describe_topic", Resource("topic", p.topic), {"partitioned_metadata": True}),
            partial(c.partitioned_failed_frame, p.request_id, c.AUTHORIZATION_ERROR))
    if t == T.PRODUCER:
        pr = cmd.producer
        request: dict[str, object] = {"producer_id": pr.producer_id}
        if pr.producer_name:
            request["producer_name"] = pr.producer_name
        if pr.encrypted:
            request["encrypted"] = True
        if pr.initial_subscription_name:
            request["group"] = pr.initial_subscription_name
        return Classified(Operation("produce", Resource("topic", pr.topic), request),
                          partial(c.error_frame, pr.request_id, c.AUTHORIZATION_ERROR),
                          producer=(pr.producer_id, pr.topic))
    if t == T.SEND:
        s = cmd.send
        topic = producers.get(s.producer_id)
        if topic is None:
            return Classified(None)  # no producer of that id here: the broker answers it
        info = read_payload(frame.payload)
        request = {"record_count": info.record_count, "bytes": len(info.body), "producer_id": s.producer_id,
                   "compression": info.compression}
        if info.encrypted:
            request["encrypted"] = True
        return Classified(
            Operation("produce", Resource("topic", topic), request),
            partial(c.send_error_frame, s.producer_id, s.sequence_id, c.AUTHORIZATION_ERROR),
            closes=True, send=s.producer_id)
    if t == T.SUBSCRIBE:
        sub = cmd.subscribe
        request = {"group": sub.subscription, "subscription_type": wire.CommandSubscribe.SubType.Name(sub.subType),
                   "consumer_id": sub.consumer_id,
                   "initial_position": wire.CommandSubscribe.InitialPosition.Name(sub.initialPosition)}
        if sub.HasField("durable") and not sub.durable:
            request["durable"] = False
        return Classified(Operation("consume", Resource("topic", sub.topic), request),
                          partial(c.error_frame, sub.request_id, c.AUTHORIZATION_ERROR),
                          consumer=(sub.consumer_id, sub.topic))
    # Anything else (namespace listings, schema commands, transactions, topic watchers, a type
    # this codec does not know) is not inspected yet: it is put to the policy as `other` on
    # the cluster, so a default-deny policy refuses it.
    name = c.command_name(cmd)
    return Classified(Operation("other", Resource("cluster", "pulsar-cluster"), {"command": name}),
                      _refuse_other(cmd), closes=_request_id(cmd) is None)


def _request_id(cmd: wire.BaseCommand) -> int | None:
    if cmd.type == T.GET_TOPICS_OF_NAMESPACE and cmd.HasField("getTopicsOfNamespace"):
        return int(cmd.getTopicsOfNamespace.request_id)
    return None


def _refuse_other(cmd: wire.BaseCommand) -> Callable[[str], bytes]:
    rid = _request_id(cmd)
    if rid is None:
        return lambda reason: b""
    return partial(c.error_frame, rid, c.AUTHORIZATION_ERROR)
