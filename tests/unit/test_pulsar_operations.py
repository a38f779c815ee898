"""The Pulsar adapter's command-to-operation mapping and listing filters (plugins/gatekeeper-pulsar):
what each client command is decided as, the answer a refusal gets, and listings rebuilt with only
the allowed topics and the hash of what the client holds."""

from __future__ import annotations

import pytest
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import listing
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.framing import Frame, FrameDecoder, encode_frame
from gatekeeper_pulsar.operations import classify, first_refusal

from gatekeeper.api import Decision

T = wire.BaseCommand
TOPIC = "persistent://public/default/orders"


def _classify(cmd: wire.BaseCommand, consumers: dict[int, tuple[str, str]] | None = None):  # type: ignore[no-untyped-def]
    raw = cmd.SerializePartialToString()
    return classify(c.parse_command(raw), Frame(raw, b"", encode_frame(raw)), {}, consumers or {})


def _answer(frame: bytes) -> wire.BaseCommand:
    decoder = FrameDecoder()
    decoder.receive_data(frame)
    got = decoder.next_frame()
    assert got is not None
    return c.parse_command(got.command)


def test_producer_may_create_its_topic_and_creating_adds_create_topic() -> None:
    cmd = wire.BaseCommand(type=T.PRODUCER)
    cmd.producer.topic, cmd.producer.producer_id, cmd.producer.request_id = TOPIC, 1, 2
    cmd.producer.schema.name, cmd.producer.schema.schema_data, cmd.producer.schema.type = "s", b"", 4
    what = _classify(cmd)
    assert what.may_create == TOPIC
    assert what.operation is not None and what.operation.request["schema_type"] == "Avro"
    created = what.creating("PRODUCER")
    assert [(op.name, op.resource.name) for op in created.operations] == [("produce", TOPIC), ("create_topic", TOPIC)]
    assert created.may_create is None


def test_subscribe_without_force_topic_creation_creates_nothing() -> None:
    cmd = wire.BaseCommand(type=T.SUBSCRIBE)
    s = cmd.subscribe
    s.topic, s.subscription, s.consumer_id, s.request_id = TOPIC, "readers", 3, 4
    s.subType = wire.CommandSubscribe.Exclusive
    assert _classify(cmd).may_create == TOPIC
    s.force_topic_creation = False
    assert _classify(cmd).may_create is None
    assert _classify(cmd).consumer == (3, TOPIC, "readers")


def test_partitioned_metadata_without_auto_creation_creates_nothing() -> None:
    cmd = wire.BaseCommand(type=T.PARTITIONED_METADATA)
    cmd.partitionMetadata.topic, cmd.partitionMetadata.request_id = TOPIC, 1
    assert _classify(cmd).may_create == TOPIC
    cmd.partitionMetadata.metadata_auto_creation_enabled = False
    assert _classify(cmd).may_create is None


@pytest.mark.parametrize("kind", ["seek", "unsubscribe"])
def test_seek_and_unsubscribe_are_decided_on_the_subscription_of_their_consumer(kind: str) -> None:
    if kind == "seek":
        cmd = wire.BaseCommand(type=T.SEEK)
        cmd.seek.consumer_id, cmd.seek.request_id = 3, 9
        cmd.seek.message_publish_time = 1700000000000
    else:
        cmd = wire.BaseCommand(type=T.UNSUBSCRIBE)
        cmd.unsubscribe.consumer_id, cmd.unsubscribe.request_id = 3, 9
    assert _classify(cmd).operation is None, "an unknown consumer: forwarded, the broker has none either"
    what = _classify(cmd, {3: (TOPIC, "readers")})
    assert what.operation is not None and what.refuse is not None
    assert (what.operation.name, what.operation.resource.type, what.operation.resource.name) == (kind, "group", "readers")
    assert what.operation.request["topic"] == TOPIC
    refused = _answer(what.refuse("no"))
    assert refused.type == T.ERROR and refused.error.request_id == 9 and refused.error.error == wire.AuthorizationError


