"""Decoded Kafka requests → stream operations, one per (operation, resource).

Each API's operations are defined by its enforcement unit (``gatekeeper/kafka/apis/``); the
names form the vocabulary policy authors write against (``docs/policy-input.md``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from gatekeeper.api import Operation
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import UNKNOWN_TOPIC_ID_PREFIX, OpContext, Resolve

__all__ = ["OPERATION_NAMES", "UNKNOWN_TOPIC_ID_PREFIX", "UnresolvedTopicIds", "operations_for"]


class UnresolvedTopicIds(Exception):
    """A request names topics by ids Gatekeeper has not yet seen in metadata."""

    def __init__(self, ids: Iterable[uuid.UUID]) -> None:
        self.ids = frozenset(ids)
        super().__init__(f"unknown topic ids: {', '.join(sorted(map(str, self.ids)))}")


OPERATION_NAMES = frozenset(
    {
        "produce", "consume", "describe_topic", "list_topics", "create_topic", "delete_topic",
        "delete_records", "create_partitions", "commit_offset", "fetch_offset", "delete_offsets",
        "find_coordinator", "join_group", "describe_group", "delete_group", "list_groups",
        "init_producer", "transactional_write", "describe_transaction", "list_transactions",
        "describe_topic_config", "alter_topic_config", "describe_group_config",
        "alter_group_config", "describe_cluster_config", "alter_cluster_config",
        "describe_acls", "alter_acls", "describe_cluster", "api_versions", "authenticate",
        # Cluster administration: granted only by name, never by a "*" (see docs/security.md).
        "alter_user_credentials", "describe_user_credentials", "alter_client_quotas", "describe_client_quotas",
        "elect_leaders", "reassign_partitions", "list_partition_reassignments", "alter_replica_log_dirs",
        "describe_log_dirs", "describe_quorum", "update_features", "list_config_resources",
    }
)


def operations_for(api_key: int, version: int, body: Any, resolve: Resolve, *, strict: bool = True,
                   state: Any = None) -> list[Operation]:
    """The operations one decoded request performs.

    With ``strict``, raise UnresolvedTopicIds for topic ids ``resolve`` does not know (the caller
    asks the broker and tries again); otherwise name them ``unknown-topic-id:<uuid>``. ``state``
    is what the connection remembers between requests (``OpContext.state``).
    """
    ctx = OpContext(version, resolve, state)
    ops = UNITS[api_key].operations(body, ctx)
    if ctx.missing and strict:
        raise UnresolvedTopicIds(ctx.missing)
    return ops
