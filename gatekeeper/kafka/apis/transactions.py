"""Producer ids and transactions: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
TxnOffsetCommit, DescribeTransactions and ListTransactions (a listing filtered by describe
rights)."""

from __future__ import annotations

from typing import Any

from gatekeeper.api import CLUSTER, Operation, Resource
from gatekeeper.kafka.apis.base import (
    ApiKey,
    ApiUnit,
    Denials,
    Listing,
    OpContext,
    Resolve,
    group,
    scoped_code,
    txn,
)


def _init_producer(b: Any, c: OpContext) -> list[Operation]:
    if b.transactional_id:
        return [Operation("init_producer", txn(b.transactional_id), {"transactional": True})]
    return [Operation("init_producer", CLUSTER, {"transactional": False})]


def _init_producer_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    r = Resource("transactional_id", b.transactional_id) if b.transactional_id else CLUSTER
    return R[v](throttle_time_ms=0, error_code=deny(r).code, producer_id=-1, producer_epoch=-1)


def _add_partitions(b: Any, c: OpContext) -> list[Operation]:
    # The coordinator will write the transaction's markers into every partition added: each
    # topic is a produce (Kafka's authorizer requires WRITE on it), besides the transaction.
    if c.version <= 3:
        txns = [(b.v3_and_below_transactional_id, b.v3_and_below_topics)]
    else:
        txns = [(t.transactional_id, t.topics) for t in b.transactions]
    ops = []
    for tid, topics in txns:
        ops.append(Operation("transactional_write", txn(tid), {"topics": {t.name: list(t.partitions) for t in topics}}))
        ops += [Operation("produce", c.topic(t.name), {"transactional_id": tid, "partitions": list(t.partitions)}) for t in topics]
    return ops


def _add_partitions_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    T = R.AddPartitionsToTxnTopicResult
    P = T.AddPartitionsToTxnPartitionResult

    def topics(tid: str, ts: Any) -> list[Any]:
        scope = Resource("transactional_id", tid)
        out = []
        for t in ts:
            code = scoped_code(deny, scope, Resource("topic", t.name)) or deny(scope).code
            out.append(T(name=t.name, results_by_partition=[P(partition_index=p, partition_error_code=code) for p in t.partitions]))
        return out

    if v <= 3:
        return R[v](throttle_time_ms=0, results_by_topic_v3_and_below=topics(b.v3_and_below_transactional_id, b.v3_and_below_topics))
    X = R.AddPartitionsToTxnResult
    return R[v](throttle_time_ms=0, error_code=0, results_by_transaction=[
        X(transactional_id=t.transactional_id, topic_results=topics(t.transactional_id, t.topics)) for t in b.transactions])


def _add_offsets(b: Any, c: OpContext) -> list[Operation]:
    return [
        Operation("transactional_write", txn(b.transactional_id), {"group": b.group_id}),
        Operation("commit_offset", group(b.group_id), {"transactional_id": b.transactional_id}),
    ]


def _txn_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    return R[v](throttle_time_ms=0, error_code=deny(Resource("transactional_id", b.transactional_id)).code)


def _end_txn(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("transactional_write", txn(b.transactional_id), {"committed": bool(b.committed)})]


def _txn_offset_commit(b: Any, c: OpContext) -> list[Operation]:
    # Offsets are committed for each topic named: commit_offset on each (Kafka's authorizer
    # requires READ on it), as a plain OffsetCommit is decided.
    topics = [t.name for t in b.topics]
    return [
        Operation("transactional_write", txn(b.transactional_id), {"group": b.group_id}),
        Operation("commit_offset", group(b.group_id), {"topics": topics, "transactional_id": b.transactional_id}),
    ] + [Operation("commit_offset", c.topic(t.name), {"group": b.group_id, "transactional_id": b.transactional_id,
                                                        "partitions": [p.partition_index for p in t.partitions]})
         for t in b.topics]


def _txn_offset_commit_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    # Kafka checks the transactional id, then the group, then each topic.
    T = R.TxnOffsetCommitResponseTopic
    P = T.TxnOffsetCommitResponsePartition
    tx = deny.get(Resource("transactional_id", b.transactional_id))
    scope = Resource("group", b.group_id)

    def code(topic: str) -> int:
        return tx.code if tx is not None else scoped_code(deny, scope, Resource("topic", topic))

    return R[v](throttle_time_ms=0, topics=[
        T(name=t.name, partitions=[P(partition_index=p.partition_index, error_code=code(t.name)) for p in t.partitions])
        for t in b.topics])


def _describe(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("describe_transaction", txn(t), {}) for t in b.transactional_ids]


def _describe_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    X = R.TransactionState
    return R[v](throttle_time_ms=0, transaction_states=[
        X(error_code=deny(Resource("transactional_id", t)).code, transactional_id=t, transaction_state="",
          transaction_timeout_ms=0, transaction_start_time_ms=0, producer_id=0, producer_epoch=0, topics=[])
        for t in b.transactional_ids])


def _list(b: Any, c: OpContext) -> list[Operation]:
    return [Operation("list_transactions", CLUSTER, {})]


_LISTING = Listing("transaction_states", "describe_transaction", "transactional_id", lambda s: s.transactional_id)

UNITS = [
    ApiUnit(ApiKey.INIT_PRODUCER_ID, _init_producer, _init_producer_error),
    # v4+ is the brokers' batched verification form (KIP-890), which the broker authorizes as
    # CLUSTER_ACTION; Gatekeeper's own credentials would pass that check, so it is not offered.
    ApiUnit(ApiKey.ADD_PARTITIONS_TO_TXN, _add_partitions, _add_partitions_error, max_version=3),
    ApiUnit(ApiKey.ADD_OFFSETS_TO_TXN, _add_offsets, _txn_error),
    ApiUnit(ApiKey.END_TXN, _end_txn, _txn_error),
    ApiUnit(ApiKey.TXN_OFFSET_COMMIT, _txn_offset_commit, _txn_offset_commit_error),
    ApiUnit(ApiKey.DESCRIBE_TRANSACTIONS, _describe, _describe_error),
    ApiUnit(ApiKey.LIST_TRANSACTIONS, _list, listing=lambda version, body: _LISTING),
]
