"""Topic listings from the broker, filtered to the topics the principal may describe.

GET_TOPICS_OF_NAMESPACE_RESPONSE, WATCH_TOPIC_LIST_SUCCESS and WATCH_TOPIC_UPDATE name topics.
Each topic they name is decided ``describe_topic`` (``{"listing": true}``), as Kafka's Metadata
listings are; the answer the client gets names only the allowed ones, never the unfiltered list.
A topic watcher's list is remembered per watcher so that every update carries the hash of the
list the client holds (the broker's hash is of its own, unfiltered list).

Pure functions: the connection decides, holds the answers in order and calls :func:`rebuild`.
"""

from __future__ import annotations

import attrs

from gatekeeper.api import Operation, Resource
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.framing import encode_frame

__all__ = ["RESPONSES", "HeldListing", "listed", "rebuild"]

T = wire.BaseCommand
RESPONSES = frozenset({T.GET_TOPICS_OF_NAMESPACE_RESPONSE, T.WATCH_TOPIC_LIST_SUCCESS, T.WATCH_TOPIC_UPDATE})


@attrs.define
class HeldListing:
    """A listing answer waiting for its topics' decisions (``allowed`` None: not decided yet)."""

    token: int
    cmd: wire.BaseCommand
    raw: bytes
    topics: list[str]
    allowed: set[str] | None = None


def listed(cmd: wire.BaseCommand) -> list[str]:
    """Every topic a listing answer names (an update's new and deleted topics alike), deduplicated."""
    if cmd.type == T.GET_TOPICS_OF_NAMESPACE_RESPONSE:
        names = list(cmd.getTopicsOfNamespaceResponse.topics)
    elif cmd.type == T.WATCH_TOPIC_LIST_SUCCESS:
        names = list(cmd.watchTopicListSuccess.topic)
    else:
        u = cmd.watchTopicUpdate
        names = [*u.new_topics, *u.deleted_topics]
    return list(dict.fromkeys(names))


def operations(topics: list[str]) -> list[Operation]:
    return [Operation("describe_topic", Resource("topic", t), {"listing": True}) for t in topics]


def rebuild(held: HeldListing, watchers: dict[int, set[str]]) -> bytes | None:
    """The answer for the client, naming only ``held.allowed`` topics; None: nothing to send (an
    update that changes nothing the client may see, or one for a watcher Gatekeeper never saw)."""
    assert held.allowed is not None
    allowed, cmd = held.allowed, held.cmd
    if cmd.type == T.GET_TOPICS_OF_NAMESPACE_RESPONSE:
        r = cmd.getTopicsOfNamespaceResponse
        kept = [t for t in r.topics if t in allowed]
        if len(kept) == len(r.topics):
            return held.raw
        del r.topics[:]
        r.topics.extend(kept)
        if r.HasField("topics_hash"):
            r.topics_hash = c.topics_hash(kept)
        return encode_frame(c.serialize(cmd))
    if cmd.type == T.WATCH_TOPIC_LIST_SUCCESS:
        s = cmd.watchTopicListSuccess
        kept = [t for t in s.topic if t in allowed]
        watchers[s.watcher_id] = set(kept)
        if len(kept) == len(s.topic):
            return held.raw
        del s.topic[:]
        s.topic.extend(kept)
        s.topics_hash = c.topics_hash(kept)
        return encode_frame(c.serialize(cmd))
    u = cmd.watchTopicUpdate
    current = watchers.get(u.watcher_id)
    if current is None:
        return None
    new = [t for t in u.new_topics if t in allowed]
    deleted = [t for t in u.deleted_topics if t in allowed]
    if not new and not deleted:
        return None
    current.difference_update(deleted)
    current.update(new)
    if len(new) == len(u.new_topics) and len(deleted) == len(u.deleted_topics) and u.topics_hash == c.topics_hash(current):
        return held.raw
    del u.new_topics[:]
    u.new_topics.extend(new)
    del u.deleted_topics[:]
    u.deleted_topics.extend(deleted)
    u.topics_hash = c.topics_hash(current)
    return encode_frame(c.serialize(cmd))
