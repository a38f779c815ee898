"""Cluster administration: each API its own operation on the cluster, so a policy grants it by
name (the default library never lets a ``*`` grant cover them). Requests that would alter or
expose Gatekeeper's own identity at the broker — its SCRAM credentials, its quotas — are refused
whatever the policy says, and answers are cleaned of entries about it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gatekeeper.api import CLUSTER, Operation
from gatekeeper.kafka.apis.addresses import hide_controller_listeners
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    GatewayIdentity,
    OpContext,
    Resolve,
    ResponseContext,
)

_USER = "user"


def _cluster(name: str, detail: Callable[[Any], dict[str, Any]] = lambda b: {}) -> Callable[[Any, OpContext], list[Operation]]:
    def ops(b: Any, c: OpContext) -> list[Operation]:
        return [Operation(name, CLUSTER, detail(b))]

    return ops


def _topics(attr: str, name: str = "name") -> Callable[[Any], dict[str, Any]]:
    """The topics a cluster request names (None: all topics)."""

    def detail(b: Any) -> dict[str, Any]:
        topics = getattr(b, attr)
        return {"topics": None if topics is None else sorted({getattr(t, name) for t in topics})}

    return detail


# -- SCRAM credentials -----------------------------------------------------------------------


def _credential_users(b: Any) -> dict[str, Any]:
    names = {d.name for d in b.deletions} | {u.name for u in b.upsertions}
    return {"users": sorted(names)}


def _credentials_guard(version: int, b: Any, gateway: GatewayIdentity) -> str | None:
    names = {d.name for d in b.deletions} | {u.name for u in b.upsertions}
    if gateway.user is not None and gateway.user in names:
        return f"the SCRAM credentials of {gateway.user!r} are Gatekeeper's own: no client may change them"
    return None


def _described_users(b: Any) -> dict[str, Any]:
    return {"users": None if b.users is None else sorted(u.name for u in b.users)}


def _describe_credentials_guard(version: int, b: Any, gateway: GatewayIdentity) -> str | None:
    if gateway.user is not None and b.users is not None and any(u.name == gateway.user for u in b.users):
        return f"the SCRAM credentials of {gateway.user!r} are Gatekeeper's own: no client may describe them"
    return None


def _without_gateway_user(version: int, body: Any, ctx: ResponseContext) -> None:
    """Describing all users: Gatekeeper's own is left out of the answer."""
    if ctx.gateway.user is not None:
        body.results = [r for r in body.results if r.user != ctx.gateway.user]


# -- client quotas ---------------------------------------------------------------------------


def _touches_gateway(entity: Any, gateway: GatewayIdentity) -> bool:
    """A quota entity that applies to Gatekeeper's own user: that user, or the default user."""
    return any(e.entity_type == _USER and (e.entity_name is None or e.entity_name == gateway.user) for e in entity)


def _quotas_guard(version: int, b: Any, gateway: GatewayIdentity) -> str | None:
    if gateway.user is None:
        return None
    for entry in b.entries:
        if _touches_gateway(entry.entity, gateway):
            return (f"the quota would apply to Gatekeeper's own user {gateway.user!r} (named or as the default "
                    "user): no client may change it")
    return None


def _quota_entities(b: Any) -> dict[str, Any]:
    return {"entities": [{e.entity_type: e.entity_name for e in entry.entity} for entry in b.entries]}


def _without_gateway_quotas(version: int, body: Any, ctx: ResponseContext) -> None:
    if ctx.gateway.user is not None and body.entries is not None:
        body.entries = [e for e in body.entries if not any(
            d.entity_type == _USER and d.entity_name == ctx.gateway.user for d in e.entity)]


# -- error responses (the APIs with no top-level error code, or not in every version) -----------


def _credentials_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    d = deny(CLUSTER)
    X = R.AlterUserScramCredentialsResult
    users = sorted({x.name for x in b.deletions} | {x.name for x in b.upsertions})
    return R[v](throttle_time_ms=0, results=[X(user=u, error_code=d.code, error_message=d.message) for u in users])


def _quotas_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    d = deny(CLUSTER)
    E = R.EntryData
    return R[v](throttle_time_ms=0, entries=[
        E(error_code=d.code, error_message=d.message,
          entity=[E.EntityData(entity_type=e.entity_type, entity_name=e.entity_name) for e in entry.entity])
        for entry in b.entries])