def test_listing_is_list_topics_on_the_namespace() -> None:
    cmd = wire.BaseCommand(type=T.GET_TOPICS_OF_NAMESPACE)
    cmd.getTopicsOfNamespace.request_id, cmd.getTopicsOfNamespace.namespace = 5, "public/default"
    cmd.getTopicsOfNamespace.topics_pattern = "persistent://public/default/o.*"
    what = _classify(cmd)
    assert what.operation is not None
    assert (what.operation.name, what.operation.resource.type, what.operation.resource.name) == (
        "list_topics", "namespace", "public/default")
    assert what.operation.request == {"mode": "PERSISTENT", "pattern": "persistent://public/default/o.*"}


def test_schema_commands() -> None:
    get = wire.BaseCommand(type=T.GET_SCHEMA)
    get.getSchema.request_id, get.getSchema.topic = 1, TOPIC
    create = wire.BaseCommand(type=T.GET_OR_CREATE_SCHEMA)
    create.getOrCreateSchema.request_id, create.getOrCreateSchema.topic = 2, TOPIC
    create.getOrCreateSchema.schema.name, create.getOrCreateSchema.schema.schema_data = "s", b""
    create.getOrCreateSchema.schema.type = 2
    g, o = _classify(get), _classify(create)
    assert g.operation is not None and o.operation is not None and o.refuse is not None
    assert (g.operation.name, o.operation.name) == ("describe_topic", "alter_topic_config")
    assert o.operation.request == {"schema": True, "schema_type": "Json"}
    answer = _answer(o.refuse("no")).getOrCreateSchemaResponse
    assert answer.request_id == 2 and answer.error_code == wire.AuthorizationError and answer.error_message == "no"


def test_transactions_decide_every_topic_they_name() -> None:
    cmd = wire.BaseCommand(type=T.ADD_PARTITION_TO_TXN)
    a = cmd.addPartitionToTxn
    a.request_id, a.txnid_most_bits, a.txnid_least_bits = 4, 1, 2
    a.partitions.extend([TOPIC, TOPIC + "-2"])
    what = _classify(cmd)
    assert [(op.name, op.resource.name) for op in what.operations] == [
        ("transactional_write", "pulsar-cluster"), ("produce", TOPIC), ("produce", TOPIC + "-2")]
    assert what.refuse is not None
    answer = _answer(what.refuse("no"))
    assert answer.type == T.ADD_PARTITION_TO_TXN_RESPONSE
    r = answer.addPartitionToTxnResponse
    assert (r.request_id, r.txnid_most_bits, r.txnid_least_bits, r.error) == (4, 1, 2, wire.AuthorizationError)


def test_broker_only_transaction_commands_are_refused_outright() -> None:
    what = _classify(wire.BaseCommand(type=T.END_TXN_ON_PARTITION))
    assert what.operation is None and what.refused is not None and what.closes


def test_first_refusal_is_the_first_operation_not_allowed() -> None:
    cmd = wire.BaseCommand(type=T.PRODUCER)
    cmd.producer.topic, cmd.producer.producer_id, cmd.producer.request_id = TOPIC, 1, 2
    ops = _classify(cmd).creating("PRODUCER").operations
    assert first_refusal(ops, [Decision("allow", ""), Decision("allow", "")]) is None
    refusal = first_refusal(ops, [Decision("allow", ""), Decision("deny", "no creating")])
    assert refusal is not None and refusal[0].name == "create_topic"
    missing = first_refusal(ops, [Decision("allow", "")])
    assert missing is not None and missing[1].action == "deny", "a missing decision is a deny"


def test_topics_hash_is_the_brokers() -> None:
    # TopicList.calculateHash of the empty list is Guava's CRC32C of nothing.
    assert c.topics_hash([]) == "00000000"
    assert c.topics_hash(["b", "a"]) == c.topics_hash(["a", "b"])


def _held(cmd: wire.BaseCommand, allowed: set[str]) -> listing.HeldListing:
    raw = encode_frame(cmd.SerializePartialToString())
    return listing.HeldListing(1, cmd, raw, listing.listed(cmd), allowed)


