"""Client commands to policy operations, and the answer each command gets when it is denied.

A pure mapping: :func:`classify` says what a client command is — forwarded as is (flow control,
acknowledgements, pings, closes), decided (one or more Operations, all of which must be allowed,
with the frame that refuses the command), or refused outright (commands only a broker sends).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import attrs

from gatekeeper.api import Decision, Operation, Resource
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.framing import Frame
from gatekeeper_pulsar.payload import read_payload

__all__ = ["PASS_THROUGH", "PULSAR_CLUSTER", "Classified", "classify", "first_refusal"]

T = wire.BaseCommand
PULSAR_CLUSTER = Resource("cluster", "pulsar-cluster")

# Commands that act only on a producer or consumer Gatekeeper already allowed on this
# connection, or on the connection itself: forwarded as their original bytes.
PASS_THROUGH = frozenset({
    T.ACK, T.FLOW, T.PING, T.PONG, T.CLOSE_PRODUCER, T.CLOSE_CONSUMER,
    T.REDELIVER_UNACKNOWLEDGED_MESSAGES, T.CONSUMER_STATS, T.GET_LAST_MESSAGE_ID,
    T.WATCH_TOPIC_LIST_CLOSE,
})

# What a transaction coordinator sends a broker, never a client: refused outright.
BROKER_ONLY = frozenset({T.END_TXN_ON_PARTITION, T.END_TXN_ON_SUBSCRIPTION})

_SCHEMA_TYPES = {0: "None", 1: "String", 2: "Json", 3: "Protobuf", 4: "Avro", 5: "Bool", 6: "Int8", 7: "Int16",
                 8: "Int32", 9: "Int64", 10: "Float", 11: "Double", 12: "Date", 13: "Time", 14: "Timestamp",
                 15: "KeyValue", 16: "Instant", 17: "LocalDate", 18: "LocalTime", 19: "LocalDateTime",
                 20: "ProtobufNative", 21: "AutoConsume"}


@attrs.frozen
class Classified:
    """``operation`` None: forward (or, with ``refused``, answer ``refuse(refused)`` and forward
    nothing). Else decide ``operation`` and each of ``also``; every one must be allowed.
    ``refuse(reason)`` is the frame that denies it (``closes``: the connection ends after it, for a
    refused SEND). ``may_create``: the topic the broker would create if it does not exist
    (PRODUCER, SUBSCRIBE, PARTITIONED_METADATA): the connection asks the broker whether it exists
    and, when not, decides ``create_topic`` on it too."""

    operation: Operation | None
    refuse: Callable[[str], bytes] | None = None
    closes: bool = False
    producer: tuple[int, str] | None = None  # a PRODUCER: (producer_id, topic) once allowed
    consumer: tuple[int, str, str] | None = None  # a SUBSCRIBE: (consumer_id, topic, subscription) once allowed
    send: int | None = None  # a SEND: its producer_id
    also: tuple[Operation, ...] = ()
    may_create: str | None = None
    refused: str | None = None

    @property
    def operations(self) -> tuple[Operation, ...]:
        return () if self.operation is None else (self.operation, *self.also)

    def creating(self, command: str) -> Classified:
        """The same command with ``create_topic`` on ``may_create`` decided too (the topic does
        not exist, or the broker cannot say without creating it)."""
        assert self.may_create is not None
        create = Operation("create_topic", Resource("topic", self.may_create), {"auto": True, "command": command})
        return attrs.evolve(self, also=(*self.also, create), may_create=None)


def first_refusal(operations: Sequence[Operation], decisions: Sequence[Decision]) -> tuple[Operation, Decision] | None:
    """The first operation whose decision is not ``allow`` (a missing decision is a deny), or None."""
    for i, op in enumerate(operations):
        decision = decisions[i] if i < len(decisions) else Decision("deny", "no decision")
        if decision.action != "allow":
            return op, decision
    return None


def _schema_type(schema: wire.Schema) -> str:
    return _SCHEMA_TYPES.get(schema.type, str(schema.type))


def classify(cmd: wire.BaseCommand, frame: Frame, producers: dict[int, str],
             consumers: dict[int, tuple[str, str]] | None = None) -> Classified:
    t = cmd.type if cmd.HasField("type") else None
    consumers = {} if consumers is None else consumers
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
            partial(c.partitioned_failed_frame, p.request_id, c.AUTHORIZATION_ERROR),
            may_create=p.topic if p.metadata_auto_creation_enabled else None)
    if t == T.PRODUCER:
        pr = cmd.producer
        request: dict[str, object] = {"producer_id": pr.producer_id}
        if pr.producer_name:
            request["producer_name"] = pr.producer_name
        if pr.encrypted:
            request["encrypted"] = True
        if pr.initial_subscription_name:
            request["group"] = pr.initial_subscription_name
        if pr.HasField("schema"):
            request["schema_type"] = _schema_type(pr.schema)
        if pr.txn_enabled:
            request["transactional"] = True
        return Classified(Operation("produce", Resource("topic", pr.topic), request),
                          partial(c.error_frame, pr.request_id, c.AUTHORIZATION_ERROR),
                          producer=(pr.producer_id, pr.topic), may_create=pr.topic)
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
        if sub.HasField("schema"):
            request["schema_type"] = _schema_type(sub.schema)
        creates = not sub.HasField("force_topic_creation") or sub.force_topic_creation
        return Classified(Operation("consume", Resource("topic", sub.topic), request),
                          partial(c.error_frame, sub.request_id, c.AUTHORIZATION_ERROR),
                          consumer=(sub.consumer_id, sub.topic, sub.subscription),
                          may_create=sub.topic if creates else None)
    if t in (T.SEEK, T.UNSUBSCRIBE):
        return _on_subscription(cmd, consumers)
    if t in (T.GET_TOPICS_OF_NAMESPACE, T.WATCH_TOPIC_LIST):
        return _listing(cmd)
    if t in (T.GET_SCHEMA, T.GET_OR_CREATE_SCHEMA):
        return _schema(cmd)
    if t in (T.TC_CLIENT_CONNECT_REQUEST, T.NEW_TXN, T.ADD_PARTITION_TO_TXN, T.ADD_SUBSCRIPTION_TO_TXN, T.END_TXN):
        return _transaction(cmd)
    name = c.command_name(cmd)
    if t in BROKER_ONLY:
        return Classified(None, refuse=lambda reason: b"", closes=True,
                          refused=f"{name} is a command a transaction coordinator sends a broker; a client may not")
    # Anything else (a type this codec does not know, or one no client sends) is not inspected:
    # it is put to the policy as `other` on the cluster, so a default-deny policy refuses it.
    return Classified(Operation("other", PULSAR_CLUSTER, {"command": name}), lambda reason: b"", closes=True)


def _on_subscription(cmd: wire.BaseCommand, consumers: dict[int, tuple[str, str]]) -> Classified:
    """SEEK and UNSUBSCRIBE act on the subscription of a consumer this connection subscribed:
    decided as ``seek`` / ``unsubscribe`` on that subscription (resource ``group``)."""
    if cmd.type == T.SEEK:
        consumer_id, request_id, name = cmd.seek.consumer_id, cmd.seek.request_id, "seek"
        request: dict[str, object] = {}
        if cmd.seek.HasField("message_id"):
            request["message_id"] = f"{cmd.seek.message_id.ledgerId}:{cmd.seek.message_id.entryId}"
        if cmd.seek.HasField("message_publish_time"):
            request["publish_time"] = cmd.seek.message_publish_time
    else:
        consumer_id, request_id, name = cmd.unsubscribe.consumer_id, cmd.unsubscribe.request_id, "unsubscribe"
        request = {"force": bool(cmd.unsubscribe.force)}
    known = consumers.get(consumer_id)
    if known is None:
        # No SUBSCRIBE of that id was allowed here, so the broker has no such consumer on this
        # connection either: it answers the error itself.
        return Classified(None)
    topic, subscription = known
    request.update({"topic": topic, "consumer_id": consumer_id})
    return Classified(Operation(name, Resource("group", subscription), request),
                      partial(c.error_frame, request_id, c.AUTHORIZATION_ERROR))


def _listing(cmd: wire.BaseCommand) -> Classified:
    """GET_TOPICS_OF_NAMESPACE and WATCH_TOPIC_LIST: ``list_topics`` on the namespace; the answer
    (and every WATCH_TOPIC_UPDATE) is filtered to the topics the principal may describe."""
    if cmd.type == T.GET_TOPICS_OF_NAMESPACE:
        g = cmd.getTopicsOfNamespace
        request: dict[str, object] = {"mode": wire.CommandGetTopicsOfNamespace.Mode.Name(g.mode)}
        namespace, request_id, pattern = g.namespace, g.request_id, g.topics_pattern if g.HasField("topics_pattern") else None
    else:
        w = cmd.watchTopicList
        request = {"watch": True}
        namespace, request_id, pattern = w.namespace, w.request_id, w.topics_pattern
    if pattern is not None:
        request["pattern"] = pattern
    return Classified(Operation("list_topics", Resource("namespace", namespace), request),
                      partial(c.error_frame, request_id, c.AUTHORIZATION_ERROR))


def _schema(cmd: wire.BaseCommand) -> Classified:
    """GET_SCHEMA reads a topic's schema (``describe_topic``); GET_OR_CREATE_SCHEMA may add a
    schema version to the topic, a change of the topic: ``alter_topic_config``."""
    if cmd.type == T.GET_SCHEMA:
        g = cmd.getSchema
        request: dict[str, object] = {"schema": True}
        if g.HasField("schema_version"):
            request["schema_version"] = g.schema_version.hex()
        return Classified(Operation("describe_topic", Resource("topic", g.topic), request),
                          partial(c.schema_error_frame, False, g.request_id, c.AUTHORIZATION_ERROR))
    s = cmd.getOrCreateSchema
    return Classified(
        Operation("alter_topic_config", Resource("topic", s.topic), {"schema": True, "schema_type": _schema_type(s.schema)}),
        partial(c.schema_error_frame, True, s.request_id, c.AUTHORIZATION_ERROR))


def _transaction(cmd: wire.BaseCommand) -> Classified:
    """Transactions: ``transactional_write`` on the cluster for every transaction command, and
    for those that name topics, ``produce`` (ADD_PARTITION_TO_TXN) or ``consume`` with the
    subscription as ``group`` (ADD_SUBSCRIPTION_TO_TXN) on each topic too."""
    name = c.command_name(cmd)
    if cmd.type == T.TC_CLIENT_CONNECT_REQUEST:
        r = cmd.tcClientConnectRequest
        return Classified(Operation("transactional_write", PULSAR_CLUSTER, {"command": name, "tc_id": r.tc_id}),
                          partial(c.tc_connect_error_frame, r.request_id, c.AUTHORIZATION_ERROR))
    also: tuple[Operation, ...] = ()
    request: dict[str, object] = {"command": name}
    if cmd.type == T.NEW_TXN:
        n = cmd.newTxn
        request_id, txn = n.request_id, (0, 0)
        request.update({"tc_id": n.tc_id, "txn_ttl_seconds": n.txn_ttl_seconds})
    elif cmd.type == T.ADD_PARTITION_TO_TXN:
        a = cmd.addPartitionToTxn
        request_id, txn = a.request_id, (a.txnid_most_bits, a.txnid_least_bits)
        also = tuple(Operation("produce", Resource("topic", p), {"transaction": True}) for p in a.partitions)
    elif cmd.type == T.ADD_SUBSCRIPTION_TO_TXN:
        s = cmd.addSubscriptionToTxn
        request_id, txn = s.request_id, (s.txnid_most_bits, s.txnid_least_bits)
        also = tuple(Operation("consume", Resource("topic", sub.topic), {"group": sub.subscription, "transaction": True})
                     for sub in s.subscription)
    else:
        e = cmd.endTxn
        request_id, txn = e.request_id, (e.txnid_most_bits, e.txnid_least_bits)
        request["txn_action"] = "abort" if e.txn_action == 1 else "commit"
    if txn != (0, 0):
        request["txn"] = f"{txn[0]}:{txn[1]}"
    return Classified(Operation("transactional_write", PULSAR_CLUSTER, request),
                      partial(c.txn_error_frame, cmd.type, request_id, txn, c.AUTHORIZATION_ERROR), also=also)