def _log_dirs_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.AlterReplicaLogDirTopicResult
    code = deny(CLUSTER).code
    return R[v](throttle_time_ms=0, results=[
        T(topic_name=t.name, partitions=[T.AlterReplicaLogDirPartitionResult(partition_index=p, error_code=code) for p in t.partitions])
        for d in b.dirs for t in d.topics])


def _describe_log_dirs_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    return R[v](throttle_time_ms=0, error_code=deny(CLUSTER).code, results=[])


def _elect_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    d = deny(CLUSTER)
    X = R.ReplicaElectionResult
    P = X.PartitionResult
    return R[v](throttle_time_ms=0, error_code=d.code, replica_election_results=[
        X(topic=t.topic, partition_result=[P(partition_id=p, error_code=d.code, error_message=d.message) for p in t.partitions])
        for t in b.topic_partitions or ()])


def _reassign_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    d = deny(CLUSTER)
    T = R.ReassignableTopicResponse
    P = T.ReassignablePartitionResponse
    return R[v](throttle_time_ms=0, error_code=d.code, error_message=d.message, responses=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index, error_code=d.code, error_message=d.message)
                                   for p in t.partitions]) for t in b.topics])


def _list_reassignments_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    d = deny(CLUSTER)
    T = R.OngoingTopicReassignment
    P = T.OngoingPartitionReassignment
    return R[v](throttle_time_ms=0, error_code=d.code, error_message=d.message, topics=[
        T(name=t.name, partitions=[P(partition_index=i, replicas=[], adding_replicas=[], removing_replicas=[])
                                   for i in t.partition_indexes]) for t in b.topics or ()])


def _describe_credentials_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    # As the broker answers a refused describe: one result with no user, the error repeated.
    d = deny(CLUSTER)
    X = R.DescribeUserScramCredentialsResult
    return R[v](throttle_time_ms=0, error_code=d.code, error_message=d.message,
                results=[X(user="", error_code=d.code, error_message=d.message, credential_infos=[])])


def _describe_quotas_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    d = deny(CLUSTER)
    return R[v](throttle_time_ms=0, error_code=d.code, error_message=d.message, entries=None)


UNITS = [
    ApiUnit(ApiKey.ALTER_USER_SCRAM_CREDENTIALS, _cluster("alter_user_credentials", _credential_users), _credentials_error,
            guard=_credentials_guard),
    ApiUnit(ApiKey.DESCRIBE_USER_SCRAM_CREDENTIALS, _cluster("describe_user_credentials", _described_users),
            _describe_credentials_error, guard=_describe_credentials_guard, rewrite=_without_gateway_user),
    ApiUnit(ApiKey.ALTER_CLIENT_QUOTAS, _cluster("alter_client_quotas", _quota_entities), _quotas_error, guard=_quotas_guard),
    ApiUnit(ApiKey.DESCRIBE_CLIENT_QUOTAS, _cluster("describe_client_quotas"), _describe_quotas_error,
            rewrite=_without_gateway_quotas),
    ApiUnit(ApiKey.ELECT_LEADERS, _cluster("elect_leaders", _topics("topic_partitions", "topic")), _elect_error),
    ApiUnit(ApiKey.ALTER_PARTITION_REASSIGNMENTS, _cluster("reassign_partitions", _topics("topics")), _reassign_error),
    ApiUnit(ApiKey.LIST_PARTITION_REASSIGNMENTS, _cluster("list_partition_reassignments", _topics("topics")),
            _list_reassignments_error),
    ApiUnit(ApiKey.ALTER_REPLICA_LOG_DIRS, _cluster("alter_replica_log_dirs",
                                                    lambda b: {"topics": sorted({t.name for d in b.dirs for t in d.topics})}),
            _log_dirs_error),
    ApiUnit(ApiKey.DESCRIBE_LOG_DIRS, _cluster("describe_log_dirs", _topics("topics", "topic")), _describe_log_dirs_error),
    ApiUnit(ApiKey.DESCRIBE_QUORUM, _cluster("describe_quorum", _topics("topics", "topic_name")),
            rewrite=hide_controller_listeners, rewrite_since=2),
    ApiUnit(ApiKey.UPDATE_FEATURES, _cluster("update_features",
                                             lambda b: {"features": sorted(f.feature for f in b.feature_updates)})),
    ApiUnit(ApiKey.LIST_CONFIG_RESOURCES, _cluster("list_config_resources")),
]