def test_a_listing_answer_keeps_only_allowed_topics_and_rehashes() -> None:
    cmd = wire.BaseCommand(type=T.GET_TOPICS_OF_NAMESPACE_RESPONSE)
    r = cmd.getTopicsOfNamespaceResponse
    r.request_id = 1
    r.topics.extend(["t/a", "t/b", "t/c"])
    r.topics_hash = c.topics_hash(["t/a", "t/b", "t/c"])
    out = listing.rebuild(_held(cmd, {"t/a", "t/c"}), {})
    assert out is not None
    answer = _answer(out).getTopicsOfNamespaceResponse
    assert list(answer.topics) == ["t/a", "t/c"] and answer.topics_hash == c.topics_hash(["t/a", "t/c"])
    everything = wire.BaseCommand()
    everything.CopyFrom(cmd)
    held = _held(everything, {"t/a", "t/b", "t/c"})
    assert listing.rebuild(held, {}) == held.raw, "nothing removed: the broker's bytes"


def test_watcher_updates_track_what_the_client_holds() -> None:
    watchers: dict[int, set[str]] = {}
    success = wire.BaseCommand(type=T.WATCH_TOPIC_LIST_SUCCESS)
    s = success.watchTopicListSuccess
    s.request_id, s.watcher_id, s.topics_hash = 1, 7, "x"
    s.topic.extend(["t/a", "t/hidden"])
    first = listing.rebuild(_held(success, {"t/a"}), watchers)
    assert first is not None and list(_answer(first).watchTopicListSuccess.topic) == ["t/a"]
    assert watchers == {7: {"t/a"}}
    update = wire.BaseCommand(type=T.WATCH_TOPIC_UPDATE)
    u = update.watchTopicUpdate
    u.watcher_id, u.topics_hash = 7, "x"
    u.new_topics.extend(["t/b", "t/hidden2"])
    out = listing.rebuild(_held(update, {"t/b"}), watchers)
    assert out is not None
    got = _answer(out).watchTopicUpdate
    assert list(got.new_topics) == ["t/b"] and got.topics_hash == c.topics_hash(["t/a", "t/b"])
    hidden_only = wire.BaseCommand(type=T.WATCH_TOPIC_UPDATE)
    hidden_only.watchTopicUpdate.watcher_id, hidden_only.watchTopicUpdate.topics_hash = 7, "y"
    hidden_only.watchTopicUpdate.deleted_topics.append("t/hidden")
    assert listing.rebuild(_held(hidden_only, set()), watchers) is None, "nothing the client may see changed"
    unknown = wire.BaseCommand()
    unknown.CopyFrom(update)
    unknown.watchTopicUpdate.watcher_id = 99
    assert listing.rebuild(_held(unknown, {"t/b"}), watchers) is None


def test_every_operation_is_a_valid_policy_input() -> None:
    import json
    from importlib import resources

    import jsonschema

    from gatekeeper.policy.input import SessionInfo, build_input

    schema = json.loads(resources.files("gatekeeper").joinpath("schemas/policy-input.schema.json").read_text())
    session = SessionInfo("01JTESTSESSION0000000000000", 1_700_000_000.0, "127.0.0.1", protocol="pulsar")
    listing_cmd = wire.BaseCommand(type=T.WATCH_TOPIC_LIST)
    w = listing_cmd.watchTopicList
    w.request_id, w.watcher_id, w.namespace, w.topics_pattern = 1, 2, "public/default", "persistent://public/default/.*"
    seek = wire.BaseCommand(type=T.SEEK)
    seek.seek.consumer_id, seek.seek.request_id = 3, 4
    seek.seek.message_id.ledgerId, seek.seek.message_id.entryId = 5, 6
    end = wire.BaseCommand(type=T.END_TXN)
    end.endTxn.request_id, end.endTxn.txn_action = 7, 1
    producer = wire.BaseCommand(type=T.PRODUCER)
    producer.producer.topic, producer.producer.producer_id, producer.producer.request_id = TOPIC, 1, 2
    ops = [*_classify(listing_cmd).operations, *_classify(seek, {3: (TOPIC, "readers")}).operations,
           *_classify(end).operations, *_classify(producer).creating("PRODUCER").operations,
           *listing.operations([TOPIC])]
    assert [op.name for op in ops] == ["list_topics", "seek", "transactional_write", "produce", "create_topic",
                                       "describe_topic"]
    for op in ops:
        jsonschema.validate(build_input(op, api_key=0, api_name="X", api_version=21, client_id=None, session=session,
                                        now=0), schema)
